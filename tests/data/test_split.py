"""The split: a test set held out of the train records by the public seed (``data.test_fraction``), and a dev set
that is the user's choice (drawn from train, a separate set, or none)."""

from __future__ import annotations

import math

import pytest

from paczero.data.tasks import hold_out, make_split
from paczero.errors import PaczeroError

RECORDS = [f"r{i}" for i in range(50)]


@pytest.mark.parametrize("fraction", [0.01, 0.2, 0.5, 0.97])
def test_a_held_out_test_set_is_a_seeded_ceiling_fraction_in_file_order(fraction):
    rest, held = hold_out(RECORDS, fraction, seed=0)
    assert len(held) == math.ceil(fraction * len(RECORDS)) and len(rest) + len(held) == len(RECORDS)
    assert set(rest).isdisjoint(held) and set(rest) | set(held) == set(RECORDS)
    assert rest == [r for r in RECORDS if r in set(rest)] and held == [r for r in RECORDS if r in set(held)]
    assert hold_out(RECORDS, fraction, seed=0) == (rest, held)


def test_other_seeds_hold_out_other_records():
    draws = {tuple(hold_out(RECORDS, 0.2, seed=s)[1]) for s in range(5)}
    assert len(draws) == 5


def test_nothing_left_for_the_pool_is_refused():
    with pytest.raises(PaczeroError, match=r"data\.test_fraction=0\.99 of 50 training records leaves none"):
        hold_out(RECORDS, 0.99, seed=0)


def test_the_pool_dev_and_test_sets_never_share_a_record():
    rest, held = hold_out(RECORDS, 0.3, seed=1)
    split = make_split(rest, held, n_pool=20, n_dev=10, n_test=None, seed=1)
    assert len(split.pool) == 20 and len(split.dev) == 10 and split.test == held
    assert not (set(split.pool) & set(split.dev)) and not ((set(split.pool) | set(split.dev)) & set(split.test))


def test_without_a_dev_set_the_pool_is_the_same_draw():
    with_dev = make_split(RECORDS, ["t"], n_pool=20, n_dev=10, n_test=None, seed=2)
    without = make_split(RECORDS, ["t"], n_pool=20, n_dev=10, n_test=None, seed=2, dev_source="none")
    assert without.pool == with_dev.pool and without.dev == []
    assert make_split(RECORDS, ["t"], n_pool=50, n_dev=10, n_test=None, seed=2, dev_source="none").dev == []
    with pytest.raises(PaczeroError, match="data.n_pool=51 exceeds the 50 training records"):
        make_split(RECORDS, ["t"], n_pool=51, n_dev=1, n_test=None, seed=2, dev_source="none")
