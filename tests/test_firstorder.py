"""``privacy.mechanism=firstorder``: the non-private first-order reference over a trainable set.

It follows a float64 Adam written out here over the whole model's losses, says "no privacy" in every place a run
states its guarantee, publishes no transcript, resumes bit for bit, and is a cell of ``paczero compare``.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from paczero.build import build
from paczero.cli import main
from paczero.compare import CompareConfig, plan
from paczero.trainer import Trainer
from oracles import HeadNormOracle
from test_resume import _crash_at_third_checkpoint, _hashes

HEAD = ["model.tuning=set", "model.trainable.head_rows=true", "model.trainable.final_norm=true", "zo.cache_prefix=true",
        "privacy.mechanism=firstorder"]


def _oracle(c, steps: int, lr: float) -> dict[str, torch.Tensor]:
    """Full-batch Adam (β = 0.9, 0.999, ε = 1e-8) in float64 over an untied float64 copy of the model, the linear
    learning-rate schedule, per-record cross-entropy over the label words' full-vocabulary log-probabilities."""
    oracle = HeadNormOracle(c)
    params = oracle.params
    pool = c.encoded["pool"]
    m = [torch.zeros_like(p) for p in params]
    v = [torch.zeros_like(p) for p in params]
    for t in range(steps):
        losses = [oracle.loss(prompt, label) for prompt, label in zip(pool.prompts, pool.labels)]
        grads = torch.autograd.grad(torch.stack(losses).mean(), params)
        eta = c.cfg.train.lr_end + (lr - c.cfg.train.lr_end) * (1 - t / steps)
        with torch.no_grad():
            for p, g, m_, v_ in zip(params, grads, m, v):
                m_.mul_(0.9).add_(g, alpha=0.1)
                v_.mul_(0.999).addcmul_(g, g, value=0.001)
                m_hat, v_hat = m_ / (1 - 0.9 ** (t + 1)), v_ / (1 - 0.999 ** (t + 1))
                p.sub_(eta * m_hat / (v_hat.sqrt() + 1e-8))
    return {"model.norm.weight": oracle.norm.detach(), "lm_head.rows": oracle.rows.detach()}


def test_the_first_order_reference_follows_a_float64_adam(tiny_config):
    steps, lr = 4, 0.05
    cfg = tiny_config(*HEAD, f"train.steps={steps}", f"train.lr={lr}", "train.eval_every=100", "train.eval_before=false",
                      "data.n_pool=24", "run.name=fo")
    oracle = _oracle(build(cfg), steps, lr)
    trainer = Trainer(cfg)
    trainer.run()
    ours = load_file(str(trainer.run_dir.checkpoint("last") / "model.safetensors"))
    assert set(ours) == set(oracle)
    start = build(cfg).loaded.trainable
    for name, p0 in start:
        moved = (oracle[name] - p0.detach().double()).abs().max().item()
        assert moved > 0.5 * lr  # Adam's first steps move every coordinate by about lr
        np.testing.assert_allclose(ours[name].double().numpy(), oracle[name].numpy(), rtol=0, atol=1e-3 * lr * steps)


def test_a_first_order_run_says_no_privacy_and_publishes_no_transcript(tiny_config, capsys):
    trainer = Trainer(tiny_config(*HEAD, "train.steps=6", "train.eval_every=3", "train.lr=0.05", "run.name=fo"))
    metrics = trainer.run()
    run = trainer.run_dir
    assert metrics["privacy"]["family"] == "none" and metrics["privacy"]["summary"].startswith("no privacy guarantee")
    assert metrics["privacy"]["mia_posterior_bound"] == 1.0 and metrics["privacy"]["releases"] == 0
    assert not run.transcript_path.exists() and not run.membership_path.exists()
    assert {str(p) for p in run.public_files()} == {
        "config.yaml", "evaluations.jsonl", "metrics.json", "checkpoints/best/model.safetensors",
        "checkpoints/last/model.safetensors", "checkpoints/last/progress.json"}
    capsys.readouterr()
    assert main(["privacy", str(run.path), "--json"]) == 0
    statement = json.loads(capsys.readouterr().out)
    assert statement == metrics["privacy"]
    diagnostics = run.read_private(run.diagnostics_path)
    assert len(diagnostics) == 6 and all(math.isnan(d["unanimous"]) for d in diagnostics)
    assert diagnostics[-1]["pool_loss"] < diagnostics[0]["pool_loss"]  # it trains


def test_a_first_order_run_resumes_bit_for_bit(tiny_config, tmp_path, monkeypatch):
    for where in ("a", "b"):
        (tmp_path / where).mkdir()
    cfg = tiny_config(*HEAD, "train.steps=12", "train.eval_every=4", "train.checkpoint_every=3", "train.lr=0.05",
                      "run.name=r", "run.output_dir=runs")
    monkeypatch.chdir(tmp_path / "a")
    crashed = _crash_at_third_checkpoint(cfg, monkeypatch)
    assert crashed.run_dir.load_state(4)["mechanism"]["adam"]  # the resume starts from Adam's moments
    assert main(["train", "--resume", str(crashed.run_dir.path)]) == 0
    monkeypatch.chdir(tmp_path / "b")
    Trainer(cfg).run()
    assert _hashes(tmp_path / "a" / "runs" / "r") == _hashes(tmp_path / "b" / "runs" / "r")


def test_compare_runs_the_first_order_reference_only_when_named():
    base = CompareConfig(base="configs/examples/tiny.yaml", epsilons=[1.0])
    assert "firstorder" not in {cfg.privacy.mechanism for _, cfg in plan(base)}
    named = CompareConfig(base="configs/examples/tiny.yaml", epsilons=[1.0], mechanisms=["firstorder", "zpl"])
    assert [(name, cfg.privacy.mechanism) for name, cfg in plan(named)] == [("firstorder", "firstorder"),
                                                                             ("zpl", "zpl")]
