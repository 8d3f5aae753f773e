"""Out of memory: one policy for every pass over a set of records.

A pass (scoring the records, generating their answers, the two evaluations of an estimate) runs at
the current micro-batch size. On ``torch.OutOfMemoryError`` or ``MemoryError`` the size is halved for
good and the *whole* pass restarts, so that one pass never mixes two batchings (batched results
depend on the batching in their last bits). At one record per micro-batch the error is the user's
to fix (:class:`~paczero.errors.PaczeroError`).

Passes nest: the ZO engine's pass runs the objective's passes inside it. Only the outermost pass
retries; an inner one runs at the size of the outer attempt, and its out-of-memory error restarts
the outer pass.
"""

from __future__ import annotations

import logging
from typing import Callable, TypeVar

import torch

from paczero.errors import PaczeroError
from paczero.errors import PRIVATE_TAG

log = logging.getLogger("paczero")

T = TypeVar("T")

OUT_OF_MEMORY = (torch.OutOfMemoryError, MemoryError)


def log_out_of_memory(size: int, *, what: str, private: bool) -> None:
    """Warn that micro-batches now hold ``size`` records.

    A pass over private records (the pool) says nothing else, in a fixed wording: when and where a pass
    runs out of memory depends on the records' lengths, and logs may be shared.
    """
    if private:
        log.warning("%s out of memory: micro-batches now %d records", PRIVATE_TAG, size)
    else:
        log.warning("out of memory %s micro-batches: now %d records", what, size)


class MicroBatching:
    """The records per forward pass (``zo.micro_batch``), halved for good on out-of-memory."""

    def __init__(self, size: int):
        if size < 1:
            raise PaczeroError(f"config: zo.micro_batch={size} is invalid; expected a positive number")
        self.size = size
        self._depth = 0

    def run(self, pass_: Callable[[int], T], *, what: str, private: bool = True) -> T:
        """``pass_(size)`` at the current size; the outermost pass restarts at half the size on out-of-memory.

        ``what`` completes "out of memory ... a single record" (e.g. ``"scoring"``); ``private`` says whether the
        records are private (:func:`log_out_of_memory`).
        """
        if self._depth:
            return pass_(self.size)
        while True:
            size = self.size
            self._depth += 1
            try:
                return pass_(size)
            except OUT_OF_MEMORY:
                pass  # leave the handler first: its traceback would keep the failed pass's tensors alive
            finally:
                self._depth -= 1
            if size == 1:
                raise PaczeroError(f"out of memory {what} a single record; lower data.max_length or use a smaller "
                                   "model or dtype")
            self.size = size // 2
            log_out_of_memory(self.size, what=what, private=private)
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
