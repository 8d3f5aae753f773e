"""PACZero-ZPL: zero privacy loss (paczero-notes §3.7).

If every one of the M candidate subsets agrees on the sign of its mean estimate, release that sign;
otherwise release a fair coin. Both the unanimity event and the coin are functions of what the adversary of
the PAC game knows (the pool, the membership matrix, the public seed), so I(S*; Y_t | Y_<t) = 0 for every
step and, by the chain rule, I(S*; Y_1:T) = 0: the MIA posterior equals the prior 1/2.

The mechanism is never given the secret: there is nothing it could leak. :func:`zpl_release` is the rule
itself, a pure function that the mechanism releases with and ``paczero verify --data-dir`` checks with.
"""

from __future__ import annotations

import math

import numpy as np

from paczero.mechanisms.base import Mechanism
from paczero.releases import Abstain, Coin, Release, Unanimous
from paczero.rng import public_coin
from paczero.subsets import format_signs, subset_means, subset_signs


def zpl_release(signs: np.ndarray, *, coin: int, skip: bool = False) -> Unanimous | Coin | Abstain:
    """ZPL's release rule: the sign all M subsets agree on, else the public ``coin`` (±1), or with ``skip``
    (``privacy.zpl_disagreement=skip``) 0, no update. Either way the release is a function of the pool, the
    membership matrix and the public seed alone."""
    shown = format_signs(signs)
    if np.all(signs == signs[0]):
        return Unanimous(value=float(signs[0]), signs=shown)
    if skip:
        return Abstain(value=0.0, signs=shown)
    return Coin(value=float(coin), signs=shown)


class ZPL(Mechanism):
    """PACZero-ZPL (paczero-notes §3.7): the common sign if all M subsets agree, else a public coin; I = 0."""
    name = "zpl"

    def __init__(self, membership: np.ndarray, *, seed: int, clip: float = math.inf, disagreement: str = "coin"):
        self.membership = membership
        self.seed = seed
        self.clip = clip
        self.disagreement = disagreement

    def release_step(self, estimates: np.ndarray, *, step: int) -> list[Release]:
        skip = self.disagreement == "skip"
        return [zpl_release(subset_signs(subset_means(self.membership, self.clipped(estimates, k))),
                            coin=public_coin(self.seed, step, k), skip=skip) for k in range(estimates.shape[1])]
