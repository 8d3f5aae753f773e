"""``paczero export`` and ``paczero verify``: plain transformers/peft folders with a privacy card, built from the
public side only; a verification anyone can run, and a stricter one for whoever holds the pool."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from paczero.build import build
from paczero.checkpoint import load_weights
from paczero.cli import main
from paczero.mechanisms import registry
from paczero.rundir import RunDir
from paczero.secret import SecretState
from paczero.trainer import Trainer

COMMON = ["train.steps=6", "train.eval_every=3", "privacy.n_subsets=2"]
PROBE = [[1, 5, 7, 9, 11, 3, 4], [1, 8, 2, 6, 10, 12, 13]]
LOADER = """
import importlib.abc, json, sys
class NoPaczero(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "paczero":
            raise ImportError("paczero must not be needed to load an export")
sys.meta_path.insert(0, NoPaczero())
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer
folder, fmt = sys.argv[1], sys.argv[2]
if fmt == "adapter":
    from peft import PeftModel
    base = AutoModelForCausalLM.from_pretrained(folder + "/base")
    model = PeftModel.from_pretrained(base, folder)
else:
    model = AutoModelForCausalLM.from_pretrained(folder)
AutoTokenizer.from_pretrained(folder)
with torch.no_grad():
    logits = model(input_ids=torch.tensor(json.loads(sys.argv[3]))).logits
print(json.dumps(logits.double().tolist()))
"""


def _train(cfg, secret=None) -> RunDir:
    trainer = Trainer(cfg, secret=secret)
    trainer.run()
    return trainer.run_dir


def _paczero_logits(cfg, checkpoint: Path) -> np.ndarray:
    c = build(cfg)
    load_weights(c.loaded, checkpoint)
    with torch.no_grad():
        return c.loaded.model(input_ids=torch.tensor(PROBE)).logits.double().numpy()


def _fresh_interpreter_logits(folder: Path, fmt: str) -> np.ndarray:
    out = subprocess.run([sys.executable, "-c", LOADER, str(folder), fmt, json.dumps(PROBE)], capture_output=True,
                         text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    return np.array(json.loads(out.stdout))


@pytest.mark.slow
@pytest.mark.parametrize("extra, fmt", [
    ((), "full"),
    (("model.tiny.num_layers=3", "model.train_top_layers=1", "zo.cache_prefix=true"), "full"),
    (("model.tuning=lora", "train.lr=0.05"), "adapter"),
    (("model.tuning=lora", "train.lr=0.05"), "merged"),
], ids=["full", "top-layers", "lora", "lora-merged"])
def test_an_export_loads_with_plain_transformers_and_gives_paczeros_logits(tiny_config, tmp_path, extra, fmt):
    cfg = tiny_config("run.name=r", *COMMON, *extra)
    run = _train(cfg)
    args = ["export", str(run.path), "--out", str(tmp_path / "export"), "--data-dir", str(cfg.data.data_dir)] + (
        ["--merge-lora"] if fmt == "merged" else [])
    assert main(args) == 0
    export = tmp_path / "export"
    assert json.loads((export / "paczero" / "export.json").read_text())["format"] == fmt
    ours = _paczero_logits(cfg, run.checkpoint("best"))
    theirs = _fresh_interpreter_logits(export, fmt)
    # merged weights compute W·x + (B·A)·x as (W + B·A)·x: the same to rounding, not bit for bit
    np.testing.assert_allclose(theirs, ours, rtol=0, atol=1e-5 if fmt == "merged" else 0)
    assert not any("private" in str(p) for p in export.rglob("*"))


def test_the_card_parses_and_holds_the_public_numbers_only(tiny_config, data_dir, tmp_path):
    run = _train(tiny_config("run.name=mi", *COMMON, "privacy.mechanism=mi", "privacy.budget=0.2"))
    assert main(["export", str(run.path), "--out", str(tmp_path / "export"), "--data-dir", str(data_dir)]) == 0
    text = (tmp_path / "export" / "README.md").read_text()
    head, body = text.split("---\n")[1], text.split("---\n", 2)[2]
    meta = yaml.safe_load(head)
    metrics = run.read_metrics()
    assert meta["library_name"] == "transformers" and meta["datasets"] == ["stanfordnlp/sst2"]
    results = {m["type"]: m["value"] for m in meta["model-index"][0]["results"][0]["metrics"]}
    assert results == {k: metrics["test"][k] for k in ("loss", "accuracy", "macro_f1")}
    privacy = metrics["privacy"]
    assert f"{privacy['mia_posterior_bound']:.4g}" in body and "0.2 nats" in body
    assert "membership of each pool record" in body and "the existence and size of the pool" in body.lower()
    owner = json.loads(run.privacy_path.read_text())
    for private in ("unanimity", "charged", "true sign", f"{owner['release_kinds']}"):
        assert private not in text


def test_two_zpl_runs_differing_only_in_the_secret_export_identical_folders(tiny_config, data_dir, tmp_path,
                                                                           monkeypatch):
    folders = []
    for where, j in (("a", 0), ("b", 1)):
        (tmp_path / where).mkdir()
        monkeypatch.chdir(tmp_path / where)
        run = _train(tiny_config("run.name=r", "run.output_dir=runs", *COMMON),
                     secret=SecretState(key=bytes([j]) * 32, j_star=j))
        assert main(["export", str(run.path), "--out", "export", "--data-dir", str(data_dir)]) == 0
        folders.append({str(p.relative_to(tmp_path / where / "export")): p.read_bytes()
                        for p in (tmp_path / where / "export").rglob("*") if p.is_file()})
    assert folders[0] == folders[1]


def test_export_refuses_an_unfinished_or_inconsistent_run(tiny_config, data_dir, tmp_path, capsys):
    unfinished = Trainer(tiny_config("run.name=u", *COMMON))
    unfinished.setup()
    assert main(["export", str(unfinished.run_dir.path), "--out", str(tmp_path / "x")]) == 2
    assert "has not finished" in capsys.readouterr().err
    run = _train(tiny_config("run.name=r", *COMMON))
    metrics = run.read_metrics()
    metrics["privacy"]["mia_posterior_bound"] = 0.4
    run.write_metrics(metrics)
    assert main(["export", str(run.path), "--out", str(tmp_path / "y"), "--data-dir", str(data_dir)]) == 1
    err = capsys.readouterr().err
    assert f"{run.metrics_path}" in err and "NOT verified" in err
    assert not (tmp_path / "y").exists()
    assert main(["export", str(run.path), "--out", str(tmp_path / "z"), "--merge-lora"]) == 2
    assert "LoRA" in capsys.readouterr().err
