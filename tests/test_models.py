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


@pytest.mark.slow
@pytest.mark.parametrize("task", ["sst2", "squad"])
def test_compiled_layers_give_the_eager_results_to_rounding(tiny_config, tiny_squad_config, task):
    """``model.compile``: per-record losses within 1e-5 of the eager path's (fused kernels round differently), so
    estimates within 1e-5/ε; on the tiny model the greedy answers, hence −F1 and its estimates, are the same."""
    import numpy as np

    config = tiny_config if task == "sst2" else tiny_squad_config
    eager, compiled = (build(config(f"model.compile={c}", "zo.eps=1e-3")) for c in ("false", "true"))
    layer = compiled.engine.staged.layers[0]
    assert layer._compiled_call_impl is not None and eager.engine.staged.layers[0]._compiled_call_impl is None
    enc = eager.encoded["pool"]
    from torch._dynamo.utils import counters

    counters.clear()
    for direction in (3, 4):  # the second runs compiled code already built, for other shapes too
        g, losses = compiled.engine.estimates(compiled.objective, enc, direction=direction)
        g_eager, losses_eager = eager.engine.estimates(eager.objective, enc, direction=direction)
        if task == "sst2":
            np.testing.assert_allclose(losses, losses_eager, rtol=0, atol=1e-5)
            np.testing.assert_allclose(g, g_eager, rtol=0, atol=1e-5 / 1e-3)
        else:
            assert np.array_equal(g, g_eager) and np.array_equal(losses, losses_eager)
    assert counters["stats"]["unique_graphs"] >= 1  # the layers ran compiled graphs, not an eager fallback
    metrics = compiled.engine.evaluate(compiled.objective, compiled.encoded["dev"])
    metrics_eager = eager.engine.evaluate(eager.objective, eager.encoded["dev"])
    assert metrics.keys() == metrics_eager.keys()

    def flat(d, prefix=""):
        for key, value in d.items():
            if isinstance(value, dict):
                yield from flat(value, f"{prefix}{key}.")
            else:
                yield f"{prefix}{key}", value

    compiled_flat = dict(flat(metrics))
    for key, value in flat(metrics_eager):
        if isinstance(value, float):
            assert compiled_flat[key] == pytest.approx(value, rel=0, abs=1e-5), key
        else:  # counts, label names, confusion matrices: the same predictions give the same values
            assert compiled_flat[key] == value, key


def test_the_tiny_vocabulary_comes_from_public_text_only(tmp_path):
    """The tiny model's tokenizer is published with an export: a word that only the pool holds is not in it."""
    from conftest import TINY_CONFIG, write_sst2
    from paczero.build import build
    from paczero.settings import load_config

    data = write_sst2(tmp_path / "data")
    train = data / "sst2" / "train.tsv"
    head, *rows = train.read_text().splitlines()
    train.write_text("\n".join([head] + [f"{row} word{i}" for i, row in enumerate(rows)]) + "\n")  # one each
    c = build(load_config(TINY_CONFIG, [f"data.data_dir={data}"]))
    vocab = set(c.loaded.tokenizer.get_vocab())
    public = {w for t in c.task.texts(c.split.dev + c.split.test) for w in t.split()}
    pool = {w for t in c.task.texts(c.split.pool) for w in t.split()}
    assert public <= vocab and len(pool - public) == len(c.split.pool) and not (pool - public) & vocab


def test_a_model_name_that_is_nowhere_fails_at_once_offline_with_a_suggestion(tiny_config, monkeypatch):
    """Hub unreachable: only the local cache is asked (no network lookup, no retries) and the close packaged name
    is suggested."""
    import socket

    import paczero.models
    from paczero.errors import PaczeroError
    from paczero.models import load_model

    lookups: list[str] = []
    monkeypatch.setattr(paczero.models, "hub_reachable", lambda: False)
    monkeypatch.setattr(socket, "getaddrinfo", lambda host, *a, **k: lookups.append(host) or [])
    monkeypatch.setenv("HF_HOME", str(tiny_config().run.output_dir))  # an empty cache
    for name, hint in [("smollm3", "; did you mean smollm2?"), ("SmolLM2", "; did you mean smollm2?"),
                       ("nobody/nothing-like-it", "")]:
        cfg = tiny_config(f"model.name={name}").model
        with pytest.raises(PaczeroError) as info:
            load_model(cfg, seed=0)
        assert str(info.value) == (f"config: model.name={name!r} is not a local folder, a packaged name (smollm2, "
                                   f"tiny) or a model in the Hugging Face cache, and the hub is unreachable{hint}")
    assert lookups == []


def test_the_hub_counts_as_unreachable_offline_without_asking_it(monkeypatch):
    import socket

    from paczero.hub import hub_reachable

    lookups: list[str] = []
    monkeypatch.setattr(socket, "getaddrinfo", lambda host, *a, **k: lookups.append(host) or [])
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert hub_reachable() is False and lookups == []
