"""De-quantised GGUF weights kept as safetensors, so that a GGUF model loads in seconds after the first time.

Loading a GGUF file (the packaged SmolLM2, or ``model.name=<folder> model.gguf_file=<file>``)
de-quantises every tensor: 20–30 s for SmolLM2-135M on two cores. The first load writes the result
to the cache, one folder per GGUF content::

    <cache>/gguf/<SHA-256 of the GGUF file>/
        model.safetensors  config.json  generation_config.json  tokenizer files  manifest.json

and every later load reads that folder (``from_pretrained`` of safetensors, about a second).

- **Where**: ``$PACZERO_CACHE_DIR`` if set; else ``<checkout>/.cache/paczero`` when paczero runs from
  its source checkout (``.cache/`` is ignored by git); else ``.cache/paczero`` under the working
  directory. Nothing is written anywhere else.
- **Key**: the SHA-256 of the GGUF file's bytes. It is computed once per (path, size, modification
  time) and remembered in ``<cache>/gguf/files/``; a file whose size or modification time changed is
  hashed again (and so read again if its content changed). Before an entry is written the file is
  always hashed in full.
- **Integrity**: ``manifest.json`` names the GGUF's SHA-256 and every file of the entry with its size
  and SHA-256, checked at every load. An entry that does not match (truncated, garbled or missing
  file, another GGUF's hash, an unreadable manifest) is rebuilt, never used.
- **Atomic writes**: an entry is written to a temporary folder beside it and renamed into place; of
  two processes building the same entry at once (``torchrun``), the first rename wins.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import uuid
from pathlib import Path

import torch

from paczero.errors import PaczeroError

log = logging.getLogger("paczero")

MANIFEST = "manifest.json"
_CHUNK = 1 << 24


def cache_root() -> Path:
    """The cache folder: ``$PACZERO_CACHE_DIR``, else ``.cache/paczero`` in the source checkout or the working directory."""
    env = os.environ.get("PACZERO_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    checkout = Path(__file__).resolve().parents[2]
    if (checkout / "pyproject.toml").is_file() and (checkout / ".git").exists():
        return checkout / ".cache" / "paczero"
    return Path.cwd() / ".cache" / "paczero"


def sha256_of(path: Path) -> str:
    """The SHA-256 of the file's bytes (hex)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, prefix=f".{path.name}.", delete=False) as f:
        f.write(text)
    os.replace(f.name, path)


def _remembered_sha256(gguf: Path, root: Path) -> str:
    """The GGUF's SHA-256, hashed once per (path, size, modification time)."""
    stat = gguf.stat()
    seen = {"path": str(gguf), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    note = root / "gguf" / "files" / f"{hashlib.sha256(str(gguf).encode()).hexdigest()}.json"
    try:
        known = json.loads(note.read_text())
        if {k: known.get(k) for k in seen} == seen and isinstance(known.get("sha256"), str):
            return known["sha256"]
    except (OSError, ValueError):
        pass  # not seen yet, or an unreadable note: hash the file
    sha = sha256_of(gguf)
    _write_atomically(note, json.dumps({**seen, "sha256": sha}))
    return sha


def _valid(entry: Path, sha: str) -> bool:
    """Whether ``entry`` holds a complete, unaltered copy built from the GGUF with SHA-256 ``sha``."""
    try:
        manifest = json.loads((entry / MANIFEST).read_text())
        files = manifest["files"]
        if manifest["gguf_sha256"] != sha or "model.safetensors" not in files:
            return False
        return all((entry / name).stat().st_size == f["size"] and sha256_of(entry / name) == f["sha256"]
                   for name, f in files.items())
    except (OSError, ValueError, KeyError, TypeError):
        return False


def _build(gguf: Path, sha: str, folder: Path) -> None:
    """De-quantise ``gguf`` (float32) and write the model, its config and tokenizer, and the manifest, to ``folder``."""
    from safetensors.torch import save_model
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32,
                                                 quantization_config=GgufConfig(dequantize=True))
    save_model(model, str(folder / "model.safetensors"), metadata={"format": "pt"})  # tied tensors stored once
    model.config.save_pretrained(folder)
    config = json.loads((folder / "config.json").read_text())
    config.pop("quantization_config", None)  # the weights are plain tensors now
    (folder / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True))
    if model.generation_config is not None:
        model.generation_config.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    files = {p.name: {"size": p.stat().st_size, "sha256": sha256_of(p)} for p in sorted(folder.iterdir())}
    (folder / MANIFEST).write_text(json.dumps({"gguf_sha256": sha, "files": files}, indent=2))


def dequantised(gguf: Path, *, root: Path | None = None) -> Path:
    """The cache folder holding ``gguf`` de-quantised (``from_pretrained`` loads it), built if missing or corrupt."""
    root = cache_root() if root is None else root
    gguf = gguf.resolve()
    try:
        sha = _remembered_sha256(gguf, root)
        entry = root / "gguf" / sha
        if _valid(entry, sha):
            return entry
        sha = sha256_of(gguf)  # about to spend the de-quantisation: be sure of the key
        entry = root / "gguf" / sha
        log.info("de-quantising %s once into %s", gguf, entry)
        tmp = entry.parent / f".tmp-{uuid.uuid4().hex}"
        tmp.mkdir(parents=True)
        try:
            _build(gguf, sha, tmp)
            if entry.exists() and not _valid(entry, sha):  # corrupt: move it aside (a folder is not renamed over one)
                stale = entry.parent / f".stale-{uuid.uuid4().hex}"
                os.rename(entry, stale)
                shutil.rmtree(stale, ignore_errors=True)
            os.rename(tmp, entry)
        except OSError:
            if not _valid(entry, sha):  # unless another process has just written it
                raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    except OSError as exc:
        raise PaczeroError(f"cannot cache {gguf.name} de-quantised under {root}: {exc} (PACZERO_CACHE_DIR sets "
                           "the cache folder)") from None
    return entry
