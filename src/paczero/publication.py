"""What a run publishes, as functions of its public inputs alone.

The public side of a run folder and every file of an export are written here from a :class:`PublicRecord` — the
settings, the transcript, the dev evaluations and the evaluation figures — and the model rebuilt from the base
model and the transcript. The trainer and ``paczero export`` write with these functions, and ``paczero verify``
calls the same ones into a scratch folder and compares the result with what was published, byte for byte: a file
that the public inputs do not give, or that differs from what they give, cannot pass.

The evaluation figures (dev and test metrics, the records the test and dev sets hold) are the one part that needs
the data to recompute; :data:`EVALUATION_KEYS` names where they sit in ``metrics.json``.
"""

from __future__ import annotations

import copy
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.torch import save_file

from paczero.card import base_model_label, card
from paczero.config import Config
from paczero.data.registry import dev_source, task_kind, test_set
from paczero.fileio import jsonl_line, write_json, write_text
from paczero.layout import (EVALUATIONS_FILE, EXPORT_DIR, EXPORT_INFO_FILE, MEMBERSHIP_FILE, METRICS_FILE,
                            RUN_SETTINGS_FILE, TRAINABLE_FILE, TRANSCRIPT_FILE)
from paczero.ledger import TranscriptStep
from paczero.mechanisms.registry import run_statement, spec
from paczero.models import LoadedModel
from paczero.subsets import membership_matrix

"""The folder of an export that holds its public record."""
FORMATS = ("full", "adapter", "merged")
CHECKPOINTS = ("best", "last")
ON_THE_HUB = "/"
"""A model name with a slash and no local folder of that name is taken to be a hub name (``facebook/opt-1.3b``)."""
EVALUATION_KEYS = ("zero_shot_test", "best_dev", "final_dev", "test")
"""The figures of ``metrics.json`` computed by evaluating on the (public) dev and test data."""
DATA_KEYS = ("n_dev", "n_test", "truncated")
"""The entries of ``metrics.json["data"]`` that depend on the data files (the others follow from the settings)."""


@dataclass
class Progress:
    """The public state carried from step to step (saved with ``checkpoints/last``): functions of the public
    seed and the transcript only."""

    step: int = 0
    zero_shot: dict[str, float] | None = None
    best: dict[str, Any] | None = None
    final_dev: dict[str, float] | None = None
    evaluations: int = 0
    fingerprint: str = ""


def is_better(dev: dict[str, float], best: dict[str, Any] | None, key: str) -> bool:
    """Whether the dev figures ``dev`` beat the ``best`` so far on ``key`` (lower loss, else higher; the first
    evaluation wins ties, and a non-finite figure never beats a finite one)."""
    if not math.isfinite(dev[key]):
        return best is None
    if best is None or not math.isfinite(best[key]):
        return True
    return dev[key] < best[key] if key == "loss" else dev[key] > best[key]


@dataclass(frozen=True)
class PublicRecord:
    """A finished run's public inputs: everything its published files are functions of, with the base model."""

    cfg: Config
    steps: list[TranscriptStep]
    evaluations: list[dict[str, Any]]
    """The dev evaluations, in order (``step`` and the dev metrics)."""
    figures: dict[str, Any]
    """The evaluation figures of ``metrics.json`` (:data:`EVALUATION_KEYS`), ``data`` (:data:`DATA_KEYS`) and
    ``versions``: what the data and the software gave, recomputed only with the data."""

    @property
    def best_step(self) -> int:
        return int(self.figures["best_dev"]["step"])

    @property
    def first_order(self) -> bool:
        """A first-order method's run (``firstorder``, ``dpsgd``): it has no transcript, and its weights cannot be
        rebuilt from public inputs (they are published as trained: :data:`TRAINABLE_FILE`)."""
        return spec(self.cfg.privacy.mechanism).first_order

    @property
    def n_steps(self) -> int:
        """The steps the run took: the transcript's, or a finished first-order run's ``train.steps``."""
        return self.cfg.train.steps if self.first_order else len(self.steps)


def metrics_document(cfg: Config, *, trainable_parameters: int, steps: int, releases: int,
                     figures: dict[str, Any]) -> dict[str, Any]:
    """``metrics.json``: the settings, the model's size, the statement recomputed from the transcript's length, and
    the evaluation ``figures``."""
    data = figures["data"]
    statement = run_statement(cfg, steps=steps, releases=releases)
    dev_set = {"source": dev_source(cfg.data), "n": data["n_dev"], "public": bool(data["n_dev"]),
               "description": statement.dev_set}
    return {
        "config": cfg.to_dict(),
        "model": {"name": cfg.model.name, "tuning": cfg.model.tuning, "trainable_parameters": trainable_parameters},
        "data": {"n_pool": cfg.data.n_pool, **{k: data[k] for k in DATA_KEYS}, "dev_set": dev_set,
                 "test_set": test_set(cfg.data)},
        **{k: figures[k] for k in EVALUATION_KEYS},
        "steps_run": steps,
        "privacy": statement.to_dict(),
        "versions": figures["versions"],
    }


def figures_of(metrics: dict[str, Any]) -> dict[str, Any]:
    """The evaluation figures of a ``metrics.json`` (the part :func:`metrics_document` takes as given)."""
    return {**{k: metrics[k] for k in EVALUATION_KEYS}, "data": {k: metrics["data"][k] for k in DATA_KEYS},
            "versions": metrics["versions"]}


def document(record: PublicRecord, loaded: LoadedModel) -> dict[str, Any]:
    """The ``metrics.json`` of ``record``."""
    return metrics_document(record.cfg, trainable_parameters=loaded.n_trainable, steps=record.n_steps,
                            releases=sum(len(s.directions) for s in record.steps), figures=record.figures)


