"""End-to-end generation runs: the tiny SQuAD config through the CLI, custom JSONL and ``data.task=hf`` tasks of
both kinds."""

from __future__ import annotations

import json

import pytest

from conftest import TINY_CONFIG, TINY_SQUAD_CONFIG
from paczero.cli import main
from paczero.rundir import RunDir
from paczero.trainer import Trainer

CLASSIFICATION = {"loss", "accuracy", "macro_f1", "per_class", "confusion_matrix"}


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
    assert metrics["data"]["truncated"] == {"dev": 0, "test": 0}
    assert len(RunDir(run).read_transcript()) == metrics["steps_run"] == 4
    dev = RunDir(run).read_evaluations()
    assert [d["step"] for d in dev] == [2, 4]
    best = max(dev, key=lambda d: d["f1"])  # the first of equal maxima, as the trainer keeps it
    assert metrics["best_dev"]["step"] == best["step"] and metrics["best_dev"]["f1"] == best["f1"]
    assert metrics["best_dev"]["selected_on"] == "f1"


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
    assert set(metrics["test"]) == (CLASSIFICATION if kind == "classification" else {"loss", "f1", "em"})


def test_hf_csv_with_two_text_fields_from_the_command_line(tmp_path, capsys):
    """The worked example of docs/tasks.md: premise and hypothesis columns, string labels, the prompt given on the
    command line (YAML cannot parse it)."""
    words = ["a man", "a dog", "the kids", "two women", "it", "nobody"]
    labels = ["contradiction", "entailment"]
    rows = [f"{words[i % 6]} sleeps,{words[(i * 5) % 6]} rests,{labels[i % 2]}" for i in range(30)]
    for name, part in [("train", rows[:24]), ("test", rows[24:])]:
        (tmp_path / f"{name}.csv").write_text("premise,hypothesis,label\n" + "\n".join(part) + "\n")
    argv = ["train", "--config", str(TINY_CONFIG), "data.task=hf", "data.kind=classification",
            f"data.train_file={tmp_path / 'train.csv'}", f"data.test_file={tmp_path / 'test.csv'}",
            "data.prompt={premise}. Question: {hypothesis}? Yes or no? Answer:", 'data.label_words=[" no"," yes"]',
            "data.label_names=[contradiction,entailment]", "data.n_pool=16", "data.n_dev=8", "data.n_test=null",
            "train.steps=2", "train.eval_every=1", f"run.output_dir={tmp_path / 'runs'}", "run.name=nli"]
    assert main(argv) == 0
    metrics = json.loads((tmp_path / "runs" / "nli" / "metrics.json").read_text())
    assert metrics["data"]["n_test"] == 6 and metrics["steps_run"] == 2 and set(metrics["test"]) == CLASSIFICATION


def test_hf_parquet_generation_runs(tiny_config, tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    import pyarrow as pa

    words = ["good", "bad", "film", "plot", "very", "dull", "fine"]
    questions = [f"Say {words[i % 7]}:" for i in range(30)]
    answers = [{"text": [words[(i + 1) % 7], "film"], "answer_start": [0, 0]} for i in range(30)]
    pq.write_table(pa.table({"question": questions, "answers": answers}), tmp_path / "qa.parquet")
    cfg = tiny_config("data.task=hf", "data.kind=generation", f"data.train_file={tmp_path / 'qa.parquet'}",
                      f"data.test_file={tmp_path / 'qa.parquet'}", "data.prompt=Q: {question}", "data.n_pool=16",
                      "data.n_dev=8", "data.n_test=6", "data.objective=lm", "data.max_new_tokens=4", "train.steps=2",
                      "train.eval_every=1")
    metrics = Trainer(cfg).run()
    assert metrics["data"]["n_test"] == 6 and metrics["steps_run"] == 2 and set(metrics["test"]) == {"loss", "f1", "em"}


@pytest.mark.parametrize("loss", ["f1", "lm"])
def test_a_cached_prefix_gives_the_same_squad_run(tiny_squad_config, loss):
    """Top layer trained, the bottom two cached: the transcript, the private logs and the weights equal the uncached
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
    assert runs["true"].c.engine.cache_hits >= 4 and runs["false"].c.engine.cache_hits == 0
    uncached, cached = (runs[k].run_dir for k in ("false", "true"))
    for name in ("transcript.jsonl", "private/releases.jsonl", "private/diagnostics.jsonl",
                 "checkpoints/last/model.safetensors"):
        assert (uncached.path / name).read_bytes() == (cached.path / name).read_bytes(), name
    a, b = uncached.read_metrics(), cached.read_metrics()
    assert a["test"] == b["test"] and a["best_dev"] == b["best_dev"]
    pool_losses = [d.get("pool_loss") for d in cached.read_private(cached.diagnostics_path)]
    assert len(set(pool_losses) - {None}) > 1, "the pool loss never moved: the comparison is trivial"
