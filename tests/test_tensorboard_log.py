"""Optional TensorBoard logging: only the public figures, equal to the diagnostics and the final test metrics."""

from __future__ import annotations

import importlib.util
import json

import pytest

from paczero.config import load_config
from paczero.errors import PaczeroError
from paczero.tensorboard_log import TAGS
from paczero.trainer import Trainer


def _scalars(folder) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder))
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


@pytest.mark.skipif(importlib.util.find_spec("tensorboard") is None, reason="needs paczero[tensorboard]")
def test_tensorboard_holds_the_public_figures_only(tiny_config):
    trainer = Trainer(tiny_config("run.name=tb", "privacy.mechanism=mi", "privacy.budget=0.2",
                                  "logging.tensorboard=true"))
    metrics = trainer.run()
    scalars = _scalars(trainer.run_dir / "tensorboard")
    assert set(scalars) == set(TAGS.values())
    diagnostics = [json.loads(line) for line in (trainer.run_dir / "diagnostics.jsonl").read_text().splitlines()]
    for key, tag in TAGS.items():
        expected = [(d["step"] + 1, d[key]) for d in diagnostics if key in d]
        if key.startswith("test_"):
            expected = [(metrics["steps_run"], metrics["test"][key[5:]])]
        assert [s for s, _ in scalars[tag]] == [s for s, _ in expected]
        assert [v for _, v in scalars[tag]] == pytest.approx([v for _, v in expected], rel=1e-6)


def test_tensorboard_off_by_default_and_missing_package_is_a_clear_error(tiny_config, monkeypatch):
    trainer = Trainer(tiny_config("run.name=plain", "train.steps=1"))
    trainer.run()
    assert not (trainer.run_dir / "tensorboard").exists()
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "tensorboard" else real(name, *a))
    with pytest.raises(PaczeroError, match="logging.tensorboard"):
        load_config(None, ["logging.tensorboard=true"])
