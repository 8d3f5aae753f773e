"""The mechanism-decomposition ablations of the paper's appendix (paczero-notes §3.7, ``--ablation``).

None of them is private except ``random_sign``; they separate what the sign quantisation, the
half-pool subset and the privacy noise each cost in accuracy:

=============== ==================================================================
``raw_full``    the mean clipped estimate over the whole pool (full-batch MeZO with clipping)
``quant_full``  its sign (ties → +1)
``raw_half``    the mean over the secret subset S* (ḡ_{J*})
``quant_half``  its sign s_{J*}: PACZero with no privacy noise
``random_sign`` a fair public coin (negative control; carries no information at all)
=============== ==================================================================
"""

from __future__ import annotations

import math

import numpy as np

from paczero.mechanisms.base import Mechanism
from paczero.releases import AblationValue, Release
from paczero.rng import public_coin
from paczero.secret import SecretState
from paczero.subsets import subset_means

ABLATIONS = ("raw_full", "quant_full", "raw_half", "quant_half", "random_sign")


def _sign(x: float) -> float:
    return 1.0 if x >= 0 else -1.0


class Ablation(Mechanism):
    """One decomposition ablation (``variant``, one of :data:`ABLATIONS`); see the module's table."""
    def __init__(self, variant: str, *, membership: np.ndarray, secret: SecretState, seed: int,
                 clip: float = math.inf):
        if variant not in ABLATIONS:
            raise ValueError(f"ablation {variant!r} is unknown; expected one of {', '.join(ABLATIONS)}")
        self.name = variant
        self.membership = membership
        self._secret = secret
        self.seed = seed
        self.clip = clip

    def release_step(self, estimates: np.ndarray, *, step: int) -> list[Release]:
        return [self.release(self.clipped(estimates, k), step=step, k=k) for k in range(estimates.shape[1])]

    def release(self, estimates: np.ndarray, *, step: int, k: int) -> Release:
        """Direction ``k``'s value from its clipped per-record estimates."""
        variant = self.name
        if variant == "random_sign":
            value = float(public_coin(self.seed, step, k))
        elif variant.endswith("_full"):
            value = float(np.mean(estimates))
        else:
            value = float(subset_means(self.membership, estimates)[self._secret.j_star])
        if variant.startswith("quant"):
            value = _sign(value)
        return AblationValue(value=value, variant=variant)
