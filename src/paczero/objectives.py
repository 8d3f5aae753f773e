"""Per-record losses and predictions for classification by label-word scoring.

Each candidate label word is scored by the mean log-probability of its tokens after the prompt
(paczero-notes §3.4, §7); the per-record loss is the cross-entropy of the gold label over the
candidates' scores, and the prediction is their argmax.

Records are sorted by length and padded on the left per micro-batch, so the answer position is
always the last one; only the logits the loss needs are computed (``logits_to_keep``). When every
label word is a single token (SST-2 with SmolLM2 or OPT) one forward pass scores all candidates.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch

from paczero.data.tasks import ClassificationTask, Example
from paczero.errors import PaczeroError

log = logging.getLogger("paczero")

Forward = Callable[..., torch.Tensor]
"""``forward(input_ids=, attention_mask=, position_ids=, logits_to_keep=) -> logits``."""


def model_forward(model: torch.nn.Module) -> Forward:
    """The plain (unperturbed) forward of ``model``, returning logits."""
    return lambda **kw: model(**kw).logits


@dataclass
class Encoded:
    """A set of records encoded for scoring; ``order`` sorts them by length."""

    prompts: list[list[int]]
    labels: np.ndarray
    order: np.ndarray
    truncated: int

    def __len__(self) -> int:
        return len(self.prompts)

    def subset(self, indices: np.ndarray) -> "Encoded":
        """The records at ``indices`` (in that order), e.g. a sampled minibatch of the pool."""
        prompts = [self.prompts[i] for i in indices]
        order = np.argsort([len(p) for p in prompts], kind="stable")
        return Encoded(prompts=prompts, labels=self.labels[indices], order=order, truncated=0)


class ClassificationObjective:
    """Scores label words after a prompt; losses, predictions and metrics for a set of records."""

    static_calls = True
    """Its forward calls depend on the records alone (never on the logits): the ZO engine may record them
    and evaluate them layer by layer (:mod:`paczero.staged`)."""

    def __init__(self, tokenizer, task: ClassificationTask, *, max_length: int, micro_batch: int,
                 device: torch.device):
        self.tokenizer = tokenizer
        self.task = task
        self.max_length = max_length
        self.micro_batch = micro_batch
        self.device = device
        self.candidates = [tokenizer(w, add_special_tokens=False).input_ids for w in task.label_words]
        for word, ids in zip(task.label_words, self.candidates):
            if not ids:
                raise PaczeroError(f"config: label word {word!r} encodes to no tokens")
        self.single_token = all(len(c) == 1 for c in self.candidates)
        self.pad_id = tokenizer.pad_token_id

    def encode(self, examples: Sequence[Example]) -> Encoded:
        budget = self.max_length
        longest_candidate = max(len(c) for c in self.candidates)
        bos = self.tokenizer.bos_token_id
        prompts, truncated = [], 0
        for ex in examples:
            ids = self.tokenizer(self.task.render(ex)).input_ids
            keep = budget - (0 if self.single_token else longest_candidate)
            if len(ids) > keep:
                truncated += 1
                # Truncate on the left: the answer comes right after the prompt's end.
                head = [ids[0]] if bos is not None and ids[0] == bos else []
                ids = head + ids[len(ids) - (keep - len(head)):]
            prompts.append(ids)
        labels = np.array([ex.label for ex in examples], dtype=np.int64)
        order = np.argsort([len(p) for p in prompts], kind="stable")
        return Encoded(prompts=prompts, labels=labels, order=order, truncated=truncated)

    def _batch(self, seqs: list[list[int]]) -> dict[str, torch.Tensor]:
        width = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for row, s in enumerate(seqs):
            ids[row, width - len(s):] = torch.tensor(s, dtype=torch.long)
            mask[row, width - len(s):] = 1
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        return {"input_ids": ids.to(self.device), "attention_mask": mask.to(self.device),
                "position_ids": positions.to(self.device)}

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

    @torch.inference_mode()
    def scores(self, forward: Forward, enc: Encoded) -> torch.Tensor:
        """(n, C) candidate scores in the records' original order.

        On out-of-memory the micro-batch is halved (for good) and the whole pass restarts, so one pass never
        mixes two batchings.
        """
        while True:
            size = self.micro_batch
            try:
                return self._scores_at(forward, enc, size)
            except (torch.OutOfMemoryError, MemoryError):
                pass  # leave the handler first: its traceback would keep the failed batch's tensors alive
            if size == 1:
                raise PaczeroError("out of memory scoring a single record; lower data.max_length or use a "
                                   "smaller model or dtype")
            self.micro_batch = size // 2
            log.warning("out of memory with micro-batches of %d records: retrying with %d", size, self.micro_batch)
            if torch.cuda.is_available():
                torch.cuda.empty_cache()

    @staticmethod
    def losses_from_scores(scores: torch.Tensor, labels: np.ndarray) -> torch.Tensor:
        """Per-record cross-entropy of the gold label over the candidates' scores."""
        gold = scores.gather(1, torch.from_numpy(labels).unsqueeze(1)).squeeze(1)
        return torch.logsumexp(scores, dim=1) - gold

    def losses(self, forward: Forward, enc: Encoded) -> torch.Tensor:
        return self.losses_from_scores(self.scores(forward, enc), enc.labels)

    def evaluate(self, forward: Forward, enc: Encoded) -> dict[str, float]:
        """Mean loss and accuracy (prediction = argmax of the candidates' scores)."""
        scores = self.scores(forward, enc)
        losses = self.losses_from_scores(scores, enc.labels)
        accuracy = (scores.argmax(dim=1).numpy() == enc.labels).mean()
        return {"loss": float(losses.double().mean()), "accuracy": float(accuracy)}
