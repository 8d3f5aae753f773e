"""The interface every release mechanism implements.

A mechanism never touches the model. Per step it may choose which pool records are evaluated
(:meth:`Mechanism.sample`: the whole pool by default, a minibatch for MeZO and the DP baselines),
then receives the per-record estimates of the K directions (an (n, K) array, non-finite entries
already replaced by 0) and returns one :class:`Release` per direction: the value that multiplies
that direction in the update θ ← θ − η((1/K) Σ_k value_k z_k + λθ), plus the public fields the
ledger records for it. Anything secret stays inside the mechanism.
"""

from __future__ import annotations

import math
from abc import ABC
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from paczero.subsets import clip_estimates


@dataclass(frozen=True)
class Release:
    """One released value. ``public`` goes to the ledger verbatim: it must be safe to publish."""

    value: float
    """Multiplier of the direction in the update (±1 for sign mechanisms)."""
    kind: str
    """How the value was produced: ``unanimous``, ``coin``, ``free``, ``noisy``, ``dp``..."""
    public: dict[str, Any] = field(default_factory=dict)


class Mechanism(ABC):
    """A release mechanism: per-record estimates and public state in, the released value(s) out."""
    name: str
    spent: float = 0.0
    """Mutual information charged so far, in nats (0 for mechanisms that charge none)."""
    clip: float = math.inf
    """Per-record estimates are clipped to [−clip, clip] before :meth:`release` (paczero-notes §3.5)."""
    pool_is_public: bool = True
    """Whether figures computed on the pool (its mean loss, truncation and non-finite counts) may be logged.
    True under the PAC game, where the pool is known to the adversary; False for the DP baselines, whose
    guarantee covers the pool's records themselves."""

    def begin_step(self, step: int) -> None:
        """Called once per step before its releases (e.g. to fix the step's MI budget)."""

    def sample(self, *, step: int, n: int) -> np.ndarray | None:
        """Indices of the pool records evaluated at ``step``; ``None`` (the default) means all ``n``."""
        return None

    def release_step(self, estimates: np.ndarray, *, step: int) -> list[Release]:
        """The K releases of ``step`` from the (n, K) per-record estimates of the sampled records.

        By default each direction is clipped per record and released on its own, in order.
        """
        return [self.release(clip_estimates(estimates[:, k], self.clip)[0], step=step, k=k)
                for k in range(estimates.shape[1])]

    def release(self, estimates: np.ndarray, *, step: int, k: int) -> Release:
        """Release the value of direction ``k`` at ``step`` from clipped per-record estimates."""
        raise NotImplementedError(f"{type(self).__name__} releases whole steps only")

    @property
    def exhausted(self) -> bool:
        """True once the mechanism can release nothing more (an MI budget fully spent)."""
        return False

    def state_dict(self) -> dict[str, Any]:
        """Public state needed to resume (the posterior, the MI spent); never the secret."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`."""

