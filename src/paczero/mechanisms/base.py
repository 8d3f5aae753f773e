"""The interface every release mechanism implements.

A mechanism never touches the model. Per step it may choose which pool records are evaluated
(:meth:`Mechanism.sample`: the whole pool by default, a minibatch for MeZO, a Poisson batch for the DP
baselines), then receives the per-record estimates of the K directions (an (n, K) array, non-finite entries
already replaced by 0) and returns one typed :class:`~paczero.releases.Release` per direction. Only each
release's ``value`` is published; anything secret or computed on the pool stays in the release's private
fields and in the mechanism's state (:meth:`state_dict`, written to the run's private folder).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Any

import numpy as np

from paczero.releases import Release
from paczero.subsets import clip_estimates


class Mechanism(ABC):
    """A release mechanism: per-record estimates and its own state in, the released values out."""
    name: str
    spent: float = 0.0
    """Mutual information charged so far, in nats (0 for mechanisms that charge none; private)."""
    clip: float = math.inf
    """Per-record estimates are clipped to [−clip, clip] (paczero-notes §3.5)."""

    def sample(self, *, step: int, n: int) -> np.ndarray | None:
        """Indices of the pool records evaluated at ``step``; ``None`` (the default) means all ``n``."""
        return None

    @abstractmethod
    def release_step(self, estimates: np.ndarray, *, step: int) -> list[Release]:
        """The K releases of ``step`` from the (n, K) per-record estimates of the sampled records."""

    def clipped(self, estimates: np.ndarray, k: int) -> np.ndarray:
        """Direction ``k``'s estimates clipped to [−clip, clip] (float64)."""
        return clip_estimates(estimates[:, k], self.clip)[0]

    def state_dict(self) -> dict[str, Any]:
        """State needed to resume (e.g. the posterior and the MI spent); private: computed on the pool."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`."""
