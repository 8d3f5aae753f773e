"""Atomic file writes: a crash never leaves a half-written output behind.

Every file is written to a temporary sibling, flushed and fsynced, then renamed over the target
(rename is atomic on POSIX). The directory is fsynced too, so the rename itself survives a crash.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None], *, mode: int = 0o644) -> None:
    """Call ``write(tmp_path)`` then move ``tmp_path`` onto ``path`` atomically with permissions ``mode``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        os.chmod(tmp_path, mode)
        write(tmp_path)
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def write_text(path: str | os.PathLike, text: str, *, mode: int = 0o644) -> None:
    """Atomically write ``text`` (UTF-8) to ``path``."""
    atomic_write(path, lambda p: p.write_text(text, encoding="utf-8"), mode=mode)


def write_json(path: str | os.PathLike, obj: Any, *, mode: int = 0o644) -> None:
    """Atomically write ``obj`` as indented, key-sorted JSON (stable bytes for equal content)."""
    write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n", mode=mode)


def jsonl_line(obj: Any) -> bytes:
    """The bytes of ``obj`` as one compact, key-sorted JSON line (without the newline)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode("utf-8")


def append_bytes(path: str | os.PathLike, data: bytes, *, mode: int = 0o644) -> None:
    """Append ``data`` and fsync it; a file created here gets permissions ``mode``."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, mode)
    with os.fdopen(fd, "ab") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def append_jsonl(path: str | os.PathLike, obj: Any, *, mode: int = 0o644) -> None:
    """Append one JSON line and fsync it (the run's logs are append-only)."""
    append_bytes(path, jsonl_line(obj) + b"\n", mode=mode)


def read_json(path: str | os.PathLike) -> Any:
    """Read a JSON file."""
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def read_jsonl(path: str | os.PathLike) -> list[Any]:
    """Read a JSON-lines file written by :func:`append_jsonl`."""
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]
