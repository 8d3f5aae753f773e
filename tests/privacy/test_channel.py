"""Binary-input Gaussian channel: I_q(σ) against adaptive quadrature and golden numbers (paczero-notes §4)."""

from __future__ import annotations

import math
import re
import warnings

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from scipy.integrate import IntegrationWarning, quad

from paczero.privacy.channel import binary_entropy, channel_mi, sigma_for_mi


def _kl_to_mixture(s: int, q: float, sigma: float) -> tuple[float, float]:
    """KL(N(s, σ²) ‖ q·N(1, σ²) + (1−q)·N(−1, σ²)) and its error estimate, by scipy.integrate.quad in y."""
    q_o = 1.0 - q if s > 0 else q
    log_q_s, log_q_o = (math.log(q), math.log1p(-q)) if s > 0 else (math.log1p(-q), math.log(q))

    def density(y: float) -> float:
        return math.exp(-0.5 * ((y - s) / sigma) ** 2) / (sigma * math.sqrt(2.0 * math.pi))

    def plain(y: float) -> float:  # N(y; s)·ln(N(y; s)/m(y)); the ratio N(y; −s)/N(y; s) is e^{−2sy/σ²}
        return -density(y) * float(np.logaddexp(log_q_s, log_q_o - 2.0 * s * y / sigma**2))

    def excess(y: float) -> float:  # N(y; s)·(r − 1 − ln r) with r = m/N(y; s) ≥ 0: same integral, as ∫(m − N) = 0
        w = q_o * math.expm1(-2.0 * s * y / sigma**2)
        return density(y) * (w - math.log1p(w))

    # The plain form cancels ~log10(σ) digits for large σ; the excess form needs the mixture's other component
    # inside the window, which holds for σ ≥ 1. The window covers both components: for tiny q_o the mass of
    # N(y; s)·q_o·e^{−2sy/σ²} = q_o·N(y; −s) still counts until the posterior flips.
    flip = s * sigma**2 * (log_q_o - log_q_s) / 2.0  # where the posterior crosses 1/2: a near-kink for small σ
    lower, upper = -1.0 - 12.0 * sigma, 1.0 + 12.0 * sigma
    points = sorted({-1.0, 1.0} | ({flip} if lower < flip < upper else set()))
    with warnings.catch_warnings():
        # For large σ the excess integrand carries rounding noise of ~1e-16/|w|, which QUADPACK reports; the
        # error estimate is checked against the result in _mi_quad instead.
        warnings.simplefilter("ignore", IntegrationWarning)
        value, error, *_ = quad(plain if sigma < 1.0 else excess, lower, upper, points=points,
                                epsabs=0.0, epsrel=1e-10, limit=500)
    return value, error


def _mi_quad(q: float, sigma: float) -> float:
    (plus, plus_error), (minus, minus_error) = _kl_to_mixture(1, q, sigma), _kl_to_mixture(-1, q, sigma)
    mi = q * plus + (1.0 - q) * minus
    assert q * plus_error + (1.0 - q) * minus_error <= 1e-9 * mi, "the oracle itself is not accurate enough"
    return mi


Q_GRID = [1e-6, 1e-3, 0.1, 0.3, 0.5, 0.9, 0.999, 1.0 - 1e-6]
SIGMA_GRID = [0.05, 0.1, 0.2, 0.3, 0.5, 0.99, 1.0, 2.0, 10.0, 1e3, 1e5, 1e6]


@pytest.mark.parametrize("q", Q_GRID)
@pytest.mark.parametrize("sigma", SIGMA_GRID)
def test_channel_mi_matches_quad(q, sigma):
    assert channel_mi(q=q, sigma=sigma) == pytest.approx(_mi_quad(q, sigma), rel=1e-8, abs=0.0)


@pytest.mark.parametrize("q", [1e-50, 1e-100, 1e-300])
@pytest.mark.parametrize("sigma", [0.053, 0.06, 0.08, 0.1, 0.12, 0.14, 0.16, 0.2, 0.3, 1.0])
def test_channel_mi_matches_quad_for_extreme_q(q, sigma):
    """Posteriors far below the 1e-12 free-release threshold: the integrand's poles sit in the bulk of N(0, 1)."""
    assert channel_mi(q=q, sigma=sigma) == pytest.approx(_mi_quad(q, sigma), rel=1e-10, abs=0.0)


@pytest.mark.parametrize("q, sigma, printed", [
    (0.5, 1.0, "0.33683082"),
    (0.5, 5.0, "0.01961017"),
    (0.3, 0.5, "0.5561497"),
    (0.9, 2.0, "0.04274227"),
    (0.5, 20.0, "0.00124844"),
])
def test_channel_mi_notes_table(q, sigma, printed):
    decimals = len(printed.split(".")[1])
    assert round(channel_mi(q=q, sigma=sigma), decimals) == float(printed)


