"""Posterior over the candidate subsets (paczero-notes §3.7), against a direct float64 Bayes computation."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import logsumexp
from scipy.stats import norm

from paczero.privacy.posterior import agreeing_sign, gaussian_update, q_plus, uniform_log_posterior


def _bayes(prior: np.ndarray, signs: np.ndarray, observations: list[tuple[float, float]]) -> np.ndarray:
    """p_m ∝ prior_m · Π_t N(y_t; s_m, σ_t²), with the densities taken literally from scipy.stats.norm."""
    p = prior.copy()
    for y, sigma in observations:
        p = p * norm.pdf(y, loc=signs, scale=sigma)
        p = p / p.sum()
    return p


def test_uniform_log_posterior():
    lp = uniform_log_posterior(8)
    assert lp.dtype == np.float64 and lp.shape == (8,)
    assert np.allclose(np.exp(lp), 1 / 8, rtol=1e-15, atol=0)
    assert logsumexp(lp) == pytest.approx(0.0, abs=1e-15)


@pytest.mark.parametrize("m", [0, -3])
def test_uniform_log_posterior_rejects_empty(m):
    with pytest.raises(ValueError, match=f"m={m}"):
        uniform_log_posterior(m)


def test_q_plus_sums_the_mass_on_plus():
    p = np.array([0.1, 0.2, 0.3, 0.4])
    signs = np.array([1, -1, 1, -1])
    assert q_plus(log_posterior=np.log(p), signs=signs) == pytest.approx(0.4, rel=1e-15, abs=0.0)
    assert q_plus(log_posterior=np.log(p), signs=np.ones(4)) == pytest.approx(1.0, rel=1e-15, abs=0.0)
    assert q_plus(log_posterior=np.log(p), signs=-np.ones(4)) == 0.0
    assert q_plus(log_posterior=uniform_log_posterior(6), signs=np.array([1, 1, 1, -1, -1, -1])) == \
        pytest.approx(0.5, rel=1e-15, abs=0.0)


@settings(max_examples=100, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), m=st.integers(2, 64), steps=st.integers(1, 6))
def test_gaussian_update_matches_direct_bayes(seed, m, steps):
    rng = np.random.default_rng(seed)
    log_posterior = uniform_log_posterior(m)
    prior = np.exp(log_posterior)
    observations = []
    signs = np.where(rng.random(m) < 0.5, 1, -1)
    for _ in range(steps):
        sigma = float(rng.uniform(0.5, 5.0))
        y = float(rng.choice([-1.0, 1.0]) + sigma * rng.standard_normal())
        observations.append((y, sigma))
        log_posterior = gaussian_update(log_posterior=log_posterior, signs=signs, y=y, sigma=sigma)
    np.testing.assert_allclose(np.exp(log_posterior), _bayes(prior, signs, observations), rtol=1e-10, atol=0)
    assert logsumexp(log_posterior) == pytest.approx(0.0, abs=1e-12)


def test_gaussian_update_with_changing_signs_matches_direct_bayes():
    """Each step has its own sign vector, as in training (the subsets' signs change with every direction)."""
    rng = np.random.default_rng(7)
    m = 16
    log_posterior = uniform_log_posterior(m)
    p = np.exp(log_posterior)
    for _ in range(20):
        signs = np.where(rng.random(m) < 0.5, 1.0, -1.0)
        sigma = float(rng.uniform(1.0, 3.0))
        y = float(signs[3] + sigma * rng.standard_normal())
        log_posterior = gaussian_update(log_posterior=log_posterior, signs=signs, y=y, sigma=sigma)
        p = _bayes(p, signs, [(y, sigma)])
    np.testing.assert_allclose(np.exp(log_posterior), p, rtol=1e-9, atol=1e-300)


def test_gaussian_update_is_pure():
    lp = uniform_log_posterior(4)
    before = lp.copy()
    out = gaussian_update(log_posterior=lp, signs=np.array([1, -1, 1, -1]), y=0.7, sigma=1.0)
    assert out is not lp
    np.testing.assert_array_equal(lp, before)


def test_gaussian_update_zero_observation_is_uninformative():
    lp = np.log(np.array([0.1, 0.2, 0.3, 0.4]))
    out = gaussian_update(log_posterior=lp, signs=np.array([1, -1, 1, -1]), y=0.0, sigma=0.3)
    np.testing.assert_allclose(out, lp, rtol=0, atol=1e-15)


@pytest.mark.parametrize("sigma", [1e-3, 1e-10, 1e-200, 5e-324])
def test_gaussian_update_is_stable_for_tiny_sigma(sigma):
    """The Gaussian densities all underflow, yet the update is exact: the agreeing subsets keep their ratios."""
    lp = np.log(np.array([0.1, 0.2, 0.3, 0.4]))
    out = gaussian_update(log_posterior=lp, signs=np.array([1, -1, 1, -1]), y=-0.4, sigma=sigma)
    assert not np.isnan(out).any()
    np.testing.assert_allclose(np.exp(out), [0.0, 1 / 3, 0.0, 2 / 3], rtol=1e-14, atol=1e-300)


def test_gaussian_update_rejects_an_impossible_observation():
    lp = np.array([0.0, -np.inf])  # all the mass on a +1 subset
    with pytest.raises(ValueError, match="zero likelihood"):
        gaussian_update(log_posterior=lp, signs=np.array([1, -1]), y=-1.0, sigma=1e-200)


@pytest.mark.parametrize("kwargs, bad", [
    ({"y": 0.5, "sigma": 0.0}, "sigma=0.0"),
    ({"y": 0.5, "sigma": -1.0}, "sigma=-1.0"),
    ({"y": 0.5, "sigma": math.inf}, "sigma=inf"),
    ({"y": math.nan, "sigma": 1.0}, "y=nan"),
])
def test_gaussian_update_rejects_bad_scalars(kwargs, bad):
    with pytest.raises(ValueError, match=re.escape(bad)):
        gaussian_update(log_posterior=uniform_log_posterior(2), signs=np.array([1, -1]), **kwargs)


@pytest.mark.parametrize("signs, match", [
    (np.array([1, 0, -1, 1]), r"\[0\]"),
    (np.array([1, -1, 2, 1]), r"\[2\]"),
    (np.array([1, -1, 1]), r"shape \(3,\)"),
])
def test_signs_are_validated(signs, match):
    lp = uniform_log_posterior(4)
    for call in (lambda: q_plus(log_posterior=lp, signs=signs),
                 lambda: gaussian_update(log_posterior=lp, signs=signs, y=0.1, sigma=1.0),
                 lambda: agreeing_sign(log_posterior=lp, signs=signs, threshold=1e-12)):
        with pytest.raises(ValueError, match=match):
            call()


def test_agreeing_sign_unanimous():
    lp = uniform_log_posterior(4)
    assert agreeing_sign(log_posterior=lp, signs=np.ones(4), threshold=1e-12) == 1
    assert agreeing_sign(log_posterior=lp, signs=-np.ones(4, dtype=int), threshold=1e-12) == -1


def test_agreeing_sign_disagreement():
    lp = uniform_log_posterior(4)
    assert agreeing_sign(log_posterior=lp, signs=np.array([1, 1, 1, -1]), threshold=1e-12) is None


def test_agreeing_sign_ignores_mass_at_or_below_threshold():
    p = np.array([0.5, 0.5 - 2e-13, 1e-13, 1e-13])
    signs = np.array([1, 1, -1, -1])
    assert agreeing_sign(log_posterior=np.log(p), signs=signs, threshold=1e-12) == 1
    assert agreeing_sign(log_posterior=np.log(p), signs=signs, threshold=1e-14) is None
    exactly = np.log(np.array([0.75, 0.25]))
    assert agreeing_sign(log_posterior=exactly, signs=np.array([1, -1]), threshold=0.25) == 1
    assert agreeing_sign(log_posterior=np.array([0.0, -np.inf]), signs=np.array([-1, 1]), threshold=0.0) == -1


def test_agreeing_sign_after_a_decisive_update():
    """A release with tiny σ makes the disagreeing subsets impossible, so the next step is a free release."""
    signs = np.array([1, -1, 1, -1])
    lp = gaussian_update(log_posterior=uniform_log_posterior(4), signs=signs, y=0.9, sigma=1e-3)
    assert agreeing_sign(log_posterior=lp, signs=signs, threshold=1e-12) == 1
    assert q_plus(log_posterior=lp, signs=signs) == 1.0


def test_agreeing_sign_without_support_is_none():
    lp = uniform_log_posterior(4)
    assert agreeing_sign(log_posterior=lp, signs=np.ones(4), threshold=0.5) is None


@pytest.mark.parametrize("threshold", [-1e-12, 1.0, math.nan])
def test_agreeing_sign_rejects_bad_threshold(threshold):
    with pytest.raises(ValueError, match=re.escape(f"threshold={threshold!r}")):
        agreeing_sign(log_posterior=uniform_log_posterior(2), signs=np.array([1, 1]), threshold=threshold)
