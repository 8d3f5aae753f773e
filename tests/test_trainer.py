"""End-to-end runs of the tiny config: the run folder, LoRA, the MI mechanism, K directions, replay, cached prefix."""

from __future__ import annotations

import hashlib
import json
import stat
from pathlib import Path

import numpy as np
import pytest

from paczero.build import build
from paczero.ledger import parse_releases, parse_transcript
from paczero.rundir import RunDir
from paczero.secret import SecretState
from paczero.trainer import Trainer

PUBLIC = {"config.yaml", "membership.npy", "transcript.jsonl", "evaluations.jsonl", "metrics.json",
          "checkpoints/best/model.safetensors", "checkpoints/last/model.safetensors", "checkpoints/last/progress.json"}
PRIVATE = {"secret.json", "releases.jsonl", "diagnostics.jsonl", "privacy.json", "timings.json"}


def _run(cfg, secret=None) -> Trainer:
    trainer = Trainer(cfg, secret=secret)
    trainer.run()
    return trainer


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_run_writes_public_files_and_a_private_folder(tiny_config):
    cfg = tiny_config("run.name=e2e")
    trainer = _run(cfg)
    run = trainer.run_dir
    assert {str(p) for p in run.public_files()} == PUBLIC
    assert PRIVATE <= {p.name for p in run.private.iterdir()}
    assert stat.S_IMODE(run.private.stat().st_mode) == 0o700
    for p in run.private.rglob("*"):
        assert stat.S_IMODE(p.stat().st_mode) == (0o700 if p.is_dir() else 0o600), p
    for p in run.public_files():
        assert stat.S_IMODE((run.path / p).stat().st_mode) == 0o644, p
    steps = parse_transcript(run.read_transcript())
    assert [s.step for s in steps] == list(range(cfg.train.steps))
    assert all(len(s.directions) == 1 and s.directions[0].value in (1.0, -1.0) for s in steps)
    lrs = [s.lr for s in steps]
    assert lrs[0] == cfg.train.lr and all(a > b for a, b in zip(lrs, lrs[1:]))
    assert run.read_membership().shape == (cfg.data.n_pool, cfg.privacy.n_subsets)
    metrics = run.read_metrics()
    assert metrics["privacy"]["mi_bound_nats"] == 0.0 and metrics["privacy"]["mia_posterior_bound"] == 0.5
    assert metrics["privacy"]["steps"] == cfg.train.steps and metrics["data"]["dev_set"]["public"] is True
    assert metrics["steps_run"] == cfg.train.steps and metrics["best_dev"]["step"] in (5, 10)
    assert metrics["best_dev"]["selected_on"] == "loss"
    assert "unanimity" not in json.dumps(metrics) and set(metrics["data"]["truncated"]) == {"dev", "test"}
    assert [e["step"] for e in run.read_evaluations()] == [5, 10]
    releases = [r for step in parse_releases(run.read_private(run.releases_path)) for r in step]
    assert [r.value for r in releases] == [s.directions[0].value for s in steps]
    assert {r.kind for r in releases} <= {"unanimous", "coin"}
    figures = json.loads(run.privacy_path.read_text())
    assert figures["unanimity_rate"] == np.mean([r.kind == "unanimous" for r in releases])


def test_runs_with_other_public_seeds_differ(tiny_config):
    a = _run(tiny_config("run.name=a", "run.seed=1"))
    b = _run(tiny_config("run.name=b", "run.seed=2"))
    assert a.run_dir.read_transcript() != b.run_dir.read_transcript()


def test_lora_run_saves_a_peft_adapter(tiny_config):
    trainer = _run(tiny_config("run.name=lora", "model.tuning=lora", "train.steps=4", "train.eval_every=2"))
    best = trainer.run_dir.checkpoint("best")
    assert (best / "adapter_config.json").is_file() and (best / "adapter_model.safetensors").is_file()
    assert all("lora_" in n for n, _ in trainer.c.loaded.trainable)


def test_existing_run_directory_is_refused(tiny_config):
    from paczero.errors import PaczeroError

    _run(tiny_config("run.name=same", "train.steps=1"))
    with pytest.raises(PaczeroError, match="already exists"):
        _run(tiny_config("run.name=same", "train.steps=1"))


