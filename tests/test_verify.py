"""``paczero verify``: a forger's test set. Every way to change what a user of an export loads or reads — the weights
(a shadow file, another dtype, a missing, extra or renamed tensor), ``config.json``, the generation config, the
tokenizer, the card, the statement, the public record — makes ``verify`` exit 1 with one line naming the file; an
honest export verifies, here and after being copied elsewhere; ``export`` refuses a tampered run folder."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from conftest import TINY_CONFIG
from paczero.cli import main
from paczero.settings import load_config
from paczero.trainer import Trainer

COMMON = ["train.steps=6", "train.eval_every=3", "privacy.n_subsets=2"]
DPSGD_SET = ["model.tuning=set", "model.trainable.head_rows=true", "model.trainable.final_norm=true",
             "zo.cache_prefix=true"]


def _run(out: Path, data_dir: Path, name: str, *extra: str) -> Path:
    cfg = load_config(TINY_CONFIG, [f"data.data_dir={data_dir}", f"run.output_dir={out}", f"run.name={name}",
                                    *COMMON, *extra])
    trainer = Trainer(cfg)
    trainer.run()
    return trainer.run_dir.path


@pytest.fixture(scope="module")
def honest(data_dir, tmp_path_factory):
    """Finished tiny runs of ZPL, MI, DPZero, a LoRA ZPL run and DP-SGD on a trainable set, each with its export."""
    out = tmp_path_factory.mktemp("runs")
    runs = {}
    for name, extra in {"zpl": [], "mi": ["privacy.mechanism=mi", "privacy.budget=0.3"],
                        "dpzero": ["privacy.mechanism=dpzero", "privacy.epsilon=2", "privacy.sample_rate=0.5"],
                        "lora": ["model.tuning=lora", "train.lr=0.05"],
                        "dpsgd": [*DPSGD_SET, "privacy.mechanism=dpsgd", "privacy.epsilon=2",
                                  "privacy.sample_rate=0.5", "train.lr=0.05"]}.items():
        run = _run(out, data_dir, name, *extra)
        assert main(["export", str(run), "--out", str(out / f"{name}-export"), "--data-dir", str(data_dir)]) == 0
        runs[name] = (run, out / f"{name}-export")
    return runs


@pytest.fixture(autouse=True)
def tiny_vocabulary(monkeypatch, data_dir):
    """The tiny test model builds its vocabulary from the public dev and test texts: where to find them."""
    monkeypatch.setenv("PACZERO_DATA_DIR", str(data_dir))


def _copy(src: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "forged"
    shutil.copytree(src, copy)
    return copy


def _refused(capsys, argv: list[str], file: str) -> str:
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("paczero: error: NOT verified") and err.count("\n") == 1 and "Traceback" not in err
    assert file in err, err
    return err


@pytest.mark.parametrize("name", ["zpl", "mi", "dpzero", "lora"])
def test_honest_runs_and_exports_verify_here_and_after_a_copy(honest, data_dir, tmp_path, capsys, name):
    run, export = honest[name]
    moved = _copy(export, tmp_path)
    for target in (run, export, moved):
        assert main(["verify", str(target)]) == 0
        out = capsys.readouterr().out.splitlines()
        assert out[0].startswith(f"verified {target}: ") and "published files are exactly" in out[0]
        assert "not checked without the data" in out[1]
    assert main(["verify", str(moved), "--data-dir", str(data_dir)]) == 0
    out = capsys.readouterr().out
    assert "dev and test figures recomputed from the data" in out
    assert ("follows the" in out) == (name in ("zpl", "mi", "lora"))


def test_an_honest_lora_export_verifies_in_processes_of_any_hash_seed(honest):
    """peft keeps ``target_modules`` as a set and writes it in the process's hash order: with PYTHONHASHSEED 2 and 3
    two processes write ``["v_proj", "q_proj"]`` and ``["q_proj", "v_proj"]``. The published adapter config is
    canonical (sorted), so ``verify`` in a fresh process of either seed rebuilds the same bytes."""
    run, export = honest["lora"]
    for seed in ("2", "3"):
        proc = subprocess.run([sys.executable, "-m", "paczero", "verify", str(export)], capture_output=True,
                              text=True, env={**os.environ, "PYTHONHASHSEED": seed}, timeout=600)
        assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads((export / "adapter_config.json").read_text())["target_modules"] == ["q_proj", "v_proj"]


def _edit_tensors(path: Path, edit) -> None:
    state = load_file(str(path))
    edit(state)
    save_file(state, str(path), metadata={"format": "pt"})


def _first(state: dict) -> str:
    return sorted(state)[0]


def _shadow(folder: Path) -> None:
    """Tampered weights beside a second weights file holding the genuine ones."""
    shutil.copyfile(folder / "model.safetensors", folder / "model-genuine.safetensors")
    _edit_tensors(folder / "model.safetensors", lambda s: s[_first(s)].add_(1.0))


def _json_edit(path: Path, edit) -> None:
    d = json.loads(path.read_text())
    edit(d)
    path.write_text(json.dumps(d, indent=2, sort_keys=True) + "\n")


def _card_and_metrics(folder: Path, metrics_edit) -> None:
    """A consistent forgery: ``metrics.json`` edited, and the card paczero writes for it."""
    from paczero.card import card

    _json_edit(folder / "paczero" / "metrics.json", metrics_edit)
    metrics = json.loads((folder / "paczero" / "metrics.json").read_text())
    info = json.loads((folder / "paczero" / "export.json").read_text())
    (folder / "README.md").write_text(card(metrics, kind="classification", adapter=False, checkpoint=info["checkpoint"],
                                           step=info["step"], verify_command="paczero verify ."))


def _bound(folder: Path) -> None:
    _card_and_metrics(folder, lambda d: d["privacy"].update(mia_posterior_bound=0.123))


def _swap_tokens(path: Path) -> None:
    d = json.loads(path.read_text())
    vocab = d["model"]["vocab"]
    a, b = sorted(vocab)[-2:]
    vocab[a], vocab[b] = vocab[b], vocab[a]
    path.write_text(json.dumps(d))


def _remote_code(folder: Path) -> None:
    (folder / "modeling_evil.py").write_text("import os\n")
    _json_edit(folder / "config.json", lambda d: d.update(auto_map={"AutoModelForCausalLM": "modeling_evil.Evil"}))


def _symlink(folder: Path) -> None:
    genuine = folder.parent / "genuine-config.json"
    shutil.copyfile(folder / "config.json", genuine)
    (folder / "config.json").unlink()
    (folder / "config.json").symlink_to(genuine)


def _transcript(folder: Path, edit) -> None:
    path = folder / "paczero" / "transcript.jsonl"
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    edit(lines)
    path.write_text("".join(json.dumps(x, sort_keys=True, separators=(",", ":")) + "\n" for x in lines))


FORGERIES = {
    # the 12 of the outside review
    "shadow weights": (_shadow, "model-genuine.safetensors"),
    "int8 weights": (lambda f: _edit_tensors(f / "model.safetensors",
                                             lambda s: s.update({k: v.to(torch.int8) for k, v in s.items()})),
                     "model.safetensors"),
    "float16 weights": (lambda f: _edit_tensors(f / "model.safetensors",
                                                lambda s: s.update({k: v.half() for k, v in s.items()})),
                        "model.safetensors"),
    "deleted tensor": (lambda f: _edit_tensors(f / "model.safetensors", lambda s: s.pop(_first(s))),
                       "model.safetensors"),
    "config.json": (lambda f: _json_edit(f / "config.json", lambda d: d.update(rms_norm_eps=1e-2)), "config.json"),
    "generation config": (lambda f: _json_edit(f / "generation_config.json",
                                               lambda d: d.update(do_sample=True, temperature=5.0)),
                          "generation_config.json"),
    "tokenizer vocabulary": (lambda f: _swap_tokens(f / "tokenizer.json"), "tokenizer.json"),
    "tokenizer config": (lambda f: _json_edit(f / "tokenizer_config.json",
                                              lambda d: d.update(chat_template="{{ 'pwned' }}")),
                         "tokenizer_config.json"),
    "model card": (lambda f: (f / "README.md").write_text((f / "README.md").read_text().replace(
        "a coin flip", "a sure thing")), "README.md"),
    "statement bound": (_bound, "metrics.json"),
    "statement settings": (lambda f: _json_edit(f / "paczero" / "metrics.json",
                                                lambda d: d["config"]["privacy"].update(n_subsets=128)),
                           "metrics.json"),
    # and more a forger could try
    "extra tensor": (lambda f: _edit_tensors(f / "model.safetensors",
                                             lambda s: s.update(backdoor=torch.zeros(3))), "model.safetensors"),
    "renamed tensor": (lambda f: _edit_tensors(f / "model.safetensors",
                                               lambda s: s.update(renamed=s.pop(_first(s)))), "model.safetensors"),
    "pickle weights": (lambda f: torch.save(load_file(str(f / "model.safetensors")), f / "pytorch_model.bin"),
                       "pytorch_model.bin"),
    "shard index": (lambda f: (f / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {}, "weight_map": {}})), "model.safetensors.index.json"),
    "remote code": (_remote_code, "modeling_evil.py"),
    "hidden file": (lambda f: (f / ".evil").write_text("x"), ".evil"),
    "linked file": (_symlink, "config.json"),
    "missing tokenizer": (lambda f: (f / "tokenizer.json").unlink(), "tokenizer.json"),
    "safetensors metadata": (lambda f: save_file(load_file(str(f / "model.safetensors")),
                                                 str(f / "model.safetensors"), metadata={"format": "tf"}),
                             "model.safetensors"),
    "run settings": (lambda f: (f / "paczero" / "run.yaml").write_text(
        (f / "paczero" / "run.yaml").read_text().replace("clip: 25.0", "clip: 26.0")), "metrics.json"),
    "membership": (lambda f: np.save(f / "paczero" / "membership.npy",
                                     ~np.load(f / "paczero" / "membership.npy")), "membership.npy"),
    "export step": (lambda f: _json_edit(f / "paczero" / "export.json", lambda d: d.update(step=6)), "export.json"),
    "best checkpoint": (lambda f: _json_edit(f / "paczero" / "metrics.json",
                                             lambda d: d["best_dev"].update(step=6)), "metrics.json"),
    "flipped release": (lambda f: _transcript(f, lambda ls: ls[1]["directions"][0].update(
        value=-ls[1]["directions"][0]["value"])), "model.safetensors"),
}


@pytest.mark.parametrize("forgery", list(FORGERIES))
def test_verify_refuses_every_forgery_naming_the_file(honest, tmp_path, capsys, forgery):
    tamper, file = FORGERIES[forgery]
    forged = _copy(honest["zpl"][1], tmp_path)
    tamper(forged)
    _refused(capsys, ["verify", str(forged)], file)


def test_forged_figures_are_shown_unchecked_without_the_data_and_refused_with_it(honest, data_dir, tmp_path,
                                                                                 capsys):
    forged = _copy(honest["zpl"][1], tmp_path)
    _card_and_metrics(forged, lambda d: d["test"].update(accuracy=0.99))
    assert main(["verify", str(forged)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "not checked without the data" in out[1] and "test accuracy 0.9900" in out[1]
    _refused(capsys, ["verify", str(forged), "--data-dir", str(data_dir)], "test published as")


def test_an_edited_dev_evaluation_is_refused_with_the_data(honest, data_dir, tmp_path, capsys):
    forged = _copy(honest["zpl"][1], tmp_path)
    path = forged / "paczero" / "evaluations.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    best = json.loads((forged / "paczero" / "metrics.json").read_text())["best_dev"]["step"]
    row = next(r for r in rows if r["step"] != best)
    row["accuracy"] = 0.0  # not the selected checkpoint's (selected on the loss): the selection still holds
    path.write_text("".join(json.dumps(r, sort_keys=True, separators=(",", ":")) + "\n" for r in rows))
    if row is rows[-1]:  # the final dev figures of metrics.json (and the card) follow it
        _card_and_metrics(forged, lambda d: d["final_dev"].update(accuracy=0.0))
    assert main(["verify", str(forged)]) == 0
    capsys.readouterr()
    _refused(capsys, ["verify", str(forged), "--data-dir", str(data_dir)], "dev evaluation of step")


@pytest.mark.parametrize("tamper, file", [
    (lambda f: _json_edit(f / "adapter_config.json", lambda d: d.update(lora_alpha=64)), "adapter_config.json"),
    (lambda f: _edit_tensors(f / "base" / "model.safetensors", lambda s: s[_first(s)].mul_(2.0)),
     "base/model.safetensors"),
    (lambda f: _json_edit(f / "base" / "config.json", lambda d: d.update(num_hidden_layers=1)), "base/config.json"),
], ids=["adapter config", "base weights", "base config"])
def test_verify_refuses_a_forged_adapter_or_base(honest, tmp_path, capsys, tamper, file):
    forged = _copy(honest["lora"][1], tmp_path)
    tamper(forged)
    _refused(capsys, ["verify", str(forged)], file)


@pytest.mark.parametrize("name", ["zpl", "mi"])
def test_the_pool_check_catches_a_flipped_release_the_weights_follow(honest, data_dir, tmp_path, capsys, name):
    """A transcript edited *and* weights rebuilt from it (a forger with paczero): the files agree with the
    transcript, but the holder of the pool finds the release the mechanism's rule does not give."""
    from paczero.build import build_model
    from paczero.verify import read_published, regenerate_run

    run = _copy(honest[name][0], tmp_path)
    kinds = [r["kind"] for s in map(json.loads, (run / "private" / "releases.jsonl").read_text().splitlines())
             for r in s["releases"]]
    step = next(t for t, kind in enumerate(kinds) if kind != "noisy")  # a noisy bit may be either sign
    path = run / "transcript.jsonl"
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    lines[step]["directions"][0]["value"] *= -1
    path.write_text("".join(json.dumps(x, sort_keys=True, separators=(",", ":")) + "\n" for x in lines))
    record = read_published(run).record
    shutil.rmtree(run / "checkpoints")
    regenerate_run(tmp_path / "rebuilt", record, build_model(record.cfg), show=False)
    shutil.copytree(tmp_path / "rebuilt" / "checkpoints", run / "checkpoints")
    assert main(["verify", str(run)]) == 0
    capsys.readouterr()
    _refused(capsys, ["verify", str(run), "--data-dir", str(data_dir)], f"step {step}, direction 0")


