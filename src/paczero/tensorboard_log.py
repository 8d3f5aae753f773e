"""Optional TensorBoard logging of a run's public figures (``logging.tensorboard: true``).

What is written is exactly the diagnostics lines (pool loss, unanimity, cumulative MI, dev loss and accuracy)
and the final test metrics: functions of the public seed and the released values, never of J*. Events go to
``runs/<id>/tensorboard/``, with the step axis = steps completed (as in ``paczero report``). Needs the
``tensorboard`` package (``pip install 'paczero[tensorboard]'``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

TENSORBOARD_DIR = "tensorboard"
TAGS = {
    "pool_loss": "train/pool_loss",
    "unanimous": "train/unanimity",
    "nonfinite": "train/nonfinite_estimates",
    "cum_mi": "privacy/cumulative_mi_nats",
    "dev_loss": "dev/loss",
    "dev_accuracy": "dev/accuracy",
    "test_loss": "test/loss",
    "test_accuracy": "test/accuracy",
}
"""Tag of each diagnostics key; other numeric keys are logged as ``diagnostics/<key>``."""


class TensorBoardLog:
    """Scalars of diagnostics records. ``purge_step`` hides events at or after it left by a killed run."""

    def __init__(self, run_dir: Path, *, purge_step: int | None = None):
        from torch.utils.tensorboard import SummaryWriter

        self._writer = SummaryWriter(log_dir=str(Path(run_dir) / TENSORBOARD_DIR), purge_step=purge_step)

    def log(self, record: dict[str, Any]) -> None:
        """Log every numeric field of a diagnostics record at global step ``record["step"] + 1``."""
        for key, value in record.items():
            if key != "step" and isinstance(value, (int, float)) and not isinstance(value, bool):
                self._writer.add_scalar(TAGS.get(key, f"diagnostics/{key}"), value, global_step=record["step"] + 1)

    def flush(self) -> None:
        """Write pending events to disk."""
        self._writer.flush()

    def close(self) -> None:
        """Flush and close the event file."""
        self._writer.close()
