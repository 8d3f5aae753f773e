"""Where data comes from: the local data folder, text files read with clear errors, and the HF hub."""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path
from typing import Any

from paczero.errors import PaczeroError

_BOM = b"\xef\xbb\xbf"
_LINE_END = re.compile(r"\r\n|\r|\n")
MAX_FILE_BYTES = 2 << 30
"""The largest data file read whole (2 GiB): a bigger one, or one that is not a regular file (a device such as
``/dev/zero``, a pipe), is refused with one line before anything is read."""
PREVIEW_CHARS = 60
"""A value quoted in an error message is cut to this many characters (a data file's field can be megabytes)."""


def preview(value: Any) -> str:
    """``repr(value)``, cut to :data:`PREVIEW_CHARS` characters: one short line for an error message."""
    text = repr(value)
    return text if len(text) <= PREVIEW_CHARS else text[:PREVIEW_CHARS - 1] + "…"


def reason(exc: BaseException) -> str:
    """One line saying why a third-party reader failed: the type and first line of the exception it was
    raised from (``raise ... from``), innermost first."""
    while exc.__cause__ is not None:
        exc = exc.__cause__
    lines = str(exc).strip().splitlines()
    text = f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
    return text if len(text) <= 200 else text[:199] + "…"


def data_folder(data_dir: str | None) -> Path | None:
    """The data folder: ``data_dir`` (``data.data_dir``), else ``$PACZERO_DATA_DIR``, else None."""
    chosen = data_dir or os.environ.get("PACZERO_DATA_DIR") or None
    return Path(chosen).expanduser() if chosen else None


def resolve_data_dir(data_dir: str | None) -> Path | None:
    """``data_dir`` if given, else ``$PACZERO_DATA_DIR``, else ``None`` (use the hub)."""
    chosen = data_dir or os.environ.get("PACZERO_DATA_DIR") or None
    if chosen is None:
        return None
    path = Path(chosen).expanduser()
    if not path.is_dir():
        raise PaczeroError(f"data directory not found: {path} (set data.data_dir or PACZERO_DATA_DIR)")
    return path


def locate(name: str, *, folder: Path | None, key: str) -> Path:
    """The file (or folder) ``name`` of the setting ``key``: as given when it exists, else relative to the data
    ``folder`` (published settings name data relative to it); a name the published settings withheld is an error."""
    if name.startswith("<withheld>"):
        raise PaczeroError(f"{key} was withheld from the published settings (the file lay outside the data folder): "
                           f"give its path, e.g. paczero verify ... --set {key}=PATH")
    path = Path(name).expanduser()
    if not path.exists() and not path.is_absolute() and folder is not None and (folder / path).exists():
        return folder / path
    return path


def check_regular(path: Path, *, what: str) -> int:
    """The size of ``path``, a regular file (links followed); a :class:`PaczeroError` naming it otherwise."""
    try:
        info = path.stat()
    except FileNotFoundError:
        raise PaczeroError(f"{what} not found: {path}") from None
    except OSError as exc:
        raise PaczeroError(f"cannot read {path}: {exc.strerror}") from None
    if not stat.S_ISREG(info.st_mode):
        kind = "a folder" if stat.S_ISDIR(info.st_mode) else "a device, pipe or socket"
        raise PaczeroError(f"cannot read {path}: it is {kind}, not a regular file")
    return info.st_size


def read_text(path: Path, *, what: str) -> str:
    """The whole of a UTF-8 text file of at most :data:`MAX_FILE_BYTES` (line endings kept, a leading byte-order
    mark dropped), or a :class:`PaczeroError` naming ``path``."""
    size = check_regular(path, what=what)
    if size > MAX_FILE_BYTES:
        raise PaczeroError(f"{path} holds {size} bytes, more than the {MAX_FILE_BYTES} a data file may hold")
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise PaczeroError(f"cannot read {path}: {exc.strerror}") from None
    if len(data) > MAX_FILE_BYTES:
        raise PaczeroError(f"{path} grew beyond the {MAX_FILE_BYTES} bytes a data file may hold while it was read")
    start = len(_BOM) if data.startswith(_BOM) else 0
    try:
        return data[start:].decode("utf-8")
    except UnicodeDecodeError as exc:
        at = start + exc.start
        line = data.count(b"\n", 0, at) + 1
        raise PaczeroError(f"{path} is not valid UTF-8 (line {line}, byte {at}): {exc.reason}") from None


def split_lines(text: str) -> list[str]:
    """The lines of ``text``, ended by ``\\r\\n``, ``\\r`` or ``\\n`` only (``str.splitlines`` also splits at
    U+2028, U+0085 and other characters that a JSON string or a sentence may hold)."""
    return _LINE_END.split(text)


def parse_json(text: str, *, where: str) -> Any:
    """``json.loads(text)``, or a :class:`PaczeroError` ``"{where}: not valid JSON (...)"``, also for nesting
    deeper than Python's recursion limit and integers longer than ``int`` converts."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        at = f"line {exc.lineno}, column {exc.colno}" if "\n" in text else f"column {exc.colno}"
        raise PaczeroError(f"{where}: not valid JSON ({exc.msg} at {at})") from None
    except (ValueError, RecursionError) as exc:
        raise PaczeroError(f"{where}: not valid JSON ({reason(exc)})") from None


def load_hub_dataset(name: str) -> Any:
    """``datasets.load_dataset(name)``, with any failure (missing package, network, layout) as a user error."""
    try:
        import datasets
    except ImportError:
        raise PaczeroError(f"no local data (set PACZERO_DATA_DIR or data.data_dir) and the `datasets` package for "
                           f"the HF hub ({name}) is not installed: pip install 'paczero[hub]'") from None
    from paczero.hub import cache_only, hub_reachable

    online = hub_reachable()
    try:
        with cache_only(not online):
            return datasets.load_dataset(name)
    except Exception as exc:  # network, auth, hub layout: all user-facing
        why = reason(exc) if online else "the hub is unreachable and the data set is not in the Hugging Face cache"
        raise PaczeroError(f"cannot load {name} from the HF hub: {why}") from None
