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

from paczero.privacy.posterior import agreeing_sign, bit_update, q_plus, uniform_log_posterior


def _bayes(prior: np.ndarray, signs: np.ndarray, observations: list[tuple[int, float]]) -> np.ndarray:
    """p_m ∝ prior_m · Π_t P(Y_t | s_m) with P(Y = y | s) = Φ(y·s/σ) for σ = −1/Φ⁻¹(flip): the bit of a Gaussian
    release, its likelihood taken literally from scipy.stats.norm (not from the flip probability)."""
    p = prior.copy()
    for y, flip in observations:
        sigma = -1.0 / norm.ppf(flip)
        p = p * norm.cdf(y * signs / sigma)
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
def test_bit_update_matches_direct_bayes(seed, m, steps):
    rng = np.random.default_rng(seed)
    log_posterior = uniform_log_posterior(m)
    prior = np.exp(log_posterior)
    observations = []
    signs = np.where(rng.random(m) < 0.5, 1, -1)
    for _ in range(steps):
        flip = float(rng.uniform(0.05, 0.49))
        bit = int(rng.choice([-1, 1]))
        observations.append((bit, flip))
        log_posterior = bit_update(log_posterior=log_posterior, signs=signs, bit=bit, flip=flip)
    np.testing.assert_allclose(np.exp(log_posterior), _bayes(prior, signs, observations), rtol=1e-10, atol=0)
    assert logsumexp(log_posterior) == pytest.approx(0.0, abs=1e-12)


def test_bit_update_with_changing_signs_matches_direct_bayes():
    """Each step has its own sign vector, as in training (the subsets' signs change with every direction)."""
    rng = np.random.default_rng(7)
    m = 16
    log_posterior = uniform_log_posterior(m)
    p = np.exp(log_posterior)
    for _ in range(20):
        signs = np.where(rng.random(m) < 0.5, 1.0, -1.0)
        flip = float(rng.uniform(0.1, 0.45))
        bit = int(signs[3]) if rng.random() > flip else -int(signs[3])
        log_posterior = bit_update(log_posterior=log_posterior, signs=signs, bit=bit, flip=flip)
        p = _bayes(p, signs, [(bit, flip)])
    np.testing.assert_allclose(np.exp(log_posterior), p, rtol=1e-9, atol=1e-300)


def test_bit_update_is_pure():
    lp = uniform_log_posterior(4)
    before = lp.copy()
    out = bit_update(log_posterior=lp, signs=np.array([1, -1, 1, -1]), bit=1, flip=0.3)
    assert out is not lp
    np.testing.assert_array_equal(lp, before)


def test_a_fair_coin_is_uninformative():
    lp = np.log(np.array([0.1, 0.2, 0.3, 0.4]))
    out = bit_update(log_posterior=lp, signs=np.array([1, -1, 1, -1]), bit=-1, flip=0.5)
    np.testing.assert_allclose(out, lp, rtol=0, atol=1e-15)


@pytest.mark.parametrize("flip", [1e-3, 1e-100, 5e-324, 0.0])
def test_bit_update_is_stable_for_tiny_flips(flip):
    """The disagreeing subsets' likelihood underflows (or is 0), yet the agreeing ones keep their ratios."""
    lp = np.log(np.array([0.1, 0.2, 0.3, 0.4]))
    out = bit_update(log_posterior=lp, signs=np.array([1, -1, 1, -1]), bit=-1, flip=flip)
    assert not np.isnan(out).any()
    z = 0.4 * flip + 0.6 * (1 - flip)
    expected = np.array([0.1 * flip, 0.2 * (1 - flip), 0.3 * flip, 0.4 * (1 - flip)]) / z
    np.testing.assert_allclose(np.exp(out), expected, rtol=1e-12, atol=1e-300)


def test_bit_update_rejects_an_impossible_observation():
    lp = np.array([0.0, -np.inf])  # all the mass on a +1 subset
    with pytest.raises(ValueError, match="zero likelihood"):
        bit_update(log_posterior=lp, signs=np.array([1, -1]), bit=-1, flip=0.0)


@pytest.mark.parametrize("kwargs, bad", [
    ({"bit": 0, "flip": 0.2}, "bit=0"),
    ({"bit": 1, "flip": -0.1}, "flip=-0.1"),
    ({"bit": 1, "flip": 0.6}, "flip=0.6"),
    ({"bit": 1, "flip": math.nan}, "flip=nan"),
])
def test_bit_update_rejects_bad_scalars(kwargs, bad):
    with pytest.raises(ValueError, match=re.escape(bad)):
        bit_update(log_posterior=uniform_log_posterior(2), signs=np.array([1, -1]), **kwargs)


@pytest.mark.parametrize("signs, match", [
    (np.array([1, 0, -1, 1]), r"\[0\]"),
    (np.array([1, -1, 2, 1]), r"\[2\]"),
    (np.array([1, -1, 1]), r"shape \(3,\)"),
])
def test_signs_are_validated(signs, match):
    lp = uniform_log_posterior(4)
    for call in (lambda: q_plus(log_posterior=lp, signs=signs),
                 lambda: bit_update(log_posterior=lp, signs=signs, bit=1, flip=0.2),
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
    """A bit that is never flipped makes the disagreeing subsets impossible, so the next step is a free release."""
    signs = np.array([1, -1, 1, -1])
    lp = bit_update(log_posterior=uniform_log_posterior(4), signs=signs, bit=1, flip=0.0)
    assert agreeing_sign(log_posterior=lp, signs=signs, threshold=1e-12) == 1
    assert q_plus(log_posterior=lp, signs=signs) == 1.0


def test_agreeing_sign_without_support_is_none():
    lp = uniform_log_posterior(4)
    assert agreeing_sign(log_posterior=lp, signs=np.ones(4), threshold=0.5) is None


@pytest.mark.parametrize("threshold", [-1e-12, 1.0, math.nan])
def test_agreeing_sign_rejects_bad_threshold(threshold):
    with pytest.raises(ValueError, match=re.escape(f"threshold={threshold!r}")):
        agreeing_sign(log_posterior=uniform_log_posterior(2), signs=np.array([1, 1]), threshold=threshold)
