"""Attack metrics against scikit-learn, scipy and brute force on fixed and random score vectors."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import binomtest, norm
from sklearn.metrics import balanced_accuracy_score, roc_auc_score
from sklearn.metrics import roc_curve as sk_roc_curve

from paczero.audit.metrics import (
    attack_summary,
    auc_interval,
    balanced_accuracy,
    candidate_p_value,
    proportion_interval,
    roc_auc,
    roc_curve,
    tpr_at_fpr,
)

FIXED_SCORES = np.array([0.9, 0.8, 0.8, 0.7, 0.6, 0.55, 0.5, 0.5, 0.4, 0.3, 0.2, 0.1])
FIXED_LABELS = np.array([1, 1, 0, 1, 0, 1, 1, 0, 0, 1, 0, 0])


def _scored(seed: int, n: int = 300, *, ties: bool) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = (rng.random(n) < 0.4).astype(int)
    labels[:2] = [0, 1]
    scores = rng.normal(size=n) + 0.7 * labels
    return (np.round(scores, 1) if ties else scores), labels


def _brute_tpr_at_fpr(scores, labels, fpr):
    """Every rule "member iff score ≥ t" for t in the scores and +inf, directly."""
    pos, neg = scores[labels == 1], scores[labels == 0]
    best = 0.0
    for t in np.r_[np.inf, scores]:
        if (neg >= t).mean() <= fpr:
            best = max(best, (pos >= t).mean())
    return best


@pytest.mark.parametrize("scores, labels", [(FIXED_SCORES, FIXED_LABELS), _scored(1, ties=True),
                                            _scored(2, ties=False)])
def test_auc_and_roc_match_sklearn(scores, labels):
    assert roc_auc(scores, labels) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    fpr, tpr, thresholds = roc_curve(scores, labels)
    sk_fpr, sk_tpr, sk_thr = sk_roc_curve(labels, scores, drop_intermediate=False)
    np.testing.assert_allclose(fpr, sk_fpr, atol=1e-12)
    np.testing.assert_allclose(tpr, sk_tpr, atol=1e-12)
    np.testing.assert_array_equal(thresholds[1:], sk_thr[1:])


@pytest.mark.parametrize("scores, labels", [(FIXED_SCORES, FIXED_LABELS), _scored(3, ties=True),
                                            _scored(4, ties=False)])
@pytest.mark.parametrize("fpr", [0.0, 0.001, 0.01, 0.1, 0.5])
def test_tpr_at_fpr_matches_sklearn_curve_and_brute_force(scores, labels, fpr):
    sk_fpr, sk_tpr, _ = sk_roc_curve(labels, scores, drop_intermediate=False)
    expected = sk_tpr[sk_fpr <= fpr].max()
    assert tpr_at_fpr(scores, labels, fpr=fpr) == pytest.approx(expected, abs=1e-12)
    assert tpr_at_fpr(scores, labels, fpr=fpr) == pytest.approx(_brute_tpr_at_fpr(scores, labels, fpr), abs=1e-12)


def test_fixed_vector_values_by_hand():
    # 6 members, 6 non-members. Pairs won by members: 0.9 beats 6, 0.8 beats 5.5 (ties the 0.8), 0.7 beats 5,
    # 0.55 beats 4, 0.5 beats 3.5 (ties the 0.5), 0.3 beats 2: 26/36.
    assert roc_auc(FIXED_SCORES, FIXED_LABELS) == pytest.approx(26 / 36, abs=1e-15)
    # At FPR 0 only the 0.9 threshold is allowed (the 0.8 tie brings a non-member): TPR 1/6.
    assert tpr_at_fpr(FIXED_SCORES, FIXED_LABELS, fpr=0.0) == pytest.approx(1 / 6)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 4), st.booleans()), min_size=2, max_size=40))
def test_auc_matches_sklearn_on_heavily_tied_scores(pairs):
    scores = np.array([s for s, _ in pairs], dtype=float)
    labels = np.array([int(b) for _, b in pairs])
    if labels.min() == labels.max():
        with pytest.raises(ValueError, match="members and non-members"):
            roc_auc(scores, labels)
        return
    assert roc_auc(scores, labels) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)


@pytest.mark.parametrize("k, n", [(0, 10), (3, 10), (10, 10), (17, 40), (250, 1000)])
@pytest.mark.parametrize("confidence", [0.9, 0.95])
def test_proportion_interval_is_clopper_pearson(k, n, confidence):
    expected = binomtest(k, n).proportion_ci(confidence_level=confidence, method="exact")
    assert proportion_interval(k, n, confidence=confidence) == pytest.approx((expected.low, expected.high),
                                                                              abs=1e-12)


def test_balanced_accuracy_matches_sklearn_and_its_interval_is_the_union_bound():
    rng = np.random.default_rng(5)
    labels = (rng.random(101) < 0.45).astype(int)
    predicted = rng.random(101) < 0.5 + 0.2 * labels
    result = balanced_accuracy(predicted, labels)
    assert result.value == pytest.approx(balanced_accuracy_score(labels, predicted), abs=1e-12)
    tp, n_pos = int((predicted & (labels == 1)).sum()), int(labels.sum())
    tn, n_neg = int((~predicted & (labels == 0)).sum()), int((labels == 0).sum())
    tpr = binomtest(tp, n_pos).proportion_ci(confidence_level=0.975, method="exact")
    tnr = binomtest(tn, n_neg).proportion_ci(confidence_level=0.975, method="exact")
    assert result.interval == pytest.approx(((tpr.low + tnr.low) / 2, (tpr.high + tnr.high) / 2), abs=1e-12)


def test_auc_interval_covers_the_true_auc_at_its_level():
    """Members ~ N(δ, 1), non-members ~ N(0, 1): true AUC = Φ(δ/√2). DeLong's 95 % interval should cover it
    in about 95 % of 400 independent data sets (binomial sd ≈ 1.1 %)."""
    delta, true_auc = 0.6, float(norm.cdf(0.6 / np.sqrt(2)))
    rng = np.random.default_rng(6)
    covered = 0
    for _ in range(400):
        labels = np.r_[np.ones(60, int), np.zeros(80, int)]
        scores = rng.normal(size=140) + delta * labels
        low, high = auc_interval(scores, labels)
        covered += low <= true_auc <= high
    assert 0.91 <= covered / 400 <= 0.985


def test_candidate_p_value_is_the_rank_among_candidate_subsets():
    rng = np.random.default_rng(7)
    membership = rng.random((50, 6)) < 0.5
    scores = rng.normal(size=50) + 2.0 * membership[:, 2]
    aucs = [roc_auc_score(membership[:, j], scores) for j in range(6)]
    for j in range(6):
        assert candidate_p_value(scores, membership, j_star=j) == pytest.approx(
            sum(a >= aucs[j] for a in aucs) / 6)
    assert candidate_p_value(scores, membership, j_star=2) == pytest.approx(1 / 6)


def test_attack_summary_keys_and_bad_input():
    scores, labels = _scored(8, ties=False)
    summary = attack_summary(scores, labels, predicted=scores > 0.3)
    assert summary["auc_interval"][0] <= summary["auc"] <= summary["auc_interval"][1]
    assert 0 <= summary["tpr_at_0.1pct_fpr"] <= summary["tpr_at_1pct_fpr"] <= 1
    assert summary["leak_p_value"] < 1e-3  # members are shifted up by 0.7 sd over 300 records
    with pytest.raises(ValueError, match="labels"):
        roc_auc(scores, labels + 1)
    with pytest.raises(ValueError, match="finite"):
        roc_auc(np.r_[np.nan, scores[1:]], labels)
