"""``paczero export RUN --out DIR``: a finished run as an ordinary Hugging Face model folder with its privacy card.

The folder loads with plain ``transformers`` (``AutoModelForCausalLM.from_pretrained(DIR)``, full weights in the
base model's dtype) or, for a LoRA run, plain ``peft`` (``PeftModel.from_pretrained(base, DIR)``; with
``--merge-lora`` the adapters are merged into full weights); no paczero needed. A base model that is not on the
hub (the packaged GGUF, a local folder, the tiny test model) is written beside a LoRA adapter as ``DIR/base/``.

It is built from the run's public side only — the settings, the transcript, the membership matrix, the public
metrics and the chosen checkpoint's weights — and carries them in ``DIR/paczero/`` so that anyone can verify it
(``paczero verify DIR``); ``private/`` is never read. Before anything is written the run is checked: its public
files must be present and consistent (the transcript contiguous, its seeds and learning rates the public
schedule's, the statement recomputed from it equal to the one in ``metrics.json``), and — unless ``verify=False``
— the checkpoint's weights must be the base model updated by the transcript, bit for bit.
"""

from __future__ import annotations

import copy
import shutil
from pathlib import Path
from typing import Any

from paczero import progress
from paczero.card import base_model_name, card
from paczero.config import load_run_config, task_kind
from paczero.errors import PaczeroError
from paczero.fileio import write_json, write_text
from paczero.mechanisms.registry import run_statement
from paczero.rundir import RunDir
from paczero.verify import EXPORT_DIR, VerificationFailed, check_schedule, read_published, verify_weights

CHECKPOINTS = ("best", "last")
ON_THE_HUB = "/"
"""A model name with a slash and no local folder of that name is taken to be a hub name (``facebook/opt-1.3b``)."""


def _check_public(run: RunDir, metrics: dict[str, Any]) -> None:
    cfg = load_run_config(run.path)
    published = read_published(run.path)
    check_schedule(cfg, published.steps)
    recomputed = run_statement(cfg, steps=len(published.steps),
                               releases=sum(len(s.directions) for s in published.steps)).to_dict()
    if recomputed != metrics["privacy"]:
        raise VerificationFailed(f"{run.metrics_path}: its privacy statement is not the one the settings and the "
                                 "transcript give; refusing to export an inconsistent run")
    if run.membership_path.exists():
        shape = run.read_membership().shape
        if shape != (cfg.data.n_pool, cfg.privacy.n_subsets):
            raise VerificationFailed(f"{run.membership_path} has shape {shape}; the settings give "
                                     f"{(cfg.data.n_pool, cfg.privacy.n_subsets)}")


def _on_the_hub(name: str) -> bool:
    return ON_THE_HUB in name and not Path(name).expanduser().exists()


def export_run(run_dir: str | Path, out: str | Path, *, checkpoint: str = "best", merge_lora: bool = False,
               verify: bool = True, show: bool = True) -> dict[str, Any]:
    """Write the export of ``run_dir``'s ``checkpoint`` into the new folder ``out``; returns what was written."""
    from paczero.build import build_model
    from paczero.checkpoint import load_weights
    from paczero.models import publishable

    if checkpoint not in CHECKPOINTS:
        raise PaczeroError(f"--checkpoint {checkpoint!r} is invalid; expected one of {', '.join(CHECKPOINTS)}")
    run, out = RunDir.open(run_dir), Path(out)
    if out.exists():
        raise PaczeroError(f"--out {out} already exists; give a new folder")
    metrics = run.read_metrics()
    if metrics is None:
        raise PaczeroError(f"{run.path} has not finished (no metrics.json): there is no released model to export")
    cfg = load_run_config(run.path)
    lora = cfg.model.tuning == "lora"
    if merge_lora and not lora:
        raise PaczeroError("--merge-lora applies to LoRA runs (model.tuning=lora) only")
    folder = run.checkpoint(checkpoint)
    if not folder.is_dir():
        raise PaczeroError(f"checkpoint folder not found: {folder}")
    step = metrics["best_dev"]["step"] if checkpoint == "best" else metrics["steps_run"]
    _check_public(run, metrics)
    if verify:
        published = read_published(run.path)
        targets = [t for t in published.targets if t[1] == folder]
        verify_weights(type(published)(cfg=published.cfg, steps=published.steps, targets=targets), show=show)
    loaded = build_model(cfg)
    load_weights(loaded, folder, lora=lora)
    fmt = "adapter" if lora and not merge_lora else "merged" if lora else "full"
    tmp = out.with_name(f".{out.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    with progress.phase(f"writing {out}", enabled=show):
        if fmt == "adapter":  # where peft looks for the base: its hub name, else the base written beside it
            name = cfg.model.name if _on_the_hub(cfg.model.name) else "base"
            loaded.model.peft_config["default"].base_model_name_or_path = name
        model = loaded.model.merge_and_unload() if fmt == "merged" else publishable(loaded)
        model.save_pretrained(tmp, safe_serialization=True)
        loaded.tokenizer.save_pretrained(tmp)
        if fmt == "adapter" and not _on_the_hub(cfg.model.name):
            base_cfg = copy.deepcopy(cfg)
            base_cfg.model.tuning, base_cfg.model.train_top_layers = "full", None
            base = build_model(base_cfg)  # the same θ_0 the adapters were attached to, without them
            base.model.save_pretrained(tmp / "base", safe_serialization=True)
            base.tokenizer.save_pretrained(tmp / "base")
        public = tmp / EXPORT_DIR
        public.mkdir()
        shutil.copyfile(run.config_path, public / "run.yaml")
        shutil.copyfile(run.transcript_path, public / "transcript.jsonl")
        shutil.copyfile(run.evaluations_path, public / "evaluations.jsonl")
        shutil.copyfile(run.metrics_path, public / "metrics.json")
        if run.membership_path.exists():
            shutil.copyfile(run.membership_path, public / "membership.npy")
        write_json(public / "export.json", {"checkpoint": checkpoint, "step": step, "format": fmt,
                                            "base_model": base_model_name(metrics["config"]["model"])})
        write_text(tmp / "README.md", card(metrics, kind=task_kind(cfg.data), adapter=fmt == "adapter",
                                           checkpoint=checkpoint, step=step, verify_command="paczero verify ."))
        tmp.rename(out)
    return {"folder": out, "format": fmt, "checkpoint": checkpoint, "step": step}