def test_mi_run_publishes_bits_and_its_statement_follows_from_the_settings(tiny_config, capsys):
    from paczero.cli import main
    from paczero.privacy.bsc import bsc_mi

    budget = 0.2
    trainer = _run(tiny_config("run.name=mi", "privacy.mechanism=mi", f"privacy.budget={budget}"))
    run = trainer.run_dir
    assert all(d.value in (1.0, -1.0) for s in parse_transcript(run.read_transcript()) for d in s.directions)
    releases = [r for step in parse_releases(run.read_private(run.releases_path)) for r in step]
    noisy = [r for r in releases if r.kind == "noisy"]
    assert noisy, "the tiny run should contain noisy releases"
    for r in noisy:
        assert r.mi == bsc_mi(q=r.q_plus, flip=r.flip) and r.mi <= r.beta
    statement = run.read_metrics()["privacy"]
    assert statement["mi_bound_nats"] == budget and statement["channel"] == "bsc"
    assert 0.5 < statement["mia_posterior_bound"] < 1.0
    figures = json.loads(run.privacy_path.read_text())
    assert figures["achieved_mi_nats"] == pytest.approx(sum(r.mi for r in noisy), rel=1e-12)
    assert figures["achieved_mi_nats"] <= budget * (1 + 1e-9)
    assert main(["privacy", str(run.path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == statement  # recomputed from the public files alone
    assert main(["privacy", str(run.path), "--json", "--private"]) == 0  # the opt-in: the owner's figures too
    assert json.loads(capsys.readouterr().out) == {**statement, "private_figures": figures}
    spent = [d["mi_spent"] for d in run.read_private(run.diagnostics_path)]
    assert spent == sorted(spent) and spent[-1] == pytest.approx(figures["achieved_mi_nats"], rel=1e-12)


@pytest.mark.parametrize("tuning", ["full", "lora"])
def test_replay_rebuilds_the_final_weights_bit_for_bit(tiny_config, tmp_path, tuning):
    from paczero.cli import main

    trainer = _run(tiny_config(f"run.name=r-{tuning}", f"model.tuning={tuning}", "train.steps=6",
                               "train.eval_every=3", "train.weight_decay=0.1"))
    assert main(["replay", str(trainer.run_dir.path), "--out", str(tmp_path / "rebuilt")]) == 0
    last = trainer.run_dir.checkpoint("last")
    weights = "adapter_model.safetensors" if tuning == "lora" else "model.safetensors"
    assert _digest(tmp_path / "rebuilt" / weights) == _digest(last / weights)
    assert main(["replay", str(trainer.run_dir.path), "--out", str(tmp_path / "rebuilt")]) == 2


@pytest.mark.parametrize("mechanism", ["zpl", "mi"])
def test_k_directions_per_step(tiny_config, mechanism):
    trainer = _run(tiny_config(f"run.name=k-{mechanism}", f"privacy.mechanism={mechanism}", "zo.directions=4",
                               "train.steps=3", "train.eval_every=3"))
    steps = parse_transcript(trainer.run_dir.read_transcript())
    assert all(len(s.directions) == 4 for s in steps)
    seeds = [d.seed for s in steps for d in s.directions]
    assert len(set(seeds)) == len(seeds)
    if mechanism == "mi":
        figures = json.loads(trainer.run_dir.privacy_path.read_text())
        assert figures["achieved_mi_nats"] <= trainer.cfg.privacy.budget


def test_the_shipped_tiny_config_runs_on_the_real_data(tmp_path, monkeypatch):
    import os

    from conftest import TINY_CONFIG
    from paczero.settings import load_config

    shared = Path(__file__).resolve().parents[2] / "shared" / "data"
    if not os.environ.get("PACZERO_DATA_DIR") and not (shared / "sst2").is_dir():
        pytest.skip("no SST-2 data: set PACZERO_DATA_DIR")
    monkeypatch.setenv("PACZERO_DATA_DIR", os.environ.get("PACZERO_DATA_DIR") or str(shared))
    metrics = Trainer(load_config(TINY_CONFIG, [f"run.output_dir={tmp_path}", "run.name=real"])).run()
    assert (metrics["data"]["n_pool"], metrics["data"]["n_dev"], metrics["data"]["n_test"]) == (64, 32, 64)
    assert metrics["steps_run"] == 10


def test_train_top_layers_freezes_the_bottom_and_the_tied_embedding(tiny_config):
    c = build(tiny_config("model.tiny.num_layers=3", "model.train_top_layers=1"))
    names = [n for n, _ in c.loaded.trainable]
    assert names and all(n.startswith("model.layers.2.") for n in names if n != "model.norm.weight")
    assert "model.norm.weight" in names and "model.embed_tokens.weight" not in names
    assert c.engine.first_trainable_layer == 2


@pytest.mark.parametrize("mechanism", [("privacy.mechanism=mi", "privacy.budget=0.2"),
                                       ("privacy.mechanism=mezo", "train.batch_size=1000")],
                         ids=["mi", "mezo-full-batch"])
def test_cached_prefix_training_equals_uncached_bit_for_bit(tiny_config, mechanism):
    """Same transcript, private logs, metrics and weights with the frozen bottom cached or recomputed; every step's
    two evaluations start from the cache (a MeZO batch holding the whole pool included)."""
    secret = SecretState.fresh(8)
    base = ("model.tiny.num_layers=3", "model.train_top_layers=1", *mechanism, "train.steps=6", "train.eval_every=3")
    runs = {cached: _run(tiny_config(f"run.name=cache-{cached}", f"zo.cache_prefix={cached}", *base), secret=secret)
            for cached in ("false", "true")}
    assert runs["true"].c.engine.cache_hits >= 6 and runs["false"].c.engine.cache_hits == 0
    uncached, cached = (runs[k].run_dir for k in ("false", "true"))
    for name in ("transcript.jsonl", "private/releases.jsonl", "private/diagnostics.jsonl",
                 "checkpoints/last/model.safetensors", "checkpoints/best/model.safetensors"):
        assert _digest(uncached.path / name) == _digest(cached.path / name), name
    a, b = uncached.read_metrics(), cached.read_metrics()
    assert a["test"] == b["test"] and a["best_dev"] == b["best_dev"]
    if "mi" in mechanism[0]:
        kinds = {r.kind for step in parse_releases(cached.read_private(cached.releases_path)) for r in step}
        assert kinds & {"noisy", "free"}


def test_run_dir_lists_only_files_outside_the_private_folder(tmp_path):
    run = RunDir.create(tmp_path / "r")
    (run.path / "config.yaml").write_text("x")
    run.append_private(run.diagnostics_path, {"step": 0})
    assert run.public_files() == [Path("config.yaml")]
