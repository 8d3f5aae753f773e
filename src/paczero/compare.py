"""The matched comparison (paczero-notes §6.3, §9): every mechanism on one axis, the MIA posterior bound.

For each DP ε: DPZero, DP-AggZO and DP-SGD (:mod:`paczero.mechanisms.dpsgd`, on a trainable set) at (ε, δ), and
PACZero-MI at the matched MI
I(ε) = ln 2 − H_b(e^ε/(1 + e^ε)) (the same MIA bound at prior 1/2); plus PACZero-ZPL (bound 1/2), and
non-private MeZO and the first-order reference (:mod:`paczero.firstorder`; no bound). Each run is an ordinary run directory under ``out``; a finished run is
reused and an interrupted one resumed, so a crashed comparison continues where it stopped. The table
(``compare.csv`` and ``compare.md``) lists test accuracy against the bound each run's settings and transcript
imply (its public statement).
"""

from __future__ import annotations

import csv
import io
import logging
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, List

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from paczero.config import Config
from paczero.settings import load_config
from paczero.errors import PaczeroError
from paczero.fileio import write_text
from paczero.mechanisms.registry import spec
from paczero.privacy.bounds import mi_for_dp_epsilon
from paczero.privacy.statement import Family, PrivacyStatement

log = logging.getLogger("paczero")

MECHANISMS = ("mezo", "zpl", "mi", "dpzero", "dpaggzo", "dpsgd", "firstorder")
NAMED_ONLY = ("dpsgd", "firstorder")
"""Run only when named: they need a trainable set (``model.tuning: set``) that the default base config lacks."""
COLUMNS = ("mechanism", "dp_epsilon", "seed", "mi_bound_nats", "mia_posterior_bound", "test_accuracy",
           "zero_shot_accuracy", "steps_run", "run")
SUMMARY_COLUMNS = ("cell", "mechanism", "seeds", "mia_posterior_bound_max", "test_accuracy_mean",
                   "test_accuracy_sd", "test_accuracy_min", "test_accuracy_max", "zero_shot_accuracy_mean")


@dataclass
class MechanismOverrides:
    """Dotted run-config overrides per mechanism; ``common`` applies to every run."""
    common: List[str] = field(default_factory=list)
    mezo: List[str] = field(default_factory=list)
    zpl: List[str] = field(default_factory=list)
    mi: List[str] = field(default_factory=list)
    dpzero: List[str] = field(default_factory=list)
    dpaggzo: List[str] = field(default_factory=list)
    dpsgd: List[str] = field(default_factory=list)
    firstorder: List[str] = field(default_factory=list)


@dataclass
class CompareConfig:
    """What ``paczero compare`` runs: a base config, the ε list, the mechanisms and their overrides."""
    base: str = "configs/sst2-smollm2-zpl.yaml"
    """Run config every mechanism starts from (path relative to the working directory)."""
    epsilons: List[float] = field(default_factory=lambda: [0.5, 1.0, 2.0, 6.0])
    """DP ε of the DPZero/DP-AggZO runs; PACZero-MI runs at the matched MI of each."""
    mechanisms: List[str] = field(default_factory=lambda: [m for m in MECHANISMS if m not in NAMED_ONLY])
    """Any of mezo, zpl, mi, dpzero, dpaggzo, dpsgd (DP-SGD on the base config's trainable set) and firstorder (the
    non-private first-order reference); the last two are run only when named."""
    seeds: List[int] = field(default_factory=lambda: [0])
    """Public seeds (``run.seed``: data split, membership matrix, directions; J* is secret and fresh per run).
    With more than one, every run name ends in ``-s<seed>`` and ``compare-summary.{csv,md}`` gives the mean
    and standard deviation over seeds of every cell."""
    out: str = "runs/compare"
    """Folder for the runs and the table."""
    overrides: MechanismOverrides = field(default_factory=MechanismOverrides)
    """Dotted overrides per mechanism (``common`` applies to all), e.g. MeZO's learning rate and batch size."""


