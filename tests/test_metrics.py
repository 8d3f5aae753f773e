"""SQuAD F1 and exact match against hand-computed cases."""

from __future__ import annotations

import pytest

from paczero.metrics import exact_match, f1_score, normalize_answer


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
