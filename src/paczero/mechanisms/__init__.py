"""Release mechanisms behind one interface (:class:`Mechanism`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from paczero.config import DP_MECHANISMS, Config
from paczero.mechanisms.ablations import ABLATIONS, Ablation
from paczero.mechanisms.base import Mechanism, Release
from paczero.mechanisms.dp import DPAggZO, DPZero
from paczero.mechanisms.mezo import MeZO
from paczero.mechanisms.mi import PacMI
from paczero.mechanisms.zpl import ZPL
from paczero.privacy.accounting import noise_multiplier
from paczero.secret import SecretState

__all__ = ["ABLATIONS", "Ablation", "DPAggZO", "DPCalibration", "DPZero", "Mechanism", "MeZO", "PacMI", "Release",
           "ZPL", "build_mechanism", "dp_calibration"]

PAC_MECHANISMS = ("zpl", "mi")


@dataclass(frozen=True)
class DPCalibration:
    """How a DP baseline run splits its ε: the Gaussian steps, and DP-AggZO's Laplace-noised pool size."""

    noise_multiplier: float
    gaussian_epsilon: float
    pool_size_epsilon: float


def dp_calibration(cfg: Config) -> DPCalibration:
    """σ for ``train.steps`` Poisson-subsampled Gaussian steps costing ε·(1 − pool-size share), by the accountant."""
    p = cfg.privacy
    assert p.mechanism in DP_MECHANISMS and p.epsilon is not None
    share = p.pool_size_fraction if p.mechanism == "dpaggzo" else 0.0
    gaussian = p.epsilon * (1.0 - share)
    sigma = noise_multiplier(epsilon=gaussian, delta=p.delta, sample_rate=p.sample_rate, steps=cfg.train.steps,
                             accountant=p.accountant)
    return DPCalibration(noise_multiplier=sigma, gaussian_epsilon=gaussian, pool_size_epsilon=p.epsilon * share)


def build_mechanism(cfg: Config, *, membership: np.ndarray, secret: SecretState) -> Mechanism:
    """The mechanism selected by ``privacy.mechanism``; only those that need the secret receive it."""
    p, seed, clip = cfg.privacy, cfg.run.seed, cfg.zo.clip
    n = membership.shape[0]
    if p.mechanism == "zpl":
        return ZPL(membership, seed=seed, clip=clip)
    if p.mechanism == "mi":
        return PacMI(membership, secret, budget=p.budget, steps=cfg.train.steps, directions=cfg.zo.directions,
                     schedule=p.budget_schedule, free_threshold=p.free_threshold, seed=seed, clip=clip)
    if p.mechanism == "mezo":
        return MeZO(seed=seed, batch_size=cfg.train.batch_size)
    if p.mechanism in DP_MECHANISMS:
        cal = dp_calibration(cfg)
        if p.mechanism == "dpzero":
            return DPZero(secret, n=n, sample_rate=p.sample_rate, noise_multiplier=cal.noise_multiplier, clip=clip)
        return DPAggZO(secret, n=n, sample_rate=p.sample_rate, noise_multiplier=cal.noise_multiplier, clip=clip,
                       pool_size_epsilon=cal.pool_size_epsilon)
    return Ablation(p.mechanism, membership=membership, secret=secret, seed=seed, clip=clip)
