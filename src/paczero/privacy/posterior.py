"""The adversary's posterior over the M candidate subsets, in log space (paczero-notes §3.7).

Everything here is a function of public information (the subset signs s_m ∈ {±1} and the released values), so
the adversary can compute it too; the mechanism calibrates its noise to it. Functions are pure: arrays in, new
arrays out.
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


def gaussian_update(*, log_posterior: np.ndarray, signs: np.ndarray, y: float, sigma: float) -> np.ndarray:
    """Bayes' rule after seeing ỹ = s_{S*} + N(0, σ²): p_m ∝ p_m·N(ỹ; s_m, σ²) (paczero-notes §3.7).

    Since s_m² = 1, ln N(ỹ; s_m, σ²) = ỹ·s_m/σ² + const, and subtracting its maximum |ỹ|/σ² leaves 0 for the
    subsets that agree with sign(ỹ) and −2|ỹ|/σ² for the others: finite (or −inf) for any σ > 0, never NaN.
    """
    signs = _check_signs(log_posterior, signs)
    if not 0.0 < sigma < math.inf:
        raise ValueError(f"sigma={sigma!r} is invalid; expected a finite noise scale > 0")
    if not math.isfinite(y):
        raise ValueError(f"y={y!r} is invalid; expected a finite released value")
    with np.errstate(over="ignore"):  # 2|ỹ|/σ² may overflow to inf: the disagreeing subsets become impossible
        log_likelihood = -((abs(y) - y * signs) / sigma) / sigma
    unnormalised = np.asarray(log_posterior, dtype=np.float64) + log_likelihood
    log_evidence = logsumexp(unnormalised)
    if not np.isfinite(log_evidence):
        raise ValueError(f"y={y!r} with sigma={sigma!r} has zero likelihood under every subset with posterior mass")
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
