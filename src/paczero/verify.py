"""``paczero verify``: whether what a user loads or reads is what the public transcript says.

**From the public files alone** (an exported folder or a finished run folder): the settings, the transcript and the
dev evaluations are read strictly; every direction seed must be the one the public seed derives, every learning
rate the schedule's, every released value of the mechanism's form (a sign for ZPL and MI, a point of the discrete
grid for the DP baselines), the selected checkpoint the one the dev evaluations select. Then the base model is
updated by the transcript and **every published file is regenerated** from these public inputs by the same code
that wrote it (:mod:`paczero.publication`) and compared byte for byte: the set of files (no extra or missing file,
no link), each tensor's name, dtype, shape and bits, ``config.json``, the generation config, the tokenizer, the
model card and ``metrics.json`` with its statement. The figures that only the data gives (dev and test metrics)
are reported as not checked.

**With the data** (``--data-dir``: the pool for the data owner or an auditor; no secret is needed): every release
is recomputed at the replayed weights and checked with the mechanism's own rule (:func:`~paczero.mechanisms.zpl.
zpl_release`, :class:`~paczero.mechanisms.mi.MIRule`), and the dev and test figures are recomputed and compared.

**A first-order run** (DP-SGD, the non-private first-order reference) has no transcript: it publishes no per-step
value, so nothing public rebuilds its weights and ``verify`` says so. It checks what it can: the settings and the
dev selection, the statement recomputed from the settings, and every file regenerated from the settings, the base
model and the published trained tensors (the checkpoints, an export's ``paczero/trainable.safetensors``) — so the
frozen weights must be the base model's, the exported model exactly those tensors on it, and no file may be added.
With the data, the dev and test figures are recomputed from the published weights.

A failed check raises :class:`VerificationFailed` (exit code 1) with one line naming the file and the first fault.
"""

from __future__ import annotations

import copy
import filecmp
import json
import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Callable, Sequence

import numpy as np
import yaml

from paczero import progress
from paczero.checkpoint import WEIGHTS_FILE, load_weights, misfit, save_weights
from paczero.config import PATH_KEYS, Config, Tuning
from paczero.settings import config_from_dict
from paczero.data.registry import dev_source, selection_metric
from paczero.errors import PaczeroError
from paczero.fileio import read_json
from paczero.layout import (CHECKPOINTS_DIR, CONFIG_FILE, EVALUATIONS_FILE, EXPORT_INFO_FILE, MEMBERSHIP_FILE,
                            METRICS_FILE, PRIVATE_DIR, RUN_SETTINGS_FILE, TRAINABLE_FILE,
                            TRANSCRIPT_FILE)
from paczero.ledger import TranscriptStep, parse_transcript
from paczero.mechanisms.dp import grid_integer
from paczero.mechanisms.mi import MIRule, NoisyPlan
from paczero.mechanisms.registry import run_statement, spec
from paczero.mechanisms.zpl import zpl_release
from paczero.privacy.statement import Family
from paczero.metrics import scalar_metrics
from paczero.models import LoadedModel
from paczero.publication import (
    CHECKPOINTS,
    EXPORT_DIR,
    FORMATS,
    PublicRecord,
    document,
    evaluations_bytes,
    export_step,
    figures_of,
    is_better,
    last_progress,
    public_membership,
    transcript_bytes,
    write_export,
    write_membership,
)
from paczero.rng import direction_seed, public_coin
from paczero.step import learning_rate
from paczero.subsets import clip_estimates, subset_means, subset_signs

RUN_PUBLIC = (CONFIG_FILE, MEMBERSHIP_FILE, TRANSCRIPT_FILE, EVALUATIONS_FILE, METRICS_FILE)
SIGN_MECHANISMS = ("zpl", "mi", "random_sign")
"""Mechanisms whose every released value is a sign, +1 or −1."""
RULE_MECHANISMS = ("zpl", "mi")
"""Mechanisms whose releases the holder of the pool can recompute (the others depend on secret noise or batches)."""
TOLERANCE = dict(rel_tol=1e-5, abs_tol=1e-7)
"""How close a recomputed evaluation figure must be to the published one (float rounding across BLAS builds)."""


