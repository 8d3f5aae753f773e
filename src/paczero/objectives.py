"""Per-record losses and evaluation metrics: classification by label words, generation by F1.

Classification: each candidate label word is scored by the mean log-probability of its tokens after
the prompt (paczero-notes §3.4, §7); the per-record loss is the cross-entropy of the gold label over
the candidates' scores, and the prediction is their argmax. When every label word is a single token
(SST-2 with SmolLM2 or OPT) one forward pass scores all candidates.

Generation (SQuAD, §3.4, §7): the greedy continuation of the prompt (at most ``max_new_tokens``,
cut at the first newline) is scored by SQuAD F1 and exact match against the gold answers. The
per-record loss is −F1 (``objective="f1"``, the paper's non-differentiable objective), or the
teacher-forced loss of the first gold answer (``objective="lm"``: mean negative log-likelihood of
the tokens of ``" {answer}\\n"``, MeZO's SQuAD objective).

Classification evaluations also report macro-F1 (the mean F1 over the classes present among the records' labels
and predictions), each class's precision, recall, F1 and support, and the confusion matrix (rows: true label,
columns: predicted), by scikit-learn.

Both sort records by length and pad them on the left per micro-batch, so the position that matters
is always the last one, and compute only the logits they need (``logits_to_keep``). A record (its
prompt and what follows it: a multi-token label word, or ``max_new_tokens``) must fit in
``max_length`` tokens and in the model's context; longer prompts are truncated on the left, keeping
a leading BOS and the end, where the answer goes, and counted; ``overlong="refuse"`` makes such a
record an error instead. On out-of-memory the micro-batch is halved for good and the whole pass
restarts (:mod:`paczero.oom`), so one pass never mixes two batchings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, Sequence, Union

import numpy as np
import torch

from paczero.data.tasks import ClassificationTask, Example, GenerationExample, GenerationTask, Task
from paczero.errors import PaczeroError
from paczero.generation import Forward, as_forward, greedy_generate, left_pad
from paczero.metrics import classification_report, exact_match, f1_score
from paczero.models import label_token_ids
from paczero.oom import MicroBatching


CHARS_PER_TOKEN = 64
"""A prompt keeps at most this many characters per token that fits (its end): far more than any token covers."""


def model_forward(model: torch.nn.Module) -> Forward:
    """The plain (unperturbed) forward of ``model``."""
    return as_forward(model)


@dataclass
class Encoded:
    """A set of classification records encoded for scoring; ``order`` sorts them by length."""

    prompts: list[list[int]]
    labels: np.ndarray
    order: np.ndarray
    truncated: int
    origin: tuple["Encoded", np.ndarray] | None = field(default=None, repr=False, compare=False)
    """For a subset: the set it was taken from and the indices into it (a cache of per-record features serves it)."""

    def __len__(self) -> int:
        return len(self.prompts)

    def subset(self, indices: np.ndarray) -> "Encoded":
        """The records at ``indices`` (in that order), e.g. a sampled minibatch of the pool."""
        prompts = [self.prompts[i] for i in indices]
        order = np.argsort([len(p) for p in prompts], kind="stable")
        return Encoded(prompts=prompts, labels=self.labels[indices], order=order, truncated=0,
                       origin=(self, np.asarray(indices)))


@dataclass
class EncodedGeneration:
    """A set of generation records: prompts, gold answers and LM targets; ``order`` sorts them by length."""

    prompts: list[list[int]]
    answers: list[tuple[str, ...]]
    targets: list[list[int]]
    order: np.ndarray
    truncated: int

    def __len__(self) -> int:
        return len(self.prompts)

    def subset(self, indices: np.ndarray) -> "EncodedGeneration":
        """The records at ``indices`` (in that order), e.g. a sampled minibatch of the pool."""
        prompts = [self.prompts[i] for i in indices]
        order = np.argsort([len(p) for p in prompts], kind="stable")
        return EncodedGeneration(prompts=prompts, answers=[self.answers[i] for i in indices],
                                 targets=[self.targets[i] for i in indices], order=order, truncated=0)


class Objective(Protocol):
    """What the ZO engine and the trainer need of an objective."""

    batching: MicroBatching
    """The micro-batch size of its passes and the out-of-memory policy they share with the ZO engine."""
    micro_batch: int
    metric: str
    """The headline metric of :meth:`evaluate` (``accuracy``, ``f1``)."""
    static_calls: bool
    """Whether :meth:`losses` and :meth:`evaluate` make the same model calls on the same inputs whatever the
    weights (then the engine runs them layer by layer, perturbing one layer at a time, and caches a frozen
    bottom); ``False`` makes the engine run whole forward passes on perturbed copies of the weights."""

    def encode(self, examples: Sequence, *, where: str = "records") -> Union[Encoded, EncodedGeneration]:
        """Tokenise ``examples`` once (``where`` names them in error messages)."""

    def losses(self, forward: Forward, enc, *, grad: bool = False) -> torch.Tensor:
        """Per-record losses of the encoded records under ``forward`` (the model, possibly perturbed); differentiable
        with ``grad`` (where the loss is), else computed in inference mode."""

    def evaluate(self, forward: Forward, enc) -> dict[str, Any]:
        """Mean loss and the task's metrics over the encoded records."""


