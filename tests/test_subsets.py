"""Membership matrix, per-subset means and signs, clipping (paczero-notes §3.1, §3.5, §3.6)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from paczero.errors import PaczeroError
from paczero.subsets import (
    clip_estimates,
    format_signs,
    membership_matrix,
    parse_signs,
    subset_means,
    subset_signs,
)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 300), half=st.integers(1, 70), seed=st.integers(0, 2**31))
def test_every_record_is_in_exactly_half_the_subsets(n, half, seed):
    a = membership_matrix(n=n, m=2 * half, seed=seed)
    assert a.shape == (n, 2 * half) and a.dtype == bool
    assert (a.sum(axis=1) == half).all()


def test_membership_is_uniform_and_seeded():
    a = membership_matrix(n=4000, m=8, seed=1)
    assert np.array_equal(a, membership_matrix(n=4000, m=8, seed=1))
    assert not np.array_equal(a, membership_matrix(n=4000, m=8, seed=2))
    # each of the C(8,4)=70 patterns is equally likely: every subset holds each record w.p. 1/2
    np.testing.assert_allclose(a.mean(axis=0), 0.5, atol=0.03)
    patterns = np.unique(np.packbits(a, axis=1), axis=0)
    assert len(patterns) == 70


@pytest.mark.parametrize("m", [0, 3, 7])
def test_bad_subset_counts_are_refused(m):
    with pytest.raises(PaczeroError, match="n_subsets"):
        membership_matrix(n=10, m=m, seed=0)


def test_subset_means_match_a_loop():
    rng = np.random.default_rng(0)
    a = membership_matrix(n=50, m=6, seed=3)
    g = rng.normal(size=50)
    expected = [np.mean([g[i] for i in range(50) if a[i, j]]) for j in range(6)]
    np.testing.assert_allclose(subset_means(a, g), expected, rtol=1e-12)


def test_empty_subset_and_ties_give_plus_one():
    a = np.array([[True, False], [True, False]])
    means = subset_means(a, np.array([1.0, -1.0]))
    assert means.tolist() == [0.0, 0.0]
    assert subset_signs(means).tolist() == [1, 1]
    assert subset_signs(np.array([-1e-300, 0.0, 2.0])).tolist() == [-1, 1, 1]


def test_clip_bounds_and_nonfinite():
    g, bad = clip_estimates(np.array([-100.0, 3.0, np.nan, np.inf, 40.0]), 25.0)
    assert g.tolist() == [-25.0, 3.0, 0.0, 0.0, 25.0]
    assert bad == 2


@given(st.lists(st.sampled_from([-1, 1]), min_size=1, max_size=64))
def test_sign_strings_round_trip(values):
    signs = np.array(values, dtype=np.int8)
    text = format_signs(signs)
    assert len(text) == len(values) and set(text) <= {"+", "-"}
    assert np.array_equal(parse_signs(text), signs)


def test_parse_signs_rejects_other_characters():
    with pytest.raises(ValueError):
        parse_signs("+-0")
