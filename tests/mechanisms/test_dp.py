"""DPZero and DP-AggZO: clipping, Poisson sampling from the secret, exact discrete noise, and attacks on what they
publish (a likelihood-ratio test against the (ε, δ) region, and the floating-point support test)."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy import stats
from scipy.special import ndtr, ndtri

from paczero.mechanisms.dp import GRID_BITS, DPAggZO, DPZero, clip_rows, clip_scalar, poisson_sample
from paczero.privacy.accounting import noise_multiplier
from paczero.privacy.discrete_gaussian import discrete_gaussian
from paczero.secret import SecretState

finite = st.floats(-1e6, 1e6, allow_nan=False)
SCALE = 2**GRID_BITS


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
    for row, orig in zip(out[~inside], v[~inside]):
        assert np.linalg.norm(row) == pytest.approx(clip, rel=1e-12)
        assert np.allclose(row * np.linalg.norm(orig), orig * clip, rtol=1e-9, atol=1e-300)


def test_poisson_sampling_rate_and_secrecy():
    n, q, steps = 500, 0.064, 400
    secret = _secret(1)
    counts = np.array([len(poisson_sample(secret, step=t, n=n, rate=q)) for t in range(steps)])
    lo, hi = stats.binom.ppf([0.0005, 0.9995], n * steps, q)  # total ~ Binomial(n·steps, q)
    assert lo <= counts.sum() <= hi
    assert counts.std() > 1  # Poisson, not fixed-size
    assert np.array_equal(poisson_sample(secret, step=7, n=n, rate=q), poisson_sample(_secret(1), step=7, n=n, rate=q))
    assert not np.array_equal(poisson_sample(secret, step=7, n=n, rate=q),
                              poisson_sample(_secret(2), step=7, n=n, rate=q))
    assert len(poisson_sample(secret, step=0, n=n, rate=1.0)) == n


def _integer(value: float, *, clip: float, q: float, n: int, scale: float = 1.0) -> int:
    """The integer a release was computed from, checked: recomputing the value from it gives the value exactly."""
    m = round(value * q * n / (scale * clip) * SCALE)
    assert scale * clip * (m / SCALE) / (q * n) == value
    return m


@pytest.mark.parametrize("K", [1, 4])
def test_noise_is_an_integer_with_the_configured_standard_deviation(K):
    """With no records the release is noise alone: an integer on the 2⁻⁴⁰·C grid, of standard deviation σ·Δ."""
    n, q, sigma, clip, steps = 200, 0.1, 1.7, 3.0, 1500
    mech = (DPZero if K == 1 else DPAggZO)(_secret(5), n=n, sample_rate=q, noise_multiplier=sigma, clip=clip)
    delta = SCALE + (0 if K == 1 else math.isqrt(K - 1) + 1)
    z = np.array([_integer(r.value, clip=clip, q=q, n=n, scale=K) / (sigma * delta)
                  for t in range(steps) for r in mech.release_step(np.zeros((0, K)), step=t)])
    assert abs(z.mean()) < 3.3 / np.sqrt(z.size)
    lo, hi = stats.chi2.ppf([0.0005, 0.9995], z.size - 1) / (z.size - 1)
    assert lo <= z.var(ddof=1) <= hi


def test_dpzero_is_its_formula_and_dpaggzo_with_one_direction_equals_it():
    rng = np.random.default_rng(0)
    n, q, sigma, clip = 300, 0.2, 1.3, 2.0
    kwargs = dict(n=n, sample_rate=q, noise_multiplier=sigma, clip=clip)
    dpzero, dpagg = DPZero(_secret(9), **kwargs), DPAggZO(_secret(9), **kwargs)
    for step in range(10):
        batch = dpzero.sample(step=step, n=n)
        assert np.array_equal(batch, dpagg.sample(step=step, n=n))
        g = rng.normal(scale=3.0, size=(len(batch), 1))  # many beyond the clip
        a, b = dpzero.release_step(g, step=step)[0], dpagg.release_step(g, step=step)[0]
        assert a.value == b.value and (a.kind, a.batch) == ("dp", len(batch))
        # The formula written out: C·2⁻⁴⁰·(Σ round(2⁴⁰·clip(d)/C) + noise)/(qN), noise ~ N_Z(0, (σ·2⁴⁰)²).
        total = sum(round(x / clip * SCALE) for x in np.clip(g[:, 0], -clip, clip))
        noise = discrete_gaussian(Fraction(sigma) ** 2 * SCALE**2, _secret(9).stream("dp-noise", step, 0))
        assert a.value == clip * ((total + noise) / SCALE) / (q * n)


def test_dpaggzo_clips_the_k_vector_jointly():
    """One record whose K-vector norm exceeds C: its contribution is the clipped vector (noise negligible)."""
    n, q, clip, K = 10, 1.0, 1.0, 3
    mech = DPAggZO(_secret(3), n=n, sample_rate=q, noise_multiplier=1e-15, clip=clip)
    d = np.array([[6.0, 0.0, 8.0]])  # v = d/K has norm 10/3 > C
    values = np.array([r.value for r in mech.release_step(d, step=0)])
    v = d[0] / K
    assert np.allclose(values, K * (v * clip / np.linalg.norm(v)) / (q * n), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("clip", [math.inf, 0.0, -1.0])
def test_a_dp_mechanism_needs_a_finite_clip(clip):
    with pytest.raises(ValueError, match="finite clip"):
        DPZero(_secret(), n=10, sample_rate=0.5, noise_multiplier=1.0, clip=clip)


# ---------------------------------------------------------------- attacks on the released values
N, Q, C, EPS, DELTA, T = 8, 1.0, 1.0, 1.0, 1e-5, 3
OTHERS = np.array([0.3, -0.7, 0.1, 0.9, -0.2, 0.5, 0.0])  # the known rest of the batch (q = 1)


def _releases(mech: DPZero, hypothesis: int) -> list[float]:
    """T releases of the batch whose record 0 contributes +C (hypothesis 0) or −C (hypothesis 1): replace-one."""
    g = np.r_[C if hypothesis == 0 else -C, OTHERS][:, None]
    return [mech.release_step(g, step=t)[0].value for t in range(T)]


def _clopper_pearson(k: int, n: int, level: float = 0.99) -> tuple[float, float]:
    alpha = 1 - level
    lo = stats.beta.ppf(alpha / 2, k, n - k + 1) if k > 0 else 0.0
    hi = stats.beta.ppf(1 - alpha / 2, k + 1, n - k) if k < n else 1.0
    return lo, hi


def _likelihood_ratio_test(sigma: float, trials: int) -> list[tuple[tuple[float, float], tuple[float, float]]]:
    """The Neyman–Pearson test of hypothesis 0 against 1 from the T released values (their integers' Gaussian
    log-likelihood ratio), at several thresholds: the Clopper–Pearson intervals of its FPR and FNR."""
    totals = [round(C * SCALE) + sum(round(x / C * SCALE) for x in OTHERS),
              -round(C * SCALE) + sum(round(x / C * SCALE) for x in OTHERS)]
    s = sigma * SCALE
    scores = {0: [], 1: []}
    for h in (0, 1):
        for trial in range(trials):
            mech = DPZero(_secret(trial * 2 + h), n=N, sample_rate=Q, noise_multiplier=sigma, clip=C)
            m = [_integer(v, clip=C, q=Q, n=N) for v in _releases(mech, h)]
            scores[h].append(sum(((x - totals[1]) ** 2 - (x - totals[0]) ** 2) / (2 * s * s) for x in m))
    out = []
    for tau in np.quantile(scores[0] + scores[1], np.linspace(0.02, 0.98, 25)):
        false_pos = sum(x > tau for x in scores[1])  # says 0 under 1
        false_neg = sum(x <= tau for x in scores[0])
        out.append((_clopper_pearson(false_pos, trials), _clopper_pearson(false_neg, trials)))
    return out


def _inside_region(fpr: float, fnr: float) -> bool:
    """(ε, δ)-DP: every test has FPR + e^ε·FNR ≥ 1 − δ and FNR + e^ε·FPR ≥ 1 − δ."""
    return fpr + math.exp(EPS) * fnr >= 1 - DELTA and fnr + math.exp(EPS) * fpr >= 1 - DELTA


@pytest.mark.slow
def test_a_likelihood_ratio_attacker_stays_in_the_dp_region():
    sigma = noise_multiplier(epsilon=EPS, delta=DELTA, sample_rate=Q, steps=T)
    for (fp_lo, fp_hi), (fn_lo, fn_hi) in _likelihood_ratio_test(sigma, trials=2500):
        assert _inside_region(fp_hi, fn_hi)  # the data cannot rule out the region at 99 %


def test_the_attacker_breaks_twenty_times_less_noise():
    sigma = noise_multiplier(epsilon=EPS, delta=DELTA, sample_rate=Q, steps=T) / 20
    assert any(not _inside_region(fp_hi, fn_hi)
               for (fp_lo, fp_hi), (fn_lo, fn_hi) in _likelihood_ratio_test(sigma, trials=300))


def _float_gaussian_release(secret: SecretState, hypothesis: int, sigma: float, step: int) -> float:
    """Control: the former release, (Σ clip(d_i) + σC·ξ)/(qN) with ξ = Φ⁻¹((w + ½)/2⁵³) for a 53-bit word w."""
    w = secret.stream("control", step).word64() >> 11
    total = (C if hypothesis == 0 else -C) + OTHERS.sum()
    return (total + sigma * C * float(ndtri((w + 0.5) / 2.0**53))) / (Q * N)


def _float_support(value: float, total: float, sigma: float) -> bool:
    """Whether some 53-bit word w gives exactly ``value`` from ``total``: the floating-point support test."""
    centre = int(round(float(ndtr((value * Q * N - total) / (sigma * C))) * 2.0**53 - 0.5))
    return any(0 <= w < 2**53 and (total + sigma * C * float(ndtri((w + 0.5) / 2.0**53))) / (Q * N) == value
               for w in range(centre - 64, centre + 65))


def test_the_floating_point_support_test_finds_nothing_in_the_discrete_releases():
    """Every released value is C·2⁻⁴⁰·m/(qN) for an integer m, and m − (either hypothesis' integer sum) is an
    integer, which the discrete Gaussian gives positive mass: both hypotheses always fit. The former float
    Gaussian release fits only the true hypothesis in most steps."""
    sigma = noise_multiplier(epsilon=EPS, delta=DELTA, sample_rate=Q, steps=T)
    totals = [(C if h == 0 else -C) + OTHERS.sum() for h in (0, 1)]
    grid_totals = [round(x * SCALE) + sum(round(o * SCALE) for o in OTHERS) for x in (C, -C)]
    only_one = 0
    for trial in range(100):
        h = trial % 2
        mech = DPZero(_secret(trial), n=N, sample_rate=Q, noise_multiplier=sigma, clip=C)
        for value in _releases(mech, h):
            m = _integer(value, clip=C, q=Q, n=N)  # on the grid, exactly
            for g in (0, 1):  # under either hypothesis an integer noise value j reproduces it exactly
                j = m - grid_totals[g]
                assert C * ((grid_totals[g] + j) / SCALE) / (Q * N) == value
        control = _float_gaussian_release(_secret(trial), h, sigma, step=0)
        fits = [_float_support(control, totals[g], sigma) for g in (0, 1)]
        assert fits[h]
        only_one += fits[h] and not fits[1 - h]
    assert only_one > 50
