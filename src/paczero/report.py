"""Figures and a Markdown summary of finished (or running) runs: ``paczero report RUN [RUN ...] --out DIR``.

By default everything shown is public — dev metrics at each evaluation (``evaluations.jsonl``), test metrics and
the privacy statement (``metrics.json``) — so the report can be published with the model. With ``--private`` the
owner also gets the figures computed on the pool (pool loss, unanimity, MI spent, read from the runs' private
folders), in ``DIR/private/`` (mode 0700, files 0600), each titled as private. Audit results are never shown:
:func:`roc_figure` draws the audit's own figure.

Figures are built on :class:`matplotlib.figure.Figure` directly (no pyplot state, no display needed; PNGs are
rendered by the Agg canvas), and returned so that callers and tests can inspect their axes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from paczero import progress
from paczero.errors import PaczeroError
from paczero.fileio import atomic_write, write_text
from paczero.mechanisms.registry import NAMES
from paczero.privacy.statement import PrivacyStatement
from paczero.rundir import PRIVATE_DIR_MODE, PRIVATE_MODE, RunDir, check_outside_public_side

FIGSIZE = (6.4, 4.2)
MARKERS = dict(zip(NAMES, "osx^vDP*ph<>"))
"""One plot marker per mechanism, in the registry's order (``o`` ZPL, ``s`` MI, ``x`` MeZO, ``^`` DPZero, ...)."""
PRIVATE_TITLE = "PRIVATE (computed on the pool, do not publish): "


@dataclass(frozen=True)
class RunData:
    """What the report reads from one run directory."""

    path: Path
    mechanism: str
    metrics: dict[str, Any] | None
    """``metrics.json``; None while the run has not finished."""
    evaluations: list[dict[str, Any]]
    """Public: the dev metrics at each evaluation."""
    diagnostics: list[dict[str, Any]]
    """Private: the per-step figures computed on the pool (empty unless read for the owner)."""
    private: dict[str, Any] | None = None
    """Private: the owner's figures of a finished run (``private/privacy.json``)."""

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def statement(self) -> PrivacyStatement | None:
        """The run's privacy statement (``metrics.json``), parsed; None while the run has not finished."""
        return None if self.metrics is None else PrivacyStatement.from_dict(self.metrics["privacy"])

    def series(self, key: str, *, private: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """(steps completed, values) of a key of the evaluations (or, ``private``, of the diagnostics)."""
        if private:
            rows = [(d["step"] + 1, d[key]) for d in self.diagnostics if d.get(key) is not None]
        else:
            rows = [(d["step"], d[key]) for d in self.evaluations if d.get(key) is not None]
        steps, values = zip(*rows) if rows else ((), ())
        return np.asarray(steps, dtype=np.int64), np.asarray(values, dtype=np.float64)


def load_run(path: str | Path, *, private: bool = False) -> RunData:
    """Read a run directory's public files (and, with ``private``, its private diagnostics and figures)."""
    from omegaconf import OmegaConf

    from paczero.fileio import read_json

    try:
        run = RunDir.open(path)
    except PaczeroError:
        raise PaczeroError(f"{path} is not a run directory (no config.yaml)") from None
    mechanism = str(OmegaConf.select(OmegaConf.load(run.config_path), "privacy.mechanism", default="unknown"))
    diagnostics, figures = [], None
    if private:
        if not run.private.is_dir():
            raise PaczeroError(f"{run.private} not found: --private needs the owner's private folder")
        diagnostics = run.read_private(run.diagnostics_path)
        figures = read_json(run.privacy_path) if run.privacy_path.is_file() else None
    return RunData(path=run.path, mechanism=mechanism, metrics=run.read_metrics(), evaluations=run.read_evaluations(),
                   diagnostics=diagnostics, private=figures)


def _axes(title: str, xlabel: str, ylabel: str) -> tuple[Figure, Any]:
    fig = Figure(figsize=FIGSIZE, layout="constrained")
    ax = fig.add_subplot()
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    ax.grid(alpha=0.3)
    return fig, ax


def _legend(ax: Any) -> None:
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize="small")


