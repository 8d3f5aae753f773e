"""PACZero-ZPL: zero privacy loss (paczero-notes §3.7).

If every one of the M candidate subsets agrees on the sign of its mean estimate, release that sign;
otherwise release a fair coin. Both the unanimity event and the coin are functions of public
information (the pool, the membership matrix, the public seed), so I(S*; Y_t | Y_<t) = 0 for every
step and, by the chain rule, I(S*; Y_1:T) = 0: the MIA posterior equals the prior 1/2.

The mechanism is never given the secret: there is nothing it could leak.
"""

from __future__ import annotations

import math

import numpy as np

from paczero.mechanisms.base import Mechanism, Release
from paczero.rng import public_generator
from paczero.subsets import format_signs, subset_means, subset_signs


def public_coin(seed: int, step: int, k: int) -> int:
    """A fair ±1 coin from the public seed (independent of the data and of the secret)."""
    return 1 if public_generator(seed, "zpl-coin", step, k).random() < 0.5 else -1


class ZPL(Mechanism):
    """PACZero-ZPL (paczero-notes §3.7): the common sign if all M subsets agree, else a public coin; I = 0."""
    name = "zpl"

    def __init__(self, membership: np.ndarray, *, seed: int, clip: float = math.inf):
        self.membership = membership
        self.seed = seed
        self.clip = clip

    def release(self, estimates: np.ndarray, *, step: int, k: int) -> Release:
        signs = subset_signs(subset_means(self.membership, estimates))
        positive = int((signs > 0).sum())
        public = {"positive_subsets": positive, "signs": format_signs(signs)}
        if positive in (0, len(signs)):
            return Release(value=float(signs[0]), kind="unanimous", public=public)
        return Release(value=float(public_coin(self.seed, step, k)), kind="coin", public=public)
