"""Independent oracles the engine's tests share: slow, obvious reimplementations to check the fast code against.

* :func:`classification_losses` — records one by one, no padding, full-vocabulary float64 logits at every
  position, each label word scored by the mean log-probability of its tokens;
* :func:`perturbed_copy` — a deep copy of the model whose trainable tensors hold θ + scale·z: in float64
  (``exact=True``: the mathematical perturbation), or rounded exactly as the engine's temporaries are
  (``torch.add(θ, z, alpha=scale)`` in the weights' dtype), so that a bit-for-bit comparison is meaningful.
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