class VerificationFailed(PaczeroError):
    """The published files do not follow from the public transcript (or a release breaks the mechanism's rules)."""

    exit_code = 1


@dataclass
class Published:
    """A folder to verify: its public record, and what it publishes of it."""

    path: Path
    record: PublicRecord
    export: dict[str, Any] | None = None
    """``paczero/export.json`` of an export (None for a run folder)."""
    lines: list[str] = field(default_factory=list)

    @property
    def is_export(self) -> bool:
        return self.export is not None

    @property
    def upto(self) -> int:
        """How many transcript steps the published weights include (the last target's)."""
        return export_step(self.record, self.export["checkpoint"]) if self.export else len(self.record.steps)


# ---------------------------------------------------------------------------------------------- reading, strictly
def _fail(path: Path, why: str) -> VerificationFailed:
    return VerificationFailed(f"NOT verified: {path}: {why}")


def _json(path: Path) -> Any:
    if not path.is_file():
        raise _fail(path, "missing")
    try:
        return read_json(path)
    except (OSError, ValueError) as exc:
        raise _fail(path, f"not JSON ({exc})") from None


def _jsonl(path: Path) -> list[Any]:
    if not path.is_file():
        raise _fail(path, "missing")
    try:
        *lines, last = path.read_text(encoding="utf-8").split("\n")
        if last:
            raise ValueError("the last line is not complete")
        return [json.loads(line) for line in lines]
    except (OSError, ValueError) as exc:
        raise _fail(path, f"not JSON lines ({exc})") from None


def _config(path: Path) -> Config:
    if not path.is_file():
        raise _fail(path, "missing")
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
        if not isinstance(loaded, dict):
            raise ValueError("not a mapping of settings")
        return config_from_dict(loaded)
    except (OSError, ValueError, yaml.YAMLError, PaczeroError) as exc:
        raise _fail(path, f"not paczero settings ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})"
                    ) from None


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _evaluations(path: Path) -> list[dict[str, Any]]:
    if not path.exists():  # a run without a dev set evaluates nothing (check_selection says whether it should)
        return []
    rows = _jsonl(path)
    for i, row in enumerate(rows):
        if not isinstance(row, dict) or not isinstance(row.get("step"), int) or isinstance(row.get("step"), bool):
            raise _fail(path, f"line {i + 1} is not a dev evaluation (a step and its metrics)")
    return rows


def read_record(cfg_path: Path, transcript: Path, evaluations: Path, metrics_path: Path) -> PublicRecord:
    """The public record behind a folder's files, each read strictly (a fault names the file)."""
    cfg = _config(cfg_path)
    try:
        steps = [] if spec(cfg.privacy.mechanism).first_order else parse_transcript(_jsonl(transcript))
    except ValueError as exc:
        raise _fail(transcript, str(exc)) from None
    metrics = _json(metrics_path)
    try:
        figures = figures_of(metrics)
    except (KeyError, TypeError) as exc:
        raise _fail(metrics_path, f"lacks {exc}") from None
    return PublicRecord(cfg=cfg, steps=steps, evaluations=_evaluations(evaluations), figures=figures)


def read_published(path: str | Path) -> Published:
    """An exported folder (its record under ``paczero/``) or a finished run folder."""
    path = Path(path)
    if not path.is_dir():
        raise PaczeroError(f"{path} is not a folder: give an exported model folder or a finished run directory")
    public = path / EXPORT_DIR
    if public.is_dir():
        record = read_record(public / RUN_SETTINGS_FILE, public / TRANSCRIPT_FILE, public / EVALUATIONS_FILE,
                             public / METRICS_FILE)
        info = _json(public / EXPORT_INFO_FILE)
        if not isinstance(info, dict) or info.get("checkpoint") not in CHECKPOINTS or info.get("format") not in FORMATS:
            raise _fail(public / EXPORT_INFO_FILE, "not an export description (checkpoint and format)")
        return Published(path=path, record=record, export=info)
    if not (path / CONFIG_FILE).is_file():
        raise PaczeroError(f"{path} is neither an export (no {EXPORT_DIR}/) nor a run directory (no {CONFIG_FILE})")
    if not (path / METRICS_FILE).is_file():
        raise PaczeroError(f"{path} has not finished (no {METRICS_FILE}): export or verify a finished run")
    return Published(path=path, record=read_record(*(path / name for name in (
        CONFIG_FILE, TRANSCRIPT_FILE, EVALUATIONS_FILE, METRICS_FILE))))


