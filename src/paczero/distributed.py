"""Data parallelism over the pool's records with PyTorch's own runtime (``torchrun``).

Launched as ``torchrun --nproc-per-node G -m paczero train ...`` (or across nodes with torchrun's
rendezvous options), every process loads the model and the data. Per step, the records to evaluate
(the whole pool, or the batch that rank 0's mechanism samples) are cut into the same length-sorted
micro-batches a single process would use, and whole micro-batches are dealt round-robin to the
ranks: each record is scored in exactly the batch it would be scored in alone, so the per-record
estimates — and hence the ledger, the metrics and the weights — equal the one-process run's
wherever the kernels are deterministic. The estimates (N floats per direction) are gathered to rank 0,
the only process that reads the secret and runs the mechanism; it broadcasts the released values and
every rank applies the same seeded update. Only rank 0 writes files, logs and shows a progress bar.

Backend: ``gloo`` on CPU, ``nccl`` on GPU (each process on ``cuda:LOCAL_RANK``). A collective that
waits longer than ``run.dist_timeout_s`` (a dead peer) raises instead of hanging.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import numpy as np
import torch

from paczero.errors import PaczeroError

log = logging.getLogger("paczero")


class DistError(PaczeroError):
    """A collective failed: a peer process died or timed out."""


def _collective(what: str):
    def wrap(fn):
        def run(self, *args):
            if not self.active:
                return fn(self, *args)
            try:
                return fn(self, *args)
            except RuntimeError as exc:  # gloo/nccl errors and timeouts (DistBackendError is a RuntimeError)
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise DistError(f"rank {self.rank}: {what} across {self.world} processes failed (a process "
                                f"died or timed out): {first}") from None
        return run
    return wrap


@dataclass(frozen=True)
class Dist:
    """This process's place in the job; ``Dist()`` is the single-process case."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1

    def batches(self, n_batches: int) -> list[int]:
        """The micro-batch indices this rank evaluates: round-robin over the ranks."""
        return list(range(self.rank, n_batches, self.world))

    @_collective("broadcast")
    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank."""
        if not self.active:
            return obj
        box = [obj if self.main else None]
        torch.distributed.broadcast_object_list(box, src=0)
        return box[0]

    @_collective("gather")
    def gather(self, obj: Any) -> list[Any] | None:
        """Every rank's ``obj``, in rank order, on rank 0 (``None`` elsewhere)."""
        if not self.active:
            return [obj]
        out = [None] * self.world if self.main else None
        torch.distributed.gather_object(obj, out, dst=0)
        return out

    @_collective("barrier")
    def barrier(self) -> None:
        """Wait for every process (a no-op in a single process)."""
        if self.active:
            torch.distributed.barrier()


def from_environment(*, device: str, timeout_s: float) -> Dist:
    """Join the process group torchrun describes in the environment (``WORLD_SIZE`` > 1), else ``Dist()``."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", str(world)))
    gpu = device != "cpu" and torch.cuda.is_available()
    if gpu:
        torch.cuda.set_device(local_rank)
    elif not torch.distributed.is_initialized():
        # One share of the cores per local process: oversubscribed OpenMP threads slow CPU runs severalfold.
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // local_world))
    if not torch.distributed.is_initialized():
        torch.distributed.init_process_group(backend="nccl" if gpu else "gloo", timeout=timedelta(seconds=timeout_s))
    if rank != 0:
        logging.getLogger("paczero").setLevel(logging.WARNING)
    return Dist(rank=rank, world=world, local_rank=local_rank)


def shutdown() -> None:
    """Leave the process group if this process joined one."""
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def assemble(parts: list[tuple[np.ndarray, np.ndarray]], n: int, width: int) -> np.ndarray:
    """Rows ``values`` at ``indices`` from every rank's ``(indices, values)`` into one (n, width) array."""
    out = np.zeros((n, width))
    seen = np.zeros(n, dtype=bool)
    for indices, values in parts:
        out[indices] = values
        seen[indices] = True
    if not seen.all():
        raise RuntimeError(f"{int((~seen).sum())} of {n} records were evaluated by no rank")
    return out
