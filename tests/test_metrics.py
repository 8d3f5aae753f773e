"""SQuAD F1 and exact match, and the per-class report of a classification, against hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest

from paczero.metrics import classification_report, exact_match, f1_score, normalize_answer


@pytest.mark.parametrize("text, normalized", [
    ("The Denver Broncos", "denver broncos"),
    ("  an  apple,\n a pear! ", "apple pear"),
    ("U.S. $5 bill", "us 5 bill"),
    ("theatre anthem", "theatre anthem"),  # articles only as whole words
    ("The", ""),
])
def test_normalization(text, normalized):
    assert normalize_answer(text) == normalized


@pytest.mark.parametrize("prediction, answers, f1, em", [
    ("the Denver Broncos", ["Denver Broncos"], 1.0, 1.0),            # article dropped
    ("Denver Broncos.", ["denver broncos"], 1.0, 1.0),              # punctuation and case
    ("Broncos!", ["Denver Broncos"], 2 / 3, 0.0),                   # P = 1, R = 1/2
    ("Denver Broncos won", ["Denver Broncos"], 0.8, 0.0),           # P = 2/3, R = 1
    ("x x y", ["x y y"], 2 / 3, 0.0),                               # multiset overlap: one x, one y
    ("Carolina", ["Denver Broncos", "Carolina Panthers"], 2 / 3, 0.0),  # max over gold answers
    ("Carolina Panthers", ["Denver Broncos", "the Carolina Panthers"], 1.0, 1.0),
    ("", ["Denver Broncos"], 0.0, 0.0),                             # empty prediction
    ("a the", ["Denver"], 0.0, 0.0),                                # normalises to nothing
    ("Santa Clara", ["Levi's Stadium", "Santa Clara, California"], 0.8, 0.0),  # P = 1, R = 2/3
])
def test_f1_and_exact_match(prediction, answers, f1, em):
    assert f1_score(prediction, answers) == pytest.approx(f1, abs=1e-12)
    assert exact_match(prediction, answers) == em


def test_empty_against_empty_follows_the_v1_script():
    # No token in common gives F1 0 even when both sides are empty; the strings are equal, so EM is 1.
    assert f1_score("the", ["an"]) == 0.0
    assert exact_match("the", ["an"]) == 1.0


def test_classification_report_against_a_hand_computed_confusion_matrix():
    """Labels and predictions of 9 records over 4 classes, one of them ("unused") never true nor predicted.

    Confusion matrix (rows true, columns predicted), counted by hand:
        a: [2, 1, 0, 0]    b: [0, 1, 1, 0]    c: [1, 0, 3, 0]    unused: [0, 0, 0, 0]
    precision = column diagonal / column sum: a 2/3, b 1/2, c 3/4; recall = diagonal / row sum: a 2/3, b 1/2, c 3/4.
    F1 = 2PR/(P+R): a 2/3, b 1/2, c 3/4; macro-F1 over the three classes that occur = (2/3 + 1/2 + 3/4)/3 = 23/36.
    """
    labels = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2])
    predictions = np.array([0, 1, 0, 1, 2, 2, 2, 0, 2])
    report = classification_report(labels, predictions, ["a", "b", "c", "unused"])
    assert report["confusion_matrix"]["counts"] == [[2, 1, 0, 0], [0, 1, 1, 0], [1, 0, 3, 0], [0, 0, 0, 0]]
    expected = {"a": (2 / 3, 2 / 3, 2 / 3, 3), "b": (1 / 2, 1 / 2, 1 / 2, 2), "c": (3 / 4, 3 / 4, 3 / 4, 4),
                "unused": (0.0, 0.0, 0.0, 0)}
    for name, (p, r, f1, support) in expected.items():
        got = report["per_class"][name]
        assert (got["precision"], got["recall"], got["f1"], got["support"]) == pytest.approx((p, r, f1, support))
    assert report["macro_f1"] == pytest.approx(23 / 36)


def test_a_class_never_predicted_has_precision_zero_and_counts_in_macro_f1():
    """True labels 0,0,1,1, always predicted 0: class 0 P = 1/2, R = 1, F1 = 2/3; class 1 P = 0, R = 0, F1 = 0;
    macro-F1 = 1/3."""
    report = classification_report(np.array([0, 0, 1, 1]), np.array([0, 0, 0, 0]), ["no", "yes"])
    assert report["per_class"]["yes"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 2}
    assert report["per_class"]["no"]["f1"] == pytest.approx(2 / 3) and report["macro_f1"] == pytest.approx(1 / 3)