def test_export_refuses_a_run_folder_with_a_shadow_weights_file(honest, tmp_path, capsys):
    run = _copy(honest["zpl"][0], tmp_path)
    best = run / "checkpoints" / "best"
    shutil.copyfile(best / "model.safetensors", best / "genuine.safetensors")
    _edit_tensors(best / "model.safetensors", lambda s: s[_first(s)].add_(1.0))
    _refused(capsys, ["export", str(run), "--out", str(tmp_path / "out")], "genuine.safetensors")
    assert not (tmp_path / "out").exists()
    (best / "genuine.safetensors").unlink()
    _refused(capsys, ["export", str(run), "--out", str(tmp_path / "out")], "checkpoints/best/model.safetensors")
    assert not (tmp_path / "out").exists()


def test_dp_values_off_the_grid_are_refused_from_the_public_files(honest, tmp_path, capsys):
    forged = _copy(honest["dpzero"][1], tmp_path)
    _transcript(forged, lambda ls: ls[2]["directions"][0].update(value=ls[2]["directions"][0]["value"] + 1e-9))
    _refused(capsys, ["verify", str(forged)], "discrete Gaussian's grid")


def test_export_files_are_public(honest):
    export = honest["zpl"][1]
    modes = {p.relative_to(export): p.stat().st_mode & 0o777 for p in export.rglob("*")}
    assert {m for p, m in modes.items() if (export / p).is_file()} == {0o644}
    assert {m for p, m in modes.items() if (export / p).is_dir()} <= {0o755}


