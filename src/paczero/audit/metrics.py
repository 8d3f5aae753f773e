"""Pure metrics of a membership-inference attack: ROC, AUC, TPR at low FPR, balanced accuracy, intervals.

Scores are "higher means member"; labels are 1 for members and 0 for non-members. Conventions follow
ML Privacy Meter (``audit.py::compute_attack_results``: ROC, AUC, TPR at 1 % and 0.1 % FPR) and the
LiRA evaluation (Carlini et al. 2022, "Membership Inference Attacks From First Principles", §IV: report
TPR at low FPR, not only AUC).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.stats import beta, mannwhitneyu, norm, rankdata


def _split(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels)
    if scores.shape != labels.shape or scores.ndim != 1:
        raise ValueError(f"scores {scores.shape} and labels {labels.shape} must be 1-D of one length")
    if not np.all(np.isfinite(scores)):
        raise ValueError("scores must be finite")
    if not np.isin(labels, (0, 1)).all():
        raise ValueError(f"labels contain {np.unique(labels[~np.isin(labels, (0, 1))])}; expected 0 or 1")
    pos, neg = scores[labels == 1], scores[labels == 0]
    if pos.size == 0 or neg.size == 0:
        raise ValueError(f"need members and non-members; got {pos.size} and {neg.size}")
    return pos, neg


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """AUC = P(score⁺ > score⁻) + ½·P(score⁺ = score⁻), by the Mann–Whitney statistic with mid-ranks:

    AUC = (R₊ − n₊(n₊+1)/2) / (n₊·n₋), R₊ the sum of the members' ranks among all scores.
    """
    pos, neg = _split(scores, labels)
    ranks = rankdata(np.concatenate([pos, neg]))
    return float((ranks[: pos.size].sum() - pos.size * (pos.size + 1) / 2) / (pos.size * neg.size))


def roc_curve(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(FPR, TPR, thresholds) of the rule "member iff score ≥ t" at every distinct score t, descending.

    The first point is (0, 0) with threshold +inf; every distinct score adds one point (none dropped).
    """
    pos, neg = _split(scores, labels)
    s = np.concatenate([pos, neg])
    y = np.concatenate([np.ones(pos.size), np.zeros(neg.size)])
    order = np.argsort(-s, kind="stable")
    s, y = s[order], y[order]
    last = np.r_[np.flatnonzero(np.diff(s)), s.size - 1]  # last index of each run of equal scores
    tp, fp = np.cumsum(y)[last], np.cumsum(1 - y)[last]
    return np.r_[0.0, fp / neg.size], np.r_[0.0, tp / pos.size], np.r_[np.inf, s[last]]


def tpr_at_fpr(scores: np.ndarray, labels: np.ndarray, *, fpr: float) -> float:
    """The highest TPR over thresholds whose FPR is at most ``fpr`` (0 if even the strictest exceeds it)."""
    if not 0.0 <= fpr <= 1.0:
        raise ValueError(f"fpr={fpr!r} is invalid; expected a rate in [0, 1]")
    f, t, _ = roc_curve(scores, labels)
    return float(t[f <= fpr].max())


def proportion_interval(successes: float, n: int, *, confidence: float = 0.95) -> tuple[float, float]:
    """Clopper–Pearson interval for a binomial proportion: [B(α/2; k, n−k+1), B(1−α/2; k+1, n−k)].

    ``successes`` may be fractional (a tie counted as half a success); the beta quantiles are defined for real
    parameters and reduce to the exact interval for integers.
    """
    if n < 1 or not 0.0 <= successes <= n:
        raise ValueError(f"successes={successes!r} out of n={n!r} is invalid")
    alpha = 1.0 - confidence
    low = 0.0 if successes == 0 else float(beta.ppf(alpha / 2, successes, n - successes + 1))
    high = 1.0 if successes == n else float(beta.ppf(1 - alpha / 2, successes + 1, n - successes))
    return low, high


@dataclass(frozen=True)
class BalancedAccuracy:
    """Balanced accuracy of a member/non-member decision with its Clopper–Pearson interval."""
    value: float
    """(TPR + TNR)/2 of the decisions."""
    interval: tuple[float, float]


