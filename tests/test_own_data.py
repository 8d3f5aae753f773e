"""A run on a user's own file: nothing of it is public unless asked (no dev set by default, the last checkpoint
released), a dev or test set drawn from it is announced at the start with its size, and the run is named after the
file."""

from __future__ import annotations

import json
import logging

import pytest

from conftest import TINY_CONFIG
from paczero.cli import main
from paczero.settings import load_config
from paczero.rundir import RunDir
from paczero.trainer import Trainer

WORDS = ["good", "bad", "film", "plot", "very", "dull", "fine"]


def _csv(tmp_path, n: int = 48) -> str:
    rows = [f"{WORDS[i % 7]} {WORDS[(i * 3) % 7]},{['terrible', 'great'][i % 2]}" for i in range(n)]
    path = tmp_path / "my reviews.csv"
    path.write_text("text,label\n" + "\n".join(rows) + "\n")
    return str(path)


def _config(tmp_path, *overrides):
    return load_config(TINY_CONFIG, ["data.task=hf", "data.kind=classification", f"data.train_file={_csv(tmp_path)}",
                                     "data.n_pool=24", "data.n_dev=8", "data.test_fraction=0.25", "train.steps=4",
                                     "train.eval_every=2", f"run.output_dir={tmp_path / 'runs'}", *overrides])


def test_without_a_dev_set_the_last_checkpoint_is_released(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="paczero")
    trainer = Trainer(_config(tmp_path))
    metrics = trainer.run()
    run = trainer.run_dir
    assert run.path.name.startswith("my_reviews-zpl-s0-")
    assert metrics["data"]["n_dev"] == 0 and metrics["data"]["dev_set"]["source"] == "none"
    assert metrics["best_dev"] == {"step": 4, "selected_on": "last"} and metrics["final_dev"] is None
    assert not run.evaluations_path.exists()
    last, best = (run.checkpoint(n) / "model.safetensors" for n in ("last", "best"))
    assert best.read_bytes() == last.read_bytes()
    assert metrics["privacy"]["summary"].endswith(", no dev set")
    messages = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("no dev set (data.dev_source=none)") for m in messages)
    assert any(m.startswith("data.test_fraction=0.25: 12 records of the private train records become the public "
                            "test set") for m in messages)


def test_a_dev_set_drawn_from_the_private_file_is_announced_before_the_run_starts(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="paczero")
    metrics = Trainer(_config(tmp_path, "data.dev_source=train", "run.name=drawn")).run()
    messages = [r.getMessage() for r in caplog.records]
    warned = next(i for i, m in enumerate(messages) if m.startswith("data.dev_source=train: 8 records of the private "
                                                                    "train records become the public dev set"))
    started = next(i for i, m in enumerate(messages) if m.startswith("run "))
    assert warned < started
    assert metrics["data"]["dev_set"]["source"] == "train" and metrics["data"]["n_dev"] == 8
    assert metrics["privacy"]["summary"].endswith(", 8 records of the private file public as dev set")
    assert len(RunDir(tmp_path / "runs" / "drawn").read_evaluations()) == 2


def test_the_command_line_says_which_checkpoint_it_released(tmp_path, capsys):
    argv = ["train", "--config", str(TINY_CONFIG), "data.task=hf", "data.kind=classification",
            f"data.train_file={_csv(tmp_path)}", "data.n_pool=24", "data.test_fraction=0.25", "train.steps=2",
            f"run.output_dir={tmp_path / 'runs'}", "run.name=cli"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "(the last checkpoint, step 2: no dev set)" in out and "test macro-F1 after training: " in out
    metrics = json.loads((tmp_path / "runs" / "cli" / "metrics.json").read_text())
    assert metrics["data"]["test_set"] == {"source": "test_fraction", "fraction": 0.25}


@pytest.mark.parametrize("budget", ["1.5", "0.6931471805599453"])
def test_a_budget_that_promises_nothing_exits_2_with_one_line_and_no_run(tmp_path, capsys, budget):
    argv = ["train", "--config", str(TINY_CONFIG), "privacy.mechanism=mi", f"privacy.budget={budget}",
            f"run.output_dir={tmp_path / 'runs'}"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"paczero: error: config: privacy.budget={budget}")
    assert not (tmp_path / "runs").exists()


def test_a_vacuous_run_allowed_explicitly_says_it_promises_nothing(tiny_config):
    metrics = Trainer(tiny_config("privacy.mechanism=mi", "privacy.budget=1.5", "privacy.allow_vacuous=true",
                                  "train.steps=2")).run()
    assert metrics["privacy"]["vacuous"] is True and metrics["privacy"]["mia_posterior_bound"] == 1.0
    assert metrics["privacy"]["summary"].startswith("promises nothing: ")


def test_an_audit_that_needs_non_members_refuses_a_run_without_a_dev_set(tmp_path):
    from paczero.audit import audit_run
    from paczero.errors import PaczeroError

    trainer = Trainer(_config(tmp_path, "privacy.mechanism=mezo", "train.steps=2", "run.name=mezo"))
    trainer.run()
    with pytest.raises(PaczeroError, match="the audit of a mezo run compares the pool .* this run has no dev set"):
        audit_run(trainer.run_dir.path, show=False)
