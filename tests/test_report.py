"""``paczero report``: public figures by default, the owner's private ones only on request and marked as such; the
figures' data checked on the Figure objects; the summary names the selection metric."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import numpy as np
import pytest

from paczero.cli import main
from paczero.report import (
    accuracy_figure,
    load_run,
    markdown_summary,
    mi_figure,
    pool_loss_figure,
    tradeoff_figure,
    unanimity_figure,
    write_report,
)
from paczero.privacy.statement import Family, PrivacyStatement
from paczero.rundir import RunDir

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _fake_run(root: Path, name: str, *, mechanism: str, bound: float, test_acc: float, steps: int = 10,
              pac: bool = True, finished: bool = True, seed: int = 0) -> Path:
    """A run folder in the trainer's layout: public evaluations and metrics, private diagnostics and figures."""
    rng = np.random.default_rng(seed)
    run = RunDir.create(root / name)
    run.write_config(f"privacy:\n  mechanism: {mechanism}\n")
    spent = 0.0
    for step in range(steps):
        line = {"step": step, "pool_loss": float(1 - 0.01 * step), "nonfinite": 0}
        if pac:
            spent += 0.01 if mechanism == "mi" else 0.0
            line.update(unanimous=float(rng.random() < 0.4), mi_spent=spent)
        run.append_private(run.diagnostics_path, line)
        if (step + 1) % 5 == 0:
            run.evaluations().write(step // 5, json.dumps({"step": step + 1, "loss": 0.9 - 0.01 * step,
                                                            "accuracy": 0.5 + 0.01 * step}).encode())
    if finished:
        run.write_metrics({"test": {"accuracy": test_acc, "loss": 0.7}, "zero_shot_test": {"accuracy": 0.5, "loss": 0.8},
                           "best_dev": {"step": steps, "selected_on": "loss", "accuracy": 0.6, "loss": 0.6},
                           "steps_run": steps, "privacy": PrivacyStatement(
                               mechanism=mechanism, family=Family.PAC if pac else Family.NONE, private=bound < 1.0,
                               steps=steps, releases=steps, mia_posterior_bound=bound, summary="", derivation="",
                               mi_bound_nats=0.0, dp_epsilon_equivalent=0.0).to_dict()})
        run.write_private_json(run.privacy_path, {"unanimity_rate": 0.4, "achieved_mi_nats": spent,
                                                  "true_sign_rate": None, "release_kinds": {"coin": steps}})
    return run.path


@pytest.fixture
def runs(tmp_path):
    return [_fake_run(tmp_path, "zpl-a", mechanism="zpl", bound=0.5, test_acc=0.80, seed=1),
            _fake_run(tmp_path, "mi-b", mechanism="mi", bound=0.88, test_acc=0.84, seed=2),
            _fake_run(tmp_path, "dpzero-c", mechanism="dpzero", bound=0.88, test_acc=0.70, pac=False),
            _fake_run(tmp_path, "mezo-d", mechanism="mezo", bound=1.0, test_acc=0.90, pac=False)]


def _diagnostics(run: Path, key: str) -> tuple[list[int], list[float]]:
    rows = [json.loads(line) for line in (run / "private" / "diagnostics.jsonl").read_text().splitlines()]
    return [r["step"] + 1 for r in rows if key in r], [r[key] for r in rows if key in r]


def test_accuracy_figure_plots_every_run_dev_curve_and_test_points(runs):
    fig = accuracy_figure([load_run(r) for r in runs])
    (ax,) = fig.axes
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("step", "accuracy")
    curves = {line.get_label(): line for line in ax.get_lines() if not line.get_label().startswith("_")}
    assert set(curves) == {r.name for r in runs}
    for run in runs:
        rows = [json.loads(line) for line in (run / "evaluations.jsonl").read_text().splitlines()]
        np.testing.assert_array_equal(curves[run.name].get_xdata(), [r["step"] for r in rows])
        np.testing.assert_allclose(curves[run.name].get_ydata(), [r["accuracy"] for r in rows])
    stars = [line for line in ax.get_lines() if line.get_marker() == "*"]
    assert {tuple(s.get_ydata()) for s in stars} == {(0.5, a) for a in (0.80, 0.84, 0.70, 0.90)}


def test_public_loading_reads_nothing_private(runs):
    run = load_run(runs[1])
    assert run.diagnostics == [] and run.private is None
    (ax,) = mi_figure([run]).axes
    assert ax.get_lines() == []


def test_private_figures_are_titled_private_and_read_the_private_logs(runs):
    loaded = [load_run(r, private=True) for r in runs]
    for figure in (mi_figure, unanimity_figure, pool_loss_figure):
        (ax,) = figure(loaded).axes
        assert ax.get_title().startswith("PRIVATE")
    (ax,) = mi_figure(loaded).axes
    assert [line.get_label() for line in ax.get_lines()] == ["zpl-a", "mi-b"]
    np.testing.assert_allclose(ax.get_lines()[1].get_ydata(), _diagnostics(runs[1], "mi_spent")[1])
    (ax,) = unanimity_figure(loaded).axes
    flags = _diagnostics(runs[0], "unanimous")[1]
    np.testing.assert_allclose(ax.get_lines()[0].get_ydata(), [sum(flags[: t + 1]) / (t + 1) for t in range(10)])


def test_tradeoff_figure_places_each_run_at_its_bound_and_accuracy(runs):
    (ax,) = tradeoff_figure([load_run(r) for r in runs]).axes
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("MIA posterior bound", "test accuracy")
    points = sorted(tuple(c.get_offsets()[0]) for c in ax.collections)
    assert points == sorted([(0.5, 0.80), (0.88, 0.84), (0.88, 0.70), (1.0, 0.90)])
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["zpl", "mi", "dpzero", "mezo", "zero-shot (mean)"]


