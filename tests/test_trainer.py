"""End-to-end runs of the tiny config: outputs, the ZPL invariance, LoRA, the MI mechanism."""

from __future__ import annotations

import hashlib
import json
import stat
from pathlib import Path

import numpy as np
import pytest

from paczero import ledger
from paczero.secret import SecretState
from paczero.trainer import Trainer

EXPECTED_FILES = {"config.yaml", "membership.npy", "secret.json", "ledger.jsonl", "diagnostics.jsonl",
                  "metrics.json", "timings.json"}


def _run(cfg, secret=None) -> Trainer:
    trainer = Trainer(cfg, secret=secret)
    trainer.run()
    return trainer


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _files(run_dir: Path) -> dict[str, str]:
    return {str(p.relative_to(run_dir)): _digest(p) for p in sorted(run_dir.rglob("*")) if p.is_file()}


def test_tiny_run_writes_every_output(tiny_config):
    cfg = tiny_config("run.name=e2e")
    trainer = _run(cfg)
    run = trainer.run_dir
    assert EXPECTED_FILES <= {p.name for p in run.iterdir()}
    assert stat.S_IMODE((run / "secret.json").stat().st_mode) == 0o600
    assert (run / "checkpoints" / "best" / "model.safetensors").is_file()
    assert (run / "checkpoints" / "last" / "model.safetensors").is_file()
    records = ledger.read(run)
    assert [r["step"] for r in records] == list(range(cfg.train.steps))
    for r in records:
        (d,) = r["directions"]
        assert d["value"] in (1.0, -1.0) and d["kind"] in ("unanimous", "coin") and isinstance(d["seed"], int)
        assert d["unanimous"] == (d["kind"] == "unanimous")
    lrs = [r["lr"] for r in records]
    assert lrs[0] == cfg.train.lr and all(a > b for a, b in zip(lrs, lrs[1:]))
    membership = np.load(run / "membership.npy")
    assert membership.shape == (cfg.data.n_pool, cfg.privacy.n_subsets)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["privacy"]["mi_nats"] == 0.0 and metrics["privacy"]["mia_posterior_bound"] == 0.5
    assert metrics["data"]["dev_is_public"] is True
    assert metrics["steps_run"] == cfg.train.steps
    assert 0.0 <= metrics["unanimity_rate"] <= 1.0
    assert metrics["unanimity_rate"] == np.mean([r["directions"][0]["unanimous"] for r in records])
    assert 0.0 <= metrics["test"]["accuracy"] <= 1.0 and metrics["zero_shot_test"] is not None
    assert metrics["best_dev"]["step"] in (5, 10)
    diagnostics = [json.loads(line) for line in (run / "diagnostics.jsonl").read_text().splitlines()]
    assert [d["step"] for d in diagnostics if "dev_loss" in d] == [4, 9]
    assert "step_s_mean" in json.loads((run / "timings.json").read_text())


def test_zpl_run_is_invariant_to_the_secret(tiny_config, tmp_path, monkeypatch):
    """Two runs that differ only in J* (and the noise key) write byte-identical files, the secret aside."""
    runs = []
    for where, j in (("a", 0), ("b", 5)):
        (tmp_path / where).mkdir()
        monkeypatch.chdir(tmp_path / where)  # same relative output_dir and name: identical config.yaml
        trainer = _run(tiny_config("run.name=same", "run.output_dir=runs"),
                       secret=SecretState(key=bytes([j]) * 32, j_star=j))
        runs.append(_files(trainer.run_dir))
    a, b = runs
    assert a.keys() == b.keys()
    differing = {k for k in a if a[k] != b[k]}
    assert differing == {"secret.json", "timings.json"}


def test_runs_with_other_public_seeds_differ(tiny_config):
    a = _run(tiny_config("run.name=a", "run.seed=1"))
    b = _run(tiny_config("run.name=b", "run.seed=2"))
    assert ledger.read(a.run_dir) != ledger.read(b.run_dir)


def test_lora_run_saves_a_peft_adapter(tiny_config):
    trainer = _run(tiny_config("run.name=lora", "model.tuning=lora", "train.steps=4", "train.eval_every=2"))
    best = trainer.run_dir / "checkpoints" / "best"
    assert (best / "adapter_config.json").is_file() and (best / "adapter_model.safetensors").is_file()
    assert all("lora_" in n for n, _ in trainer.loaded.trainable)


def test_existing_run_directory_is_refused(tiny_config):
    from paczero.errors import PaczeroError

    _run(tiny_config("run.name=same", "train.steps=1"))
    with pytest.raises(PaczeroError, match="already exists"):
        _run(tiny_config("run.name=same", "train.steps=1"))


def test_mi_run_ledger_and_statement(tiny_config, capsys):
    from paczero.cli import main
    from paczero.privacy.channel import channel_mi

    budget = 0.2
    trainer = _run(tiny_config("run.name=mi", "privacy.mechanism=mi", f"privacy.budget={budget}"))
    records = ledger.read(trainer.run_dir)
    noisy = [d for r in records for d in r["directions"] if d["kind"] == "noisy"]
    assert noisy, "the tiny run should contain noisy releases"
    for d in noisy:
        assert {"y", "sigma", "q_plus", "beta", "mi"} <= d.keys()
        assert d["mi"] == channel_mi(q=d["q_plus"], sigma=d["sigma"]) and d["mi"] <= d["beta"]
        assert d["value"] == (1.0 if d["y"] >= 0 else -1.0)
    metrics = json.loads((trainer.run_dir / "metrics.json").read_text())
    statement = metrics["privacy"]
    assert statement["mi_nats"] == pytest.approx(sum(d["mi"] for d in noisy), rel=1e-12)
    assert statement["mi_nats"] <= budget * (1 + 1e-9)
    assert 0.5 < statement["mia_posterior_bound"] < 1.0
    assert main(["privacy", str(trainer.run_dir), "--json"]) == 0
    from_cli = json.loads(capsys.readouterr().out)
    assert from_cli["mi_nats"] == statement["mi_nats"]
    assert from_cli["release_kinds"] == statement["release_kinds"]
    cum = [json.loads(line)["cum_mi"] for line in (trainer.run_dir / "diagnostics.jsonl").read_text().splitlines()
           if "cum_mi" in line]
    assert cum == sorted(cum) and cum[-1] == pytest.approx(statement["mi_nats"], rel=1e-12)