def test_a_dpsgd_run_and_export_verify_without_claiming_a_replay(honest, data_dir, tmp_path, capsys):
    run, export = honest["dpsgd"]
    card = (export / "README.md").read_text()
    assert "(2, 1e-05)-differential privacy" in card or "-differential privacy under replace-one" in card
    assert "There is no public transcript" in card and "transcript.jsonl" not in {p.name for p in export.rglob("*")}
    for target in (run, export, _copy(export, tmp_path)):
        assert main(["verify", str(target)]) == 0
        out = capsys.readouterr().out.splitlines()
        assert out[0].startswith(f"verified {target}: dpsgd publishes no transcript") and "no replay" in out[0]
        assert "-DP (replace-one)" in out[0] and "published files are exactly" in out[1]
        assert not any("transcript steps" in line for line in out)
    assert main(["verify", str(export), "--data-dir", str(data_dir)]) == 0
    assert "dev and test figures recomputed from the data with the published weights" in capsys.readouterr().out
    assert main(["replay", str(run), "--out", str(tmp_path / "rebuilt")]) == 2
    assert "publishes no transcript, so its weights cannot be rebuilt" in capsys.readouterr().err


def _trainable(folder: Path, edit) -> None:
    _edit_tensors(folder / "paczero" / "trainable.safetensors", edit)


