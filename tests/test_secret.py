"""The secret state: OS entropy, 0600 file, hidden repr, keyed streams of uniform integers."""

from __future__ import annotations

import stat

import numpy as np
import pytest
from scipy import stats

from paczero.errors import PaczeroError
from paczero.secret import SecretState


def test_fresh_secrets_differ_and_are_in_range():
    draws = [SecretState.fresh(8) for _ in range(200)]
    assert len({d.key for d in draws}) == 200
    assert {d.j_star for d in draws} == set(range(8))


def test_file_is_private_and_round_trips(tmp_path):
    s = SecretState.fresh(126)
    s.save(tmp_path / "secret.json")
    assert stat.S_IMODE((tmp_path / "secret.json").stat().st_mode) == 0o600
    assert SecretState.load(tmp_path / "secret.json") == s


def test_an_unreadable_file_is_a_clear_error(tmp_path):
    (tmp_path / "secret.json").write_text("{not json")
    with pytest.raises(PaczeroError, match="unreadable"):
        SecretState.load(tmp_path / "secret.json")


def test_repr_hides_everything():
    s = SecretState(key=b"\x01" * 32, j_star=5)
    assert "5" not in repr(s) and "01" not in repr(s) and "5" not in str(s)


@pytest.mark.parametrize("n", [2, 7, 1000, 2**64 + 3])
def test_randbelow_is_uniform(n):
    s = SecretState(key=bytes(range(32)), j_star=0)
    stream = s.stream("test", n % 1000)
    draws = np.array([stream.randbelow(n) for _ in range(4000)], dtype=object)
    assert all(0 <= d < n for d in draws)
    cells = min(n, 10)  # equal-probability cells (up to n mod 10, negligible here)
    bins = np.array([int(d) * cells // n for d in draws])
    assert stats.chisquare(np.bincount(bins, minlength=cells)).pvalue > 1e-3


def test_streams_are_reproducible_and_independent():
    s = SecretState(key=bytes(range(32)), j_star=0)
    a = [s.stream("mi-flip", 3, 0).word64() for _ in range(3)]
    assert a == [s.stream("mi-flip", 3, 0).word64() for _ in range(3)]
    words = {s.stream(purpose, step, k).word64() for purpose in ("mi-flip", "poisson", "dp-noise")
             for step in range(30) for k in range(3)}
    assert len(words) == 3 * 30 * 3  # no two labels share a stream
    other = SecretState(key=bytes(range(1, 33)), j_star=0)
    assert other.stream("mi-flip", 3, 0).word64() != a[0]
    x = np.array([s.stream("u", t).word64() / 2**64 for t in range(3000)])
    assert stats.kstest(x, "uniform").pvalue > 1e-3
