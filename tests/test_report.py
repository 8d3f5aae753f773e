"""``paczero report``: the figures' axes and data (checked on the Figure objects), the PNGs and the summary."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from paczero.cli import main
from paczero.report import (
    accuracy_figure,
    load_run,
    markdown_summary,
    mi_figure,
    tradeoff_figure,
    unanimity_figure,
    write_report,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _fake_run(root: Path, name: str, *, mechanism: str, bound: float, test_acc: float, steps: int = 10,
              pac: bool = True, finished: bool = True, seed: int = 0) -> Path:
    """A run directory with diagnostics and metrics in the trainer's format (PAC runs also log unanimity and MI)."""
    rng = np.random.default_rng(seed)
    run = root / name
    run.mkdir(parents=True)
    lines, cum = [], 0.0
    for step in range(steps):
        line = {"step": step, "pool_loss": float(1 - 0.01 * step)}
        if pac:
            cum += 0.01 if mechanism == "mi" else 0.0
            line.update(unanimous=float(rng.random() < 0.4), nonfinite=0, cum_mi=cum)
        lines.append(line)
        if (step + 1) % 5 == 0:
            lines.append({"step": step, "dev_loss": 0.9 - 0.01 * step, "dev_accuracy": 0.5 + 0.01 * step})
    (run / "diagnostics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    if finished:
        metrics = {"test": {"accuracy": test_acc, "loss": 0.7}, "zero_shot_test": {"accuracy": 0.5, "loss": 0.8},
                   "best_dev": {"step": steps, "accuracy": 0.6, "loss": 0.6}, "steps_run": steps,
                   "unanimity_rate": 0.4, "privacy": {"mechanism": mechanism, "mia_posterior_bound": bound,
                                                      "mi_nats": 0.0, "dp_epsilon_equivalent": 0.0}}
        (run / "metrics.json").write_text(json.dumps(metrics))
    return run


@pytest.fixture
def runs(tmp_path):
    return [_fake_run(tmp_path, "zpl-a", mechanism="zpl", bound=0.5, test_acc=0.80, seed=1),
            _fake_run(tmp_path, "mi-b", mechanism="mi", bound=0.88, test_acc=0.84, seed=2),
            _fake_run(tmp_path, "dpzero-c", mechanism="dpzero", bound=0.88, test_acc=0.70, pac=False),
            _fake_run(tmp_path, "mezo-d", mechanism="mezo", bound=1.0, test_acc=0.90, pac=False)]


def _diagnostics(run: Path, key: str) -> tuple[list[int], list[float]]:
    rows = [json.loads(line) for line in (run / "diagnostics.jsonl").read_text().splitlines()]
    return [r["step"] + 1 for r in rows if key in r], [r[key] for r in rows if key in r]


def test_accuracy_figure_plots_every_run_dev_curve_and_test_points(runs):
    fig = accuracy_figure([load_run(r) for r in runs])
    (ax,) = fig.axes
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("step", "accuracy")
    curves = {line.get_label(): line for line in ax.get_lines() if not line.get_label().startswith("_")}
    assert set(curves) == {r.name for r in runs}
    for run in runs:
        steps, acc = _diagnostics(run, "dev_accuracy")
        np.testing.assert_array_equal(curves[run.name].get_xdata(), steps)
        np.testing.assert_allclose(curves[run.name].get_ydata(), acc)
    stars = [line for line in ax.get_lines() if line.get_marker() == "*"]
    assert len(stars) == len(runs)
    assert {tuple(s.get_ydata()) for s in stars} == {(0.5, a) for a in (0.80, 0.84, 0.70, 0.90)}


def test_mi_and_unanimity_figures_skip_runs_without_those_figures(runs):
    loaded = [load_run(r) for r in runs]
    (ax,) = mi_figure(loaded).axes
    assert ax.get_ylabel() == "cumulative MI (nats)"
    assert [line.get_label() for line in ax.get_lines()] == ["zpl-a", "mi-b"]
    np.testing.assert_allclose(ax.get_lines()[1].get_ydata(), _diagnostics(runs[1], "cum_mi")[1])
    (ax,) = unanimity_figure(loaded).axes
    assert ax.get_xlabel() == "step" and "unanimity" in ax.get_ylabel()
    assert [line.get_label() for line in ax.get_lines()] == ["zpl-a", "mi-b"]
    flags = _diagnostics(runs[0], "unanimous")[1]
    running = [sum(flags[: t + 1]) / (t + 1) for t in range(len(flags))]
    np.testing.assert_allclose(ax.get_lines()[0].get_ydata(), running)


def test_tradeoff_figure_places_each_run_at_its_bound_and_accuracy(runs):
    (ax,) = tradeoff_figure([load_run(r) for r in runs]).axes
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("MIA posterior bound", "test accuracy")
    points = sorted(tuple(c.get_offsets()[0]) for c in ax.collections)
    assert points == sorted([(0.5, 0.80), (0.88, 0.84), (0.88, 0.70), (1.0, 0.90)])
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["zpl", "mi", "dpzero", "mezo", "zero-shot (mean)"]


def test_write_report_and_cli(runs, tmp_path, capsys):
    unfinished = _fake_run(tmp_path, "running", mechanism="zpl", bound=0.5, test_acc=0.0, finished=False)
    written = write_report([*runs, unfinished], tmp_path / "out", progress=False)
    for name in ("accuracy", "loss", "mi", "unanimity", "tradeoff"):
        data = written[name].read_bytes()
        assert data.startswith(PNG_SIGNATURE) and len(data) > 5000
    md = written["report"].read_text()
    for run in [*runs, unfinished]:
        assert f"| {run.name} |" in md
    assert "![tradeoff](tradeoff.png)" in md and "Not finished (no metrics.json): running." in md
    assert main(["report", str(runs[0]), str(runs[1]), "--out", str(tmp_path / "cli")]) == 0
    assert (tmp_path / "cli" / "report.md").is_file()
    capsys.readouterr()
    assert main(["report", str(tmp_path / "nothing"), "--out", str(tmp_path / "x")]) == 2
    assert "not a run directory" in capsys.readouterr().err


def test_report_reads_a_real_tiny_run(tiny_config, tmp_path):
    from paczero.trainer import Trainer

    trainer = Trainer(tiny_config("run.name=real"))
    metrics = trainer.run()
    run = load_run(trainer.run_dir)
    assert run.mechanism == "zpl" and run.metrics["test"] == metrics["test"]
    (ax,) = unanimity_figure([run]).axes
    assert len(ax.get_lines()[0].get_ydata()) == trainer.cfg.train.steps
    assert ax.get_lines()[0].get_ydata()[-1] == pytest.approx(metrics["unanimity_rate"])
    md = markdown_summary([run], ["accuracy"])
    zero, test = metrics["zero_shot_test"]["accuracy"], metrics["test"]["accuracy"]
    assert f"| real | zpl | 10 | {zero:.4f} | {test:.4f} |" in md