@pytest.mark.parametrize("q, expected", [(0.5, math.log(2.0)), (0.0, 0.0), (1.0, 0.0), (0.25, 0.5623351446188083)])
def test_binary_entropy(q, expected):
    assert binary_entropy(q) == pytest.approx(expected, rel=1e-15, abs=0.0)


def test_binary_entropy_symmetric_and_accurate_near_the_ends():
    q = 1e-6
    explicit = -q * math.log(q) - (1 - q) * math.log1p(-q)
    assert binary_entropy(q) == pytest.approx(explicit, rel=1e-14, abs=0.0)
    assert binary_entropy(1 - q) == pytest.approx(explicit, rel=1e-9, abs=0.0)  # 1 − (1 − q) ≠ q in floats


@pytest.mark.parametrize("q", [-0.1, 1.5, math.nan])
def test_binary_entropy_rejects_non_probabilities(q):
    with pytest.raises(ValueError, match=re.escape(repr(q))):
        binary_entropy(q)


@pytest.mark.parametrize("q", [0.0, 1.0])
@pytest.mark.parametrize("sigma", [0.0, 0.3, 5.0, math.inf])
def test_channel_mi_deterministic_bit_is_free(q, sigma):
    assert channel_mi(q=q, sigma=sigma) == 0.0


@pytest.mark.parametrize("q", [1e-6, 0.2, 0.5, 0.97])
def test_channel_mi_limits_in_sigma(q):
    assert channel_mi(q=q, sigma=0.0) == binary_entropy(q)
    assert channel_mi(q=q, sigma=0.02) == pytest.approx(binary_entropy(q), rel=1e-12, abs=0.0)
    assert channel_mi(q=q, sigma=0.05) == pytest.approx(binary_entropy(q), rel=1e-12, abs=0.0)
    assert channel_mi(q=q, sigma=math.inf) == 0.0
    assert 0.0 < channel_mi(q=q, sigma=1e8) < 1e-16


@pytest.mark.parametrize("q", [1e-6, 0.1, 0.5, 0.9])
@pytest.mark.parametrize("sigma", [30.0, 1e3, 1e5])
def test_small_beta_approximation(q, sigma):
    """I_q(σ) ≈ 2q(1−q)/σ² for large σ, from below (paczero-notes §4)."""
    approx = 2.0 * q * (1.0 - q) / sigma**2
    assert channel_mi(q=q, sigma=sigma) == pytest.approx(approx, rel=1.0 / sigma**2, abs=0.0)
    assert channel_mi(q=q, sigma=sigma) < approx


@pytest.mark.parametrize("q", [1e-3, 0.1, 0.5, 0.9])
@pytest.mark.parametrize("sigma", [30.0, 100.0, 300.0])
def test_second_order_term(q, sigma):
    """With v = Var S = 4q(1−q) and γ = 1/σ², mmse(γ) = v − v²γ + O(γ²), so I = vγ/2 · (1 − vγ/2 + O(γ²))."""
    half_v_gamma = 2.0 * q * (1.0 - q) / sigma**2
    deficit = 1.0 - channel_mi(q=q, sigma=sigma) / half_v_gamma
    assert deficit == pytest.approx(half_v_gamma, rel=0.01, abs=0.0)


@settings(max_examples=200, deadline=None)
@given(q=st.floats(1e-6, 1.0 - 1e-6), log_sigma=st.floats(math.log(0.05), math.log(1e6)))
def test_channel_mi_below_the_immse_bound(q, log_sigma):
    """I = ½∫mmse(γ)dγ ≤ ½·Var(S)/σ² = 2q(1−q)/σ², and I ≤ H_b(q) (up to rounding: the gap is ~1/σ² relative)."""
    sigma = math.exp(log_sigma)
    mi = channel_mi(q=q, sigma=sigma)
    assert 0.0 < mi <= min(2.0 * q * (1.0 - q) / sigma**2, binary_entropy(q)) * (1.0 + 1e-14)


@pytest.mark.parametrize("q", [1e-6, 0.01, 0.5, 0.8, 1.0 - 1e-6])
def test_channel_mi_decreasing_in_sigma(q):
    sigmas = np.geomspace(0.01, 1e7, 600)
    values = np.array([channel_mi(q=q, sigma=float(s)) for s in sigmas])
    steps = np.diff(values)
    assert np.all(steps <= 0.0)
    saturated = values[1:] >= binary_entropy(q) * (1 - 1e-15)  # I = H_b(q) to double precision for small σ
    assert np.all(steps[~saturated] < 0.0)


@pytest.mark.parametrize("kwargs, bad", [
    ({"q": -0.01, "sigma": 1.0}, "-0.01"),
    ({"q": 1.01, "sigma": 1.0}, "1.01"),
    ({"q": 0.5, "sigma": -1.0}, "-1.0"),
    ({"q": 0.5, "sigma": math.nan}, "nan"),
])
def test_channel_mi_rejects_bad_input(kwargs, bad):
    with pytest.raises(ValueError, match=re.escape(bad)):
        channel_mi(**kwargs)


