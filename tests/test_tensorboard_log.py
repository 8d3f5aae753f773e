"""Optional TensorBoard logging: the owner's dashboard, in the private folder, equal to the private diagnostics,
the public dev evaluations and the final test metrics."""

from __future__ import annotations

import importlib.util
import stat

import pytest

from paczero.settings import load_config
from paczero.errors import PaczeroError
from paczero.tensorboard_log import TAGS
from paczero.trainer import Trainer


def _scalars(folder) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder))
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


@pytest.mark.skipif(importlib.util.find_spec("tensorboard") is None, reason="needs paczero[tensorboard]")
def test_tensorboard_is_private_and_holds_the_run_figures(tiny_config):
    trainer = Trainer(tiny_config("run.name=tb", "privacy.mechanism=mi", "privacy.budget=0.2",
                                  "logging.tensorboard=true"))
    metrics = trainer.run()
    run = trainer.run_dir
    folder = run.tensorboard_dir
    assert folder.parent == run.private and not any("tensorboard" in str(p) for p in run.public_files())
    for p in folder.rglob("*"):
        assert stat.S_IMODE(p.stat().st_mode) == (0o700 if p.is_dir() else 0o600)
    scalars = _scalars(folder)
    assert set(scalars) == set(TAGS.values())
    diagnostics = run.read_private(run.diagnostics_path)
    evaluations = run.read_evaluations()
    for key, tag in TAGS.items():
        if key.startswith("test_"):
            expected = [(metrics["steps_run"], metrics["test"][key[5:]])]
        elif key.startswith("dev_"):
            expected = [(e["step"], e[key[4:]]) for e in evaluations]
        else:
            expected = [(d["step"] + 1, d[key]) for d in diagnostics]
        assert [s for s, _ in scalars[tag]] == [s for s, _ in expected]
        assert [v for _, v in scalars[tag]] == pytest.approx([v for _, v in expected], rel=1e-6)


def test_tensorboard_off_by_default_and_missing_package_is_a_clear_error(tiny_config, monkeypatch):
    trainer = Trainer(tiny_config("run.name=plain", "train.steps=1"))
    trainer.run()
    assert not trainer.run_dir.tensorboard_dir.exists()
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "tensorboard" else real(name, *a))
    with pytest.raises(PaczeroError, match="logging.tensorboard"):
        load_config(None, ["logging.tensorboard=true"])
