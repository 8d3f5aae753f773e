"""DPZero and DP-AggZO: clipping, Poisson sampling from the secret, the noise scale, and their agreement."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy import stats

from paczero.mechanisms.dp import DPAggZO, DPZero, clip_rows, clip_scalar, poisson_sample
from paczero.secret import SecretState

finite = st.floats(-1e6, 1e6, allow_nan=False)


def _secret(salt: int = 0) -> SecretState:
    return SecretState(key=salt.to_bytes(32, "big"), j_star=0)


@settings(max_examples=100, deadline=None)
@given(d=arrays(np.float64, st.integers(0, 50), elements=finite), clip=st.floats(1e-3, 1e3))
def test_scalar_clipping_bounds_every_contribution(d, clip):
    out = clip_scalar(d, clip)
    assert np.all(np.abs(out) <= clip)
    inside = np.abs(d) <= clip
    assert np.array_equal(out[inside], d[inside])  # untouched below the threshold
    assert np.all(np.sign(out) == np.sign(d))


@settings(max_examples=100, deadline=None)
@given(v=arrays(np.float64, st.tuples(st.integers(1, 30), st.integers(1, 8)), elements=finite),
       clip=st.floats(1e-3, 1e3))
def test_vector_clipping_bounds_every_row_norm_and_keeps_its_direction(v, clip):
    out = clip_rows(v, clip)
    norms = np.linalg.norm(v, axis=1)
    assert np.all(np.linalg.norm(out, axis=1) <= clip * (1 + 1e-12))
    inside = norms <= clip
    assert np.array_equal(out[inside], v[inside])
    # Outside: a positive multiple of the row, with norm exactly C (to rounding).
    for row, orig in zip(out[~inside], v[~inside]):
        assert np.linalg.norm(row) == pytest.approx(clip, rel=1e-12)
        assert np.allclose(row * np.linalg.norm(orig), orig * clip, rtol=1e-9, atol=1e-300)


def test_poisson_sampling_rate_and_secrecy():
    n, q, steps = 500, 0.064, 400
    secret = _secret(1)
    counts = np.array([len(poisson_sample(secret, step=t, n=n, rate=q)) for t in range(steps)])
    # Total sampled ~ Binomial(n·steps, q): a 99.9 % interval.
    lo, hi = stats.binom.ppf([0.0005, 0.9995], n * steps, q)
    assert lo <= counts.sum() <= hi
    # Batch sizes vary (Poisson, not fixed) and the draw is reproducible from the key alone...
    assert counts.std() > 1
    assert np.array_equal(poisson_sample(secret, step=7, n=n, rate=q), poisson_sample(_secret(1), step=7, n=n, rate=q))
    # ...and another key gives other batches.
    assert not np.array_equal(poisson_sample(secret, step=7, n=n, rate=q), poisson_sample(_secret(2), step=7, n=n,
                                                                                            rate=q))


@pytest.mark.parametrize("K", [1, 4])
def test_noise_has_the_configured_standard_deviation(K):
    """With zero estimates the release is noise alone: value·qN/(K·σC) must be standard normal."""
    n, q, sigma, clip, steps = 200, 0.1, 1.7, 3.0, 3000
    mech = (DPZero if K == 1 else DPAggZO)(_secret(5), n=n, sample_rate=q, noise_multiplier=sigma, clip=clip)
    scale = (1 if K == 1 else K) * sigma * clip / (q * n)
    z = np.array([[r.value for r in mech.release_step(np.zeros((0, K)), step=t)] for t in range(steps)]) / scale
    z = z.ravel()
    m = len(z)
    # Mean within ±3.3 standard errors; variance within the 99.9 % chi-square interval.
    assert abs(z.mean()) < 3.3 / np.sqrt(m)
    lo, hi = stats.chi2.ppf([0.0005, 0.9995], m - 1) / (m - 1)
    assert lo <= z.var(ddof=1) <= hi


def test_dpaggzo_with_one_direction_equals_dpzero():
    """K = 1 and no Laplace step: same batch, same seed, same noise draw → the same released value."""
    rng = np.random.default_rng(0)
    n, q, sigma, clip = 300, 0.2, 1.3, 2.0
    kwargs = dict(n=n, sample_rate=q, noise_multiplier=sigma, clip=clip)
    dpzero, dpagg = DPZero(_secret(9), **kwargs), DPAggZO(_secret(9), pool_size_epsilon=0.0, **kwargs)
    for step in range(20):
        batch = dpzero.sample(step=step, n=n)
        assert np.array_equal(batch, dpagg.sample(step=step, n=n))
        g = rng.normal(scale=3.0, size=(len(batch), 1))  # many beyond the clip
        a = dpzero.release_step(g, step=step)[0].value
        b = dpagg.release_step(g, step=step)[0].value
        assert a == pytest.approx(b, rel=1e-12, abs=1e-15)
        # And both equal the formula written out: (Σ clip(d_i) + σC·ξ)/(qN).
        xi = _secret(9).gaussian(step=step, k=0)
        assert a == pytest.approx((np.clip(g[:, 0], -clip, clip).sum() + sigma * clip * xi) / (q * n), rel=1e-12)


def test_dpaggzo_clips_the_k_vector_jointly():
    """One record whose K-vector norm exceeds C: its contribution to the release is exactly the clipped vector."""
    n, q, clip, K = 10, 1.0, 1.0, 3
    mech = DPAggZO(_secret(3), n=n, sample_rate=q, noise_multiplier=1e-12, clip=clip)
    d = np.array([[6.0, 0.0, 8.0]])  # v = d/K has norm 10/3 > C
    values = np.array([r.value for r in mech.release_step(d, step=0)])
    v = d[0] / K
    expected = K * (v * clip / np.linalg.norm(v)) / (q * n)
    assert np.allclose(values, expected, rtol=1e-9, atol=1e-9)


def test_laplace_pool_size_has_the_configured_scale():
    """B̃/q − N ~ Laplace(1/ε_N) across keys: mean ≈ 0 and mean |·| ≈ 1/ε_N (the Laplace scale)."""
    n, q, eps_n = 1000, 0.064, 0.05
    draws = np.array([DPAggZO(_secret(s), n=n, sample_rate=q, noise_multiplier=1.0, clip=1.0,
                              pool_size_epsilon=eps_n)._normaliser / q - n for s in range(3000)])
    b = 1 / eps_n
    assert abs(draws.mean()) < 4 * np.sqrt(2) * b / np.sqrt(len(draws))
    assert np.abs(draws).mean() == pytest.approx(b, rel=0.06)


def test_dp_releases_publish_nothing_but_the_value():
    mech = DPAggZO(_secret(4), n=50, sample_rate=0.5, noise_multiplier=1.0, clip=1.0)
    for r in mech.release_step(np.ones((20, 2)), step=0):
        assert r.public == {} and r.kind == "dp"
    assert mech.pool_is_public is False