# ---------------------------------------------------------------------------------------------- public checks
def check_schedule(cfg: Config, steps: list[TranscriptStep]) -> None:
    """Every seed is the public seed's direction and every learning rate the configured schedule's (a first-order run
    has no transcript: nothing to check)."""
    if spec(cfg.privacy.mechanism).first_order:
        return
    t = cfg.train
    if len(steps) != t.steps:
        raise VerificationFailed(f"NOT verified: the transcript holds {len(steps)} steps; the settings give "
                                 f"train.steps={t.steps}")
    for s in steps:
        lr = learning_rate(step=s.step, steps=t.steps, lr=t.lr, lr_end=t.lr_end, schedule=t.lr_schedule)
        if s.lr != lr:
            raise VerificationFailed(f"NOT verified: step {s.step}: learning rate {s.lr!r} is not the schedule's "
                                     f"{lr!r}")
        if len(s.directions) != cfg.zo.directions:
            raise VerificationFailed(f"NOT verified: step {s.step}: {len(s.directions)} directions; the settings "
                                     f"give zo.directions={cfg.zo.directions}")
        for k, d in enumerate(s.directions):
            if d.seed != direction_seed(cfg.run.seed, s.step, k):
                raise VerificationFailed(f"NOT verified: step {s.step}, direction {k}: seed {d.seed} is not the one "
                                         f"the public seed {cfg.run.seed} derives")


def check_values(cfg: Config, steps: list[TranscriptStep]) -> None:
    """Every released value has the mechanism's form: a sign (ZPL, MI, the coin control), a grid point (DP)."""
    mechanism, p = cfg.privacy.mechanism, cfg.privacy
    for s in steps:
        for k, d in enumerate(s.directions):
            where = f"NOT verified: step {s.step}, direction {k}: released {d.value!r}"
            if mechanism == "zpl" and p.zpl_disagreement == "skip":
                if d.value not in (1.0, -1.0, 0.0):
                    raise VerificationFailed(f"{where}; zpl with zpl_disagreement=skip releases +1, -1 or 0")
            elif mechanism in SIGN_MECHANISMS and d.value not in (1.0, -1.0):
                raise VerificationFailed(f"{where}; {mechanism} releases a sign, +1 or -1")
            if mechanism == "random_sign" and d.value != public_coin(cfg.run.seed, s.step, k):
                raise VerificationFailed(f"{where}; random_sign releases the public coin")
            if spec(mechanism).family == Family.DP:
                scale = len(s.directions) if mechanism == "dpaggzo" else 1
                if grid_integer(d.value, clip=cfg.zo.clip, scale=scale, sample_rate=p.sample_rate,
                                n=cfg.data.n_pool) is None:
                    raise VerificationFailed(f"{where}, not a point of the discrete Gaussian's grid: {mechanism} "
                                             "releases only integers of noise times C·2^-40/(qN)")


def evaluation_steps(cfg: Config) -> list[int]:
    """The steps after which the dev set is evaluated (every ``eval_every`` and the last; none without a dev set)."""
    T, every = cfg.train.steps, cfg.train.eval_every
    return [] if dev_source(cfg.data) == "none" else [s for s in range(1, T + 1) if s % every == 0 or s == T]


