"""PACZero-ZPL: zero privacy loss (paczero-notes §3.7).

If every one of the M candidate subsets agrees on the sign of its mean estimate, release that sign;
otherwise release a fair coin. Both the unanimity event and the coin are functions of what the adversary of
the PAC game knows (the pool, the membership matrix, the public seed), so I(S*; Y_t | Y_<t) = 0 for every
step and, by the chain rule, I(S*; Y_1:T) = 0: the MIA posterior equals the prior 1/2.

The mechanism is never given the secret: there is nothing it could leak.
"""

from __future__ import annotations

import math

import numpy as np

from paczero.mechanisms.base import Mechanism
from paczero.releases import Abstain, Coin, Release, Unanimous
from paczero.rng import public_coin
from paczero.subsets import format_signs, subset_means, subset_signs


class ZPL(Mechanism):
    """PACZero-ZPL (paczero-notes §3.7): the common sign if all M subsets agree, else a public coin; I = 0."""
    name = "zpl"

    def __init__(self, membership: np.ndarray, *, seed: int, clip: float = math.inf, disagreement: str = "coin"):
        self.membership = membership
        self.seed = seed
        self.clip = clip
        self.disagreement = disagreement

    def release_step(self, estimates: np.ndarray, *, step: int) -> list[Release]:
        out: list[Release] = []
        for k in range(estimates.shape[1]):
            signs = subset_signs(subset_means(self.membership, self.clipped(estimates, k)))
            shown = format_signs(signs)
            if np.all(signs == signs[0]):
                out.append(Unanimous(value=float(signs[0]), signs=shown))
            elif self.disagreement == "skip":
                out.append(Abstain(value=0.0, signs=shown))
            else:
                out.append(Coin(value=float(public_coin(self.seed, step, k)), signs=shown))
        return out
