"""The public transcript: one JSON line per step, everything an auditor needs to rebuild the model.

Per step: the step index, the learning rate, and per direction its public seed, the released value
(the multiplier of z in the update), how it was produced (``kind``) and the mechanism's public
fields (for PACZero-MI the real release ỹ, σ, q₊, the step budget β and the achieved MI; for the
PAC mechanisms the M subset signs as a ``+``/``-`` string, a function of the public pool, membership
matrix and weights, which lets an auditor run the Bayes-optimal transcript attack without a replay). The
final model is a deterministic function of the base model and this file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from paczero.fileio import append_jsonl, read_jsonl
from paczero.mechanisms.base import Release

LEDGER_FILE = "ledger.jsonl"
UNANIMOUS_KINDS = ("unanimous", "free")


def step_record(*, step: int, lr: float, releases: Sequence[tuple[int, Release]]) -> dict[str, Any]:
    """The ledger line of one step from ``[(direction seed, release), ...]``."""
    return {
        "step": step,
        "lr": lr,
        "directions": [
            {"seed": seed, "value": r.value, "kind": r.kind, "unanimous": r.kind in UNANIMOUS_KINDS, **r.public}
            for seed, r in releases
        ],
    }


def append(run_dir: Path, record: dict[str, Any]) -> None:
    """Append one step's record to the run's ledger (one JSON line)."""
    append_jsonl(run_dir / LEDGER_FILE, record)


def read(run_dir: Path) -> list[dict[str, Any]]:
    """Every record of the run's ledger, in step order."""
    return read_jsonl(run_dir / LEDGER_FILE)