def check_selection(record: PublicRecord, where: Path) -> None:
    """The dev evaluations fall on the schedule, and the published best and final dev figures are theirs."""
    cfg, f = record.cfg, record.figures
    steps = [e["step"] for e in record.evaluations]
    if steps != evaluation_steps(cfg):
        raise _fail(where, f"dev evaluations at steps {steps}; the settings give {evaluation_steps(cfg)}")
    if dev_source(cfg.data) == "none":  # no selection: the last checkpoint is the released one
        if f["best_dev"] != {"step": cfg.train.steps, "selected_on": "last"} or f["final_dev"] is not None:
            raise _fail(where, "without a dev set the released checkpoint is the last one, and no dev figure exists")
        if (f["zero_shot_test"] is None) != (not cfg.train.eval_before):
            raise _fail(where, "zero_shot_test does not match train.eval_before")
        return
    key, best = selection_metric(cfg), None
    for e in record.evaluations:
        dev = {k: v for k, v in e.items() if k != "step"}
        if key not in dev or not _number(dev[key]):
            raise _fail(where, f"the dev evaluation of step {e['step']} has no {key}")
        if is_better(dev, best, key):
            best = {"step": e["step"], "selected_on": key, **dev}
    # evaluations.jsonl holds each evaluation's single numbers; per-class figures are in metrics.json only
    chosen = f["best_dev"]
    if not isinstance(chosen, dict) or {"step": chosen.get("step"), "selected_on": chosen.get("selected_on"),
                                        **scalar_metrics(chosen)} != best:
        raise _fail(where, "best_dev is not the checkpoint the dev evaluations select")
    if not isinstance(f["final_dev"], dict) or scalar_metrics(f["final_dev"]) != {
            k: v for k, v in record.evaluations[-1].items() if k != "step"}:
        raise _fail(where, "final_dev is not the last dev evaluation")
    if (f["zero_shot_test"] is None) != (not cfg.train.eval_before):
        raise _fail(where, "zero_shot_test does not match train.eval_before")


# ---------------------------------------------------------------------------------------------- regeneration
def _walk(root: Path) -> dict[str, Path]:
    """Every file under ``root`` by its relative path; a link or a special file is a fault."""
    files: dict[str, Path] = {}
    for base, dirs, names in os.walk(root, followlinks=False):
        for name in dirs + names:
            path = Path(base) / name
            if path.is_symlink():
                raise _fail(path, "a link: a published folder holds plain files only")
        for name in names:
            path = Path(base) / name
            if not path.is_file():
                raise _fail(path, "not a regular file")
            files[PurePosixPath(path.relative_to(root)).as_posix()] = path
    return files


def _tensor_fault(expected: Path, published: Path) -> str:
    """What differs between two safetensors files, for the message (the files already differ byte for byte)."""
    import torch
    from safetensors import safe_open

    try:
        with safe_open(str(expected), "pt") as a, safe_open(str(published), "pt") as b:
            ours, theirs = set(a.keys()), set(b.keys())
            if ours != theirs:
                extra, missing = sorted(theirs - ours), sorted(ours - theirs)
                return (f"tensor {extra[0]} is not one of the model's" if extra else f"tensor {missing[0]} is missing")
            for name in sorted(ours):
                x, y = a.get_tensor(name), b.get_tensor(name)
                if x.dtype != y.dtype or x.shape != y.shape:
                    return f"tensor {name} is {y.dtype} {tuple(y.shape)}; the rebuilt one is {x.dtype} {tuple(x.shape)}"
                if not x.reshape(-1).view(torch.uint8).equal(y.reshape(-1).view(torch.uint8)):
                    return f"tensor {name} differs from the rebuilt one (bit for bit)"
            return "its header or metadata differs from the rebuilt file's"
    except Exception:  # a file safetensors cannot read: the byte comparison has said enough
        return "not the safetensors file the rebuilt model gives"


