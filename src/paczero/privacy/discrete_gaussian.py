"""Exact sampling of the discrete Gaussian N_Z(0, σ²) (Canonne, Kamath & Steinke, NeurIPS 2020, Algorithms 1–3).

The DP baselines release an integer: the sum of the sampled records' clipped contributions, each rounded to a
fine grid, plus discrete Gaussian noise. Every operation on the secret-keyed randomness is exact integer or
rational arithmetic, so the release's distribution is exactly the one the accountant analyses — unlike
floating-point Gaussian noise, whose last bits give its sign away (Mironov, CCS 2012). The only randomness
consumed is uniform integers (``rng.randbelow(n)``), drawn from the secret-keyed stream of
:class:`paczero.secret.SecretState`.

P(X = x) ∝ exp(−x²/(2σ²)) for x ∈ Z, with σ² a positive rational. The sampler is rejection from a discrete
Laplace of scale t = ⌊σ⌋ + 1 (Algorithm 3), whose acceptance test and whose own sampler (Algorithm 2) need only
Bernoulli(exp(−γ)) for rational γ ≥ 0 (Algorithm 1). Expected cost: O(1) iterations for any σ.
"""

from __future__ import annotations

from fractions import Fraction
from math import isqrt
from typing import Protocol


class UniformSource(Protocol):
    """A source of uniform integers."""

    def randbelow(self, n: int) -> int:
        """A uniform integer in [0, n)."""


def bernoulli(p: Fraction, rng: UniformSource) -> bool:
    """True with probability ``p`` ∈ [0, 1] (rational), exactly."""
    return rng.randbelow(p.denominator) < p.numerator


def bernoulli_exp(gamma: Fraction, rng: UniformSource) -> bool:
    """True with probability exp(−γ) for rational γ ≥ 0 (CKS Algorithm 1).

    For γ ≤ 1: draw A_k ~ Bernoulli(γ/k) for k = 1, 2, … until the first A_k = 0; the first zero comes at k with
    probability γ^{k−1}/(k−1)!·(1 − γ/k), and summed over odd k that is e^{−γ}. For γ > 1: ⌊γ⌋ independent
    Bernoulli(e^{−1}) and one Bernoulli(e^{−(γ − ⌊γ⌋)}) must all succeed.
    """
    if gamma < 0:
        raise ValueError(f"gamma={gamma} is invalid; expected >= 0")
    if gamma > 1:
        whole = gamma.numerator // gamma.denominator
        for _ in range(whole):
            if not bernoulli_exp(Fraction(1), rng):
                return False
        return bernoulli_exp(gamma - whole, rng)
    k = 1
    while bernoulli(gamma / k, rng):
        k += 1
    return k % 2 == 1


def discrete_laplace(t: int, rng: UniformSource) -> int:
    """A draw from the discrete Laplace distribution P(X = x) ∝ exp(−|x|/t), integer t ≥ 1 (CKS Algorithm 2)."""
    if t < 1:
        raise ValueError(f"t={t} is invalid; expected an integer scale >= 1")
    while True:
        u = rng.randbelow(t)
        if not bernoulli_exp(Fraction(u, t), rng):
            continue
        v = 0
        while bernoulli_exp(Fraction(1), rng):
            v += 1
        x = u + t * v
        negative = rng.randbelow(2) == 1
        if negative and x == 0:
            continue  # 0 would otherwise be drawn twice as often
        return -x if negative else x


def discrete_gaussian(sigma2: Fraction, rng: UniformSource) -> int:
    """A draw from N_Z(0, σ²) for a rational σ² > 0 (CKS Algorithm 3).

    Propose Y from the discrete Laplace of scale t = ⌊σ⌋ + 1 and accept with probability
    exp(−(|Y| − σ²/t)²/(2σ²)).
    """
    sigma2 = Fraction(sigma2)
    if not sigma2 > 0:
        raise ValueError(f"sigma2={sigma2} is invalid; expected a variance > 0")
    t = isqrt(sigma2.numerator // sigma2.denominator) + 1  # ⌊σ⌋ + 1, exactly
    while True:
        y = discrete_laplace(t, rng)
        gap = abs(y) - sigma2 / t
        if bernoulli_exp(gap * gap / (2 * sigma2), rng):
            return y
