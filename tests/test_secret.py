"""The secret state: OS entropy, 0600 file, hidden repr, keyed Gaussian stream."""

from __future__ import annotations

import stat

import numpy as np
from scipy import stats

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


def test_repr_hides_everything():
    s = SecretState(key=b"\x01" * 32, j_star=5)
    assert "5" not in repr(s) and "01" not in repr(s) and "5" not in str(s)


def test_noise_stream_is_reproducible_standard_normal():
    s = SecretState(key=bytes(range(32)), j_star=0)
    x = np.array([s.gaussian(step=t, k=k) for t in range(2500) for k in range(2)])
    assert x.tolist() == [s.gaussian(step=t, k=k) for t in range(2500) for k in range(2)]
    assert stats.kstest(x, "norm").pvalue > 1e-3
    other = SecretState(key=bytes(range(1, 33)), j_star=0)
    y = np.array([other.gaussian(step=t, k=k) for t in range(2500) for k in range(2)])
    assert abs(np.corrcoef(x, y)[0, 1]) < 0.05
