"""``model.tuning: set``: each part of ``model.trainable`` selects exactly its tensors, the label words' head rows
untie the head without touching the input side, and every set trains, exports and verifies like full tuning."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from paczero.build import build, build_model
from paczero.checkpoint import load_weights
from paczero.cli import main
from paczero.models import publishable
from paczero.trainer import Trainer
from test_export import LOADER, PROBE

LAYERS = ["model.tiny.num_layers=3"]
SET = ["model.tuning=set", *LAYERS]


def _names(cfg_maker, *parts: str) -> dict[str, tuple[int, ...]]:
    loaded = build_model(cfg_maker(*SET, *parts))
    return {n: tuple(p.shape) for n, p in loaded.trainable}


def _plain(cfg_maker, *extra: str) -> dict[str, tuple[int, ...]]:
    """Every parameter of the model with full tuning (the names a set picks from)."""
    return {n: tuple(p.shape) for n, p in build_model(cfg_maker(*LAYERS, *extra)).model.named_parameters()}


@pytest.mark.parametrize("part, extra, picks", [
    ("final_norm=true", (), lambda n: n == "model.norm.weight"),
    ("norms=1", (), lambda n: n.startswith("model.layers.2.") and "norm" in n),
    ("norms=2", (), lambda n: n.startswith(("model.layers.1.", "model.layers.2.")) and "norm" in n),
    ("biases=1", ("model.tiny.bias=true",), lambda n: n.startswith("model.layers.2.") and n.endswith(".bias")),
    ("layers=1", (), lambda n: n.startswith("model.layers.2.")),
    ("pattern=mlp\\.down_proj", (), lambda n: "mlp.down_proj" in n),
], ids=["final-norm", "norms-1", "norms-2", "biases", "layers", "pattern"])
def test_each_part_selects_exactly_its_tensors(tiny_config, part, extra, picks):
    expected = {n: s for n, s in _plain(tiny_config, *extra).items() if picks(n)}
    assert expected
    assert _names(tiny_config, f"model.trainable.{part}", *extra) == expected


def test_lora_layers_adapt_the_top_layers_only(tiny_config):
    names = _names(tiny_config, "model.trainable.lora_layers=1", "model.lora.target_modules=[q_proj,v_proj]")
    assert len(names) == 4 and all(".layers.2.self_attn." in n and "lora_" in n for n in names)


def test_head_rows_are_a_c_by_h_tensor_and_a_set_is_the_union_of_its_parts(tiny_config):
    rows = _names(tiny_config, "model.trainable.head_rows=true")
    assert rows == {"lm_head.rows": (2, 32)}
    union = _names(tiny_config, "model.trainable.head_rows=true", "model.trainable.final_norm=true",
                   "model.trainable.norms=1")
    parts = [_names(tiny_config, p) for p in ("model.trainable.head_rows=true", "model.trainable.final_norm=true",
                                              "model.trainable.norms=1")]
    assert union == {k: v for p in parts for k, v in p.items()}


def test_head_rows_untie_the_head_and_leave_the_input_side_as_it_was(tiny_config):
    full = build_model(tiny_config(*LAYERS))
    rows = build_model(tiny_config(*SET, "model.trainable.head_rows=true"))
    ids = torch.tensor(PROBE)
    label_ids = sorted(c[0] for c in build(tiny_config(*LAYERS)).objective.candidates)
    others = [i for i in range(len(rows.tokenizer)) if i not in label_ids]
    with torch.no_grad():
        at_start, plain = rows.model(input_ids=ids).logits, full.model(input_ids=ids).logits
        assert torch.equal(at_start[..., others], plain[..., others])
        torch.testing.assert_close(at_start, plain, rtol=0, atol=1e-6)  # the label rows: a product of their own
        embedding = rows.model.get_input_embeddings().weight.clone()
        rows.trainable[0][1].add_(1.0)
        after = rows.model(input_ids=ids, output_hidden_states=True)
        before = full.model(input_ids=ids, output_hidden_states=True)
    assert torch.equal(rows.model.get_input_embeddings().weight, embedding)
    assert all(torch.equal(a, b) for a, b in zip(after.hidden_states, before.hidden_states))  # no cached input moves
    changed = (after.logits != before.logits).any(dim=(0, 1)).nonzero().flatten().tolist()
    assert changed == label_ids


SETS = {
    "head-rows": ["model.trainable.head_rows=true"],
    "head-rows+final-norm": ["model.trainable.head_rows=true", "model.trainable.final_norm=true"],
    "norms": ["model.trainable.norms=1", "model.trainable.final_norm=true"],
    "biases": ["model.trainable.biases=1", "model.tiny.bias=true"],
    "lora+head-rows": ["model.trainable.lora_layers=1", "model.trainable.head_rows=true"],
    "layers": ["model.trainable.layers=1"],
    "pattern": ["model.trainable.pattern=layers\\.2\\.mlp"],
    "head-rows, no update on disagreement": ["model.trainable.head_rows=true", "privacy.zpl_disagreement=skip"],
}
"""A set of each kind (all above the first layer, so that the bottom is cached)."""
QUICK = ("head-rows+final-norm", "head-rows, no update on disagreement")
"""The sets every quick test run covers; the others are marked slow."""


def _sets(*names: str):
    return [pytest.param(n, marks=() if n in QUICK else pytest.mark.slow) for n in (names or SETS)]


def _train(cfg, secret=None) -> Path:
    trainer = Trainer(cfg, secret=secret)
    trainer.run()
    return trainer.run_dir.path


@pytest.mark.slow
@pytest.mark.parametrize("name", SETS)
def test_an_export_of_every_set_loads_in_plain_transformers_with_paczeros_logits(tiny_config, tmp_path, name):
    cfg = tiny_config(*SET, *SETS[name], "zo.cache_prefix=true", "train.steps=6", "train.eval_every=3",
                      "privacy.n_subsets=2", "train.lr=0.05", "run.name=r")
    run = _train(cfg)
    export = tmp_path / "export"
    data = ["--data-dir", str(cfg.data.data_dir)]  # the tiny model's vocabulary comes from the public texts
    assert main(["export", str(run), "--out", str(export), *data]) == 0
    assert main(["verify", str(export), *data]) == 0
    loaded = build_model(cfg)
    load_weights(loaded, run / "checkpoints" / "best")
    with torch.no_grad():
        ours = loaded.model(input_ids=torch.tensor(PROBE)).logits.double().numpy()
        base = build_model(tiny_config(*LAYERS, *SETS[name][1:2] if name == "biases" else ()))
        assert not np.array_equal(ours, base.model(input_ids=torch.tensor(PROBE)).logits.double().numpy())
    out = subprocess.run([sys.executable, "-c", LOADER, str(export), "full", json.dumps(PROBE)], capture_output=True,
                         text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    # A merged adapter computes (W + B·A)·x, an untied head one product over the whole vocabulary: equal to rounding.
    np.testing.assert_allclose(np.array(json.loads(out.stdout)), ours, rtol=0, atol=1e-5)
    config = json.loads((export / "config.json").read_text())
    assert config["tie_word_embeddings"] is (not any("head_rows" in p for p in SETS[name]))


def test_publishable_model_writes_the_trained_rows_into_an_untied_head(tiny_config):
    loaded = build_model(tiny_config(*SET, "model.trainable.head_rows=true"))
    with torch.no_grad():
        loaded.trainable[0][1].mul_(3.0)
    plain = publishable(loaded)
    head = plain.get_output_embeddings()
    assert type(head) is torch.nn.Linear and plain.config.tie_word_embeddings is False
    rows = loaded.model.get_output_embeddings()
    assert torch.equal(head.weight[rows.ids], rows.rows)
    others = torch.ones(head.weight.shape[0], dtype=torch.bool)
    others[rows.ids] = False
    assert torch.equal(head.weight[others], loaded.model.get_input_embeddings().weight[others])
    assert head.weight.data_ptr() != plain.get_input_embeddings().weight.data_ptr()


@pytest.mark.parametrize("name", _sets())
def test_every_set_keeps_the_privacy_invariants(tiny_config, data_dir, tmp_path, monkeypatch, name):
    """ZPL on the set: two runs that differ only in the secret (J* and the key) publish byte-identical files; a run
    killed mid-checkpoint and resumed ends as the uninterrupted one; the transcript alone replays to the weights;
    ``paczero verify`` passes, from the public files and with the pool."""
    from test_resume import _crash_at_third_checkpoint, _hashes

    from paczero.rundir import RunDir
    from paczero.secret import SecretState

    cfg = tiny_config(*SET, *SETS[name], "zo.cache_prefix=true", "train.steps=8", "train.eval_every=4",
                      "train.checkpoint_every=2", "privacy.n_subsets=4", "train.lr=0.05", "run.name=r",
                      "run.output_dir=runs")
    secrets = [SecretState(key=bytes(32), j_star=0), SecretState(key=bytes(range(32)), j_star=3)]
    public = []
    for where, secret in zip("ab", secrets):
        (tmp_path / where).mkdir()
        monkeypatch.chdir(tmp_path / where)
        run = RunDir(_train(cfg, secret))
        public.append({str(p): (run.path / p).read_bytes() for p in run.public_files()})
    assert public[0] == public[1] and "transcript.jsonl" in public[0]
    (tmp_path / "c").mkdir()
    monkeypatch.chdir(tmp_path / "c")
    crashed = _crash_at_third_checkpoint(cfg, monkeypatch)
    assert main(["train", "--resume", str(crashed.run_dir.path)]) == 0
    assert _hashes(tmp_path / "c" / "runs" / "r") == _hashes(tmp_path / "a" / "runs" / "r")
    monkeypatch.chdir(tmp_path / "a")
    assert main(["replay", "runs/r", "--out", "rebuilt"]) == 0
    assert (Path("rebuilt") / "model.safetensors").read_bytes() == public[0]["checkpoints/last/model.safetensors"]
    assert main(["verify", "runs/r", "--data-dir", str(data_dir)]) == 0
    values = {d["value"] for line in public[0]["transcript.jsonl"].splitlines()
              for d in json.loads(line)["directions"]}
    assert values <= {-1.0, 0.0, 1.0} and (0.0 in values) == ("skip" in SETS[name][-1])
