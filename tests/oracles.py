"""Independent oracles the engine's tests share: slow, obvious reimplementations to check the fast code against.

* :func:`classification_losses` — records one by one, no padding, full-vocabulary float64 logits at every
  position, each label word scored by the mean log-probability of its tokens;
* :func:`perturbed_copy` — a deep copy of the model whose trainable tensors hold θ + scale·z: in float64
  (``exact=True``: the mathematical perturbation), or rounded exactly as the engine's temporaries are
  (``torch.add(θ, z, alpha=scale)`` in the weights' dtype), so that a bit-for-bit comparison is meaningful;
* :class:`HeadNormOracle` — the head set with the final norm (label rows, ``model.norm.weight``) in float64 over an
  untied copy of the model, one record at a time, full-vocabulary log-probabilities.
"""

from __future__ import annotations

import copy

import numpy as np
import torch


def classification_losses(model, objective, enc, indices) -> np.ndarray:
    """Per-record cross-entropy of the gold label word over the label words' mean token log-probabilities."""
    out = []
    for i in indices:
        prompt = enc.prompts[i]
        scores = []
        for cand in objective.candidates:
            ids = torch.tensor([prompt + cand])
            logp = torch.log_softmax(model(input_ids=ids).logits[0].double(), dim=-1)
            positions = range(len(prompt) - 1, len(prompt) - 1 + len(cand))
            scores.append(np.mean([logp[p, t].item() for p, t in zip(positions, cand)]))
        scores = np.array(scores)
        out.append(np.logaddexp.reduce(scores) - scores[enc.labels[i]])
    return np.array(out)


def perturbed_copy(model, trainable, engine, direction: int, scale: float, *, exact: bool = False):
    """A copy of ``model`` with its trainable tensors set to θ + scale·z for the engine's direction ``direction``."""
    copied = copy.deepcopy(model)
    if exact:
        copied = copied.double()
    params = dict(copied.named_parameters())
    with torch.no_grad():
        for i, (name, p) in enumerate(trainable):
            z = engine.direction_block(direction, i)
            if exact:
                params[name].add_(z.double(), alpha=scale)
            else:
                params[name].copy_(torch.add(p.detach(), z, alpha=scale))
    return copied


class HeadNormOracle:
    """A float64, untied copy of a head-set model (``c``: built components) whose final norm's weight and label-word
    rows are the only tensors with gradients (:attr:`params`, in the trainable set's order: norm, then rows). A
    record's loss is the cross-entropy of its label over the label words' full-vocabulary log-probabilities."""

    def __init__(self, c):
        model = copy.deepcopy(c.loaded.model).double()
        self.decoder = model.get_decoder()
        self.labels = [ids[0] for ids in c.objective.candidates]
        self.rows = c.loaded.model.get_output_embeddings().rows.detach().double().clone().requires_grad_(True)
        self.weight = model.get_output_embeddings().weight.detach().clone()
        self.norm = self.decoder.norm.weight
        for p in model.parameters():
            p.requires_grad_(p is self.norm)
        self.params = [self.norm, self.rows]

    def loss(self, prompt, label: int) -> torch.Tensor:
        final = self.decoder(input_ids=torch.tensor([prompt])).last_hidden_state[0, -1]
        logits = (final @ self.weight.T).index_put((torch.tensor(self.labels),), final @ self.rows.T)
        logp = torch.log_softmax(logits, dim=-1)[self.labels]
        return torch.logsumexp(logp, 0) - logp[label]
