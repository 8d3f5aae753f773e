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

The rule is split from the secret: :class:`MIRule` holds the posterior and the MI spent and decides each release
(free sign, coin, or the calibration of a noisy bit) from the pool's subset signs and the bits released so far —
everything the adversary of the PAC game knows. :class:`PacMI` adds the one secret step, drawing the bit; ``paczero
verify --data-dir`` runs the same :class:`MIRule` on the published bits, so the two cannot drift apart.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
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


@dataclass(frozen=True)
class NoisyPlan:
    """A noisy release as the rule calibrates it, before the secret draws the bit."""

    q_plus: float
    beta: float
    flip: float
    sigma: float
    charged: float


class MIRule:
    """PACZero-MI's public half: the posterior over the M subsets, the MI spent, and each release's decision.

    :meth:`plan` gives a :class:`~paczero.releases.Free` or :class:`~paczero.releases.Coin` release (no secret
    needed) or a :class:`NoisyPlan`; after a noisy bit is released, :meth:`observe` updates the posterior with its
    likelihood and charges its MI. The mechanism and ``paczero verify --data-dir`` both run this class.
    """

    def __init__(self, *, n_subsets: int, budget: float, steps: int, schedule: str = "adaptive",
                 free_threshold: float = 1e-12, seed: int = 0, channel: str = "bsc"):
        if channel not in CHANNELS:
            raise ValueError(f"channel={channel!r} is unknown; expected one of {', '.join(CHANNELS)}")
        self.budget = budget
        self.steps = steps
        self.schedule = schedule
        self.free_threshold = free_threshold
        self.seed = seed
        self.channel = channel
        self.log_posterior = uniform_log_posterior(n_subsets)
        self.spent = 0.0

    def step_budget(self, *, step: int, directions: int) -> float:
        """Each of the ``directions`` releases' budget at ``step`` (β_t / K)."""
        return step_budget(budget=self.budget, spent=self.spent, step=step, steps=self.steps,
                           schedule=self.schedule) / directions

    def plan(self, signs: np.ndarray, *, step: int, k: int, budget: float) -> Free | Coin | NoisyPlan:
        """Direction ``k``'s release given the pool's subset ``signs``, spending at most ``budget`` nats."""
        q = q_plus(log_posterior=self.log_posterior, signs=signs)
        common = agreeing_sign(log_posterior=self.log_posterior, signs=signs, threshold=self.free_threshold)
        if common is not None:
            return Free(value=float(common), signs=format_signs(signs), q_plus=q)
        beta = min(budget, ENTROPY_CAP * binary_entropy(q))
        if beta <= 0.0:  # nothing left to spend: a public coin carries no information about S*
            return Coin(value=float(public_coin(self.seed, step, k)), signs=format_signs(signs))
        flip, sigma, charged = calibrate(q=q, beta=beta, channel=self.channel)
        return NoisyPlan(q_plus=q, beta=beta, flip=flip, sigma=sigma, charged=charged)

    def observe(self, signs: np.ndarray, *, bit: int, plan: NoisyPlan) -> None:
        """The posterior after the noisy ``bit`` of ``plan`` (Bayes with P(Y | s)), and its MI charged."""
        self.log_posterior = bit_update(log_posterior=self.log_posterior, signs=signs, bit=bit, flip=plan.flip)
        self.spent += plan.charged

    def state_dict(self) -> dict[str, Any]:
        """The posterior and the MI spent (private: computed on the pool)."""
        return {"log_posterior": self.log_posterior.tolist(), "spent": self.spent}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`."""
        self.log_posterior = np.asarray(state["log_posterior"], dtype=np.float64)
        self.spent = float(state["spent"])


class PacMI(Mechanism):
    """PACZero-MI (paczero-notes §3.7): free releases on agreement, else one calibrated bit within the budget."""
    name = "mi"

    def __init__(self, membership: np.ndarray, secret: SecretState, *, budget: float, steps: int,
                 schedule: str = "adaptive", free_threshold: float = 1e-12, seed: int = 0, clip: float = math.inf,
                 channel: str = "bsc"):
        self.rule = MIRule(n_subsets=membership.shape[1], budget=budget, steps=steps, schedule=schedule,
                           free_threshold=free_threshold, seed=seed, channel=channel)
        self.membership = membership
        self.clip = clip
        self._secret = secret

    @property
    def spent(self) -> float:  # type: ignore[override]
        return self.rule.spent

    def release_step(self, estimates: np.ndarray, *, step: int) -> list[Release]:
        K = estimates.shape[1]
        beta = self.rule.step_budget(step=step, directions=K)
        return [self.release(self.clipped(estimates, k), step=step, k=k, budget=beta) for k in range(K)]

    def release(self, estimates: np.ndarray, *, step: int, k: int, budget: float) -> Release:
        """Direction ``k``'s release from its clipped per-record estimates, spending at most ``budget`` nats."""
        signs = subset_signs(subset_means(self.membership, estimates))
        plan = self.rule.plan(signs, step=step, k=k, budget=budget)
        if not isinstance(plan, NoisyPlan):
            return plan
        true_sign = int(signs[self._secret.j_star])
        flipped = self._secret.stream("mi-flip", step, k).word64() < int(plan.flip * FLIP_GRID)
        bit = -true_sign if flipped else true_sign
        self.rule.observe(signs, bit=bit, plan=plan)
        return NoisyBit(value=float(bit), signs=format_signs(signs), q_plus=plan.q_plus, beta=plan.beta,
                        flip=plan.flip, sigma=plan.sigma, mi=plan.charged, channel=self.rule.channel)

    def state_dict(self) -> dict[str, Any]:
        return self.rule.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rule.load_state_dict(state)
