"""Checkpoints: the trainable tensors come back bit for bit (full and LoRA), a replacement is atomic (a failed write
or a crash between the renames leaves the old checkpoint), the files are public (0644), and a checkpoint that does
not fit the model is refused."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from paczero import checkpoint
from paczero.build import build_model
from paczero.checkpoint import PROGRESS_FILE, WEIGHTS_FILE, load_weights, recover, save_weights
from paczero.errors import PaczeroError
from paczero.fileio import read_json

TEXTS = ["the film is good", "a dull story", " terrible", " great"]


def _model(cfg):
    return build_model(cfg, texts=TEXTS)


@torch.no_grad()
def _scramble(loaded, seed: int) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    for _, p in loaded.trainable:
        p.add_(torch.randn(p.shape, generator=gen, dtype=p.dtype))
    return [p.detach().clone() for _, p in loaded.trainable]


def _same(loaded, tensors) -> bool:
    return all(torch.equal(p, t) for (_, p), t in zip(loaded.trainable, tensors, strict=True))


@pytest.mark.parametrize("tuning", ["full", "lora"])
def test_the_trainable_tensors_come_back_bit_for_bit(tiny_config, tmp_path, tuning):
    cfg = tiny_config(f"model.tuning={tuning}")
    lora = tuning == "lora"
    trained = _model(cfg)
    saved = _scramble(trained, 1)
    save_weights(trained, tmp_path / "ck", progress={"step": 7})
    fresh = _model(cfg)
    assert not _same(fresh, saved)
    load_weights(fresh, tmp_path / "ck")
    assert _same(fresh, saved)
    assert read_json(tmp_path / "ck" / PROGRESS_FILE) == {"step": 7}
    if not lora:
        on_disk = load_file(str(tmp_path / "ck" / WEIGHTS_FILE))
        assert list(on_disk) == sorted(on_disk) and set(on_disk) == {n for n, _ in trained.trainable}
    for f in (tmp_path / "ck").iterdir():
        assert stat.S_IMODE(f.stat().st_mode) == 0o644, f.name


def test_a_failed_write_leaves_the_old_checkpoint(tiny_config, tmp_path, monkeypatch):
    loaded = _model(tiny_config())
    old = _scramble(loaded, 1)
    save_weights(loaded, tmp_path / "ck", progress={"step": 1})
    _scramble(loaded, 2)

    def crash(tensors, path):
        Path(path).write_bytes(b"half a fi")
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint, "save_file", crash)
    with pytest.raises(OSError, match="disk full"):
        save_weights(loaded, tmp_path / "ck", progress={"step": 2})
    monkeypatch.undo()
    fresh = _model(tiny_config())
    load_weights(fresh, tmp_path / "ck")
    assert _same(fresh, old) and read_json(tmp_path / "ck" / PROGRESS_FILE) == {"step": 1}
    save_weights(loaded, tmp_path / "ck", progress={"step": 2})
    assert sorted(os.listdir(tmp_path)) == ["ck"]  # the next save clears what the failed one left


def test_a_crash_between_the_renames_is_recovered(tiny_config, tmp_path, monkeypatch):
    loaded = _model(tiny_config())
    old = _scramble(loaded, 1)
    save_weights(loaded, tmp_path / "ck", progress={"step": 1})
    _scramble(loaded, 2)
    rename = Path.rename

    def crash_on_the_second(self, target):
        if self.name == ".ck.tmp":
            raise OSError("power cut")
        return rename(self, target)

    monkeypatch.setattr(Path, "rename", crash_on_the_second)
    with pytest.raises(OSError, match="power cut"):
        save_weights(loaded, tmp_path / "ck", progress={"step": 2})
    monkeypatch.undo()
    assert not (tmp_path / "ck").exists() and (tmp_path / ".ck.old").is_dir()
    recover(tmp_path / "ck")
    fresh = _model(tiny_config())
    load_weights(fresh, tmp_path / "ck")
    assert _same(fresh, old) and read_json(tmp_path / "ck" / PROGRESS_FILE) == {"step": 1}
    recover(tmp_path / "ck")  # nothing to do: the checkpoint is in place
    assert (tmp_path / "ck" / WEIGHTS_FILE).exists() and not (tmp_path / ".ck.old").exists()


@pytest.mark.parametrize("change", ["missing", "extra", "shape"])
def test_a_checkpoint_that_does_not_fit_the_model_is_refused(tiny_config, tmp_path, change):
    loaded = _model(tiny_config())
    save_weights(loaded, tmp_path / "ck")
    state = load_file(str(tmp_path / "ck" / WEIGHTS_FILE))
    name = loaded.trainable[-1][0]
    if change == "missing":
        del state[name]
    elif change == "extra":
        state["model.layers.9.mlp.up_proj.weight"] = torch.zeros(2, 2)
    else:
        state[name] = torch.ones(1)
    save_file(state, str(tmp_path / "ck" / WEIGHTS_FILE))
    with pytest.raises(PaczeroError, match="does not fit this model's trainable tensors"):
        load_weights(loaded, tmp_path / "ck")