def compare_trees(expected: Path, published: Path, *, skip: Callable[[str], bool] = lambda rel: False) -> int:
    """Refuse unless ``published`` holds exactly the files of ``expected`` (``skip`` aside), byte for byte; returns
    the number of files compared."""
    ours = {k: v for k, v in _walk(expected).items() if not skip(k)}
    theirs = {k: v for k, v in _walk(published).items() if not skip(k)}
    extra = sorted(set(theirs) - set(ours))
    if extra:
        raise _fail(published / extra[0], "not part of what the settings, the transcript and the base model give "
                                          "(an extra file)")
    missing = sorted(set(ours) - set(theirs))
    if missing:
        raise _fail(published / missing[0], "missing")
    for rel in sorted(ours, key=lambda rel: (not rel.startswith(f"{EXPORT_DIR}/"), rel)):  # the record first
        if not filecmp.cmp(ours[rel], theirs[rel], shallow=False):
            why = (_tensor_fault(ours[rel], theirs[rel]) if rel.endswith(".safetensors") else
                   "differs from what the settings, the transcript and the base model give")
            raise _fail(theirs[rel], why)
    return len(ours)


def replay_steps(loaded: LoadedModel, steps: list[TranscriptStep], cfg: Config, show: bool) -> None:
    """Apply ``steps``' updates to ``loaded`` in place (the replay of :mod:`paczero.replay`)."""
    from paczero.replay import replay_transcript

    replay_transcript(loaded, steps, eps=cfg.zo.eps, weight_decay=cfg.train.weight_decay, show=show)


def build_base(cfg: Config) -> LoadedModel:
    """θ_0 without adapters (what an adapter export writes beside itself)."""
    from paczero.build import build_model

    base_cfg = copy.deepcopy(cfg)
    base_cfg.model.tuning, base_cfg.model.train_top_layers = Tuning.FULL, None
    return build_model(base_cfg)


def regenerate_export(folder: Path, published: Published, loaded: LoadedModel, *, model_cfg: Config) -> None:
    """The export ``published`` should be, written into ``folder`` (``loaded``: the weights after its steps;
    ``model_cfg``: the settings the base model is built from)."""
    record, info = published.record, published.export
    lora = record.cfg.model.tuning == Tuning.LORA
    base = build_base(model_cfg) if info["format"] == "adapter" else None
    if info["format"] in ("adapter", "merged") and not lora:
        raise _fail(published.path / EXPORT_DIR / EXPORT_INFO_FILE, f"format {info['format']} for a run without LoRA")
    if info["format"] == "full" and lora:
        raise _fail(published.path / EXPORT_DIR / EXPORT_INFO_FILE, "format full for a LoRA run")
    write_export(folder, record, loaded, checkpoint=info["checkpoint"], fmt=info["format"], base=base)


def load_trained(loaded: LoadedModel, path: Path) -> None:
    """Put a first-order run's published trained tensors (a checkpoint folder, or an export's
    :data:`~paczero.publication.TRAINABLE_FILE`) into ``loaded``; a file that does not hold exactly the trainable
    tensors, each of the model's dtype and shape, is a fault."""
    from safetensors import safe_open

    if loaded.tuning == Tuning.LORA and path.is_dir():
        try:
            load_weights(loaded, path)
        except Exception as exc:  # peft's own errors: a fault of the published adapter
            raise _fail(path, f"not the run's adapter ({type(exc).__name__})") from None
        return
    file = path / WEIGHTS_FILE if path.is_dir() else path
    if not file.is_file():
        raise _fail(file, "missing")
    try:
        with safe_open(str(file), "pt") as f:
            state = {name: f.get_tensor(name) for name in f.keys()}
    except Exception:  # anything safetensors cannot read
        raise _fail(file, "not a safetensors file") from None
    what = misfit(loaded, state, dtype=True)
    if what is not None:
        raise _fail(file, f"not this model's trainable tensors: {what}")
    import torch

    with torch.no_grad():
        for name, p in loaded.trainable:
            p.copy_(state[name])


