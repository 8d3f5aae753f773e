"""The exact discrete Gaussian sampler (Canonne, Kamath & Steinke 2020) against its probability mass function."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from scipy import stats

from paczero.privacy.discrete_gaussian import bernoulli_exp, discrete_gaussian, discrete_laplace
from paczero.secret import SecretState

SECRET = SecretState(key=bytes(range(32)), j_star=0)


def _chi_square_p(counts: dict[int, int], pmf: dict[int, float]) -> float:
    """p-value of a chi-square goodness-of-fit test, pooling the tails into cells of expected count ≥ 5."""
    n = sum(counts.values())
    support = sorted(pmf)
    observed, expected, o, e = [], [], 0, 0.0
    for x in support:
        o, e = o + counts.get(x, 0), e + n * pmf[x]
        if e >= 5:
            observed.append(o)
            expected.append(e)
            o, e = 0, 0.0
    observed[-1] += o + sum(c for x, c in counts.items() if x not in pmf)
    expected[-1] += e
    return float(stats.chisquare(observed, np.array(expected) * sum(observed) / sum(expected)).pvalue)


def _discrete_gaussian_pmf(sigma2: float, reach: int) -> dict[int, float]:
    xs = np.arange(-reach, reach + 1)
    w = np.exp(-xs.astype(float) ** 2 / (2 * sigma2))
    return dict(zip(xs.tolist(), (w / w.sum()).tolist()))


@pytest.mark.parametrize("sigma2", [Fraction(1, 2), Fraction(9, 4), Fraction(10)])
def test_samples_follow_the_discrete_gaussian_pmf(sigma2):
    stream = SECRET.stream("test-dg", sigma2.numerator, sigma2.denominator)
    draws = [discrete_gaussian(sigma2, stream) for _ in range(6000)]
    counts = {x: draws.count(x) for x in set(draws)}
    pmf = _discrete_gaussian_pmf(float(sigma2), reach=int(12 * math.sqrt(float(sigma2))) + 2)
    assert _chi_square_p(counts, pmf) > 1e-3


def test_large_variance_matches_the_continuous_gaussian():
    """On the DP baselines' grid, σ is ~1e12 grid steps: the draws are indistinguishable from N(0, σ²)."""
    sigma = 3.7 * 2**40
    stream = SECRET.stream("test-dg-large")
    draws = np.array([discrete_gaussian(Fraction(sigma) ** 2, stream) for _ in range(2000)], dtype=float)
    assert stats.kstest(draws / sigma, "norm").pvalue > 1e-3
    assert abs(draws.mean()) < 4 * sigma / math.sqrt(draws.size)


@pytest.mark.parametrize("gamma", [Fraction(0), Fraction(3, 10), Fraction(1), Fraction(5, 2)])
def test_bernoulli_exp_has_probability_exp_minus_gamma(gamma):
    stream = SECRET.stream("test-bexp", gamma.numerator, gamma.denominator)
    n = 4000
    hits = sum(bernoulli_exp(gamma, stream) for _ in range(n))
    assert stats.binomtest(hits, n, math.exp(-gamma)).pvalue > 1e-3


@pytest.mark.parametrize("t", [1, 3])
def test_discrete_laplace_follows_its_pmf(t):
    stream = SECRET.stream("test-dlap", t)
    draws = [discrete_laplace(t, stream) for _ in range(4000)]
    xs = np.arange(-40 * t, 40 * t + 1)
    w = np.exp(-np.abs(xs) / t)
    pmf = dict(zip(xs.tolist(), (w / w.sum()).tolist()))
    assert _chi_square_p({x: draws.count(x) for x in set(draws)}, pmf) > 1e-3


def test_the_same_stream_gives_the_same_draws_and_another_gives_others():
    a = [discrete_gaussian(Fraction(25), SECRET.stream("dp-noise", 7, k)) for k in range(20)]
    b = [discrete_gaussian(Fraction(25), SECRET.stream("dp-noise", 7, k)) for k in range(20)]
    c = [discrete_gaussian(Fraction(25), SECRET.stream("dp-noise", 8, k)) for k in range(20)]
    other_key = SecretState(key=bytes(32), j_star=0)
    d = [discrete_gaussian(Fraction(25), other_key.stream("dp-noise", 7, k)) for k in range(20)]
    assert a == b and a != c and a != d


@pytest.mark.parametrize("bad", [Fraction(0), Fraction(-1)])
def test_a_non_positive_variance_is_refused(bad):
    with pytest.raises(ValueError, match="sigma2"):
        discrete_gaussian(bad, SECRET.stream("x"))