def transcript_bytes(steps: list[TranscriptStep]) -> bytes:
    """The transcript file of ``steps``."""
    return b"".join(s.line() + b"\n" for s in steps)


def evaluations_bytes(evaluations: list[dict[str, Any]]) -> bytes:
    """The dev evaluations file."""
    return b"".join(jsonl_line(e) + b"\n" for e in evaluations)


def write_membership(path: Path, membership: np.ndarray) -> None:
    """``membership.npy`` (a file object: ``np.save`` would append ``.npy`` to a path)."""
    from paczero.fileio import atomic_write

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            np.save(fh, membership)

    atomic_write(path, write)


def public_membership(cfg: Config) -> np.ndarray | None:
    """The membership matrix of ``cfg`` (drawn from the public seed), or None for mechanisms without subsets."""
    if not spec(cfg.privacy.mechanism).uses_subsets:
        return None
    return membership_matrix(n=cfg.data.n_pool, m=cfg.privacy.n_subsets, seed=cfg.run.seed)


def last_progress(record: PublicRecord) -> dict[str, Any]:
    """The public ``progress.json`` of a finished run's ``checkpoints/last``."""
    f = record.figures
    return asdict(Progress(step=record.n_steps, zero_shot=f["zero_shot_test"], best=f["best_dev"],
                           final_dev=f["final_dev"], evaluations=len(record.evaluations),
                           fingerprint=record.cfg.fingerprint()))


def on_the_hub(name: str) -> bool:
    """Whether ``model.name`` is a hub name (a slash, and no local folder of that name)."""
    return ON_THE_HUB in name and not Path(name).expanduser().exists()


def export_step(record: PublicRecord, checkpoint: str) -> int:
    """The transcript steps the ``checkpoint`` (``best`` or ``last``) includes."""
    return record.best_step if checkpoint == "best" else record.n_steps


def export_info(record: PublicRecord, *, checkpoint: str, fmt: str) -> dict[str, Any]:
    """``paczero/export.json``: which checkpoint, after how many steps, in which format, on which base model."""
    return {"checkpoint": checkpoint, "step": export_step(record, checkpoint), "format": fmt,
            "base_model": base_model_label(record.cfg.to_dict()["model"])}


def publish_modes(folder: Path) -> None:
    """Every file under ``folder`` readable by all (0644), every folder 0755: an export is public."""
    for root, dirs, files in os.walk(folder):
        for name in dirs:
            os.chmod(Path(root) / name, 0o755)
        for name in files:
            os.chmod(Path(root) / name, 0o644)
    os.chmod(folder, 0o755)


def write_export(folder: Path, record: PublicRecord, loaded: LoadedModel, *, checkpoint: str, fmt: str,
                 base: LoadedModel | None = None) -> None:
    """Write the export of ``record`` into the new ``folder``: ``loaded`` holds the weights after
    :func:`export_step` transcript steps; ``base`` (θ_0 without adapters) is written beside an adapter whose base
    model is not on the hub."""
    from paczero.checkpoint import canonical_adapter_config
    from paczero.models import publishable

    from transformers.utils import logging as hf_logging

    cfg = record.cfg
    if fmt not in FORMATS:
        raise ValueError(f"fmt={fmt!r} is unknown; expected one of {', '.join(FORMATS)}")
    adapter = fmt == "adapter"
    shown = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # the caller shows its own progress
    try:
        if adapter:  # where peft looks for the base: its hub name, else the base written beside it
            model = loaded.model
            model.peft_config["default"].base_model_name_or_path = (cfg.model.name if on_the_hub(cfg.model.name)
                                                                    else "base")
            model.save_pretrained(folder, safe_serialization=True, save_embedding_layers=False)
            canonical_adapter_config(folder)
        else:
            model = copy.deepcopy(loaded.model).merge_and_unload() if fmt == "merged" else publishable(loaded)
            model.save_pretrained(folder, safe_serialization=True)
        loaded.tokenizer.save_pretrained(folder)
        if adapter and not on_the_hub(cfg.model.name):
            if base is None:
                raise ValueError("an adapter on a base model that is not on the hub needs the base written beside it")
            publishable(base).save_pretrained(folder / "base", safe_serialization=True)
            base.tokenizer.save_pretrained(folder / "base")
    finally:
        if shown:
            hf_logging.enable_progress_bar()
    public = folder / EXPORT_DIR
    public.mkdir()
    write_text(public / RUN_SETTINGS_FILE, cfg.to_yaml())
    if record.first_order:  # no transcript: the trained tensors as the checkpoint holds them
        save_file({n: p.detach().contiguous().cpu() for n, p in loaded.trainable}, str(public / TRAINABLE_FILE))
    else:
        (public / TRANSCRIPT_FILE).write_bytes(transcript_bytes(record.steps))
    if record.evaluations:  # a run without a dev set has none
        (public / EVALUATIONS_FILE).write_bytes(evaluations_bytes(record.evaluations))
    metrics = document(record, loaded)
    write_json(public / METRICS_FILE, metrics)
    membership = public_membership(cfg)
    if membership is not None:
        write_membership(public / MEMBERSHIP_FILE, membership)
    write_json(public / EXPORT_INFO_FILE, export_info(record, checkpoint=checkpoint, fmt=fmt))
    step = export_step(record, checkpoint)
    write_text(folder / "README.md", card(metrics, kind=task_kind(cfg.data), adapter=adapter, checkpoint=checkpoint,
                                         step=step, verify_command="paczero verify ."))
    publish_modes(folder)