@pytest.mark.parametrize("tuning", ["full", "lora"])
def test_replay_rebuilds_the_final_weights_bit_for_bit(tiny_config, tmp_path, tuning):
    from paczero.cli import main

    trainer = _run(tiny_config(f"run.name=r-{tuning}", f"model.tuning={tuning}", "train.steps=6",
                               "train.eval_every=3", "train.weight_decay=0.1"))
    assert main(["replay", str(trainer.run_dir), "--out", str(tmp_path / "rebuilt")]) == 0
    last = trainer.run_dir / "checkpoints" / "last"
    weights = "adapter_model.safetensors" if tuning == "lora" else "model.safetensors"
    assert _digest(tmp_path / "rebuilt" / weights) == _digest(last / weights)
    assert main(["replay", str(trainer.run_dir), "--out", str(tmp_path / "rebuilt")]) == 2


@pytest.mark.parametrize("mechanism", ["zpl", "mi"])
def test_k_directions_per_step(tiny_config, mechanism):
    trainer = _run(tiny_config(f"run.name=k-{mechanism}", f"privacy.mechanism={mechanism}", "zo.directions=4",
                               "train.steps=3", "train.eval_every=3"))
    records = ledger.read(trainer.run_dir)
    assert all(len(r["directions"]) == 4 for r in records)
    seeds = [d["seed"] for r in records for d in r["directions"]]
    assert len(set(seeds)) == len(seeds)
    if mechanism == "mi":
        metrics = json.loads((trainer.run_dir / "metrics.json").read_text())
        assert metrics["privacy"]["mi_nats"] <= trainer.cfg.privacy.budget


def test_the_shipped_tiny_config_runs_on_the_real_data(tmp_path, monkeypatch):
    import os

    from conftest import TINY_CONFIG
    from paczero.config import load_config

    shared = Path(__file__).resolve().parents[2] / "shared" / "data"
    if not os.environ.get("PACZERO_DATA_DIR") and not (shared / "sst2").is_dir():
        pytest.skip("no SST-2 data: set PACZERO_DATA_DIR")
    monkeypatch.setenv("PACZERO_DATA_DIR", os.environ.get("PACZERO_DATA_DIR") or str(shared))
    metrics = Trainer(load_config(TINY_CONFIG, [f"run.output_dir={tmp_path}", "run.name=real"])).run()
    assert (metrics["data"]["n_pool"], metrics["data"]["n_dev"], metrics["data"]["n_test"]) == (64, 32, 64)
    assert metrics["steps_run"] == 10


def test_train_top_layers_freezes_the_bottom_and_the_tied_embedding(tiny_config):
    trainer = Trainer(tiny_config("model.tiny.num_layers=3", "model.train_top_layers=1"))
    trainer.prepare()
    names = [n for n, _ in trainer.loaded.trainable]
    assert names and all(n.startswith("model.layers.2.") for n in names if n != "model.norm.weight")
    assert "model.norm.weight" in names and "model.embed_tokens.weight" not in names
    assert trainer.engine.first_trainable_layer == 2


@pytest.mark.parametrize("mechanism", [("privacy.mechanism=mi", "privacy.budget=0.2"),
                                       ("privacy.mechanism=mezo", "train.batch_size=1000")],
                         ids=["mi", "mezo-full-batch"])
def test_cached_prefix_training_equals_uncached_bit_for_bit(tiny_config, mechanism):
    """Same ledger, diagnostics, metrics and weights with the frozen bottom cached or recomputed; every step's
    two evaluations start from the cache (a MeZO batch holding the whole pool included)."""
    secret = SecretState.fresh(8)
    base = ("model.tiny.num_layers=3", "model.train_top_layers=1", *mechanism, "train.steps=6", "train.eval_every=3")
    runs = {cached: _run(tiny_config(f"run.name=cache-{cached}", f"zo.cache_prefix={cached}", *base), secret=secret)
            for cached in ("false", "true")}
    assert runs["true"].engine.cache_hits >= 6 and runs["false"].engine.cache_hits == 0
    uncached, cached = (runs[k].run_dir for k in ("false", "true"))
    for name in ("ledger.jsonl", "diagnostics.jsonl", "checkpoints/last/model.safetensors",
                 "checkpoints/best/model.safetensors"):
        assert _digest(uncached / name) == _digest(cached / name), name
    a, b = (json.loads((d / "metrics.json").read_text()) for d in (uncached, cached))
    assert a["test"] == b["test"] and a["best_dev"] == b["best_dev"]
    assert runs["true"].engine._cached and not runs["false"].engine._cached
    if "mi" in mechanism[0]:
        assert {d["kind"] for r in ledger.read(cached) for d in r["directions"]} & {"noisy", "free"}
