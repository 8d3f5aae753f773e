"""Replay: the base model and the public transcript alone rebuild a run's weights bit for bit; a prefix of the
transcript rebuilds the weights after that many steps; a transcript that is short or out of order is refused with
one line naming it. (The end-to-end ``paczero replay`` of a trainer's run is in tests/test_trainer.py.)"""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from paczero.build import build, build_model
from paczero.checkpoint import WEIGHTS_FILE
from paczero.errors import PaczeroError
from paczero.ledger import transcript_step
from paczero.replay import read_steps, replay_run
from paczero.rundir import RunDir
from paczero.secret import SecretState
from paczero.step import learning_rate, zo_step


def _tensors(folder) -> dict[str, torch.Tensor]:
    return load_file(str(folder / WEIGHTS_FILE))


def _equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _trained_run(cfg, path, *, mechanism_secret: SecretState) -> tuple[RunDir, dict[str, torch.Tensor]]:
    """Train ``cfg`` for its steps, publishing each step's transcript line into a run folder; the trained weights."""
    c = build(cfg, secret=mechanism_secret)
    run = RunDir.create(path)
    run.write_config(json.dumps(cfg.to_dict()))
    log, inp, T = run.transcript(), c.step_input(), cfg.train
    for t in range(T.steps):
        lr = learning_rate(step=t, steps=T.steps, lr=T.lr, lr_end=T.lr_end, schedule=T.lr_schedule)
        result = zo_step(inp, step=t, lr=lr)
        log.write(t, transcript_step(step=t, lr=result.lr, seeds=result.seeds, releases=result.releases).line())
    return run, {n: p.detach().clone() for n, p in c.loaded.trainable}


@pytest.mark.parametrize("mechanism", ["zpl", "mi"])
def test_the_transcript_rebuilds_the_trained_weights_bit_for_bit(tiny_config, tmp_path, mechanism):
    cfg = tiny_config(f"privacy.mechanism={mechanism}", "privacy.budget=0.5", "data.n_pool=16", "zo.directions=2",
                      "train.steps=3", "train.weight_decay=0.1", "train.lr=0.01")
    run, trained = _trained_run(cfg, tmp_path / "run", mechanism_secret=SecretState.fresh(cfg.privacy.n_subsets))
    replay_run(run.path, tmp_path / "rebuilt", config=cfg)
    assert _equal(_tensors(tmp_path / "rebuilt"), trained)

    replay_run(run.path, tmp_path / "none", config=cfg, upto=0)
    theta0 = {n: p.detach() for n, p in build_model(cfg).trainable}
    assert _equal(_tensors(tmp_path / "none"), theta0)
    replay_run(run.path, tmp_path / "two", config=cfg, upto=2)
    two = _tensors(tmp_path / "two")
    assert not _equal(two, theta0) and not _equal(two, trained)


def test_a_short_or_reordered_transcript_is_refused(tiny_config, tmp_path):
    cfg = tiny_config("data.n_pool=16", "train.steps=3")
    run, _ = _trained_run(cfg, tmp_path / "run", mechanism_secret=SecretState.fresh(cfg.privacy.n_subsets))
    with pytest.raises(PaczeroError) as exc:
        read_steps(run, upto=4)
    assert str(exc.value) == f"{run.transcript_path} holds 3 steps; the checkpoint needs 4"
    assert [s.step for s in read_steps(run, upto=2)] == [0, 1]

    lines = run.transcript_path.read_bytes().splitlines(keepends=True)
    run.transcript_path.write_bytes(lines[1] + lines[0] + lines[2])
    with pytest.raises(PaczeroError) as exc:
        replay_run(run.path, tmp_path / "bad", config=cfg)
    assert str(exc.value).startswith(f"{run.transcript_path}: line 1 holds step 1; expected step 0")
    assert "\n" not in str(exc.value) and not (tmp_path / "bad").exists()