def balanced_accuracy(predicted: np.ndarray, labels: np.ndarray, *, confidence: float = 0.95) -> BalancedAccuracy:
    """(TPR + TNR)/2 with a conservative interval: the mean of the Clopper–Pearson intervals of TPR and TNR,
    each at level 1 − α/2, covers with probability ≥ 1 − α (union bound over the two)."""
    predicted = np.asarray(predicted, dtype=bool)
    pos, neg = _split(predicted.astype(np.float64), labels)
    alpha = 1.0 - confidence
    tpr_ci = proportion_interval(float(pos.sum()), pos.size, confidence=1 - alpha / 2)
    tnr_ci = proportion_interval(float(neg.size - neg.sum()), neg.size, confidence=1 - alpha / 2)
    value = 0.5 * (pos.mean() + 1.0 - neg.mean())
    return BalancedAccuracy(float(value), (0.5 * (tpr_ci[0] + tnr_ci[0]), 0.5 * (tpr_ci[1] + tnr_ci[1])))


def auc_interval(scores: np.ndarray, labels: np.ndarray, *, confidence: float = 0.95) -> tuple[float, float]:
    """DeLong's interval for the AUC (DeLong, DeLong & Clarke-Pearson 1988), clipped to [0, 1].

    With placements V₊(i) = P̂(score⁻ < s_i) + ½P̂(=) for each member and V₋(j) = P̂(score⁺ > s_j) + ½P̂(=) for
    each non-member, Var(AUC) ≈ Var(V₊)/n₊ + Var(V₋)/n₋.
    """
    pos, neg = _split(scores, labels)
    auc = roc_auc(scores, labels)
    both = np.concatenate([pos, neg])
    ranks_all = rankdata(both)
    v_pos = (ranks_all[: pos.size] - rankdata(pos)) / neg.size
    v_neg = 1.0 - (ranks_all[pos.size:] - rankdata(neg)) / pos.size
    var = _sample_var(v_pos) / pos.size + _sample_var(v_neg) / neg.size
    half = float(norm.ppf(0.5 + confidence / 2)) * math.sqrt(var)
    return max(0.0, auc - half), min(1.0, auc + half)


def _sample_var(x: np.ndarray) -> float:
    return float(x.var(ddof=1)) if x.size > 1 else 0.0


def leak_p_value(scores: np.ndarray, labels: np.ndarray) -> float:
    """One-sided Mann–Whitney p-value of "members score higher" against scores independent of membership."""
    pos, neg = _split(scores, labels)
    return float(mannwhitneyu(pos, neg, alternative="greater").pvalue)


def candidate_p_value(scores: np.ndarray, membership: np.ndarray, *, j_star: int) -> float:
    """Rank of the secret subset's AUC among the M candidates': (#{j : AUC_j ≥ AUC_J*}) / M.

    The exact test of the PAC game: if the scores do not depend on J* (ZPL: the model is a function of public
    information), J* is uniform given them, so this p-value is uniform on {1/M, ..., 1}.
    """
    membership = np.asarray(membership, dtype=bool)
    aucs = np.array([roc_auc(scores, membership[:, j].astype(int)) for j in range(membership.shape[1])])
    return float((aucs >= aucs[j_star]).sum() / aucs.size)


def attack_summary(scores: np.ndarray, labels: np.ndarray, *, predicted: np.ndarray,
                   confidence: float = 0.95) -> dict[str, object]:
    """AUC with its DeLong interval and Mann–Whitney p-value, TPR at 1 % and 0.1 % FPR, balanced accuracy of
    ``predicted`` (the attack's own member/non-member decisions) with its interval."""
    bal = balanced_accuracy(predicted, labels, confidence=confidence)
    return {
        "auc": roc_auc(scores, labels),
        "auc_interval": list(auc_interval(scores, labels, confidence=confidence)),
        "leak_p_value": leak_p_value(scores, labels),
        "tpr_at_1pct_fpr": tpr_at_fpr(scores, labels, fpr=0.01),
        "tpr_at_0.1pct_fpr": tpr_at_fpr(scores, labels, fpr=0.001),
        "balanced_accuracy": bal.value,
        "balanced_accuracy_interval": list(bal.interval),
        "confidence": confidence,
    }
