"""The mechanism interface: the clipping helper against a float64 clip written here, and the defaults a mechanism
inherits (the whole pool is evaluated; no state)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from paczero.mechanisms.base import Mechanism
from paczero.releases import Coin


class Echo(Mechanism):
    """The smallest mechanism: releases the sign of each direction's first clipped estimate."""
    name = "echo"

    def __init__(self, clip: float = math.inf):
        self.clip = clip

    def release_step(self, estimates, *, step):
        return [Coin(value=1.0 if self.clipped(estimates, k)[0] >= 0 else -1.0) for k in range(estimates.shape[1])]


def _clip64(x: float, c: float) -> float:
    """The reference: a non-finite estimate carries nothing (0), else the value clipped to [−c, c], in float64."""
    if not math.isfinite(x):
        return 0.0
    return max(-c, min(c, float(x)))


ENTRIES = st.floats(allow_nan=True, allow_infinity=True, width=32)


@settings(max_examples=100, deadline=None)
@given(g=arrays(np.float32, st.tuples(st.integers(1, 12), st.integers(1, 4)), elements=ENTRIES),
       clip=st.floats(1e-3, 1e3) | st.just(math.inf), data=st.data())
def test_clipped_is_direction_k_clipped_in_float64(g, clip, data):
    k = data.draw(st.integers(0, g.shape[1] - 1))
    got = Echo(clip=clip).clipped(g, k)
    assert got.dtype == np.float64 and got.shape == (g.shape[0],)
    assert got.tolist() == [_clip64(float(x), clip) for x in g[:, k]]


def test_the_default_clip_keeps_every_finite_value_and_zeroes_the_rest():
    g = np.array([[1e30, -3.5], [np.nan, np.inf], [-np.inf, 2.0]])
    assert Echo().clipped(g, 0).tolist() == [1e30, 0.0, 0.0]
    assert Echo().clipped(g, 1).tolist() == [-3.5, 0.0, 2.0]


def test_the_defaults_evaluate_the_whole_pool_and_keep_no_state():
    m = Echo(clip=1.0)
    assert m.sample(step=0, n=10) is None
    assert m.state_dict() == {} and m.spent == 0.0
    assert [r.value for r in m.release_step(np.array([[-2.0, 3.0]]), step=0)] == [-1.0, 1.0]


def test_a_mechanism_must_say_how_it_releases():
    class Silent(Mechanism):
        name = "silent"

    with pytest.raises(TypeError, match="release_step"):
        Silent()
