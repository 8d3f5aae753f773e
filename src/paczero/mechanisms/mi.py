"""PACZero-MI: a budget of B nats spent with exactly calibrated Gaussian noise (paczero-notes §3.7, §4).

State: a posterior p over the M candidate subsets (log space, uniform at the start), computed from
public information only (the signs and the released real values), and the MI spent so far.

Per direction:

* **free release** — if every subset with posterior mass above ``free_threshold`` has the same sign,
  release that common sign. It is a function of public information, so it charges exactly 0 nats
  (the official code releases s_J* here instead, which leaks up to H_b(ignored mass) per step).
* **noisy release** — otherwise, with q₊ = posterior mass on +1, take the step budget β (adaptive:
  (B − spent)/(T − t); uniform: B/T; divided among the K directions of a step), cap it at
  0.999·H_b(q₊), solve σ so that the binary-input Gaussian channel carries at most β nats
  (conservative side), release ỹ = s_J* + σ·ξ with ξ from the secret-keyed stream, update the
  posterior with the Gaussian likelihood of ỹ, and charge the *achieved* MI I_q₊(σ) ≤ β.

By the chain rule, I(S*; transcript) ≤ Σ charged ≤ B (the budget is computed from public state only).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from paczero.mechanisms.base import Mechanism, Release
from paczero.mechanisms.zpl import public_coin
from paczero.privacy.channel import binary_entropy, channel_mi, sigma_for_mi
from paczero.privacy.posterior import agreeing_sign, gaussian_update, q_plus, uniform_log_posterior
from paczero.secret import SecretState
from paczero.subsets import format_signs, subset_means, subset_signs

ENTROPY_CAP = 0.999


def step_budget(*, budget: float, spent: float, step: int, steps: int, schedule: str) -> float:
    """β_t: ``adaptive`` = max(B − spent, 0)/max(T − t, 1); ``uniform`` = B/T (capped by what is left)."""
    remaining = max(budget - spent, 0.0)
    if schedule == "adaptive":
        return remaining / max(steps - step, 1)
    return min(budget / steps, remaining)


class PacMI(Mechanism):
    """PACZero-MI (paczero-notes §3.7): free releases on agreement, else s_J* + N(0, σ²) within the budget."""
    name = "mi"

    def __init__(self, membership: np.ndarray, secret: SecretState, *, budget: float, steps: int,
                 directions: int = 1, schedule: str = "adaptive", free_threshold: float = 1e-12, seed: int = 0,
                 clip: float = math.inf):
        self.membership = membership
        self.clip = clip
        self._secret = secret
        self.budget = budget
        self.steps = steps
        self.directions = directions
        self.schedule = schedule
        self.free_threshold = free_threshold
        self.seed = seed
        self.log_posterior = uniform_log_posterior(membership.shape[1])
        self.spent = 0.0
        self._direction_budget = 0.0

    def begin_step(self, step: int) -> None:
        beta = step_budget(budget=self.budget, spent=self.spent, step=step, steps=self.steps,
                           schedule=self.schedule)
        self._direction_budget = beta / self.directions

    @property
    def exhausted(self) -> bool:
        # Each release may fall short of its β by the solver's relative tolerance (1e-6), never exceed it.
        return self.spent >= self.budget * (1 - 1e-6)

    def release(self, estimates: np.ndarray, *, step: int, k: int) -> Release:
        signs = subset_signs(subset_means(self.membership, estimates))
        q = q_plus(log_posterior=self.log_posterior, signs=signs)
        shown = format_signs(signs)
        common = agreeing_sign(log_posterior=self.log_posterior, signs=signs, threshold=self.free_threshold)
        if common is not None:
            return Release(value=float(common), kind="free", public={"q_plus": q, "signs": shown})
        beta = min(self._direction_budget, ENTROPY_CAP * binary_entropy(q))
        if beta <= 0.0:
            # Nothing left to spend: a public coin carries no information about S*.
            return Release(value=float(public_coin(self.seed, step, k)), kind="coin",
                           public={"q_plus": q, "signs": shown})
        sigma = sigma_for_mi(q=q, beta=beta)
        y = float(signs[self._secret.j_star]) + sigma * self._secret.gaussian(step=step, k=k)
        achieved = channel_mi(q=q, sigma=sigma)
        self.log_posterior = gaussian_update(log_posterior=self.log_posterior, signs=signs, y=y, sigma=sigma)
        self.spent += achieved
        return Release(value=1.0 if y >= 0 else -1.0, kind="noisy",
                       public={"q_plus": q, "signs": shown, "y": y, "sigma": sigma, "beta": beta,
                               "mi": achieved})

    def state_dict(self) -> dict[str, Any]:
        return {"log_posterior": self.log_posterior.tolist(), "spent": self.spent}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.log_posterior = np.asarray(state["log_posterior"], dtype=np.float64)
        self.spent = float(state["spent"])
