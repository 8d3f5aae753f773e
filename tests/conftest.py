"""Shared fixtures: a tiny synthetic SST-2 folder and the tiny config pointed at it.

Tests build their own data (no download, no dependency on ../shared/data): sentences made of a few
sentiment words and fillers, so a tiny model has something learnable and the tokenizer is small.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from paczero.config import load_config

ROOT = Path(__file__).resolve().parents[1]
TINY_CONFIG = ROOT / "configs" / "examples" / "tiny.yaml"

_POS = ["good", "great", "lovely", "fine", "moving", "funny"]
_NEG = ["bad", "dull", "awful", "boring", "flat", "weak"]
_FILL = ["the", "film", "a", "story", "is", "and", "plot", "very", "cast", "it", "with", "some"]


def write_sst2(folder: Path, *, n_train: int = 400, n_val: int = 80, seed: int = 0) -> Path:
    """Write ``folder/sst2/{train,validation}.tsv`` in the layout of ../shared/data/sst2."""
    rng = np.random.default_rng(seed)

    def rows(n: int) -> list[str]:
        out = []
        for _ in range(n):
            label = int(rng.integers(2))
            words = list(rng.choice(_FILL, size=int(rng.integers(3, 12))))
            words.insert(int(rng.integers(len(words) + 1)), str(rng.choice(_POS if label else _NEG)))
            out.append(f"{label}\t{' '.join(words)}")
        return out

    sst2 = folder / "sst2"
    sst2.mkdir(parents=True, exist_ok=True)
    (sst2 / "train.tsv").write_bytes(("label\tsentence\r\n" + "\r\n".join(rows(n_train)) + "\r\n").encode())
    (sst2 / "validation.tsv").write_text("label\tcontent\n" + "\n".join(rows(n_val)) + "\n")
    return folder


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory) -> Path:
    return write_sst2(tmp_path_factory.mktemp("data"))


@pytest.fixture
def tiny_config(data_dir, tmp_path):
    def make(*overrides: str):
        return load_config(TINY_CONFIG, [f"data.data_dir={data_dir}", f"run.output_dir={tmp_path / 'runs'}",
                                         *overrides])

    return make
