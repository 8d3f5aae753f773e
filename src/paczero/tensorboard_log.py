"""Optional TensorBoard logging for the run's owner (``logging.tensorboard: true``).

The events hold the private per-step diagnostics (pool loss, unanimity, non-finite counts, MI spent: computed on
the pool), the public dev and test metrics, and wall times (which time a DP run's secret batches), so they are
written to the run's private folder, ``private/tensorboard/``, with every file set to mode 0600. The step axis
is steps completed (as in ``paczero report``). Needs the ``tensorboard`` package
(``pip install 'paczero[tensorboard]'``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

TAGS = {
    "pool_loss": "private/pool_loss",
    "unanimous": "private/unanimity",
    "nonfinite": "private/nonfinite_estimates",
    "mi_spent": "private/mi_spent_nats",
    "dev_loss": "dev/loss",
    "dev_accuracy": "dev/accuracy",
    "dev_macro_f1": "dev/macro_f1",
    "test_loss": "test/loss",
    "test_accuracy": "test/accuracy",
    "test_macro_f1": "test/macro_f1",
}
"""Tag of each logged key; other numeric keys are logged as ``diagnostics/<key>``."""
PRIVATE_MODE = 0o600


class TensorBoardLog:
    """Scalars of diagnostics records. ``purge_step`` hides events at or after it left by a killed run."""

    def __init__(self, folder: Path, *, purge_step: int | None = None):
        from torch.utils.tensorboard import SummaryWriter

        self.folder = Path(folder)
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._writer = SummaryWriter(log_dir=str(self.folder), purge_step=purge_step)
        self._restrict()

    def _restrict(self) -> None:
        for p in self.folder.rglob("*"):
            p.chmod(0o700 if p.is_dir() else PRIVATE_MODE)

    def log(self, record: dict[str, Any]) -> None:
        """Log every numeric field of a record at global step ``record["step"] + 1``."""
        for key, value in record.items():
            if key != "step" and isinstance(value, (int, float)) and not isinstance(value, bool):
                self._writer.add_scalar(TAGS.get(key, f"diagnostics/{key}"), value, global_step=record["step"] + 1)

    def flush(self) -> None:
        """Write pending events to disk."""
        self._writer.flush()
        self._restrict()

    def close(self) -> None:
        """Flush and close the event file."""
        self._writer.close()
        self._restrict()