DPSGD_FORGERIES = {
    "statement epsilon": (lambda f: _card_and_metrics(f, lambda d: d["privacy"].update(dp_epsilon=0.1)),
                          "metrics.json"),
    "statement settings": (lambda f: _json_edit(f / "paczero" / "metrics.json",
                                                lambda d: d["config"]["privacy"].update(epsilon=0.1)),
                           "metrics.json"),
    "run settings": (lambda f: (f / "paczero" / "run.yaml").write_text(
        (f / "paczero" / "run.yaml").read_text().replace("epsilon: 2.0", "epsilon: 0.5")), "metrics.json"),
    "frozen weight": (lambda f: _edit_tensors(f / "model.safetensors",
                                              lambda s: s["model.embed_tokens.weight"].add_(1.0)), "model.safetensors"),
    "trained tensor in the model only": (lambda f: _edit_tensors(f / "model.safetensors",
                                                                 lambda s: s["model.norm.weight"].mul_(3.0)),
                                         "model.safetensors"),
    "renamed trained tensor": (lambda f: _trainable(f, lambda s: s.update(renamed=s.pop("lm_head.rows"))),
                               "trainable.safetensors"),
    "float16 trained tensors": (lambda f: _trainable(f, lambda s: s.update({k: v.half() for k, v in s.items()})),
                                "trainable.safetensors"),
    "a transcript": (lambda f: (f / "paczero" / "transcript.jsonl").write_text(""), "transcript.jsonl"),
    "model card": (lambda f: (f / "README.md").write_text((f / "README.md").read_text().replace(
        "There is no public transcript", "Replay the transcript")), "README.md"),
}


@pytest.mark.parametrize("forgery", list(DPSGD_FORGERIES))
def test_verify_refuses_forgeries_of_a_dpsgd_export(honest, tmp_path, capsys, forgery):
    tamper, file = DPSGD_FORGERIES[forgery]
    forged = _copy(honest["dpsgd"][1], tmp_path)
    tamper(forged)
    _refused(capsys, ["verify", str(forged)], file)


def test_export_refuses_a_dpsgd_run_folder_with_a_forged_checkpoint(honest, tmp_path, capsys):
    run = _copy(honest["dpsgd"][0], tmp_path)
    (run / "transcript.jsonl").write_text("")
    _refused(capsys, ["export", str(run), "--out", str(tmp_path / "out")], "transcript.jsonl")
    (run / "transcript.jsonl").unlink()
    _edit_tensors(run / "checkpoints" / "best" / "model.safetensors", lambda s: s.update(backdoor=torch.zeros(3)))
    _refused(capsys, ["export", str(run), "--out", str(tmp_path / "out")], "checkpoints/best/model.safetensors")
    assert not (tmp_path / "out").exists()