# ----------------------------------------------------------------------------------------------- sigma_for_mi
@pytest.mark.parametrize("q, beta, printed", [
    (0.5, 3.3e-4, "38.918"),
    (0.5, 6.8e-4, "27.107"),
    (0.9, 3.3e-4, "23.351"),
    (0.99, 3.3e-4, "7.745"),
    (0.5, 5e-8, "3162.28"),
])
def test_sigma_for_mi_notes_table(q, beta, printed):
    """Within one unit of the last printed digit (the exact root for the first row is 38.91852...)."""
    decimals = len(printed.split(".")[1])
    assert sigma_for_mi(q=q, beta=beta) == pytest.approx(float(printed), abs=10.0**-decimals)


@st.composite
def _q_and_beta(draw):
    q = draw(st.one_of(st.floats(1e-6, 1.0 - 1e-6),
                       st.floats(-6.0, -0.3).map(lambda e: 10.0**e),
                       st.floats(-6.0, -0.3).map(lambda e: 1.0 - 10.0**e)))
    top = math.log10(0.999 * binary_entropy(q))
    beta = 10.0 ** draw(st.floats(-9.0, top))
    return q, min(beta, 0.999 * binary_entropy(q))


@settings(max_examples=200, deadline=None)
@given(_q_and_beta())
@example((1e-6, 0.999 * binary_entropy(1e-6)))
@example((1.0 - 1e-6, 0.999 * binary_entropy(1.0 - 1e-6)))
@example((1e-6, 1e-9))
@example((0.5, 1e-9))
@example((0.5, 0.999 * math.log(2.0)))
def test_sigma_for_mi_lands_in_the_conservative_band(q_beta):
    q, beta = q_beta
    mi = channel_mi(q=q, sigma=sigma_for_mi(q=q, beta=beta))
    assert beta * (1.0 - 1e-6) <= mi <= beta


@pytest.mark.parametrize("rtol", [1e-9, 1e-3, 0.1])
def test_sigma_for_mi_honours_rtol(rtol):
    mi = channel_mi(q=0.3, sigma=sigma_for_mi(q=0.3, beta=2e-3, rtol=rtol))
    assert 2e-3 * (1.0 - rtol) <= mi <= 2e-3


def _official_sigma(q: float, beta: float) -> float:
    """The official solver (paczero-notes §4): bisection on ln σ ∈ [ln 1e-4, ln 1e4], stop at |I − β| < 1e-6."""
    lo, hi = math.log(1e-4), math.log(1e4)
    for _ in range(64):
        mid = 0.5 * (lo + hi)
        mi = channel_mi(q=q, sigma=math.exp(mid))
        if abs(mi - beta) < 1e-6:
            break
        lo, hi = (mid, hi) if mi > beta else (lo, mid)
    return math.exp(0.5 * (lo + hi))


def test_absolute_tolerance_defect_is_gone():
    """B = 1e-4 over T = 2000 steps: β = 5e-8. The official solver overspends ~10×; ours never exceeds β."""
    beta = 5e-8
    assert channel_mi(q=0.5, sigma=_official_sigma(0.5, beta)) > 5 * beta
    assert beta * (1 - 1e-6) <= channel_mi(q=0.5, sigma=sigma_for_mi(q=0.5, beta=beta)) <= beta


@pytest.mark.parametrize("kwargs, bad", [
    ({"q": 0.5, "beta": 0.0}, "beta=0.0"),
    ({"q": 0.5, "beta": -1e-3}, "beta=-0.001"),
    ({"q": 0.5, "beta": math.log(2.0)}, "beta=0.6931471805599453"),
    ({"q": 0.1, "beta": 0.5}, "beta=0.5"),
    ({"q": 0.5, "beta": math.nan}, "beta=nan"),
    ({"q": 0.0, "beta": 1e-3}, "q=0.0"),
    ({"q": 1.0, "beta": 1e-3}, "q=1.0"),
    ({"q": 1.2, "beta": 1e-3}, "q=1.2"),
    ({"q": 0.5, "beta": 1e-3, "rtol": 0.0}, "rtol=0.0"),
    ({"q": 0.5, "beta": 1e-3, "rtol": 0.5}, "rtol=0.5"),
])
def test_sigma_for_mi_rejects_bad_input(kwargs, bad):
    with pytest.raises(ValueError, match=re.escape(bad)):
        sigma_for_mi(**kwargs)


def test_sigma_for_mi_error_names_the_valid_range():
    with pytest.raises(ValueError, match=r"q=0\.1.*H_b\(q\) = 0\.325"):
        sigma_for_mi(q=0.1, beta=0.5)