def load_compare_config(path: str | Path | None, *, epsilons: list[float] | None = None,
                        mechanisms: list[str] | None = None, out: str | None = None,
                        seeds: list[int] | None = None) -> CompareConfig:
    """Read a compare YAML over the defaults; ``epsilons``, ``mechanisms``, ``out`` and ``seeds`` replace its
    values."""
    layers = [OmegaConf.structured(CompareConfig)]
    if path is not None:
        if not Path(path).is_file():
            raise PaczeroError(f"compare config not found: {path}")
        layers.append(OmegaConf.load(path))
    try:
        cfg = OmegaConf.to_object(OmegaConf.merge(*layers))
    except OmegaConfBaseException as exc:
        raise PaczeroError(f"compare config: {str(exc).splitlines()[0]}") from None
    assert isinstance(cfg, CompareConfig)
    if epsilons is not None:
        cfg.epsilons = epsilons
    if mechanisms is not None:
        cfg.mechanisms = mechanisms
    if out is not None:
        cfg.out = out
    if seeds is not None:
        cfg.seeds = seeds
    if not cfg.seeds or len(set(cfg.seeds)) != len(cfg.seeds):
        raise PaczeroError(f"compare: seeds {cfg.seeds} must be a non-empty list without repeats")
    unknown = set(cfg.mechanisms) - set(MECHANISMS)
    if unknown:
        raise PaczeroError(f"compare: unknown mechanisms {sorted(unknown)}; expected some of {', '.join(MECHANISMS)}")
    bad = [e for e in cfg.epsilons if not 0 < e < float("inf")]
    if bad:
        raise PaczeroError(f"compare: epsilons {bad} are invalid; expected finite values > 0")
    return cfg


def plan(cfg: CompareConfig, extra: list[str] = ()) -> list[tuple[str, Config]]:
    """(run name, run config) of every run of the comparison, in order (every cell at the first seed, then at
    the next, so an interrupted comparison has whole seeds); every config is validated up front."""
    return [(name, run_cfg) for _, name, run_cfg in _plan(cfg, extra)]


def _plan(cfg: CompareConfig, extra: list[str] = ()) -> list[tuple[str, str, Config]]:
    """(cell, run name, run config) of every run, in the order of :func:`plan`."""
    o = cfg.overrides
    cells: list[tuple[str, str, list[str]]] = []
    chosen = [m for m in MECHANISMS if m in cfg.mechanisms]
    dp = [m for m in chosen if spec(m).family == Family.DP]
    single = sorted((m for m in chosen if m not in dp and m != "mi"), key=lambda m: not spec(m).first_order)
    cells.extend((mechanism, mechanism, []) for mechanism in single)  # the first-order reference first
    for eps in cfg.epsilons:  # each DP method at (eps, delta), then PACZero-MI at the matched MI
        cells.extend((f"{mechanism}-eps{eps:g}", mechanism, [f"privacy.epsilon={eps!r}"]) for mechanism in dp)
        if "mi" in chosen:
            cells.append((f"mi-eps{eps:g}", "mi", [f"privacy.budget={mi_for_dp_epsilon(eps)!r}"]))
    runs = []
    for seed in cfg.seeds:
        for cell, mechanism, specific in cells:
            name = run_name(cfg, cell, seed)
            overrides = [*o.common, *getattr(o, mechanism), f"privacy.mechanism={mechanism}", *specific, *extra,
                         f"run.seed={seed}", f"run.output_dir={cfg.out}", f"run.name={name}"]
            runs.append((cell, name, load_config(cfg.base, overrides)))
    return runs


def run_name(cfg: CompareConfig, cell: str, seed: int) -> str:
    """The run folder of ``cell`` (e.g. ``mi-eps1``) at ``seed``: the cell's name alone when there is one seed."""
    return f"{cell}-s{seed}" if len(cfg.seeds) > 1 else cell


class SharedSetUp:
    """One seed's components, lent to every run with the same data, model and seed (:func:`paczero.build.build_key`):
    the model is loaded, the records encoded and the frozen bottom cached once. Before each run the trainable
    tensors are put back to θ_0, so every run equals a separate one bit for bit (``tests/test_compare.py``)."""

    def __init__(self) -> None:
        self.key: str | None = None
        self.components = None
        self.initial = None

    def lend(self, run_cfg: Config):
        """Components at θ_0 that a run of ``run_cfg`` can build on (built now if the key changed)."""
        from paczero.build import build, build_key, initial_weights, restore_weights

        key = build_key(run_cfg)
        if key != self.key:
            self.key, self.components = key, None  # drop the previous seed's before building the next
            self.components = build(run_cfg)
            self.initial = initial_weights(self.components)
        else:
            restore_weights(self.components, self.initial)
        return self.components


def _run_one(name: str, run_cfg: Config, *, train: bool = True,
             shared: SharedSetUp | None = None) -> dict[str, Any] | None:
    """The run's metrics: reused if it has finished, else trained (resumed if started); None where it has not
    finished and ``train`` is false. With ``shared``, the run builds on the seed's shared components."""
    from paczero.rundir import RunDir
    from paczero.trainer import Trainer

    run_dir = Path(run_cfg.run.output_dir) / name
    if RunDir(run_dir).finished:
        log.info("compare: %s has finished; reusing it", run_dir)
        return RunDir(run_dir).read_metrics()
    if not train:
        return None
    base = shared.lend(run_cfg) if shared is not None else None
    if run_dir.exists():
        log.info("compare: resuming %s", run_dir)
        return Trainer.resume(run_dir, config=run_cfg, base=base).train()
    return Trainer(run_cfg, base=base).run()


