"""PACZero-MI: a budget of B nats, spent one calibrated bit at a time (paczero-notes §3.7, §4).

State: a posterior p over the M candidate subsets (log space, uniform at the start) — what the adversary of the
PAC game, who knows the pool, infers from the released bits — and the MI charged so far. Both are computed on the
pool and kept private (the run's private folder), never published.

Per direction, given the step's budget β (adaptive: (B − spent)/(T − t); uniform: B/T; divided among the K
directions of the step):

* **free release** — if every subset with posterior mass above ``free_threshold`` has the same sign, release
  that common sign: a function of the game's public information, it charges exactly 0 nats (the official code
  releases s_J* here instead, which leaks up to H_b(ignored mass) per step).
* **noisy release** — otherwise, with q₊ = posterior mass on +1, cap β at 0.999·H_b(q₊) and release one bit: the
  secret subset's sign s_J*, flipped with probability ``flip`` drawn exactly from the secret-keyed stream (a
  64-bit uniform word below flip·2⁶⁴; ``flip`` is a multiple of 2⁻⁶⁴). This is sign(s_J* + σξ) for Gaussian ξ
  with flip = Φ(−1/σ). The flip probability is calibrated on the channel the bit travels:

  - ``bsc`` (default): exactly on the binary-input binary-output channel, I = H_b(q₊(1 − flip) + (1 − q₊)flip)
    − H_b(flip) ≤ β;
  - ``awgn``: σ calibrated on the binary-input Gaussian channel (the paper's accounting, which also pays for the
    real value s_J* + σξ that is never published), flip = Φ(−1/σ), charging I_q₊(σ) ≥ the bit's own MI.

  The posterior is updated with the bit's likelihood P(Y | s) = 1 − flip if Y = s else flip, and the charge
  (≤ β) is added to the MI spent.

No real-valued function of the secret-keyed noise exists anywhere: the flip is a comparison of integers. By the
chain rule, I(S*; transcript) ≤ Σ charged ≤ B, since every β is computed from the game's public state.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from paczero.mechanisms.base import Mechanism
from paczero.privacy.bsc import FLIP_GRID, bsc_mi, flip_for_mi, flip_of_sigma, sigma_of_flip
from paczero.privacy.channel import binary_entropy, channel_mi, sigma_for_mi
from paczero.privacy.posterior import agreeing_sign, bit_update, q_plus, uniform_log_posterior
from paczero.releases import Coin, Free, NoisyBit, Release
from paczero.rng import public_coin
from paczero.secret import SecretState
from paczero.subsets import format_signs, subset_means, subset_signs

ENTROPY_CAP = 0.999
CHANNELS = ("bsc", "awgn")


def step_budget(*, budget: float, spent: float, step: int, steps: int, schedule: str) -> float:
    """β_t: ``adaptive`` = max(B − spent, 0)/max(T − t, 1); ``uniform`` = B/T (capped by what is left)."""
    remaining = max(budget - spent, 0.0)
    if schedule == "adaptive":
        return remaining / max(steps - step, 1)
    return min(budget / steps, remaining)


def calibrate(*, q: float, beta: float, channel: str) -> tuple[float, float, float]:
    """(flip, σ, charged MI) of a noisy bit with prior q₊ = ``q`` and budget ``beta`` on ``channel``."""
    if channel == "bsc":
        flip = flip_for_mi(q=q, beta=beta)
        return flip, sigma_of_flip(flip), bsc_mi(q=q, flip=flip)
    if channel == "awgn":
        sigma = sigma_for_mi(q=q, beta=beta)
        return flip_of_sigma(sigma), sigma, channel_mi(q=q, sigma=sigma)
    raise ValueError(f"channel={channel!r} is unknown; expected one of {', '.join(CHANNELS)}")


class PacMI(Mechanism):
    """PACZero-MI (paczero-notes §3.7): free releases on agreement, else one calibrated bit within the budget."""
    name = "mi"

    def __init__(self, membership: np.ndarray, secret: SecretState, *, budget: float, steps: int,
                 schedule: str = "adaptive", free_threshold: float = 1e-12, seed: int = 0, clip: float = math.inf,
                 channel: str = "bsc"):
        if channel not in CHANNELS:
            raise ValueError(f"channel={channel!r} is unknown; expected one of {', '.join(CHANNELS)}")
        self.membership = membership
        self.clip = clip
        self._secret = secret
        self.budget = budget
        self.steps = steps
        self.schedule = schedule
        self.free_threshold = free_threshold
        self.seed = seed
        self.channel = channel
        self.log_posterior = uniform_log_posterior(membership.shape[1])
        self.spent = 0.0

    def release_step(self, estimates: np.ndarray, *, step: int) -> list[Release]:
        K = estimates.shape[1]
        beta = step_budget(budget=self.budget, spent=self.spent, step=step, steps=self.steps,
                           schedule=self.schedule) / K
        return [self.release(self.clipped(estimates, k), step=step, k=k, budget=beta) for k in range(K)]

    def release(self, estimates: np.ndarray, *, step: int, k: int, budget: float) -> Release:
        """Direction ``k``'s release from its clipped per-record estimates, spending at most ``budget`` nats."""
        signs = subset_signs(subset_means(self.membership, estimates))
        shown = format_signs(signs)
        q = q_plus(log_posterior=self.log_posterior, signs=signs)
        common = agreeing_sign(log_posterior=self.log_posterior, signs=signs, threshold=self.free_threshold)
        if common is not None:
            return Free(value=float(common), signs=shown, q_plus=q)
        beta = min(budget, ENTROPY_CAP * binary_entropy(q))
        if beta <= 0.0:  # nothing left to spend: a public coin carries no information about S*
            return Coin(value=float(public_coin(self.seed, step, k)), signs=shown)
        flip, sigma, charged = calibrate(q=q, beta=beta, channel=self.channel)
        true_sign = int(signs[self._secret.j_star])
        flipped = self._secret.stream("mi-flip", step, k).word64() < int(flip * FLIP_GRID)
        bit = -true_sign if flipped else true_sign
        self.log_posterior = bit_update(log_posterior=self.log_posterior, signs=signs, bit=bit, flip=flip)
        self.spent += charged
        return NoisyBit(value=float(bit), signs=shown, q_plus=q, beta=beta, flip=flip, sigma=sigma, mi=charged,
                        channel=self.channel, carried_true_sign=not flipped)

    def state_dict(self) -> dict[str, Any]:
        return {"log_posterior": self.log_posterior.tolist(), "spent": self.spent}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.log_posterior = np.asarray(state["log_posterior"], dtype=np.float64)
        self.spent = float(state["spent"])
