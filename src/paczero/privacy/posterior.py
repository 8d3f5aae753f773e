"""The adversary's posterior over the M candidate subsets, in log space (paczero-notes §3.7).

Everything here is a function of what the adversary of the PAC game knows — the pool (hence the subset signs
s_m ∈ {±1}) and the released bits — so it can compute the posterior too, and the mechanism calibrates its noise to
it. Outside the game the pool is private, so the posterior and q₊ are written only to the run's private folder.
Functions are pure: arrays in, new arrays out.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import logsumexp


def _check_signs(log_posterior: np.ndarray, signs: np.ndarray) -> np.ndarray:
    signs = np.asarray(signs)
    if signs.shape != np.shape(log_posterior):
        raise ValueError(f"signs has shape {signs.shape}; expected the posterior's shape {np.shape(log_posterior)}")
    if not np.all(np.abs(signs) == 1):
        raise ValueError(f"signs contain {np.unique(signs[np.abs(signs) != 1])}; expected only +1 and -1")
    return signs


def uniform_log_posterior(m: int) -> np.ndarray:
    """The prior: ln p_m = −ln M for each of the M subsets (float64, length M)."""
    if m < 1:
        raise ValueError(f"m={m!r} is invalid; expected at least one candidate subset")
    return np.full(m, -math.log(m), dtype=np.float64)


def q_plus(*, log_posterior: np.ndarray, signs: np.ndarray) -> float:
    """q₊ = Σ_m p_m·1[s_m = +1]: the posterior probability that the released sign is +1 (paczero-notes §3.7)."""
    signs = _check_signs(log_posterior, signs)
    return min(float(np.exp(np.asarray(log_posterior)[signs > 0]).sum()), 1.0)


def bit_update(*, log_posterior: np.ndarray, signs: np.ndarray, bit: int, flip: float) -> np.ndarray:
    """Bayes' rule after seeing the bit Y = s_{S*} flipped with probability ``flip``: p_m ∝ p_m·P(Y | s_m), where
    P(Y | s) = 1 − flip if Y = s else flip (paczero-notes §3.7, with the release reduced to its bit).

    For Gaussian noise, flip = Φ(−1/σ) and P(Y = y | s) = Φ(y·s/σ). ``flip`` = 1/2 leaves the posterior unchanged;
    ``flip`` = 0 makes the disagreeing subsets impossible (−inf), never NaN.
    """
    signs = _check_signs(log_posterior, signs)
    if bit not in (1, -1):
        raise ValueError(f"bit={bit!r} is invalid; expected +1 or -1")
    if not 0.0 <= flip <= 0.5:
        raise ValueError(f"flip={flip!r} is invalid; expected a flip probability in [0, 1/2]")
    with np.errstate(divide="ignore"):  # log(0) = −inf for flip = 0
        log_likelihood = np.where(signs == bit, math.log1p(-flip), np.log(flip))
    unnormalised = np.asarray(log_posterior, dtype=np.float64) + log_likelihood
    log_evidence = logsumexp(unnormalised)
    if not np.isfinite(log_evidence):
        raise ValueError(f"bit={bit} with flip={flip!r} has zero likelihood under every subset with posterior mass")
    return unnormalised - log_evidence


def agreeing_sign(*, log_posterior: np.ndarray, signs: np.ndarray, threshold: float) -> int | None:
    """The common sign of every subset with posterior mass > ``threshold``, or None if they disagree.

    This is the free-release test (paczero-notes §3.7): when it returns a sign, that sign is a function of public
    information and releasing it costs 0 nats. Subsets with mass ≤ threshold are ignored; None also when no subset
    exceeds the threshold.
    """
    signs = _check_signs(log_posterior, signs)
    if not 0.0 <= threshold < 1.0:
        raise ValueError(f"threshold={threshold!r} is invalid; expected a posterior mass in [0, 1)")
    support = np.unique(signs[np.exp(np.asarray(log_posterior)) > threshold])
    return int(support[0]) if support.size == 1 else None
