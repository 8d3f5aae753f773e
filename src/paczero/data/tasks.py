"""Classification tasks: prompt template, label words, and the pool/dev/test split.

The split follows the paper's protocol (paczero-notes §7): the pool (N private records) and the
dev set (public, for checkpoint selection) are disjoint draws from the train split made with the
public seed; the test set is the task's validation split.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from paczero.errors import PaczeroError
from paczero.rng import public_generator


@dataclass(frozen=True)
class Example:
    text: str
    label: int


@dataclass(frozen=True)
class ClassificationTask:
    """A prompt template with ``{sentence}`` and one label word per class."""

    prompt: str
    label_words: tuple[str, ...]

    def render(self, example: Example) -> str:
        return self.prompt.replace("{sentence}", example.text)

    def check_labels(self, examples: Sequence[Example], *, where: str) -> None:
        n = len(self.label_words)
        for i, ex in enumerate(examples):
            if not 0 <= ex.label < n:
                raise PaczeroError(f"{where}: record {i} has label {ex.label}, outside the {n} label words "
                                   f"{list(self.label_words)} (labels must be 0..{n - 1})")


@dataclass(frozen=True)
class Split:
    pool: list[Example]
    dev: list[Example]
    test: list[Example]


def make_split(train: Sequence[Example], validation: Sequence[Example], *, n_pool: int, n_dev: int,
               n_test: int | None, seed: int) -> Split:
    """Draw pool and dev (disjoint) from ``train`` and the test set from ``validation`` by the public seed."""
    if n_pool + n_dev > len(train):
        raise PaczeroError(f"data.n_pool={n_pool} + data.n_dev={n_dev} exceeds the {len(train)} training "
                           "records available")
    order = public_generator(seed, "split").permutation(len(train))
    pool = [train[i] for i in order[:n_pool]]
    dev = [train[i] for i in order[n_pool:n_pool + n_dev]]
    if n_test is None or n_test >= len(validation):
        test = list(validation)
    else:
        pick = public_generator(seed, "test").choice(len(validation), size=n_test, replace=False)
        test = [validation[i] for i in sorted(pick)]
    if not test:
        raise PaczeroError("the test split is empty")
    return Split(pool=pool, dev=dev, test=test)


def load_task_data(task_name: str, *, data_dir: str | None, n_pool: int, n_dev: int, n_test: int | None,
                   seed: int, task: ClassificationTask) -> Split:
    """Load a task's records and split them; labels are checked against the label words."""
    if task_name != "sst2":
        raise PaczeroError(f"data.task={task_name!r} is unknown; expected one of: sst2")
    from paczero.data.sst2 import load_sst2

    train, validation = load_sst2(data_dir)
    task.check_labels(train, where="sst2 train")
    task.check_labels(validation, where="sst2 validation")
    return make_split(train, validation, n_pool=n_pool, n_dev=n_dev, n_test=n_test, seed=seed)