def advance(loaded: LoadedModel, record: PublicRecord, steps: Sequence[TranscriptStep], *, trained: Path | None,
            show: bool) -> None:
    """Bring ``loaded`` to a published checkpoint: a zeroth-order run replays ``steps`` of its transcript from where
    ``loaded`` stands; a first-order run, which has no transcript, takes the trained tensors published at ``trained``
    (:func:`load_trained`)."""
    if record.first_order:
        if trained is None:
            raise ValueError("a first-order run's weights are its published trained tensors: give where they are")
        load_trained(loaded, trained)
    else:
        replay_steps(loaded, steps, record.cfg, show)


def regenerate_run(folder: Path, record: PublicRecord, loaded: LoadedModel, *, show: bool,
                   published: Path | None = None) -> None:
    """The public side of the finished run of ``record``, written into ``folder`` (``loaded`` at θ_0; replayed, or for a
    first-order run given the trained tensors of the checkpoints in ``published``)."""
    from paczero.fileio import write_json, write_text

    cfg = record.cfg
    folder.mkdir(parents=True, exist_ok=True)
    write_text(folder / CONFIG_FILE, cfg.to_yaml())
    membership = public_membership(cfg)
    if membership is not None:
        write_membership(folder / MEMBERSHIP_FILE, membership)
    if not record.first_order:
        (folder / TRANSCRIPT_FILE).write_bytes(transcript_bytes(record.steps))
    if record.evaluations:
        (folder / EVALUATIONS_FILE).write_bytes(evaluations_bytes(record.evaluations))
    write_json(folder / METRICS_FILE, document(record, loaded))
    saved = None if published is None else published / CHECKPOINTS_DIR
    advance(loaded, record, record.steps[:record.best_step], trained=saved and saved / "best", show=show)
    save_weights(loaded, folder / CHECKPOINTS_DIR / "best")
    advance(loaded, record, record.steps[record.best_step:], trained=saved and saved / "last", show=show)
    save_weights(loaded, folder / CHECKPOINTS_DIR / "last", progress=last_progress(record))


def check_files(published: Published, *, model_cfg: Config | None = None, show: bool = True) -> int:
    """Regenerate every published file from the public record and the base model, and compare; returns the number
    of files checked (``model_cfg``: the settings to build the base model with, where they say more than the
    published ones: where the tiny test model finds the public texts of its vocabulary)."""
    from paczero.build import build_model

    record = published.record
    model_cfg = model_cfg or record.cfg
    with progress.phase("rebuilding the model from the base model and the transcript", enabled=show):
        loaded = build_model(model_cfg)
    with tempfile.TemporaryDirectory(prefix="paczero-verify-") as scratch:
        expected = Path(scratch) / "expected"
        if published.is_export:
            advance(loaded, record, record.steps[:published.upto],
                    trained=published.path / EXPORT_DIR / TRAINABLE_FILE, show=show)
            regenerate_export(expected, published, loaded, model_cfg=model_cfg)
            return compare_trees(expected, published.path)
        regenerate_run(expected, record, loaded, show=show, published=published.path)
        return compare_trees(expected, published.path, skip=lambda rel: rel.split("/", 1)[0] == PRIVATE_DIR)