class _Batched:
    """Prompt truncation, and micro-batched passes under one out-of-memory policy (:mod:`paczero.oom`)."""

    def __init__(self, tokenizer, *, max_length: int, reserve: int, micro_batch: int, device: torch.device,
                 context_length: int | None, overlong: str):
        self.tokenizer = tokenizer
        self.task: Task
        self.batching = MicroBatching(micro_batch)
        self.device = device
        self.pad_id = tokenizer.pad_token_id
        self.max_length = max_length
        self.context_length = context_length
        self.overlong = overlong
        self.reserve = reserve
        self.limit = min(max_length, context_length if context_length is not None else max_length) - reserve
        if self.limit < 1:
            raise PaczeroError(f"config: data.max_length={max_length} leaves no room for a prompt (the model "
                               f"accepts {context_length} tokens, {reserve} of which must follow the prompt)")

    @property
    def micro_batch(self) -> int:
        """Records per forward pass now (``zo.micro_batch``, halved for good by out-of-memory retries)."""
        return self.batching.size

    @property
    def max_chars(self) -> int:
        """Characters of a prompt kept before tokenising (its end): :data:`CHARS_PER_TOKEN` per token that fits, so
        a record costs memory in proportion to ``data.max_length``, not to its own length."""
        return CHARS_PER_TOKEN * self.limit

    def _encode(self, example, *, where: str, index: int) -> tuple[list[int], bool]:
        """The prompt's ids fitted to :attr:`limit` tokens, and whether they were cut."""
        ids, clipped = self.task.prompt_ids(self.tokenizer, example, max_chars=self.max_chars)
        return self._fit(ids, where=where, index=index, clipped=clipped)

    def _fit(self, ids: list[int], *, where: str, index: int, clipped: bool = False) -> tuple[list[int], bool]:
        """``ids`` cut to :attr:`limit` tokens on the left (keeping a leading BOS), and whether it was cut
        (``clipped``: the prompt's text was already cut to :attr:`max_chars`, so it is overlong)."""
        if not ids:
            raise PaczeroError(f"{where}: record {index} encodes to no tokens")
        if len(ids) <= self.limit and not clipped:
            return ids, False
        if self.overlong == "refuse":
            raise PaczeroError(f"{where}: record {index}'s prompt is longer than the {self.limit} tokens that fit "
                               f"(data.max_length={self.max_length}, model context {self.context_length}, less "
                               f"{self.reserve} for the answer); set data.overlong=truncate to cut prompts on the left",
                               private=f"it has {len(ids)} prompt tokens")
        bos = self.tokenizer.bos_token_id
        head = [ids[0]] if bos is not None and ids[0] == bos else []
        return head + ids[len(ids) - (self.limit - len(head)):], True

    def _batch(self, seqs: list[list[int]]) -> dict[str, torch.Tensor]:
        return left_pad(seqs, pad_id=self.pad_id, device=self.device)