def test_the_summary_names_the_selection_metric_and_shows_both_dev_accuracies(runs):
    """A checkpoint selected on dev loss at step 5 (dev accuracy 0.54) while the best dev accuracy, 0.59, came at
    step 10: the table names the metric and gives both accuracies."""
    run = RunDir(runs[0])
    metrics = run.read_metrics()
    metrics["best_dev"] = {"step": 5, "selected_on": "loss", "accuracy": 0.54, "loss": 0.86}
    run.write_metrics(metrics)
    md = markdown_summary([load_run(runs[0])], ["accuracy"])
    header = md.splitlines()[2]
    assert "selected (dev metric, step)" in header and "dev acc of selected" in header and "best dev acc" in header
    row = [line for line in md.splitlines() if line.startswith("| zpl-a |")][0]
    assert "| loss, 5 | 0.5400 | 0.5900 (10) |" in row


def test_write_report_public_by_default_and_private_on_request(runs, tmp_path, capsys):
    unfinished = _fake_run(tmp_path, "running", mechanism="zpl", bound=0.5, test_acc=0.0, finished=False)
    written = write_report([*runs, unfinished], tmp_path / "out", show=False)
    assert set(written) == {"accuracy", "loss", "tradeoff", "report"}
    for name in ("accuracy", "loss", "tradeoff"):
        data = written[name].read_bytes()
        assert data.startswith(PNG_SIGNATURE) and len(data) > 5000
    md = written["report"].read_text()
    for run in [*runs, unfinished]:
        assert f"| {run.name} |" in md
    assert "![tradeoff](tradeoff.png)" in md and "Not finished (no metrics.json): running." in md
    assert not (tmp_path / "out" / "private").exists()
    private = write_report(runs, tmp_path / "owner", private=True, show=False)
    folder = tmp_path / "owner" / "private"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    for name in ("pool_loss", "unanimity", "mi", "private"):
        assert private[name].parent == folder and stat.S_IMODE(private[name].stat().st_mode) == 0o600
    assert private["private"].read_text().startswith("# PRIVATE")
    assert main(["report", str(runs[0]), str(runs[1]), "--out", str(tmp_path / "cli")]) == 0
    assert (tmp_path / "cli" / "report.md").is_file() and "private" not in capsys.readouterr().out.split("(")[0]
    assert main(["report", str(tmp_path / "nothing"), "--out", str(tmp_path / "x")]) == 2
    assert "not a run directory" in capsys.readouterr().err


def test_report_reads_a_real_tiny_run(tiny_config, tmp_path):
    from paczero.trainer import Trainer

    trainer = Trainer(tiny_config("run.name=real"))
    metrics = trainer.run()
    run = load_run(trainer.run_dir.path, private=True)
    assert run.mechanism == "zpl" and run.metrics["test"] == metrics["test"]
    (ax,) = unanimity_figure([run]).axes
    assert len(ax.get_lines()[0].get_ydata()) == trainer.cfg.train.steps
    assert ax.get_lines()[0].get_ydata()[-1] == pytest.approx(trainer.private_figures["unanimity_rate"])
    md = markdown_summary([run], ["accuracy"])
    zero, test = metrics["zero_shot_test"]["accuracy"], metrics["test"]["accuracy"]
    assert f"| real | zpl | 10 | {zero:.4f} | {test:.4f} |" in md


def test_a_report_inside_a_run_folder_goes_to_its_private_folder_or_nowhere(tiny_config, capsys):
    """Anything under a run folder outside ``private/`` is one of its public files: a report there (``--private``
    or not) is refused, naming the run's private folder; under ``private/`` it is the owner's."""
    from paczero.trainer import Trainer

    trainer = Trainer(tiny_config("run.name=inside", "train.steps=2", "train.eval_every=1"))
    trainer.run()
    run = trainer.run_dir
    for extra in ([], ["--private"]):
        assert main(["report", str(run.path), "--out", str(run.path / "x"), *extra]) == 2
        err = capsys.readouterr().err
        assert f"inside the run folder {run.path}" in err and str(run.private) in err
        assert not (run.path / "x").exists()
    assert main(["report", str(run.path), "--out", str(run.private / "report"), "--private"]) == 0
    assert (run.private / "report" / "private" / "private.md").is_file()


def test_the_summary_shows_a_classification_runs_macro_f1_per_class_figures_and_confusion_matrix(runs):
    run = RunDir(runs[0])
    metrics = run.read_metrics()
    metrics["test"].update(macro_f1=0.625, per_class={
        "no": {"precision": 0.5, "recall": 1.0, "f1": 2 / 3, "support": 2},
        "yes": {"precision": 1.0, "recall": 0.5, "f1": 2 / 3, "support": 4}},
        confusion_matrix={"labels": ["no", "yes"], "counts": [[2, 0], [2, 2]]})
    run.write_metrics(metrics)
    md = markdown_summary([load_run(runs[0]), load_run(runs[1])], ["accuracy"])
    assert "| zpl-a | zpl | 10 | 0.5000 | 0.8000 | 0.6250 |" in md and "| mi-b | mi | 10 | 0.5000 | 0.8400 | — |" in md
    assert "## zpl-a: test set per class" in md and "## mi-b" not in md
    assert "| no | 0.5000 | 1.0000 | 0.6667 | 2 |" in md and "| yes | 1.0000 | 0.5000 | 0.6667 | 4 |" in md
    assert "| true / predicted | no | yes |\n|---|---|---|\n| no | 2 | 0 |\n| yes | 2 | 2 |" in md