# ---------------------------------------------------------------------------------------------- with the data
def _close(a: Any, b: Any) -> bool:
    """Equal evaluation figures: numbers to :data:`TOLERANCE`, everything else exactly (recursively)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b))
    if _number(a) and _number(b):
        return math.isclose(a, b, **TOLERANCE)
    return a == b


def _same(what: str, recomputed: Any, published: Any) -> None:
    if not _close(recomputed, published):
        raise VerificationFailed(f"NOT verified: {what} published as {published}; the data gives {recomputed}")


def with_paths(cfg: Config, paths: list[str]) -> Config:
    """``cfg`` with data paths the published settings withhold (``data.KEY=PATH``, keys of :data:`PATH_KEYS`)."""
    cfg = copy.deepcopy(cfg)
    for item in paths:
        key, sep, value = item.partition("=")
        name = key.removeprefix("data.")
        if not sep or not key.startswith("data.") or name not in PATH_KEYS or name == "data_dir":
            raise PaczeroError(f"--set {item!r}: expected data.KEY=PATH with KEY one of "
                               f"{', '.join(k for k in PATH_KEYS if k != 'data_dir')} (--data-dir gives the folder)")
        setattr(cfg.data, name, value)
    return cfg


def check_with_data(published: Published, *, data_dir: str, paths: list[str] = (), show: bool = True) -> list[str]:
    """Recompute every release the pool determines (ZPL, MI) and every dev and test figure; returns what was done."""
    from paczero.build import build

    record = published.record
    cfg = with_paths(record.cfg, list(paths))
    cfg.data.data_dir = data_dir
    c = build(cfg)
    mechanism = cfg.privacy.mechanism
    if len(c.split.pool) != cfg.data.n_pool:
        raise VerificationFailed(f"NOT verified: the pool read from the data has {len(c.split.pool)} records; the "
                                 f"settings give {cfg.data.n_pool}")
    f = record.figures
    _same("data (dev and test sizes, truncated prompts)",
          {"n_dev": len(c.split.dev), "n_test": len(c.split.test),
           "truncated": {k: c.encoded[k].truncated for k in ("dev", "test")}}, f["data"])
    if cfg.train.eval_before:
        _same("zero_shot_test", c.evaluate("test"), f["zero_shot_test"])
    if record.first_order:
        return _check_trained_with_data(c, published)
    rules = mechanism in RULE_MECHANISMS
    mi = MIRule(n_subsets=cfg.privacy.n_subsets, budget=cfg.privacy.budget, steps=cfg.train.steps,
                schedule=cfg.privacy.budget_schedule, free_threshold=cfg.privacy.free_threshold, seed=cfg.run.seed,
                channel=cfg.privacy.mi_channel) if mechanism == "mi" else None
    evaluations = {e["step"]: e for e in record.evaluations}
    desc = "checking releases and evaluations against the data" if rules else "checking the evaluations"
    with progress.bar(total=len(record.steps), desc=desc, unit="step", enabled=show) as bar:
        for s in record.steps:
            if rules:
                _check_releases(c, s, mi)
            c.engine.apply_step([d.seed for d in s.directions], [d.value for d in s.directions], lr=s.lr,
                                weight_decay=cfg.train.weight_decay)
            done = s.step + 1
            if done in evaluations:
                dev = c.evaluate("dev")
                _same(f"the dev evaluation of step {done}", {"step": done, **scalar_metrics(dev)}, evaluations[done])
                if done == record.best_step:
                    _same("best_dev", {**f["best_dev"], **dev}, f["best_dev"])
                if done == len(record.steps):
                    _same("final_dev", dev, f["final_dev"])
            if done == record.best_step:
                _same("test", c.evaluate("test"), f["test"])
            bar.update(1)
    if mi is not None and not mi.spent <= cfg.privacy.budget * (1 + 1e-9):
        raise VerificationFailed(f"NOT verified: the releases charge {mi.spent!r} nats, more than the budget "
                                 f"{cfg.privacy.budget!r}")
    lines = ["dev and test figures recomputed from the data"]
    if rules:
        lines.insert(0, f"every release follows the {mechanism} rules on the pool")
    return lines


def _check_trained_with_data(c: Any, published: Published) -> list[str]:
    """A first-order run: the dev and test figures of its published weights (the best checkpoint: best_dev and test;
    the last: final_dev), recomputed from the data."""
    record = published.record
    f = record.figures
    if published.is_export:
        targets = {published.export["checkpoint"]: published.path / EXPORT_DIR / TRAINABLE_FILE}
    else:
        targets = {name: published.path / CHECKPOINTS_DIR / name for name in CHECKPOINTS}
    for name, path in targets.items():
        load_trained(c.loaded, path)
        if f["final_dev"] is not None:
            dev = c.evaluate("dev")
            if name == "best":
                _same("best_dev", {**f["best_dev"], **dev}, f["best_dev"])
            else:
                _same("final_dev", dev, f["final_dev"])
        if name == "best":
            _same("test", c.evaluate("test"), f["test"])
    return ["dev and test figures recomputed from the data with the published weights"]


def _check_releases(c: Any, s: TranscriptStep, mi: MIRule | None) -> None:
    """Step ``s``'s releases recomputed at the current weights with the mechanism's own rule."""
    cfg = c.cfg
    beta = mi.step_budget(step=s.step, directions=len(s.directions)) if mi is not None else 0.0
    for k, d in enumerate(s.directions):
        g, _ = c.engine.estimates(c.objective, c.encoded["pool"], direction=d.seed)
        g = np.where(np.isfinite(g), g, 0.0)
        signs = subset_signs(subset_means(c.membership, clip_estimates(g, cfg.zo.clip)[0]))
        where = f"NOT verified: step {s.step}, direction {k} released {d.value:+g}"
        coin = public_coin(cfg.run.seed, s.step, k)
        if mi is None:
            skip = cfg.privacy.zpl_disagreement == "skip"
            expected = zpl_release(signs, coin=coin, skip=skip)
            if d.value != expected.value:
                what = ("the sign all subsets agree on" if expected.agreed else
                        "0, no update (the subsets disagree)" if skip else "the public coin (the subsets disagree)")
                raise VerificationFailed(f"{where}; ZPL releases {what}, {expected.value:+g}")
            continue
        plan = mi.plan(signs, step=s.step, k=k, budget=beta)
        if not isinstance(plan, NoisyPlan):
            if d.value != plan.value:
                what = "the free sign of the posterior's support" if plan.agreed else "the public coin"
                raise VerificationFailed(f"{where}; MI releases {what}, {plan.value:+g}")
            continue
        if not plan.charged <= plan.beta:
            raise VerificationFailed(f"{where}, charging {plan.charged!r} > its budget {plan.beta!r}")
        mi.observe(signs, bit=int(d.value), plan=plan)


# ---------------------------------------------------------------------------------------------- the command
def _not_checked(published: Published) -> str:
    f = published.record.figures
    shown = [f"test {k} {v:.4f}" for k, v in f["test"].items() if _number(v)]
    return ("not checked without the data (paczero verify DIR --data-dir DATA recomputes them): the dev and test "
            f"figures ({', '.join(shown)}) and the software versions recorded")


def verify(target: str | Path, *, data_dir: str | None = None, paths: list[str] = (),
           show: bool = True) -> list[str]:
    """Every check that ``target`` (an export or a finished run folder) admits; returns the lines to print
    (``paths``: ``data.KEY=PATH`` for data files the published settings withhold)."""

    published = read_published(target)
    record, where = published.record, published.path
    metrics_path = where / EXPORT_DIR / METRICS_FILE if published.is_export else where / METRICS_FILE
    check_schedule(record.cfg, record.steps)
    check_values(record.cfg, record.steps)
    check_selection(record, metrics_path)
    model_cfg = with_paths(record.cfg, list(paths))
    model_cfg.data.data_dir = data_dir
    files = check_files(published, model_cfg=model_cfg, show=show)
    what = (f"the {published.export['format']} weights of the {published.export['checkpoint']} checkpoint"
            if published.is_export else "both checkpoints")
    if record.first_order:
        statement = run_statement(record.cfg, steps=record.n_steps, releases=0)
        lines = [f"{record.cfg.privacy.mechanism} publishes no transcript (no per-step value): its weights cannot be "
                 "rebuilt from public inputs, and no replay is claimed; its guarantee "
                 f"({statement.summary}) rests on the code that trained them",
                 f"{files} published files are exactly what the settings, the base model and the published trained "
                 f"tensors give (the statement recomputed from the settings; {what} = the base model with its trained "
                 "tensors, every other weight the base model's)"]
    else:
        lines = [f"{files} published files are exactly what the settings, the base model and the public transcript "
                 f"give; {what} = the base model + the first {published.upto} of {len(record.steps)} transcript steps"]
    if data_dir is None:
        lines.append(_not_checked(published))
    else:
        lines += check_with_data(published, data_dir=data_dir, paths=list(paths), show=show)
    return lines