class ClassificationObjective(_Batched):
    """Scores label words after a prompt; losses, predictions and metrics for a set of records."""

    metric = "accuracy"
    static_calls = True
    """Its forward calls depend on the records alone (never on the logits): the ZO engine may record them
    and evaluate them layer by layer (:mod:`paczero.staged`)."""

    def __init__(self, tokenizer, task: ClassificationTask, *, max_length: int, micro_batch: int,
                 device: torch.device, context_length: int | None = None, overlong: str = "truncate"):
        self.task = task
        self.candidates = label_token_ids(tokenizer, task.label_words)
        for word, ids in zip(task.label_words, self.candidates):
            if not ids:
                raise PaczeroError(f"config: label word {word!r} encodes to no tokens")
        self.single_token = all(len(c) == 1 for c in self.candidates)
        reserve = 0 if self.single_token else max(len(c) for c in self.candidates)
        super().__init__(tokenizer, max_length=max_length, reserve=reserve, micro_batch=micro_batch, device=device,
                         context_length=context_length, overlong=overlong)

    def encode(self, examples: Sequence[Example], *, where: str = "records") -> Encoded:
        """Tokenise the prompts of ``examples`` (fitted to the length limit) with their labels, in length order."""
        prompts, truncated = [], 0
        for i, ex in enumerate(examples):
            ids, cut = self._encode(ex, where=where, index=i)
            prompts.append(ids)
            truncated += cut
        labels = np.array([ex.label for ex in examples], dtype=np.int64)
        order = np.argsort([len(p) for p in prompts], kind="stable")
        return Encoded(prompts=prompts, labels=labels, order=order, truncated=truncated)

    def _score_batch(self, forward: Forward, prompts: list[list[int]]) -> torch.Tensor:
        if self.single_token:
            logits = forward(**self._batch(prompts), logits_to_keep=1)[:, -1, :].float()
            cand = torch.tensor([c[0] for c in self.candidates], device=logits.device)
            return torch.log_softmax(logits, dim=-1)[:, cand]
        columns = []
        for cand in self.candidates:
            n = len(cand)
            logits = forward(**self._batch([p + cand for p in prompts]), logits_to_keep=n + 1)[:, :-1, :]
            logp = torch.log_softmax(logits.float(), dim=-1)
            target = torch.tensor(cand, device=logp.device).expand(len(prompts), n)
            columns.append(logp.gather(-1, target.unsqueeze(-1)).squeeze(-1).mean(-1))
        return torch.stack(columns, dim=1)

    def _scores_at(self, forward: Forward, enc: Encoded, size: int) -> torch.Tensor:
        out = torch.empty((len(enc), len(self.candidates)), dtype=torch.float32)
        for start in range(0, len(enc), size):
            idx = enc.order[start:start + size]
            out[torch.from_numpy(idx)] = self._score_batch(forward, [enc.prompts[i] for i in idx]).cpu()
        return out

    def scores(self, forward: Forward, enc: Encoded, *, grad: bool = False) -> torch.Tensor:
        """(n, C) candidate scores in the records' original order (differentiable with ``grad``, else in inference
        mode)."""
        with torch.inference_mode(not grad):
            return self.batching.run(lambda size: self._scores_at(forward, enc, size), what="scoring")

    @staticmethod
    def losses_from_scores(scores: torch.Tensor, labels: np.ndarray) -> torch.Tensor:
        """Per-record cross-entropy of the gold label over the candidates' scores."""
        gold = scores.gather(1, torch.from_numpy(labels).to(scores.device).unsqueeze(1)).squeeze(1)
        return torch.logsumexp(scores, dim=1) - gold

    def metrics_from_scores(self, scores: torch.Tensor, labels: np.ndarray) -> dict[str, Any]:
        """Mean loss, accuracy (prediction = argmax of the candidates' scores) and :func:`classification_report`."""
        losses = self.losses_from_scores(scores, labels)
        predictions = scores.argmax(dim=1).cpu().numpy()
        return {"loss": float(losses.double().mean()), "accuracy": float((predictions == labels).mean()),
                **classification_report(labels, predictions, self.task.class_names)}

    def losses(self, forward: Forward, enc: Encoded, *, grad: bool = False) -> torch.Tensor:
        """Per-record cross-entropy of the gold label word over the label words' scores."""
        return self.losses_from_scores(self.scores(forward, enc, grad=grad), enc.labels)

    def evaluate(self, forward: Forward, enc: Encoded) -> dict[str, Any]:
        """Mean loss, accuracy (prediction = argmax of the candidates' scores) and :func:`classification_report`."""
        return self.metrics_from_scores(self.scores(forward, enc), enc.labels)


