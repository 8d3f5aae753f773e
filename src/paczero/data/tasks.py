"""Tasks (classification by label words, generation scored by F1) and the pool/dev/test split.

The split follows the paper's protocol (paczero-notes §7): the pool (N private records) and the
dev set (public, for checkpoint selection) are disjoint draws from the train split made with the
public seed; the test set is the task's validation split, or ``n_test`` records of it drawn by the
same seed (SQuAD: 1000 of the 10,570 dev questions). A user's own records (``jsonl``, ``hf``) may instead
have a separate dev set or none (``data.dev_source``), and a test set drawn from the train records
(``data.test_fraction``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence, Union

import numpy as np

from paczero.data.prompts import fill_template, prompt_ids
from paczero.errors import PaczeroError
from paczero.rng import public_generator



@dataclass(frozen=True)
class Example:
    """A classification record: a text and the index of its label word."""

    text: str
    label: int


@dataclass(frozen=True)
class GenerationExample:
    """A generation record: the full prompt and every acceptable gold answer (the first is the target)."""

    prompt: str
    answers: tuple[str, ...]


Record = Union[Example, GenerationExample]


FILLED = "{sentence}"
"""The template of records whose text is already the whole prompt (``data.task=jsonl`` and ``hf`` fill their own)."""


class _Prompted:
    """A task's prompt as token ids: plain, or in the tokenizer's chat template (``chat_template``)."""

    chat_template: bool

    def prompt_ids(self, tokenizer, example, *, max_chars: int | None = None) -> tuple[list[int], bool]:
        """The token ids of ``example``'s prompt (wrapped in the chat template with ``chat_template``), its text cut
        to its last ``max_chars`` characters first; and whether it was cut."""
        text = self.render(example)  # type: ignore[attr-defined]
        clipped = max_chars is not None and len(text) > max_chars
        return prompt_ids(tokenizer, text[-max_chars:] if clipped else text, chat=self.chat_template), clipped


@dataclass(frozen=True)
class ClassificationTask(_Prompted):
    """A prompt template with ``{sentence}`` and one label word per class; ``chat_template`` wraps the prompt
    in the tokenizer's chat template."""

    prompt: str
    label_words: tuple[str, ...]
    chat_template: bool = False
    label_names: tuple[str, ...] | None = None
    """What each label is called in reports (``data.label_names``); default: the label words."""
    kind = "classification"

    @property
    def class_names(self) -> tuple[str, ...]:
        """One name per label for per-class metrics: the label names, else the label words without their
        surrounding spaces (as written when stripping would make two equal or one empty)."""
        if self.label_names:
            return tuple(self.label_names)
        stripped = tuple(w.strip() for w in self.label_words)
        return stripped if all(stripped) and len(set(stripped)) == len(stripped) else self.label_words

    def render(self, example: Example) -> str:
        """The prompt of ``example``: ``data.prompt`` with ``{sentence}`` replaced by its text."""
        return fill_template(self.prompt, {"sentence": example.text})

    def texts(self, examples: Sequence[Example]) -> list[str]:
        """Every text the model sees for ``examples`` (the vocabulary of ``model.name=tiny``)."""
        return [self.render(e) for e in examples] + list(self.label_words)

    def check_labels(self, examples: Sequence[Example], *, where: str) -> None:
        """Refuse a record whose label is not the index of a label word."""
        n = len(self.label_words)
        for i, ex in enumerate(examples):
            if not 0 <= ex.label < n:
                raise PaczeroError(f"{where}: record {i} has a label outside the {n} label words "
                                   f"{list(self.label_words)} (labels must be 0..{n - 1})",
                                   private=f"its label: {ex.label}")


@dataclass(frozen=True)
class GenerationTask(_Prompted):
    """Greedy generation after the record's prompt, scored against its gold answers (SQuAD F1/EM);
    ``chat_template`` wraps the prompt in the tokenizer's chat template."""

    chat_template: bool = False
    kind = "generation"

    @staticmethod
    def render(example: GenerationExample) -> str:
        """The prompt of ``example``, used as is."""
        return example.prompt

    @staticmethod
    def target(example: GenerationExample) -> str:
        """The teacher-forced target of the LM objective: ``" {first answer}\\n"`` (paczero-notes §7)."""
        return f" {example.answers[0]}\n"

    def texts(self, examples: Sequence[GenerationExample]) -> list[str]:
        """Every text the model sees or should produce (the vocabulary of ``model.name=tiny``)."""
        return [e.prompt for e in examples] + [f" {a}\n" for e in examples for a in e.answers]


Task = Union[ClassificationTask, GenerationTask]


@dataclass(frozen=True)
class Split:
    """The records of a run: the private pool, the public dev set and the test set."""
    pool: list
    dev: list
    test: list


def hold_out(train: Sequence[Record], fraction: float, *, seed: int) -> tuple[list[Record], list[Record]]:
    """``(rest, held)``: ⌈fraction·n⌉ records of ``train`` drawn by the public seed as a test set, both parts in
    their original order (``data.test_fraction``)."""
    k = math.ceil(fraction * len(train))
    if k >= len(train):
        raise PaczeroError(f"data.test_fraction={fraction} of {len(train)} training records leaves none for the pool")
    held = np.zeros(len(train), dtype=bool)
    held[public_generator(seed, "test_fraction").permutation(len(train))[:k]] = True
    return [r for r, h in zip(train, held) if not h], [r for r, h in zip(train, held) if h]


def make_split(train: Sequence[Record], validation: Sequence[Record], *, n_pool: int, n_dev: int,
               n_test: int | None, seed: int, dev: Sequence[Record] | None = None, dev_source: str = "train") -> Split:
    """Draw pool and dev (disjoint) from ``train`` and the test set from ``validation`` by the public seed.

    ``dev_source="separate"``: the pool is drawn from ``train`` and the dev set from ``dev`` instead; ``"none"``: no
    dev set.
    """
    if dev_source == "train" and n_pool + n_dev > len(train):
        raise PaczeroError(f"data.n_pool={n_pool} + data.n_dev={n_dev} exceeds the {len(train)} training "
                           "records available")
    if dev_source == "none" and n_pool > len(train):
        raise PaczeroError(f"data.n_pool={n_pool} exceeds the {len(train)} training records available")
    if dev_source == "separate" and (dev is None or n_pool > len(train) or n_dev > len(dev)):
        raise PaczeroError(f"data.n_pool={n_pool} and data.n_dev={n_dev} exceed the {len(train)} training and "
                           f"{len(dev or [])} dev records available")
    order = public_generator(seed, "split").permutation(len(train))
    pool = [train[i] for i in order[:n_pool]]
    if dev_source == "train":
        dev_records = [train[i] for i in order[n_pool:n_pool + n_dev]]
    elif dev_source == "none":
        dev_records = []
    else:
        dev_records = [dev[i] for i in public_generator(seed, "dev").permutation(len(dev))[:n_dev]]
    if n_test is None or n_test >= len(validation):
        test = list(validation)
    else:
        pick = public_generator(seed, "test").choice(len(validation), size=n_test, replace=False)
        test = [validation[i] for i in sorted(pick)]
    if not test:
        raise PaczeroError("the test split is empty")
    return Split(pool=pool, dev=dev_records, test=test)
