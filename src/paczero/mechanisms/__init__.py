"""Release mechanisms behind one interface (:class:`Mechanism`)."""

from __future__ import annotations

import numpy as np

from paczero.config import Config
from paczero.mechanisms.base import Mechanism, Release
from paczero.mechanisms.mi import PacMI
from paczero.mechanisms.zpl import ZPL
from paczero.secret import SecretState

__all__ = ["Mechanism", "PacMI", "Release", "ZPL", "build_mechanism"]


def build_mechanism(cfg: Config, *, membership: np.ndarray, secret: SecretState) -> Mechanism:
    """The mechanism selected by ``privacy.mechanism``; only those that need the secret receive it."""
    p = cfg.privacy
    if p.mechanism == "zpl":
        return ZPL(membership, seed=cfg.run.seed)
    return PacMI(membership, secret, budget=p.budget, steps=cfg.train.steps, directions=cfg.zo.directions,
                 schedule=p.budget_schedule, free_threshold=p.free_threshold, seed=cfg.run.seed)
