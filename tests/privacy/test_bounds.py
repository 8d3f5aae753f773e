"""MI → MIA posterior → matched DP ε (paczero-notes §6.2–6.3), against the notes' tables and direct float64 KL."""

from __future__ import annotations

import math
import re

import numpy as np

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from scipy.stats import entropy

from paczero.privacy.bounds import dp_epsilon_for_mi, dp_posterior_bound, mi_for_dp_epsilon, mia_posterior_bound

LN2 = math.log(2.0)


def _kl_to_fair_coin(p: float) -> float:
    """KL(Bern(p) ‖ Bern(1/2)) by scipy.stats.entropy (loses ~1/(p − 1/2)² ulps near p = 1/2)."""
    return float(entropy([p, 1.0 - p], [0.5, 0.5]))


def _close_at_printed_precision(value: float, printed: str) -> bool:
    return round(value, len(printed.split(".")[1])) == float(printed)


@pytest.mark.parametrize("epsilon, posterior, mi", [
    (0.05, "0.5125", "0.00031"),
    (0.1, "0.5250", "0.00125"),
    (0.2, "0.5498", "0.00498"),
    (0.3, "0.5744", "0.0111"),
    (0.5, "0.6225", "0.0303"),
    (1.0, "0.7311", "0.1109"),
    (2.0, "0.8808", "0.3278"),
    (3.0, "0.9526", "0.5023"),
    (6.0, "0.9975", "0.6758"),
])
def test_matched_mi_table(epsilon, posterior, mi):
    assert _close_at_printed_precision(dp_posterior_bound(epsilon), posterior)
    assert _close_at_printed_precision(mi_for_dp_epsilon(epsilon), mi)
    matched = mia_posterior_bound(mi_for_dp_epsilon(epsilon))
    assert matched == pytest.approx(dp_posterior_bound(epsilon), rel=1e-14, abs=0.0)


def test_pac_composition_example():
    """2601.14033: 10⁶ queries at 2⁻³² bits each → I = 2.33e-4 nats → MIA success ≤ 51.08%; both bounds give 0.51079."""
    assert _close_at_printed_precision(mia_posterior_bound(2.33e-4), "0.51079")
    assert _close_at_printed_precision(0.5 + math.sqrt(2.33e-4 / 2.0), "0.51079")
    assert _close_at_printed_precision(dp_epsilon_for_mi(2.33e-4), "0.043")


@pytest.mark.parametrize("mi, epsilon", [(1e-4, "0.028"), (1e-3, "0.090"), (1e-2, "0.284"), (0.07, "0.776"),
                                         (0.20, "1.42")])
def test_inverse_direction_table(mi, epsilon):
    """Within one unit of the last printed digit: 1e-3 nats gives ε = 0.08949, printed 0.090 in the notes."""
    decimals = len(epsilon.split(".")[1])
    assert dp_epsilon_for_mi(mi) == pytest.approx(float(epsilon), abs=10.0**-decimals)


def test_high_privacy_regime_boundary():
    """paczero-notes §6.3: ε < 1 corresponds to I < 0.111 nats."""
    assert _close_at_printed_precision(mi_for_dp_epsilon(1.0), "0.111")


@settings(max_examples=200, deadline=None)
@given(log_mi=st.floats(math.log(1e-8), math.log(0.69)))
@example(log_mi=math.log(1e-8))
@example(log_mi=math.log(0.69))
def test_posterior_bound_inverts_the_kl(log_mi):
    mi = math.exp(log_mi)
    p = mia_posterior_bound(mi)
    assert 0.5 < p < 1.0
    assert _kl_to_fair_coin(p) == pytest.approx(mi, rel=1e-9, abs=0.0)


@settings(max_examples=200, deadline=None)
@given(log_mi=st.floats(math.log(1e-300), math.log(LN2 * (1 - 1e-12))))
def test_round_trips(log_mi):
    mi = math.exp(log_mi)
    epsilon = dp_epsilon_for_mi(mi)
    assert mi_for_dp_epsilon(epsilon) == pytest.approx(mi, rel=1e-12, abs=0.0)
    assert mia_posterior_bound(mi) == dp_posterior_bound(epsilon)


@settings(max_examples=200, deadline=None)
@given(epsilon=st.floats(0.0, 60.0))
def test_mi_for_dp_epsilon_is_the_kl_of_the_dp_posterior(epsilon):
    p = math.exp(epsilon) / (1.0 + math.exp(epsilon))
    explicit = LN2 + p * math.log(p) + (1.0 - p) * math.log1p(-p) if p < 1.0 else LN2
    assert mi_for_dp_epsilon(epsilon) == pytest.approx(explicit, rel=1e-9, abs=1e-15)


@settings(max_examples=200, deadline=None)
@given(mi=st.floats(0.0, 1.0), other=st.floats(0.0, 1.0))
def test_exact_bound_is_monotone_and_tighter_than_pinsker(mi, other):
    p = mia_posterior_bound(mi)
    assert 0.5 <= p <= min(1.0, 0.5 + math.sqrt(mi / 2.0)) + math.ulp(0.5)  # expit rounds to within one ulp
    if other >= mi:
        assert mia_posterior_bound(other) >= p


