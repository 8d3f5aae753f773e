"""Model loading: a saved model loads from its folder, and with an accelerate device_map gives the same run."""

from __future__ import annotations

import pytest

from paczero.errors import PaczeroError
from paczero.build import build
from paczero.trainer import Trainer


@pytest.fixture
def saved_tiny(tiny_config, tmp_path):
    trainer = build(tiny_config())
    folder = tmp_path / "tiny-model"
    trainer.loaded.model.save_pretrained(folder)
    trainer.loaded.tokenizer.save_pretrained(folder)
    return folder


def test_device_map_loading_gives_the_same_run(tiny_config, saved_tiny, monkeypatch):
    from transformers import AutoModelForCausalLM

    seen = []
    real = AutoModelForCausalLM.from_pretrained
    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained",
                        lambda *a, **kw: seen.append(kw.get("device_map")) or real(*a, **kw))
    common = [f"model.name={saved_tiny}", "train.steps=4", "train.eval_every=2", "train.eval_before=false"]
    plain = Trainer(tiny_config("run.name=plain", *common))
    plain.run()
    mapped = Trainer(tiny_config("run.name=mapped", "model.device_map=auto", *common))
    mapped.run()
    assert seen == [None, "auto"]  # the second load went through accelerate's placement
    assert plain.run_dir.transcript_path.read_bytes() == mapped.run_dir.transcript_path.read_bytes()
    assert ((plain.run_dir.checkpoint("last") / "model.safetensors").read_bytes()
            == (mapped.run_dir.checkpoint("last") / "model.safetensors").read_bytes())


def test_device_map_is_refused_for_the_built_in_tiny_model(tiny_config):
    with pytest.raises(PaczeroError, match="model.device_map"):
        tiny_config("model.device_map=auto")