def accuracy_figure(runs: Sequence[RunData]) -> Figure:
    """Dev accuracy against steps (one line per run); test accuracy before training (step 0) and of the selected
    checkpoint (at its step) as stars of the run's colour."""
    fig, ax = _axes("Dev accuracy (lines) and test accuracy (stars)", "step", "accuracy")
    for run in runs:
        steps, acc = run.series("accuracy")
        (line,) = ax.plot(steps, acc, marker=".", label=run.name)
        m = run.metrics or {}
        tests = [(0, (m.get("zero_shot_test") or {}).get("accuracy"))]
        if m.get("test") and m.get("best_dev"):
            tests.append((m["best_dev"]["step"], m["test"]["accuracy"]))
        tests = [(s, a) for s, a in tests if a is not None]
        if tests:
            ax.plot(*zip(*tests), linestyle="none", marker="*", markersize=10, color=line.get_color())
    _legend(ax)
    return fig


def loss_figure(runs: Sequence[RunData]) -> Figure:
    """Dev loss at each evaluation."""
    fig, ax = _axes("Dev loss", "step", "loss")
    for run in runs:
        ax.plot(*run.series("loss"), marker="o", label=run.name)
    _legend(ax)
    return fig


def pool_loss_figure(runs: Sequence[RunData]) -> Figure:
    """Private: the mean pool loss at the perturbed points per step."""
    fig, ax = _axes(PRIVATE_TITLE + "pool loss", "step", "loss")
    for run in runs:
        ax.plot(*run.series("pool_loss", private=True), linewidth=0.8, label=run.name)
    _legend(ax)
    return fig


def mi_figure(runs: Sequence[RunData]) -> Figure:
    """Private: the cumulative mutual information charged (nats) against steps (≤ the public budget)."""
    fig, ax = _axes(PRIVATE_TITLE + "MI charged", "step", "cumulative MI (nats)")
    for run in runs:
        steps, mi = run.series("mi_spent", private=True)
        if steps.size:
            ax.plot(steps, mi, label=run.name)
    _legend(ax)
    return fig


def unanimity_figure(runs: Sequence[RunData]) -> Figure:
    """Private: the running fraction of free releases (all subsets agree, or the posterior's support does)."""
    fig, ax = _axes(PRIVATE_TITLE + "unanimity", "step", "unanimity rate (running mean)")
    for run in runs:
        steps, unanimous = run.series("unanimous", private=True)
        if steps.size:
            ax.plot(steps, np.cumsum(unanimous) / np.arange(1, steps.size + 1), label=run.name)
    ax.set_ylim(-0.02, 1.02)
    _legend(ax)
    return fig


def tradeoff_figure(runs: Sequence[RunData]) -> Figure:
    """Test accuracy against the membership-inference posterior bound, one marker per mechanism (the
    "DP cliff": at matched bound, PACZero ZPL/MI vs DPZero/DP-AggZO vs non-private MeZO at 1)."""
    fig, ax = _axes("Test accuracy vs MIA posterior bound", "MIA posterior bound", "test accuracy")
    colours: dict[str, str] = {}
    zero_shot = []
    for run in runs:
        m, statement = run.metrics or {}, run.statement
        if statement is None or not m.get("test"):
            continue
        bound = statement.mia_posterior_bound
        label = None if run.mechanism in colours else run.mechanism  # one legend entry per mechanism
        colour = colours.setdefault(run.mechanism, f"C{len(colours)}")
        ax.scatter([bound], [m["test"]["accuracy"]], marker=MARKERS.get(run.mechanism, "d"), label=label,
                   color=colour)
        ax.annotate(run.name, (bound, m["test"]["accuracy"]), fontsize="x-small", xytext=(3, 3),
                    textcoords="offset points")
        if (m.get("zero_shot_test") or {}).get("accuracy") is not None:
            zero_shot.append(m["zero_shot_test"]["accuracy"])
    if zero_shot:
        ax.axhline(float(np.mean(zero_shot)), linestyle="--", color="grey", label="zero-shot (mean)")
    ax.set_xlim(0.48, 1.02)
    _legend(ax)
    return fig


