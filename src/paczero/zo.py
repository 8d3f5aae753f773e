"""The zeroth-order engine: seeded directions, per-record two-point estimates, the update.

For a public direction seed, z is one Gaussian vector over the trainable tensors, generated tensor
by tensor from :func:`paczero.rng.tensor_seed` and never stored. Per record i (paczero-notes §3.4)::

    g_i = (L_i(θ + εz) − L_i(θ − εz)) / (2ε)

The perturbed weights are temporaries handed to the model with ``torch.func.functional_call``:
the stored weights are never modified during the evaluations, so they are restored exactly (bit
for bit, in any dtype) by construction. The update θ ← θ − η(Σ_k c_k z_k + λθ) regenerates each
tensor's block of every direction in turn, so no parameter-sized buffer is allocated for K > 1.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch.func import functional_call

from paczero.generation import as_forward
from paczero.objectives import Objective
from paczero.rng import tensor_seed

_NO_DECAY = ("bias", "norm")


def _decays(name: str) -> bool:
    lowered = name.lower()
    return not any(tag in lowered for tag in _NO_DECAY)


class ZOEngine:
    """Two-point estimates and updates over a fixed, ordered list of trainable tensors."""

    def __init__(self, model: torch.nn.Module, trainable: Sequence[tuple[str, torch.nn.Parameter]], *,
                 eps: float):
        self.model = model
        self.trainable = list(trainable)
        self.eps = eps

    def direction_block(self, direction: int, index: int) -> torch.Tensor:
        """Block of direction ``direction`` for trainable tensor ``index`` (standard normal, param dtype)."""
        param = self.trainable[index][1]
        gen = torch.Generator(device=param.device).manual_seed(tensor_seed(direction, index))
        z = torch.randn(param.shape, generator=gen, device=param.device, dtype=torch.float32)
        return z if param.dtype == torch.float32 else z.to(param.dtype)

    @torch.inference_mode()
    def perturbed_losses(self, objective: Objective, enc, *, direction: int, scale: float) -> torch.Tensor:
        """Per-record losses at θ + scale·z, without modifying the stored weights."""
        params = {name: torch.add(p, self.direction_block(direction, i), alpha=scale)
                  for i, (name, p) in enumerate(self.trainable)}
        return objective.losses(as_forward(lambda **kw: functional_call(self.model, params, args=(), kwargs=kw)), enc)

    def estimates(self, objective: Objective, enc, *, direction: int) -> tuple[np.ndarray, np.ndarray]:
        """Per-record two-point estimates (float64, unclipped) and per-record losses averaged over both evaluations.

        The losses are a by-product of the two evaluations (no extra forward pass).
        """
        while True:  # both evaluations must batch the records alike (an out-of-memory retry shrinks the batches)
            size = objective.micro_batch
            plus = self.perturbed_losses(objective, enc, direction=direction, scale=self.eps).double()
            minus = self.perturbed_losses(objective, enc, direction=direction, scale=-self.eps).double()
            if objective.micro_batch == size:
                break
        g = ((plus - minus) / (2 * self.eps)).numpy()
        return g, ((plus + minus) / 2).numpy()

    @torch.inference_mode()
    def update(self, coefficients: Sequence[tuple[int, float]], *, lr: float, weight_decay: float = 0.0) -> None:
        """θ ← θ − lr·(Σ_k c_k z_k + λθ) for ``coefficients = [(direction seed, c_k), ...]``.

        A zero coefficient adds nothing (not even ``+0.0``), so a zero update leaves the weights bit-identical.
        """
        for i, (name, p) in enumerate(self.trainable):
            if weight_decay and _decays(name):
                p.mul_(1.0 - lr * weight_decay)
            for direction, c in coefficients:
                if c != 0.0:
                    p.add_(self.direction_block(direction, i), alpha=-lr * c)