def row(name: str, metrics: dict[str, Any], seed: int | None = None) -> dict[str, Any]:
    """One table row from a run's metrics (the bound from the run's own privacy statement)."""
    privacy = PrivacyStatement.from_dict(metrics["privacy"])
    zero = metrics.get("zero_shot_test") or {}
    mi = privacy.mi_bound_nats if privacy.family == Family.PAC else privacy.mi_nats_matched
    return {"mechanism": privacy.mechanism, "dp_epsilon": privacy.dp_epsilon,
            "seed": seed, "mi_bound_nats": mi, "mia_posterior_bound": privacy.mia_posterior_bound,
            "test_accuracy": metrics["test"]["accuracy"], "zero_shot_accuracy": zero.get("accuracy"),
            "steps_run": metrics["steps_run"], "run": name}


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def tables(rows: list[dict[str, Any]], columns: tuple[str, ...] = COLUMNS) -> tuple[str, str]:
    """The comparison (or its summary, with ``columns=SUMMARY_COLUMNS``) as CSV and as a Markdown table."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    md = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    md += ["| " + " | ".join(_fmt(r[c]) for c in columns) + " |" for r in rows]
    return buf.getvalue(), "\n".join(md) + "\n"


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per cell (a mechanism at one requested DP ε, named like ``mi-eps1``) over its seeds: mean, sample
    standard deviation (``None`` for one seed), min and max of the test accuracy, and the largest MIA posterior
    bound of the cell's runs."""
    cells: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        cells.setdefault(r["cell"], []).append(r)
    out = []
    for cell, members in cells.items():
        mechanism = members[0]["mechanism"]
        acc = [float(m["test_accuracy"]) for m in members]
        zero = [float(m["zero_shot_accuracy"]) for m in members if m["zero_shot_accuracy"] is not None]
        out.append({"cell": cell, "mechanism": mechanism, "seeds": len(members),
                    "mia_posterior_bound_max": max(m["mia_posterior_bound"] for m in members),
                    "test_accuracy_mean": statistics.fmean(acc),
                    "test_accuracy_sd": statistics.stdev(acc) if len(acc) > 1 else None,
                    "test_accuracy_min": min(acc), "test_accuracy_max": max(acc),
                    "zero_shot_accuracy_mean": statistics.fmean(zero) if zero else None})
    out.sort(key=lambda r: (r["mia_posterior_bound_max"], r["mechanism"]))
    return out


def compare(cfg: CompareConfig, extra: list[str] = (), *, finished_only: bool = False) -> list[dict[str, Any]]:
    """Run (or reuse) every run of the comparison and write ``compare.csv``, ``compare.md`` and ``compare.png``
    (accuracy against the bound, mean ± sd over seeds) into ``cfg.out``; with several seeds, also
    ``compare-summary.{csv,md}``. With ``finished_only``, nothing is trained: the tables are written from the
    runs that have finished (a comparison still running, or one stopped early), and the others are listed in
    the log."""
    from paczero.report import compare_figure, save_png

    runs = _plan(cfg, list(extra))
    rows, cells, missing = [], [], []
    shared = SharedSetUp()
    for i, (cell, name, run_cfg) in enumerate(runs, start=1):
        if not finished_only:
            log.info("compare: run %d/%d: %s", i, len(runs), name)
        metrics = _run_one(name, run_cfg, train=not finished_only, shared=shared)
        if metrics is None:
            missing.append(name)
            continue
        rows.append(row(name, metrics, seed=run_cfg.run.seed))
        cells.append(cell)
    if missing:
        log.warning("compare: %d of %d runs have not finished and are left out: %s", len(missing), len(runs),
                    ", ".join(missing))
    if not rows:
        raise PaczeroError(f"compare: no run under {cfg.out} has finished")
    with_cells = [{**r, "cell": c} for r, c in zip(rows, cells)]
    summary = summarise(with_cells)
    rows.sort(key=lambda r: (r["mia_posterior_bound"], r["mechanism"], r["seed"]))
    out = Path(cfg.out)
    text_csv, text_md = tables(rows)
    write_text(out / "compare.csv", text_csv)
    write_text(out / "compare.md", text_md)
    save_png(compare_figure(with_cells), out / "compare.png")
    if len(cfg.seeds) > 1:
        text_csv, text_md = tables(summary, SUMMARY_COLUMNS)
        write_text(out / "compare-summary.csv", text_csv)
        write_text(out / "compare-summary.md", text_md)
    return rows
