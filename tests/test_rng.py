"""Public randomness: a pure function of (seed, purpose, indices) — deterministic, distinct where it must be, and
the ZPL coin fair."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from paczero.rng import direction_seed, public_coin, public_generator, tensor_seed

SEEDS = st.integers(0, 2**32 - 1)
INDEX = st.integers(0, 10**6)


@settings(max_examples=50, deadline=None)
@given(seed=SEEDS, step=INDEX, k=st.integers(0, 63))
def test_a_direction_seed_is_a_deterministic_63_bit_number(seed, step, k):
    s = direction_seed(seed, step, k)
    assert s == direction_seed(seed, step, k)
    assert isinstance(s, int) and 0 <= s < 2**63


def test_direction_seeds_are_distinct_across_steps_directions_and_run_seeds():
    grid = [(seed, step, k) for seed in range(3) for step in range(200) for k in range(8)]
    seeds = {direction_seed(*key) for key in grid}
    assert len(seeds) == len(grid)


@settings(max_examples=50, deadline=None)
@given(direction=st.integers(0, 2**63 - 1))
def test_tensor_seeds_are_deterministic_and_distinct_across_tensors_and_pieces(direction):
    keys = [(i, piece) for i in range(20) for piece in range(4)]
    seeds = [tensor_seed(direction, i, piece) for i, piece in keys]
    assert seeds == [tensor_seed(direction, i, piece) for i, piece in keys]
    assert len(set(seeds)) == len(keys) and all(0 <= s < 2**63 for s in seeds)
    assert tensor_seed(direction, 3) == tensor_seed(direction, 3, 0)


def test_tensor_seeds_use_all_63_bits_of_the_direction():
    """Directions that differ only in their high word (bits 32..62) get other blocks."""
    low = 12345
    seeds = {tensor_seed(low + (high << 32), 0) for high in range(64)}
    assert len(seeds) == 64


def test_the_public_coin_is_a_fair_plus_or_minus_one():
    coins = np.array([public_coin(7, step, k) for step in range(1000) for k in range(4)])
    assert set(coins.tolist()) == {-1, 1}
    n = len(coins)
    heads = int((coins == 1).sum())
    assert abs(heads - n / 2) < 4 * math.sqrt(n / 4)  # a fair coin: within 4 standard deviations
    assert np.array_equal(coins, [public_coin(7, step, k) for step in range(1000) for k in range(4)])
    assert not np.array_equal(coins, [public_coin(8, step, k) for step in range(1000) for k in range(4)])


def test_consecutive_coins_are_uncorrelated():
    coins = np.array([public_coin(0, step, 0) for step in range(4000)], dtype=np.float64)
    lag1 = float(np.mean(coins[1:] * coins[:-1]))
    assert abs(lag1) < 4 / math.sqrt(len(coins) - 1)


def test_purposes_and_indices_give_independent_streams():
    """Each purpose draws with a fixed number of indices (numpy's seed sequence pads a shorter key with zeros)."""
    keys = [("split",), ("membership",), ("test",), ("zpl-coin", 0, 1), ("zpl-coin", 1, 0), ("zpl-coin", 1, 1),
            ("mezo-batches", 0), ("mezo-batches", 1)]
    draws = {key: tuple(public_generator(0, *key).integers(0, 2**62, size=4).tolist()) for key in keys}
    assert len(set(draws.values())) == len(keys)
    assert tuple(public_generator(0, "zpl-coin", 1, 0).integers(0, 2**62, size=4).tolist()) == draws[("zpl-coin", 1, 0)]
    assert tuple(public_generator(1, "split").integers(0, 2**62, size=4).tolist()) != draws[("split",)]
