"""Evaluation metrics: SQuAD's token F1 and exact match (paczero-notes §7, our own code), and the per-class report of a
classification (scikit-learn's).

Both compare normalised strings — lower-cased, punctuation removed, the articles a/an/the removed,
whitespace collapsed (the order of the official SQuAD v1.1 evaluation script) — and take the maximum
over the gold answers. Token F1 is the harmonic mean of precision and recall of the multiset of
tokens in common; with no token in common it is 0, also when both sides normalise to nothing (as in
the v1.1 script; exact match then gives 1).
"""

from __future__ import annotations

import re
import string
from collections import Counter
from typing import Any, Sequence

import numpy as np

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = str.maketrans("", "", string.punctuation)


def normalize_answer(text: str) -> str:
    """Lower-case, strip punctuation, drop articles, collapse whitespace."""
    text = text.lower().translate(_PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def _f1(prediction: list[str], gold: list[str]) -> float:
    same = sum((Counter(prediction) & Counter(gold)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(prediction), same / len(gold)
    return 2 * precision * recall / (precision + recall)


def f1_score(prediction: str, answers: Sequence[str]) -> float:
    """Token F1 of ``prediction`` against the best-matching gold answer."""
    tokens = normalize_answer(prediction).split()
    return max(_f1(tokens, normalize_answer(a).split()) for a in answers)


def exact_match(prediction: str, answers: Sequence[str]) -> float:
    """1.0 if ``prediction`` equals some gold answer after normalisation, else 0.0."""
    normalized = normalize_answer(prediction)
    return float(any(normalized == normalize_answer(a) for a in answers))


def scalar_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    """The single-number metrics of an evaluation (loss, accuracy, macro-F1, F1, EM), without per-class tables."""
    return {k: v for k, v in metrics.items() if isinstance(v, float)}


def classification_report(labels: np.ndarray, predictions: np.ndarray, names: Sequence[str]) -> dict[str, Any]:
    """Macro-F1, per-class precision/recall/F1/support and the confusion matrix of ``predictions`` (class indices
    into ``names``) against ``labels``. Macro-F1 averages over the classes that occur among the labels or the
    predictions; a class never predicted has precision 0, one absent from the labels recall 0."""
    from sklearn import metrics as sk

    classes = list(range(len(names)))
    precision, recall, f1, support = sk.precision_recall_fscore_support(labels, predictions, labels=classes,
                                                                        zero_division=0)
    return {
        "macro_f1": float(sk.f1_score(labels, predictions, average="macro", zero_division=0)),
        "per_class": {name: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
                             "support": int(support[i])} for i, name in enumerate(names)},
        "confusion_matrix": {"labels": list(names), "rows": "true label", "columns": "predicted label",
                             "counts": sk.confusion_matrix(labels, predictions, labels=classes).tolist()},
    }