def compare_figure(rows: Sequence[Mapping[str, Any]]) -> Figure:
    """Test accuracy against the MIA posterior bound from ``paczero compare``'s rows (``mechanism``, ``cell``,
    ``mia_posterior_bound``, ``test_accuracy``, ``zero_shot_accuracy``): every run as a faint marker at its
    own bound, and each cell's mean over its seeds, with the sample standard deviation as an error bar, at
    the mean of its runs' bounds."""
    fig, ax = _axes("Test accuracy vs MIA posterior bound (mean ± sd over seeds)", "MIA posterior bound",
                    "test accuracy")
    cells: dict[str, list[Mapping[str, Any]]] = {}
    for r in rows:
        cells.setdefault(str(r["cell"]), []).append(r)
    colours: dict[str, str] = {}
    labelled: set[str] = set()
    for cell, members in cells.items():
        mechanism = str(members[0]["mechanism"])
        colour = colours.setdefault(mechanism, f"C{len(colours)}")
        label = None if mechanism in labelled else mechanism  # one legend entry per mechanism
        labelled.add(mechanism)
        bounds = np.array([float(m["mia_posterior_bound"]) for m in members])
        acc = np.array([float(m["test_accuracy"]) for m in members])
        marker = MARKERS.get(mechanism, "d")
        ax.scatter(bounds, acc, marker=marker, color=colour, alpha=0.3, s=16)
        sd = float(acc.std(ddof=1)) if acc.size > 1 else 0.0
        ax.errorbar([bounds.mean()], [acc.mean()], yerr=[sd], fmt=marker, color=colour, capsize=4, label=label)
        ax.annotate(cell, (bounds.mean(), acc.mean()), fontsize="x-small", xytext=(4, 4), textcoords="offset points")
    zero = [float(r["zero_shot_accuracy"]) for r in rows if r.get("zero_shot_accuracy") not in (None, "")]
    if zero:
        ax.axhline(float(np.mean(zero)), linestyle="--", color="grey", label="zero-shot (mean)")
    ax.set_xlim(0.48, 1.02)
    if ax.get_legend_handles_labels()[0]:  # below the axes: the cells fill the plot from top to bottom
        fig.set_size_inches(FIGSIZE[0] * 1.25, FIGSIZE[1] * 1.25)
        fig.legend(*ax.get_legend_handles_labels(), loc="outside lower center", ncols=6, fontsize="small")
    return fig


def roc_figure(curves: Mapping[str, tuple[np.ndarray, np.ndarray, float]], *, title: str) -> Figure:
    """ROC curves ``{attack: (fpr, tpr, auc)}`` on linear and log–log axes (low FPR is where attacks matter)."""
    fig = Figure(figsize=(11.0, 4.6), layout="constrained")
    linear, log = fig.subplots(1, 2)
    for ax, scale in ((linear, "linear"), (log, "log")):
        for name, (fpr, tpr, auc) in curves.items():
            ax.plot(fpr, tpr, label=f"{name} (AUC {auc:.3f})")
        grid = np.logspace(-4, 0, 50) if scale == "log" else np.linspace(0, 1, 2)
        ax.plot(grid, grid, linestyle="--", color="grey", label="chance")
        ax.set(xscale=scale, yscale=scale, xlabel="false positive rate", ylabel="true positive rate",
               title=f"{title} ({scale})")
        if scale == "log":
            ax.set(xlim=(1e-4, 1), ylim=(1e-4, 1))
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small", loc="lower right")
    return fig


def save_png(fig: Figure, path: Path, *, mode: int = 0o644) -> None:
    """Render ``fig`` to ``path`` atomically."""
    atomic_write(path, lambda p: fig.savefig(p, format="png", dpi=120), mode=mode)


FIGURES = {"accuracy": accuracy_figure, "loss": loss_figure, "tradeoff": tradeoff_figure}
PRIVATE_FIGURES = {"pool_loss": pool_loss_figure, "unanimity": unanimity_figure, "mi": mi_figure}


def _fmt(value: Any, spec: str = ".4f") -> str:
    return "—" if value is None else format(value, spec)


