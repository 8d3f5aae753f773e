"""A run's folder: which of its files are public, which are private, and how each is written.

**Public** (safe to publish with the model: functions of the settings, the public seed, the membership matrix,
the base model and the released values only)::

    config.yaml          the resolved settings
    membership.npy       the M candidate subsets (mechanisms that use them)
    transcript.jsonl     per step: lr, direction seeds, released values (append-only)
    evaluations.jsonl    per dev evaluation: step and metrics on the public dev set (append-only)
    metrics.json         dev/test metrics, the privacy statement, versions
    checkpoints/best/    the selected weights
    checkpoints/last/    the latest weights and the public progress (progress.json)

**Private** (``private/``, mode 0700, every file 0600; written only by the trainer and the audit, and never
read by anything that writes a public file)::

    secret.json          J* and the key of the private randomness
    paths.json           where the owner keeps the data (the paths config.yaml withholds)
    releases.jsonl       each release's private record (kind, subset signs, q₊, β, flip, MI, batch)
    diagnostics.jsonl    per step: pool loss, unanimity, non-finite count, MI spent
    state/<step>.json    the mechanism's state and counters at a checkpoint (posterior, MI spent)
    privacy.json         the owner's figures: achieved MI, release kinds, unanimity, true-sign rate
    timings.json         wall-clock figures (a DP run's depend on its secret batches)
    records.json         SHA-256 of the records passed in memory (``paczero.train(data=...)``), to check a resume
    tensorboard/         the owner's dashboard (wall times, pool figures)
    audit/               membership-inference audits (they use J*)

Public logs are append-only: a resumed run re-derives the lines it had published after its checkpoint and
:class:`AppendOnlyLog` compares them with what is on disk instead of rewriting them, so a crash at any point —
during a resume too — leaves the published transcript intact and checkable. Private logs are cut back to the
checkpoint on resume.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from paczero.checkpoint import PROGRESS_FILE, recover
from paczero.errors import PRIVATE_TAG, PaczeroError
from paczero.fileio import append_bytes, append_jsonl, atomic_write, read_json, write_json, write_text
from paczero.layout import (CHECKPOINTS_DIR, CONFIG_FILE, EVALUATIONS_FILE, MEMBERSHIP_FILE, METRICS_FILE, PRIVATE_DIR,
                            TRANSCRIPT_FILE, WITHHELD_PATHS_FILE)
from paczero.secret import SecretState

PRIVATE_MODE = 0o600
PRIVATE_DIR_MODE = 0o700


class PublishedLineMismatch(PaczeroError):
    """A recomputed line differs from the one already published."""


class AppendOnlyLog:
    """A JSON-lines file that is only ever appended to, with a check of re-derived lines against published ones.

    On opening, the complete lines on disk are kept (and a torn last line, if a crash cut one short). Writing line
    ``i`` when the file already holds it compares the two and writes nothing; writing the first missing line
    completes a torn one (which must be its prefix) or appends.
    """

    def __init__(self, path: Path, *, mode: int = 0o644):
        self.path = Path(path)
        self.mode = mode
        data = self.path.read_bytes() if self.path.exists() else b""
        *complete, self._torn = data.split(b"\n")
        self._lines: list[bytes] = complete

    def __len__(self) -> int:
        return len(self._lines)

    def write(self, index: int, line: bytes) -> None:
        """Publish ``line`` as line ``index`` (0-based), or check it against the one already there."""
        if b"\n" in line:
            raise ValueError("a log line cannot hold a newline")
        if index < len(self._lines):
            if self._lines[index] != line:
                raise PublishedLineMismatch(
                    f"{self.path}: line {index + 1} was recomputed differently from the one already published")
            return
        if index > len(self._lines):
            raise ValueError(f"{self.path}: line {index + 1} written before line {len(self._lines) + 1}")
        if self._torn and not line.startswith(self._torn):
            raise PublishedLineMismatch(f"{self.path}: line {index + 1} was recomputed differently from the part "
                                        "of it a crash had already written")
        append_bytes(self.path, line[len(self._torn):] + b"\n", mode=self.mode)
        self._torn = b""
        self._lines.append(line)


def _truncate_lines(path: Path, keep: int) -> None:
    """Keep the first ``keep`` complete lines of a private log (whatever follows is recomputed on resume)."""
    if not path.exists():
        if keep:
            raise PaczeroError(f"{path} is missing but the checkpoint expects {keep} lines in it")
        return
    lines = path.read_bytes().split(b"\n")[:-1]
    if len(lines) < keep:
        raise PaczeroError(f"{path} holds {len(lines)} complete lines but the checkpoint expects {keep}")
    atomic_write(path, lambda p: p.write_bytes(b"".join(line + b"\n" for line in lines[:keep])), mode=PRIVATE_MODE)


def _shred(path: Path) -> None:
    """Overwrite a file with zeros, flush it to disk, then unlink it."""
    size = path.stat().st_size
    with open(path, "r+b") as fh:
        fh.write(b"\0" * size)
        fh.flush()
        os.fsync(fh.fileno())
    path.unlink()


class RunDir:
    """The files of one run; the only code that knows their names."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.private = self.path / PRIVATE_DIR

    # ------------------------------------------------------------------ creation
    @classmethod
    def create(cls, path: str | os.PathLike, *, closed: bool = False) -> "RunDir":
        """Make a new, empty run folder (refusing an existing one) and its private folder.

        ``closed``: the folder is 0700 until :meth:`open_to_all` (a DP run's public files grow once per step, and
        their times would time its secret Poisson batches for any local user watching them).
        """
        run = cls(path)
        if run.path.exists():
            raise PaczeroError(f"run directory {run.path} already exists; choose another run.name")
        run.path.parent.mkdir(parents=True, exist_ok=True)
        run.path.mkdir(mode=PRIVATE_DIR_MODE if closed else 0o777)
        run.ensure_private()
        return run

    def open_to_all(self) -> None:
        """A finished run's folder, readable by all (0755): its public side may be shared; ``private/`` stays 0700."""
        self.path.chmod(0o755)

    @classmethod
    def open(cls, path: str | os.PathLike) -> "RunDir":
        """An existing run folder (it must hold a config)."""
        run = cls(path)
        if not (run.path / CONFIG_FILE).is_file():
            raise PaczeroError(f"{run.path} is not a run directory (no {CONFIG_FILE})")
        return run

    def ensure_private(self) -> Path:
        """The private folder, created with mode 0700 if missing."""
        self.private.mkdir(mode=PRIVATE_DIR_MODE, exist_ok=True)
        self.private.chmod(PRIVATE_DIR_MODE)
        return self.private

    # ------------------------------------------------------------------ public files
    @property
    def config_path(self) -> Path:
        return self.path / CONFIG_FILE

    @property
    def membership_path(self) -> Path:
        return self.path / MEMBERSHIP_FILE

    @property
    def transcript_path(self) -> Path:
        return self.path / TRANSCRIPT_FILE

    @property
    def evaluations_path(self) -> Path:
        return self.path / EVALUATIONS_FILE

    @property
    def metrics_path(self) -> Path:
        return self.path / METRICS_FILE

    def checkpoint(self, name: str) -> Path:
        """The folder of checkpoint ``name`` (``best`` or ``last``)."""
        return self.path / CHECKPOINTS_DIR / name

    def write_config(self, yaml_text: str) -> None:
        """Write the resolved settings (``config.yaml``)."""
        write_text(self.config_path, yaml_text)

    def write_membership(self, membership: np.ndarray) -> None:
        """Write the public membership matrix (``membership.npy``)."""
        def write(path: Path) -> None:
            with open(path, "wb") as fh:  # a file object: np.save would append ".npy" to a path
                np.save(fh, membership)
        atomic_write(self.membership_path, write)

    def read_membership(self) -> np.ndarray:
        """The public membership matrix."""
        if not self.membership_path.is_file():
            raise PaczeroError(f"{self.path} has no {MEMBERSHIP_FILE}")
        return np.load(self.membership_path)

    def write_metrics(self, metrics: dict[str, Any]) -> None:
        """Write ``metrics.json`` (public: dev/test metrics, the statement, versions)."""
        write_json(self.metrics_path, metrics)

    def read_metrics(self) -> dict[str, Any] | None:
        """``metrics.json``, or None while the run has not finished."""
        return read_json(self.metrics_path) if self.metrics_path.is_file() else None

    @property
    def finished(self) -> bool:
        return self.metrics_path.is_file()

    def transcript(self) -> AppendOnlyLog:
        """The public transcript, opened for appending (and checking re-derived lines)."""
        return AppendOnlyLog(self.transcript_path)

    def evaluations(self) -> AppendOnlyLog:
        """The public dev evaluations, opened for appending (and checking re-derived lines)."""
        return AppendOnlyLog(self.evaluations_path)

    def read_transcript(self) -> list[dict[str, Any]]:
        """The transcript's records (complete lines only)."""
        if not self.transcript_path.is_file():
            raise PaczeroError(f"{self.path} has no {TRANSCRIPT_FILE}")
        return _complete_records(self.transcript_path)

    def read_evaluations(self) -> list[dict[str, Any]]:
        """The dev evaluations written so far (``[]`` before the first)."""
        return _complete_records(self.evaluations_path) if self.evaluations_path.is_file() else []

    def public_files(self) -> list[Path]:
        """Every public file of the run (relative paths, sorted): everything outside ``private/``."""
        out = []
        for p in sorted(self.path.rglob("*")):
            rel = p.relative_to(self.path)
            if p.is_file() and rel.parts[0] != PRIVATE_DIR:
                out.append(rel)
        return out

    # ------------------------------------------------------------------ private files
    @property
    def secret_path(self) -> Path:
        return self.private / "secret.json"

    @property
    def releases_path(self) -> Path:
        return self.private / "releases.jsonl"

    @property
    def diagnostics_path(self) -> Path:
        return self.private / "diagnostics.jsonl"

    @property
    def timings_path(self) -> Path:
        return self.private / "timings.json"

    @property
    def privacy_path(self) -> Path:
        return self.private / "privacy.json"

    @property
    def withheld_paths_path(self) -> Path:
        """The data paths the published settings withhold (read back by :func:`paczero.settings.load_run_config`)."""
        return self.path / WITHHELD_PATHS_FILE

    @property
    def records_path(self) -> Path:
        """The digests of records passed in memory (a resume must be given the same)."""
        return self.private / "records.json"

    @property
    def audit_dir(self) -> Path:
        return self.private / "audit"

    @property
    def tensorboard_dir(self) -> Path:
        return self.private / "tensorboard"

    def state_path(self, step: int) -> Path:
        """The private resume state of the checkpoint at ``step``."""
        return self.private / "state" / f"{step}.json"

    def save_secret(self, secret: SecretState) -> None:
        """Write the secret (mode 0600) into the private folder."""
        self.ensure_private()
        secret.save(self.secret_path)

    def load_secret(self) -> SecretState:
        """Read the secret from the private folder."""
        return SecretState.load(self.secret_path)

    def append_private(self, path: Path, record: dict[str, Any]) -> None:
        """Append one line to a private log (created 0600)."""
        self.ensure_private()
        append_jsonl(path, record, mode=PRIVATE_MODE)

    def write_private_json(self, path: Path, obj: Any) -> None:
        """Write a private JSON file (mode 0600)."""
        self.ensure_private()
        path.parent.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)
        write_json(path, obj, mode=PRIVATE_MODE)

    def read_private_json(self, path: Path) -> Any:
        """A private JSON file (a clear error if it is missing)."""
        if not path.is_file():
            raise PaczeroError(f"{path} is missing (was the private folder removed with --forget-secret?)")
        return read_json(path)

    def read_private(self, path: Path) -> list[dict[str, Any]]:
        """The complete records of a private log ([] if it does not exist)."""
        return _complete_records(path) if path.is_file() else []

    def truncate_private_logs(self, *, releases: int, diagnostics: int) -> None:
        """Cut the private logs back to the line counts of a checkpoint."""
        _truncate_lines(self.releases_path, releases)
        _truncate_lines(self.diagnostics_path, diagnostics)

    # ------------------------------------------------------------------ checkpoints
    def save_state(self, step: int, state: dict[str, Any]) -> None:
        """The private resume state of the checkpoint at ``step`` (written before the checkpoint itself)."""
        self.write_private_json(self.state_path(step), state)

    def load_state(self, step: int) -> dict[str, Any]:
        """The private resume state of the checkpoint at ``step`` (a clear error if it is missing)."""
        path = self.state_path(step)
        if not path.is_file():
            raise PaczeroError(f"{path} is missing: the private state of the checkpoint at step {step} (was the "
                               "private folder removed with --forget-secret?)")
        return read_json(path)

    def prune_states(self, keep: int) -> None:
        """Remove the private states of every step but ``keep`` (after its checkpoint is safely in place)."""
        folder = self.private / "state"
        for p in folder.glob("*.json") if folder.is_dir() else ():
            if p.stem != str(keep):
                p.unlink()

    def read_progress(self) -> dict[str, Any] | None:
        """The public progress of ``checkpoints/last`` (finishing a replacement a crash cut short), or None."""
        folder = self.checkpoint("last")
        recover(folder)
        path = folder / PROGRESS_FILE
        return read_json(path) if path.is_file() else None

    # ------------------------------------------------------------------ forgetting the secret
    def forget_secret(self, *, keep_diagnostics: bool) -> list[Path]:
        """Overwrite then unlink every private file that depends on the secret (J* or the key); returns them.

        ``diagnostics.jsonl`` (pool loss, unanimity, MI spent) is kept where it depends on the pool and the
        released values only (``keep_diagnostics``: PAC runs and MeZO; a DP run's is computed on its secret
        Poisson batches); ``paths.json`` (where the data is) is kept.
        """
        removed = []
        if not self.private.is_dir():
            return removed
        kept = {self.withheld_paths_path} | ({self.diagnostics_path} if keep_diagnostics else set())
        for p in sorted(self.private.rglob("*"), reverse=True):
            if p.is_file() and p not in kept:
                _shred(p)
                removed.append(p)
        for p in sorted(self.private.rglob("*"), reverse=True):
            if p.is_dir():
                shutil.rmtree(p)
        return removed


def enclosing_run(path: str | os.PathLike) -> RunDir | None:
    """The run folder that ``path`` lies in (or is), or None."""
    for folder in (Path(path).resolve(), *Path(path).resolve().parents):
        if (folder / CONFIG_FILE).is_file() and (folder / TRANSCRIPT_FILE).exists():
            return RunDir(folder)
    return None


def check_outside_public_side(path: str | os.PathLike, *, what: str) -> None:
    """Refuse to write ``what`` at ``path`` inside a run folder's public side: anything there outside ``private/`` is
    a public file of the run (and ``paczero verify`` refuses a run folder holding files it did not write)."""
    run = enclosing_run(path)
    if run is not None and run.private.resolve() not in (Path(path).resolve(), *Path(path).resolve().parents):
        raise PaczeroError(f"{path} lies inside the run folder {run.path}, among its public files: write {what} "
                           f"outside any run folder (or under {run.private} for the owner's eyes only)")


def _complete_records(path: Path) -> list[dict[str, Any]]:
    lines = path.read_bytes().split(b"\n")[:-1]  # a torn last line (no newline) is not part of the log
    return [json.loads(line) for line in lines if line.strip()]

