"""examples/unanimity.py: its unanimity against a plain loop, and the script end to end on the tiny model."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import TINY_CONFIG
from paczero.subsets import membership_matrix

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "examples" / "unanimity.py"


def _unanimity():
    spec = importlib.util.spec_from_file_location("unanimity_example", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.unanimity


def _loop(estimates: np.ndarray, *, m: int, draws: int) -> float:
    agree = 0
    for draw in range(draws):
        a = membership_matrix(n=estimates.shape[0], m=m, seed=draw)
        for d in range(estimates.shape[1]):
            signs = set()
            for j in range(m):
                members = [estimates[i, d] for i in range(a.shape[0]) if a[i, j]]
                signs.add(sum(members) / max(len(members), 1) >= 0)
            agree += len(signs) == 1
    return agree / (draws * estimates.shape[1])


def test_unanimity_matches_a_plain_loop():
    unanimity = _unanimity()
    rng = np.random.default_rng(0)
    estimates = rng.normal(0.3, 1.0, size=(24, 7))
    for m in (2, 4, 8):
        assert unanimity(estimates, m=m, draws=6) == pytest.approx(_loop(estimates, m=m, draws=6), abs=1e-12)
    assert unanimity(np.abs(estimates), m=8, draws=3) == 1.0
    assert 0.0 < unanimity(estimates, m=8, draws=6) < 1.0


@pytest.mark.slow
def test_the_script_prints_a_table(data_dir):
    env = {**os.environ, "PACZERO_DATA_DIR": str(data_dir), "PYTHONPATH": str(ROOT / "src")}
    result = subprocess.run([sys.executable, str(SCRIPT), "--config", str(TINY_CONFIG), "--pool", "16,32",
                             "--subsets", "2,8", "--directions", "2", "--draws", "3", "--clips", "1e-9,25"],
                            capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [line for line in result.stdout.splitlines() if line.startswith("| 16 ") or line.startswith("| 32 ")]
    assert len(rows) == 4 and all(len(r.split("|")) == 5 for r in rows)  # one table per clip
    assert "clip c = 1e-09" in result.stdout and "clip c = 25" in result.stdout
