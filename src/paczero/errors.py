"""The one exception type a user can cause.

Anything raised as :class:`PaczeroError` is a problem with the user's input (config, data,
model, paths); the CLI prints its message without a traceback and exits with code 2.
Messages name the offending value and what would be valid. They never mention the secret.
"""


class PaczeroError(Exception):
    """A problem the user can fix: bad config, bad data, a model that cannot be loaded."""


class Interrupted(PaczeroError):
    """Training stopped on SIGTERM/SIGINT after writing a resumable checkpoint (exit code 128 + the signal)."""

    def __init__(self, run_dir, step: int, signum: int):
        import signal

        super().__init__(f"stopped by {signal.Signals(signum).name} after step {step}; a checkpoint is saved. "
                         f"Resume with: paczero train --resume {run_dir}")
        self.exit_code = 128 + signum
