"""Shared fixtures: a tiny synthetic data folder (SST-2 and SQuAD) and the tiny configs pointed at it.

Tests build their own data (no download, no dependency on ../shared/data): sentences made of a few
sentiment words and fillers, so a tiny model has something learnable and the tokenizer is small;
SQuAD-format articles whose answers are spans of short contexts made of a small vocabulary.
"""

from __future__ import annotations

from pathlib import Path

import json

import numpy as np
import pytest

from paczero.settings import load_config

ROOT = Path(__file__).resolve().parents[1]
TINY_CONFIG = ROOT / "configs" / "examples" / "tiny.yaml"
TINY_SQUAD_CONFIG = ROOT / "configs" / "examples" / "tiny-squad.yaml"

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


_TOPIC = ["river", "city", "king", "bridge", "north", "south", "old", "new", "stone", "gold", "war", "year",
          "built", "ruled", "crossed", "named", "after", "before", "near", "port"]


def _article(rng: np.random.Generator, a: int, *, n_questions: int, answers: int) -> dict:
    paragraphs = []
    for p in range(n_questions):
        words = list(rng.choice(_TOPIC, size=int(rng.integers(8, 20))))
        context = " ".join(words) + "."
        qas = []
        for _ in range(answers):
            start = int(rng.integers(len(words) - 2))
            span = " ".join(words[start:start + int(rng.integers(1, 3))])
            qas.append({"answer_start": context.index(span), "text": span})
        question = f"What {rng.choice(_TOPIC)} was {rng.choice(_TOPIC)}?"
        paragraphs.append({"context": context, "qas": [{"answers": qas, "question": question,
                                                         "id": f"q{a}-{p}"}]})
    return {"title": f"Topic_{a}", "paragraphs": paragraphs}


def write_squad(folder: Path, *, n_train: int = 120, n_val: int = 40, seed: int = 0) -> Path:
    """Write ``folder/squad/{train,validation,validation_rest}.json`` in the SQuAD v1.1 layout.

    Dev questions carry 1 to 3 gold answers (as SQuAD's dev set does); the dev set is split over the two
    validation files like ../shared/data/squad.
    """
    rng = np.random.default_rng(seed)
    squad = folder / "squad"
    squad.mkdir(parents=True, exist_ok=True)
    train = [_article(rng, a, n_questions=10, answers=1) for a in range(n_train // 10)]
    dev = [_article(rng, a, n_questions=10, answers=1 + a % 3) for a in range(n_val // 10)]
    half = len(dev) // 2
    for name, articles in [("train", train), ("validation", dev[:half]), ("validation_rest", dev[half:])]:
        (squad / f"{name}.json").write_text(json.dumps({"data": articles, "version": "1.1"}))
    return folder


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory) -> Path:
    return write_squad(write_sst2(tmp_path_factory.mktemp("data")))


@pytest.fixture
def tiny_config(data_dir, tmp_path):
    def make(*overrides: str):
        return load_config(TINY_CONFIG, [f"data.data_dir={data_dir}", f"run.output_dir={tmp_path / 'runs'}",
                                         *overrides])

    return make


@pytest.fixture
def tiny_squad_config(data_dir, tmp_path):
    def make(*overrides: str):
        return load_config(TINY_SQUAD_CONFIG, [f"data.data_dir={data_dir}", f"run.output_dir={tmp_path / 'runs'}",
                                               *overrides])

    return make


def pytest_configure(config):
    """Under pytest-xdist (``make test`` runs two workers on two cores) each worker computes on one thread, so the
    workers do not oversubscribe the cores; subprocesses the tests start keep torch's default."""
    import os

    if os.environ.get("PYTEST_XDIST_WORKER"):
        import torch

        torch.set_num_threads(1)