def markdown_summary(runs: Sequence[RunData], figures: Iterable[str]) -> str:
    """A Markdown table of every run's public results, and links to the figure PNGs.

    The test accuracy is that of the checkpoint selected on the dev metric named in "selected"; the dev accuracy
    columns show both that checkpoint's and the best over all evaluations (they differ when the selection is on
    the dev loss).
    """
    header = ["run", "mechanism", "steps", "zero-shot test acc", "test acc", "test macro-F1", "selected (dev metric, "
              "step)", "dev acc of selected", "best dev acc (step)", "MI bound (nats)", "MIA posterior bound", "DP ε"]
    lines = ["# paczero report", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for run in runs:
        m, statement, best = run.metrics or {}, run.statement, (run.metrics or {}).get("best_dev") or {}
        steps, acc = run.series("accuracy")
        top = f"{acc.max():.4f} ({steps[int(acc.argmax())]})" if acc.size else "—"
        mi, bound, eps = ((statement.mi_bound_nats, statement.mia_posterior_bound, statement.dp_epsilon)
                          if statement is not None else (None, None, None))
        row = [run.name, run.mechanism, _fmt(m.get("steps_run"), "d"),
               _fmt((m.get("zero_shot_test") or {}).get("accuracy")), _fmt((m.get("test") or {}).get("accuracy")),
               _fmt((m.get("test") or {}).get("macro_f1")),
               f"{best.get('selected_on', '—')}, {_fmt(best.get('step'), 'd')}", _fmt(best.get("accuracy")), top,
               _fmt(mi, ".4g"), _fmt(bound), _fmt(eps, ".3g")]
        lines.append("| " + " | ".join(row) + " |")
    unfinished = [r.name for r in runs if r.metrics is None]
    lines += ["", "Every figure here comes from the runs' public files (settings, transcript, dev and test metrics); "
              "the bounds are recomputed from the settings and the transcript (1.0 for non-private runs)."]
    if unfinished:
        lines += ["", f"Not finished (no metrics.json): {', '.join(unfinished)}."]
    lines += [line for run in runs for line in _per_class(run)]
    lines += ["", "## Figures", ""] + [f"![{name}]({name}.png)" for name in figures]
    return "\n".join(lines) + "\n"


def _per_class(run: RunData) -> list[str]:
    """A classification run's test figures per class and its confusion matrix (rows: true, columns: predicted)."""
    test = (run.metrics or {}).get("test") or {}
    if "per_class" not in test:
        return []
    lines = ["", f"## {run.name}: test set per class", "", "| class | precision | recall | F1 | support |",
             "|---|---|---|---|---|"]
    lines += [f"| {name} | {c['precision']:.4f} | {c['recall']:.4f} | {c['f1']:.4f} | {c['support']} |"
              for name, c in test["per_class"].items()]
    matrix = test["confusion_matrix"]
    labels = matrix["labels"]
    lines += ["", "| true / predicted | " + " | ".join(labels) + " |", "|---" * (len(labels) + 1) + "|"]
    lines += [f"| {name} | " + " | ".join(map(str, row)) + " |" for name, row in zip(labels, matrix["counts"])]
    return lines


def private_summary(runs: Sequence[RunData], figures: Iterable[str]) -> str:
    """The owner's Markdown table: figures computed on the pool (never publish)."""
    header = ["run", "unanimity rate", "MI charged (nats)", "noisy releases", "release kinds"]
    lines = ["# PRIVATE: computed on the pool, do not publish", "", "| " + " | ".join(header) + " |",
             "|" + "---|" * len(header)]
    for run in runs:
        f = run.private or {}
        lines.append("| " + " | ".join([run.name, _fmt(f.get("unanimity_rate"), ".3f"),
                                        _fmt(f.get("achieved_mi_nats"), ".4g"), _fmt(f.get("noisy_releases"), "d"),
                                        str(f.get("release_kinds", "—"))]) + " |")
    lines += ["", "## Figures", ""] + [f"![{name}]({name}.png)" for name in figures]
    return "\n".join(lines) + "\n"


def write_report(run_dirs: Sequence[str | Path], out: str | Path, *, private: bool = False,
                 show: bool = True) -> dict[str, Path]:
    """Write one PNG per public figure and ``report.md`` into ``out`` (and, ``private``, the owner's figures and
    ``private.md`` into ``out/private/``, mode 0700/0600); returns ``{name: path}``."""
    out = Path(out)
    check_outside_public_side(out, what="a report")
    runs = [load_run(p, private=private) for p in run_dirs]
    written: dict[str, Path] = {}
    todo = [(name, build, out, 0o644) for name, build in FIGURES.items()]
    if private:
        todo += [(name, build, out / "private", PRIVATE_MODE) for name, build in PRIVATE_FIGURES.items()]
        (out / "private").mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)
        (out / "private").chmod(PRIVATE_DIR_MODE)
    with progress.bar(total=len(todo), desc="report: figures", unit="figure", enabled=show) as bar:
        for name, build, folder, mode in todo:
            save_png(build(runs), folder / f"{name}.png", mode=mode)
            written[name] = folder / f"{name}.png"
            bar.update(1)
    write_text(out / "report.md", markdown_summary(runs, FIGURES))
    written["report"] = out / "report.md"
    if private:
        write_text(out / "private" / "private.md", private_summary(runs, PRIVATE_FIGURES), mode=PRIVATE_MODE)
        written["private"] = out / "private" / "private.md"
    return written