class GenerationObjective(_Batched):
    """Greedy generations scored by SQuAD F1/EM; per-record loss −F1 or the teacher-forced LM loss."""

    metric = "f1"
    static_calls = True
    """Its generation requests (:func:`~paczero.generation.greedy_generate` per micro-batch) and forward calls
    depend on the records alone: the ZO engine may record them, generate stage by stage and replay."""

    def __init__(self, tokenizer, task: GenerationTask, *, objective: str, max_length: int, max_new_tokens: int,
                 micro_batch: int, device: torch.device, context_length: int | None = None,
                 overlong: str = "truncate"):
        super().__init__(tokenizer, max_length=max_length, reserve=max_new_tokens, micro_batch=micro_batch,
                         device=device, context_length=context_length, overlong=overlong)
        self.task = task
        self.objective = objective
        self.max_new_tokens = max_new_tokens
        # Stop at any token whose text holds a newline (byte-level vocabularies have many), or at EOS.
        texts = tokenizer.batch_decode([[i] for i in range(len(tokenizer))])
        self.stop_ids = [i for i, t in enumerate(texts) if "\n" in t]
        if tokenizer.eos_token_id is not None:
            self.stop_ids.append(tokenizer.eos_token_id)

    def encode(self, examples: Sequence[GenerationExample], *, where: str = "records") -> EncodedGeneration:
        """Tokenise the prompts (fitted to leave room for the answer) and the LM objective's targets."""
        prompts, targets, truncated = [], [], 0
        for i, ex in enumerate(examples):
            ids, cut = self._encode(ex, where=where, index=i)
            prompts.append(ids)
            truncated += cut
            target = self.tokenizer(self.task.target(ex), add_special_tokens=False).input_ids
            targets.append(target[:self.max_new_tokens])
        order = np.argsort([len(p) for p in prompts], kind="stable")
        return EncodedGeneration(prompts=prompts, answers=[ex.answers for ex in examples], targets=targets,
                                 order=order, truncated=truncated)

    def _text(self, tokens: list[int]) -> str:
        return self.tokenizer.decode(tokens, skip_special_tokens=True).split("\n", 1)[0].strip()

    def _generate_at(self, forward: Forward, enc: EncodedGeneration, size: int) -> list[str]:
        out = [""] * len(enc)
        for start in range(0, len(enc), size):
            idx = enc.order[start:start + size]
            generated = greedy_generate(forward, [enc.prompts[i] for i in idx], stop_ids=self.stop_ids,
                                        pad_id=self.pad_id, max_new_tokens=self.max_new_tokens, device=self.device)
            for i, tokens in zip(idx, generated):
                out[i] = self._text(tokens)
        return out

    def generate(self, forward: Forward, enc: EncodedGeneration) -> list[str]:
        """The greedy answer of every record (cut at the first newline, stripped), in the original order."""
        return self.batching.run(lambda size: self._generate_at(forward, enc, size), what="generating for")

    def _lm_batch(self, forward: Forward, prompts: list[list[int]], targets: list[list[int]]) -> torch.Tensor:
        n = max(len(t) for t in targets)
        batch = self._batch([p + t for p, t in zip(prompts, targets)])
        logp = torch.log_softmax(forward(**batch, logits_to_keep=n + 1)[:, :-1, :].float(), dim=-1)
        gold = batch["input_ids"][:, -n:]
        nll = -logp.gather(-1, gold.unsqueeze(-1)).squeeze(-1)
        lengths = torch.tensor([len(t) for t in targets], device=nll.device)
        counted = torch.arange(n, device=nll.device) >= (n - lengths)[:, None]  # each row's own target tokens
        return (nll * counted).sum(-1) / lengths

    def _lm_at(self, forward: Forward, enc: EncodedGeneration, size: int) -> torch.Tensor:
        out = torch.empty(len(enc), dtype=torch.float32)
        for start in range(0, len(enc), size):
            idx = enc.order[start:start + size]
            out[torch.from_numpy(idx)] = self._lm_batch(forward, [enc.prompts[i] for i in idx],
                                                        [enc.targets[i] for i in idx]).cpu()
        return out

    def lm_losses(self, forward: Forward, enc: EncodedGeneration, *, grad: bool = False) -> torch.Tensor:
        """Per-record mean negative log-likelihood of ``" {first answer}\\n"`` after the prompt (differentiable with
        ``grad``, else in inference mode)."""
        with torch.inference_mode(not grad):
            return self.batching.run(lambda size: self._lm_at(forward, enc, size), what="scoring")

    @staticmethod
    def scores(predictions: Sequence[str], answers: Sequence[Sequence[str]]) -> tuple[np.ndarray, np.ndarray]:
        """Per-record F1 and exact match of ``predictions`` (float64)."""
        f1 = np.array([f1_score(p, a) for p, a in zip(predictions, answers)], dtype=np.float64)
        em = np.array([exact_match(p, a) for p, a in zip(predictions, answers)], dtype=np.float64)
        return f1, em

    def losses(self, forward: Forward, enc: EncodedGeneration, *, grad: bool = False) -> torch.Tensor:
        """Per-record −F1 of the greedy answer (``data.objective=f1``) or teacher-forced LM loss (``lm``; differentiable
        with ``grad``; −F1 is not)."""
        if self.objective == "lm":
            return self.lm_losses(forward, enc, grad=grad)
        f1, _ = self.scores(self.generate(forward, enc), enc.answers)
        return torch.from_numpy(-f1)

    def evaluate(self, forward: Forward, enc: EncodedGeneration) -> dict[str, Any]:
        """Mean loss (of the training objective), F1 and exact match of the greedy answers."""
        f1, em = self.scores(self.generate(forward, enc), enc.answers)
        loss = float(self.lm_losses(forward, enc).double().mean()) if self.objective == "lm" else float(-f1.mean())
        return {"loss": loss, "f1": float(f1.mean()), "em": float(em.mean())}


def build_objective(task: Task, tokenizer, *, data, micro_batch: int, device: torch.device,
                    context_length: int | None) -> Objective:
    """The objective of ``task`` with the options of ``data`` (a :class:`~paczero.config.DataConfig`)."""
    common = dict(max_length=data.max_length, micro_batch=micro_batch, device=device, context_length=context_length,
                  overlong=data.overlong)
    if isinstance(task, ClassificationTask):
        return ClassificationObjective(tokenizer, task, **common)
    return GenerationObjective(tokenizer, task, objective=data.objective, max_new_tokens=data.max_new_tokens,
                               **common)
