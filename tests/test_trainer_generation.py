"""End-to-end generation runs: the tiny SQuAD config through the CLI, custom JSONL tasks of both kinds."""

from __future__ import annotations

import json

import pytest

from conftest import TINY_SQUAD_CONFIG
from paczero import ledger
from paczero.cli import main
from paczero.trainer import Trainer


def test_tiny_squad_run_from_the_command_line(data_dir, tmp_path, capsys):
    argv = ["train", "--config", str(TINY_SQUAD_CONFIG), "--data-dir", str(data_dir),
            f"run.output_dir={tmp_path / 'runs'}", "run.name=squad"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "test f1 before training" in out and "test f1 after training" in out
    run = tmp_path / "runs" / "squad"
    metrics = json.loads((run / "metrics.json").read_text())
    for key in ("zero_shot_test", "test", "final_dev"):
        assert set(metrics[key]) == {"loss", "f1", "em"} and metrics[key]["loss"] == -metrics[key]["f1"]
    assert metrics["data"]["truncated"] == {"pool": 0, "dev": 0, "test": 0}
    assert len(ledger.read(run)) == metrics["steps_run"] == 4
    dev = [json.loads(line) for line in (run / "diagnostics.jsonl").read_text().splitlines()]
    dev = [d for d in dev if "dev_f1" in d]
    assert [d["step"] + 1 for d in dev] == [2, 4]
    best = max(dev, key=lambda d: d["dev_f1"])  # the first of equal maxima, as the trainer keeps it
    assert metrics["best_dev"]["step"] == best["step"] + 1 and metrics["best_dev"]["f1"] == best["dev_f1"]


def _write_jsonl(path, rows) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


@pytest.mark.parametrize("kind", ["classification", "generation"])
def test_custom_jsonl_task_runs(tiny_config, tmp_path, kind):
    words = ["good", "bad", "film", "plot", "very", "dull", "fine"]
    if kind == "classification":
        make = lambda i: {"text": f"{words[i % 7]} {words[(i * 3) % 7]}", "label": ["terrible", "great"][i % 2]}  # noqa: E731
        extra = []
    else:
        make = lambda i: {"prompt": f"Say {words[i % 7]}:", "answers": [words[(i + 1) % 7], "film"]}  # noqa: E731
        extra = ["data.kind=generation", "data.objective=lm", "data.max_new_tokens=4"]
    files = {name: _write_jsonl(tmp_path / f"{name}.jsonl", [make(i) for i in range(n)])
             for name, n in [("train", 40), ("test", 10)]}
    cfg = tiny_config("data.task=jsonl", f"data.kind={kind}", f"data.train_file={files['train']}",
                      f"data.test_file={files['test']}", "data.n_pool=24", "data.n_dev=8", "data.n_test=null",
                      "train.steps=2", "train.eval_every=1", *extra)
    metrics = Trainer(cfg).run()
    assert metrics["data"]["n_test"] == 10 and metrics["steps_run"] == 2
    assert set(metrics["test"]) == ({"loss", "accuracy"} if kind == "classification" else {"loss", "f1", "em"})


@pytest.mark.parametrize("loss", ["f1", "lm"])
def test_a_cached_prefix_gives_the_same_squad_run(tiny_squad_config, loss):
    """Top layer trained, the bottom two cached: the ledger, the diagnostics and the weights equal the uncached
    run's bit for bit, and every pool evaluation started from the cache."""
    from paczero.secret import SecretState

    secret = SecretState.fresh(8)
    base = (f"data.objective={loss}", "model.tiny.num_layers=3", "model.train_top_layers=1", "zo.eps=0.05",
            "train.steps=4", "train.eval_every=2")
    runs = {}
    for cached in ("false", "true"):
        runs[cached] = Trainer(tiny_squad_config(f"run.name=cache-{cached}", f"zo.cache_prefix={cached}", *base),
                               secret=secret)
        runs[cached].run()
    assert runs["true"].engine.cache_hits >= 4 and runs["false"].engine.cache_hits == 0
    uncached, cached = (runs[k].run_dir for k in ("false", "true"))
    for name in ("ledger.jsonl", "diagnostics.jsonl", "checkpoints/last/model.safetensors"):
        assert (uncached / name).read_bytes() == (cached / name).read_bytes(), name
    a, b = (json.loads((d / "metrics.json").read_text()) for d in (uncached, cached))
    assert a["test"] == b["test"] and a["best_dev"] == b["best_dev"]
    lines = (cached / "diagnostics.jsonl").read_text().splitlines()
    pool_losses = [json.loads(line).get("pool_loss") for line in lines]
    assert len(set(pool_losses) - {None}) > 1, "the pool loss never moved: the comparison is trivial"
