"""The golden run: the tiny config's transcript and dev loss at step 10, against the loop written out in float64.

Two tests: the quick one compares a run with the oracle's numbers stored in ``tests/golden/tiny-float64.json``
(released values, learning rates, dev loss), so the fast loop catches a change of any of them; the slow one runs
the oracle itself and checks both the run and the stored numbers against it, so the stored numbers stay the
oracle's and not the code's.

The oracle below is the algorithm of paczero-notes §3.10 with nothing shared with the trainer but the model's
starting weights, the encoded records and the seeded direction generator: records scored one at a time with no
padding and full float64 logits (:func:`oracles.classification_losses`), θ ± εz built as float64 copies, the
subset means and signs as loops, the release rule and the linear learning-rate decay written out, the update
applied in place. The run uses ``model.dtype=float64``, so the two must agree on every released value and
learning rate exactly, and on the dev loss to float32 rounding (the objective scores the label words' logits in
float32, as it does for every dtype).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from oracles import classification_losses, perturbed_copy
from paczero.build import build
from paczero.ledger import parse_releases, parse_transcript
from paczero.rng import direction_seed, public_coin
from paczero.secret import SecretState
from paczero.trainer import Trainer

STEPS = 10
GOLDEN = Path(__file__).parent / "golden" / "tiny-float64.json"
"""The oracle's numbers (written by ``_oracle_run``, checked against it by the slow test)."""


def _oracle_run(cfg, j_star: int) -> tuple[list[tuple[float, float]], float]:
    c = build(cfg)
    model = copy.deepcopy(c.loaded.model)
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    pool, dev = c.encoded["pool"], c.encoded["dev"]
    eps, clip, T, lr0, lr_end = cfg.zo.eps, cfg.zo.clip, cfg.train.steps, cfg.train.lr, cfg.train.lr_end
    a = c.membership
    released = []
    for t in range(T):
        seed = direction_seed(cfg.run.seed, t, 0)
        plus = classification_losses(perturbed_copy(model, trainable, c.engine, seed, eps, exact=True), c.objective,
                                     pool, range(len(pool)))
        minus = classification_losses(perturbed_copy(model, trainable, c.engine, seed, -eps, exact=True),
                                      c.objective, pool, range(len(pool)))
        g = [min(max((p - m) / (2 * eps), -clip), clip) for p, m in zip(plus, minus)]
        means = []
        for j in range(a.shape[1]):
            members = [g[i] for i in range(len(g)) if a[i, j]]
            means.append(sum(members) / len(members) if members else 0.0)
        signs = [1.0 if m >= 0 else -1.0 for m in means]
        if cfg.privacy.mechanism == "zpl":
            value = signs[0] if len(set(signs)) == 1 else float(public_coin(cfg.run.seed, t, 0))
        else:  # quant_half: the sign of the secret subset's mean, no privacy
            value = signs[j_star]
        lr = lr_end + (lr0 - lr_end) * (1 - t / T)
        released.append((value, lr))
        with torch.no_grad():
            for i, (_, p) in enumerate(trainable):
                p.add_(c.engine.direction_block(seed, i), alpha=-lr * value)
    return released, float(np.mean(classification_losses(model, c.objective, dev, range(len(dev)))))


def _golden_run(tiny_config, mechanism: str):
    cfg = tiny_config(f"privacy.mechanism={mechanism}", "model.dtype=float64", "privacy.n_subsets=2",
                      f"train.steps={STEPS}", "train.eval_every=5", "run.name=golden")
    trainer = Trainer(cfg, secret=SecretState(key=bytes(32), j_star=1))
    trainer.run()
    run = trainer.run_dir
    steps = parse_transcript(run.read_transcript())
    ours = [(s.directions[0].value, s.lr) for s in steps]
    dev = [e["loss"] for e in run.read_evaluations() if e["step"] == STEPS]
    return cfg, run, ours, dev


@pytest.mark.parametrize("mechanism", ["zpl", "quant_half"])
def test_the_tiny_run_gives_the_stored_oracle_numbers(tiny_config, mechanism):
    stored = json.loads(GOLDEN.read_text())[mechanism]
    _, run, ours, dev = _golden_run(tiny_config, mechanism)
    assert ours == list(zip(stored["values"], stored["lrs"]))
    assert dev == [pytest.approx(stored["dev_loss"], rel=1e-6)]
    if mechanism == "zpl":  # the rule is exercised both ways
        kinds = {r.kind for step in parse_releases(run.read_private(run.releases_path)) for r in step}
        assert kinds == {"unanimous", "coin"}


@pytest.mark.slow
@pytest.mark.parametrize("mechanism", ["zpl", "quant_half"])
def test_the_tiny_run_equals_the_loop_written_out_in_float64(tiny_config, mechanism):
    cfg, _, ours, dev = _golden_run(tiny_config, mechanism)
    expected, dev_loss = _oracle_run(cfg, j_star=1)
    assert ours == expected
    assert dev == [pytest.approx(dev_loss, rel=1e-6)]
    stored = json.loads(GOLDEN.read_text())[mechanism]
    assert list(zip(stored["values"], stored["lrs"])) == expected and stored["dev_loss"] == pytest.approx(dev_loss,
                                                                                                           rel=1e-12)
