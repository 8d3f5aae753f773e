"""Saving and loading the trainable weights (safetensors; LoRA as a peft adapter).

A checkpoint folder is written beside its final place and renamed into it, so a crash leaves either
the old checkpoint or the new one, never a mixture.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from paczero.config import Tuning
from paczero.errors import PaczeroError
from paczero.fileio import write_json
from paczero.models import LoadedModel

WEIGHTS_FILE = "model.safetensors"


PROGRESS_FILE = "progress.json"
ADAPTER_CONFIG = "adapter_config.json"


def canonical_adapter_config(folder: Path) -> None:
    """Rewrite the ``adapter_config.json`` peft just saved in ``folder`` with its list fields that peft keeps as sets
    (``target_modules``) sorted: peft writes a set in hash order, which differs between processes, and the file is
    public, so the same run would otherwise publish different bytes (and ``verify``, in another process, would see
    a file that differs from the rebuilt one)."""
    path = folder / ADAPTER_CONFIG
    config = json.loads(path.read_text())
    for key, value in config.items():
        if key.endswith("modules") and isinstance(value, list) and all(isinstance(v, str) for v in value):
            config[key] = sorted(value)
    path.write_text(json.dumps(config, indent=2, sort_keys=True))


def _write(loaded: LoadedModel, folder: Path, *, lora: bool) -> None:
    if lora:
        # The base is named by the run's settings; the path the base was loaded from is this machine's business.
        loaded.model.peft_config["default"].base_model_name_or_path = None
        loaded.model.save_pretrained(folder, save_embedding_layers=False)
        canonical_adapter_config(folder)
    else:
        folder.mkdir(parents=True)
        save_file({n: p.detach().contiguous().cpu() for n, p in loaded.trainable}, str(folder / WEIGHTS_FILE))
    for f in folder.iterdir():
        f.chmod(0o644)  # public files (safetensors writes its file 0600)
        with open(f, "rb") as fh:
            os.fsync(fh.fileno())


def save_weights(loaded: LoadedModel, folder: Path, *, progress: dict[str, Any] | None = None) -> None:
    """Atomically (re)place ``folder`` with the trainable weights of ``loaded`` (and the public ``progress``): a peft
    adapter for a LoRA model, else the trainable tensors by name.

    The weights and the progress land together or not at all: both are written into a temporary folder
    that is renamed into place.
    """
    folder = Path(folder)
    tmp, old = folder.with_name(f".{folder.name}.tmp"), folder.with_name(f".{folder.name}.old")
    shutil.rmtree(tmp, ignore_errors=True)
    recover(folder)
    shutil.rmtree(old, ignore_errors=True)
    _write(loaded, tmp, lora=loaded.tuning == Tuning.LORA)
    if progress is not None:
        write_json(tmp / PROGRESS_FILE, progress)
    if folder.exists():
        folder.rename(old)
    tmp.rename(folder)
    shutil.rmtree(old, ignore_errors=True)


@torch.inference_mode()
def load_weights(loaded: LoadedModel, folder: Path) -> None:
    """Copy the weights saved by :func:`save_weights` into ``loaded``'s trainable tensors."""
    folder = Path(folder)
    if loaded.tuning == Tuning.LORA:
        from peft import load_peft_weights, set_peft_model_state_dict

        set_peft_model_state_dict(loaded.model, load_peft_weights(str(folder), device=str(loaded.device)))
        return
    state = load_file(str(folder / WEIGHTS_FILE))
    what = misfit(loaded, state)
    if what is not None:
        raise PaczeroError(f"{folder / WEIGHTS_FILE} does not fit this model's trainable tensors: {what}")
    for name, p in loaded.trainable:
        p.copy_(state[name])


def misfit(loaded: LoadedModel, state: dict[str, Any], *, dtype: bool = False) -> str | None:
    """Why ``state`` does not fit ``loaded``'s trainable tensors — a missing, extra or reshaped tensor (and with
    ``dtype``, one of another dtype) — or None when it does."""
    expected = {name: tuple(p.shape) for name, p in loaded.trainable}
    found = {name: tuple(t.shape) for name, t in state.items()}
    missing, extra = sorted(set(expected) - set(found)), sorted(set(found) - set(expected))
    if missing:
        return f"tensor {missing[0]} is missing"
    if extra:
        return f"it holds a tensor {extra[0]} the model does not train"
    for name, p in loaded.trainable:
        if found[name] != expected[name]:
            return f"tensor {name} is {found[name]}, the model's is {expected[name]}"
        if dtype and state[name].dtype != p.dtype:
            return f"tensor {name} is {state[name].dtype}, the model's is {p.dtype}"
    return None


def recover(folder: Path) -> None:
    """Finish a replacement cut short between its two renames (the old copy is complete)."""
    old = folder.with_name(f".{folder.name}.old")
    if old.exists() and not folder.exists():
        old.rename(folder)
