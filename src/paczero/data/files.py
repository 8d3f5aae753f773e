"""Where data comes from: the local data folder, text files read with clear errors, and the HF hub."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from paczero.errors import PaczeroError


def resolve_data_dir(data_dir: str | None) -> Path | None:
    """``data_dir`` if given, else ``$PACZERO_DATA_DIR``, else ``None`` (use the hub)."""
    chosen = data_dir or os.environ.get("PACZERO_DATA_DIR") or None
    if chosen is None:
        return None
    path = Path(chosen).expanduser()
    if not path.is_dir():
        raise PaczeroError(f"data directory not found: {path} (set data.data_dir or PACZERO_DATA_DIR)")
    return path


def read_text(path: Path, *, what: str) -> str:
    """The whole of a UTF-8 text file (line endings kept), or a :class:`PaczeroError` naming ``path``."""
    if not path.exists():
        raise PaczeroError(f"{what} not found: {path}")
    try:
        with open(path, encoding="utf-8", newline="") as fh:
            return fh.read()
    except UnicodeDecodeError as exc:
        raise PaczeroError(f"{path} is not valid UTF-8 (byte {exc.start}): {exc.reason}") from None
    except OSError as exc:
        raise PaczeroError(f"cannot read {path}: {exc.strerror}") from None


def load_hub_dataset(name: str) -> Any:
    """``datasets.load_dataset(name)``, with any failure (missing package, network, layout) as a user error."""
    try:
        import datasets
    except ImportError:
        raise PaczeroError(f"no local data (set PACZERO_DATA_DIR or data.data_dir) and the `datasets` package for "
                           f"the HF hub ({name}) is not installed: pip install 'paczero[hub]'") from None
    try:
        return datasets.load_dataset(name)
    except Exception as exc:  # network, auth, hub layout: all user-facing
        raise PaczeroError(f"cannot load {name} from the HF hub: {exc}") from None
