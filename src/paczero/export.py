"""``paczero export RUN --out DIR``: a finished run as an ordinary Hugging Face model folder with its privacy card.

The folder loads with plain ``transformers`` (``AutoModelForCausalLM.from_pretrained(DIR)``, full weights in the
base model's dtype) or, for a LoRA run, plain ``peft`` (``PeftModel.from_pretrained(base, DIR)``; with
``--merge-lora`` the adapters are merged into full weights); no paczero needed. A base model that is not on the
hub (the packaged GGUF, a local folder, the tiny test model) is written beside a LoRA adapter as ``DIR/base/``.

It is built from the run's public record only — the settings, the transcript, the dev evaluations and the
evaluation figures — and carries it in ``DIR/paczero/`` so that anyone can verify it (``paczero verify DIR``);
``private/`` is never read. The weights are not copied from the checkpoint: they are rebuilt from the base model and
the transcript. A first-order run (DP-SGD, the first-order reference) has no transcript: its checkpoint's trained
tensors are exported as they are, and travel as ``paczero/trainable.safetensors`` for ``verify``. Before anything is written the run folder must pass ``paczero verify``'s checks of its public files
(so a tampered run folder — an edited statement, a shadow weights file, a checkpoint that is not the transcript's —
is refused), and every file is written by :func:`paczero.publication.write_export`, the function ``verify``
regenerates it with.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from paczero import progress
from paczero.config import Tuning
from paczero.errors import PaczeroError
from paczero.mechanisms.registry import run_statement
from paczero.privacy.statement import Family
from paczero.layout import CHECKPOINTS_DIR, METRICS_FILE
from paczero.publication import CHECKPOINTS, PublicRecord, export_step, write_export
from paczero.rundir import check_outside_public_side
from paczero.verify import (
    advance,
    build_base,
    check_files,
    check_schedule,
    check_selection,
    check_values,
    read_published,
    with_paths,
)


def check_promise(record: PublicRecord) -> None:
    """Refuse to publish a privacy card that promises nothing: a budget run with ``privacy.allow_vacuous`` or whose
    statement is vacuous (an MIA bound of 0.999 or more). A non-private baseline (MeZO, an ablation) is exported,
    its card saying plainly that it has no privacy guarantee."""
    cfg = record.cfg
    statement = run_statement(cfg, steps=record.n_steps, releases=sum(len(s.directions) for s in record.steps))
    if cfg.privacy.allow_vacuous or (statement.vacuous and statement.family != Family.NONE):
        raise PaczeroError(f"this run's guarantee promises nothing ({statement.summary}; privacy.allow_vacuous="
                           f"{str(cfg.privacy.allow_vacuous).lower()}): paczero does not publish it with a privacy card")


def push_to_hub(folder: Path, repo_id: str, *, private: bool = False) -> str:
    """Upload an export to the Hugging Face hub as the model repository ``repo_id`` (created if missing); returns
    its URL. Needs the hub (and a token: ``huggingface-cli login`` or ``HF_TOKEN``)."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    from paczero.hub import hub_reachable

    if not hub_reachable():
        raise PaczeroError(f"--push-to-hub {repo_id}: the Hugging Face hub is unreachable (or HF_HUB_OFFLINE is set); "
                           f"the export is in {folder}: push it later with huggingface-cli upload {repo_id} {folder}")
    api = HfApi()
    try:
        url = api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
        api.upload_folder(repo_id=repo_id, repo_type="model", folder_path=str(folder),
                          commit_message="paczero export: model, privacy card and public transcript")
    except (HfHubHTTPError, OSError, ValueError) as exc:
        raise PaczeroError(f"--push-to-hub {repo_id} failed ({type(exc).__name__}: {str(exc).splitlines()[0]}); the "
                           f"export is in {folder}") from None
    return str(url)


def export_run(run_dir: str | Path, out: str | Path, *, checkpoint: str = "best", merge_lora: bool = False,
               data_dir: str | None = None, paths: list[str] = (), show: bool = True) -> dict[str, Any]:
    """Write the export of ``run_dir``'s ``checkpoint`` into the new folder ``out``; returns what was written
    (``data_dir`` and ``paths``, ``data.KEY=PATH``: where the tiny test model finds the public texts of its
    vocabulary; no other model reads data)."""
    from paczero.build import build_model

    if checkpoint not in CHECKPOINTS:
        raise PaczeroError(f"--checkpoint {checkpoint!r} is invalid; expected one of {', '.join(CHECKPOINTS)}")
    run_dir, out = Path(run_dir), Path(out)
    if out.exists():
        raise PaczeroError(f"--out {out} already exists; give a new folder")
    check_outside_public_side(out.parent, what="an export")
    published = read_published(run_dir)
    if published.is_export:
        raise PaczeroError(f"{run_dir} is an export already; export a run directory")
    record = published.record
    cfg = record.cfg
    lora = cfg.model.tuning == Tuning.LORA
    if merge_lora and not lora:
        raise PaczeroError("--merge-lora applies to LoRA runs (model.tuning=lora) only")
    check_promise(record)
    check_schedule(cfg, record.steps)
    check_values(cfg, record.steps)
    check_selection(record, run_dir / METRICS_FILE)
    model_cfg = with_paths(cfg, list(paths))
    model_cfg.data.data_dir = data_dir
    check_files(published, model_cfg=model_cfg, show=show)
    fmt = "adapter" if lora and not merge_lora else "merged" if lora else "full"
    loaded = build_model(model_cfg)
    # a first-order run has no transcript to rebuild from: the checkpoint's weights as trained (checked above)
    advance(loaded, record, record.steps[:export_step(record, checkpoint)],
            trained=run_dir / CHECKPOINTS_DIR / checkpoint, show=show)
    tmp = out.with_name(f".{out.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    with progress.phase(f"writing {out}", enabled=show):
        try:
            write_export(tmp, record, loaded, checkpoint=checkpoint, fmt=fmt,
                         base=build_base(model_cfg) if fmt == "adapter" else None)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        tmp.rename(out)
    return {"folder": out, "format": fmt, "checkpoint": checkpoint, "step": export_step(record, checkpoint),
            "first_order": record.first_order}
