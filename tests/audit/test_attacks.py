"""Model-based attack scores: signs and calibration, on hand-made loss vectors."""

from __future__ import annotations

import numpy as np

from paczero.audit.attacks import loss_scores, median_decision, reference_scores
from paczero.audit.metrics import roc_auc


def test_scores_rank_lower_final_loss_and_larger_drop_as_member():
    base = np.array([2.0, 0.5, 1.0, 3.0])
    final = np.array([1.0, 0.4, 1.2, 1.5])
    np.testing.assert_array_equal(loss_scores(final), [-1.0, -0.4, -1.2, -1.5])
    np.testing.assert_allclose(reference_scores(base_losses=base, final_losses=final), [1.0, 0.1, -0.2, 1.5])
    np.testing.assert_array_equal(median_decision(np.array([3.0, 1.0, 2.0, 0.0])), [True, False, True, False])


def test_calibration_removes_record_difficulty():
    """Members' losses drop by 0.3 while per-record difficulty varies by far more: only the
    reference-calibrated score separates them."""
    rng = np.random.default_rng(0)
    members = np.arange(200) % 2 == 1
    base = rng.exponential(2.0, size=200)
    final = base - 0.3 * members + rng.normal(0, 0.02, size=200)
    assert roc_auc(reference_scores(base_losses=base, final_losses=final), members.astype(int)) > 0.99
    assert abs(roc_auc(loss_scores(final), members.astype(int)) - 0.5) < 0.15
