"""MeZO (Malladi et al., NeurIPS 2023; paczero-notes §9.1): non-private minibatch SPSA.

Per step a minibatch of ``batch_size`` records (consecutive slices of a fresh public permutation of
the pool each epoch, like a shuffled data loader) and, per direction, the scalar projected gradient
(L(θ+εz; B) − L(θ−εz; B))/(2ε) = the batch mean of the per-record estimates. No clipping, no noise:
no privacy guarantee.
"""

from __future__ import annotations

import math

import numpy as np

from paczero.mechanisms.base import Mechanism
from paczero.releases import Projected, Release
from paczero.rng import public_generator


class MeZO(Mechanism):
    """MeZO (paczero-notes §9.1): the mean two-point estimate of a public minibatch; no privacy."""
    name = "mezo"

    def __init__(self, *, seed: int, batch_size: int):
        self.seed = seed
        self.batch_size = batch_size

    def sample(self, *, step: int, n: int) -> np.ndarray:
        per_epoch = math.ceil(n / self.batch_size)
        epoch, index = divmod(step, per_epoch)
        order = public_generator(self.seed, "mezo-batches", epoch).permutation(n)
        return np.sort(order[index * self.batch_size:(index + 1) * self.batch_size])

    def release_step(self, estimates: np.ndarray, *, step: int) -> list[Release]:
        return [Projected(value=float(estimates[:, k].mean()), batch=int(estimates.shape[0]))
                for k in range(estimates.shape[1])]