def test_pinsker_is_vacuous_where_the_exact_bound_is_not():
    """The 0.68-nat cells (ε = 6): Pinsker's bound exceeds 1, the exact inversion gives 0.9975 (paczero-notes §6.2)."""
    assert 0.5 + math.sqrt(0.6758 / 2.0) > 1.0
    assert _close_at_printed_precision(mia_posterior_bound(0.6758), "0.9975")


@pytest.mark.parametrize("mi", [LN2, 0.7, 10.0, math.inf])
def test_at_or_above_ln2_nothing_is_private(mi):
    assert mia_posterior_bound(mi) == 1.0
    assert dp_epsilon_for_mi(mi) == math.inf


def test_zero_information_is_the_prior():
    assert mia_posterior_bound(0.0) == 0.5
    assert dp_epsilon_for_mi(0.0) == 0.0
    assert mi_for_dp_epsilon(0.0) == 0.0
    assert dp_posterior_bound(0.0) == 0.5


def test_tiny_mi_keeps_relative_precision():
    """D(z) = z²/2 + O(z⁴): for I = 1e-30 the equivalent ε is 2√(2I) to the last digit."""
    assert dp_epsilon_for_mi(1e-30) == pytest.approx(2.0 * math.sqrt(2e-30), rel=1e-15, abs=0.0)
    assert mi_for_dp_epsilon(1e-10) == pytest.approx(1e-20 / 8.0, rel=1e-15, abs=0.0)


@pytest.mark.parametrize("mi", [5e-324, 1e-310])
def test_subnormal_mi(mi):
    assert dp_epsilon_for_mi(mi) == pytest.approx(2.0 * math.sqrt(2.0 * mi), rel=1e-15, abs=0.0)
    assert mia_posterior_bound(mi) == 0.5


def test_large_epsilon_is_stable():
    assert dp_posterior_bound(1000.0) == 1.0
    assert dp_posterior_bound(math.inf) == 1.0
    assert mi_for_dp_epsilon(1000.0) == LN2
    assert mi_for_dp_epsilon(math.inf) == LN2


@pytest.mark.parametrize("func", [mia_posterior_bound, dp_epsilon_for_mi])
@pytest.mark.parametrize("bad", [-1e-9, -1.0, math.nan])
def test_negative_or_nan_mi_is_rejected(func, bad):
    with pytest.raises(ValueError, match=re.escape(f"mi={bad!r}")):
        func(bad)


@pytest.mark.parametrize("func", [dp_posterior_bound, mi_for_dp_epsilon])
@pytest.mark.parametrize("bad", [-0.5, math.nan])
def test_negative_or_nan_epsilon_is_rejected(func, bad):
    with pytest.raises(ValueError, match=re.escape(f"epsilon={bad!r}")):
        func(bad)


@settings(max_examples=40, deadline=None)
@given(epsilon=st.floats(0.0, 8.0), delta=st.floats(0.0, 0.2))
def test_dp_posterior_bound_with_delta_is_the_best_test_under_the_dp_constraints(epsilon, delta):
    """Oracle: maximise (TPR + 1 − FPR)/2 on a fine FPR grid subject to the two (ε, δ)-DP test constraints."""
    fpr = np.linspace(0.0, 1.0, 200_001)
    e = math.exp(epsilon)
    tpr = np.minimum.reduce([np.ones_like(fpr), e * fpr + delta, 1.0 - (1.0 - fpr - delta) / e])
    feasible = tpr >= 0
    best = np.max((tpr[feasible] + 1.0 - fpr[feasible]) / 2.0)
    assert dp_posterior_bound(epsilon, delta) == pytest.approx(best, abs=2e-5)
    assert dp_posterior_bound(epsilon, delta) >= dp_posterior_bound(epsilon)


def test_dp_posterior_bound_rejects_bad_delta():
    with pytest.raises(ValueError, match="delta"):
        dp_posterior_bound(1.0, 1.0)


def _binary_entropy(p: float) -> float:
    return 0.0 if p in (0.0, 1.0) else -p * math.log(p) - (1 - p) * math.log(1 - p)


def test_the_vacuous_limits_sit_at_an_mia_bound_of_0999():
    """The MI budget and the DP ε whose MIA bound is exactly VACUOUS_BOUND, against the direct formulas."""
    from paczero.privacy.bounds import VACUOUS_BOUND, vacuous_dp_epsilon, vacuous_mi_budget

    assert VACUOUS_BOUND == 0.999
    assert vacuous_mi_budget() == pytest.approx(LN2 - _binary_entropy(0.999), rel=1e-12)
    for delta in (0.0, 1e-5, 0.5):
        eps = vacuous_dp_epsilon(delta)
        assert (math.exp(eps) + delta) / (1 + math.exp(eps)) == pytest.approx(0.999, rel=1e-12)
    assert vacuous_dp_epsilon(0.9995) == 0.0  # δ alone promises nothing
    assert mia_posterior_bound(0.68) < 0.999 < mia_posterior_bound(0.686)  # the paper's 0.68 nats stays allowed
