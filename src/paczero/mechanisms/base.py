"""The interface every release mechanism implements.

A mechanism never touches the model: it receives the clipped per-record estimates of one direction
(N floats) and returns the value that multiplies that direction in the update, plus the public
fields the ledger records for it. Anything secret stays inside the mechanism.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Release:
    """One released value. ``public`` goes to the ledger verbatim: it must be safe to publish."""

    value: float
    """Multiplier of the direction in the update (±1 for sign mechanisms)."""
    kind: str
    """How the value was produced: ``unanimous``, ``coin``, ``free``, ``noisy``..."""
    public: dict[str, Any] = field(default_factory=dict)


class Mechanism(ABC):
    name: str
    spent: float = 0.0
    """Mutual information charged so far, in nats (0 for mechanisms that charge none)."""

    def begin_step(self, step: int) -> None:
        """Called once per step before its K releases (e.g. to fix the step's MI budget)."""

    @abstractmethod
    def release(self, estimates: np.ndarray, *, step: int, k: int) -> Release:
        """Release the value of direction ``k`` at ``step`` from clipped per-record estimates."""

    @property
    def exhausted(self) -> bool:
        """True once the mechanism can release nothing more (an MI budget fully spent)."""
        return False

    def state_dict(self) -> dict[str, Any]:
        """Public state needed to resume (the posterior, the MI spent); never the secret."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`."""
