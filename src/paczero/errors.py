"""The one exception type a user can cause, and the tag of private output.

Anything raised as :class:`PaczeroError` is a problem with the user's input (config, data,
model, paths); the CLI prints its message without a traceback and exits with code 2.
Messages name the offending setting and what would be valid. They never mention the secret, and a message
about a record names its file, line and field, never its contents: those go in ``private``, which the CLI
prints on a second line tagged :data:`PRIVATE_TAG`.
"""

PRIVATE_TAG = "[private]"
"""Printed lines that show figures computed on the pool, record contents, or the secret start with this tag."""


class PaczeroError(Exception):
    """A problem the user can fix: bad config, bad data, a model that cannot be loaded.

    ``private``: what the owner may want to see but must not share (the offending value of a record).
    """

    def __init__(self, message: str, *, private: str | None = None):
        super().__init__(message)
        self.private = private


class Interrupted(PaczeroError):
    """Training stopped on SIGTERM/SIGINT after writing a resumable checkpoint (exit code 128 + the signal)."""

    def __init__(self, run_dir, step: int, signum: int):
        import signal

        super().__init__(f"stopped by {signal.Signals(signum).name} after step {step}; a checkpoint is saved. "
                         f"Resume with: paczero train --resume {run_dir}")
        self.exit_code = 128 + signum
