"""One training step, read top to bottom (paczero-notes §3): estimates, release, update.

1. **estimates** — the mechanism picks the records of step t (the whole pool, a minibatch, a Poisson batch); for
   each of the K public direction seeds, every record's two-point estimate g_i = (L_i(θ+εz) − L_i(θ−εz))/(2ε) and
   its mean loss at the two points; under torchrun every rank scores whole micro-batches of its share and rank 0
   gathers them; non-finite estimates become 0 (and are counted).
2. **release** — on rank 0 the mechanism turns the (n, K) estimates into K typed releases.
3. **update** — θ ← θ − η_t((1/K) Σ_k value_k z_k + λθ) (:meth:`paczero.zo.ZOEngine.apply_step`, the one place
   the rule is written), applied by rank 0 first, then broadcast with rank 0's pending stop signal so every rank
   applies the same update and stops after the same step.

A step reads a :class:`StepInput` — the engine, the objective, the encoded pool, the mechanism or optimiser and the
three public settings it needs — and returns a :class:`StepResult`; it knows nothing of the run folder, the
settings file or the recipe. :func:`release` and :func:`apply_update` are separate so that the trainer can write the
transcript line between them (a failed broadcast then leaves rank 0 with a complete, recorded step).
:func:`zo_step` is both, for callers that record nothing (the benchmark times it, the tests check it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from paczero.distributed import Dist, assemble
from paczero.firstorder import FirstOrder
from paczero.mechanisms.base import Mechanism
from paczero.objectives import Objective
from paczero.releases import Release
from paczero.rng import direction_seed
from paczero.zo import ZOEngine


def learning_rate(*, step: int, steps: int, lr: float, lr_end: float, schedule: str) -> float:
    """η_t: linear decay from ``lr`` (t = 0) towards ``lr_end`` (t = T), or constant."""
    if schedule == "constant":
        return lr
    return lr_end + (lr - lr_end) * (1.0 - step / steps)


@dataclass
class StepInput:
    """What a step reads, and nothing else. Built once per run (:meth:`paczero.build.Components.step_input`); the
    step keeps in it, under torchrun, this rank's share of the whole pool, encoded and cached once."""

    engine: ZOEngine
    objective: Objective
    pool: Any
    """The encoded pool (the objective's encoding of every pool record)."""
    public_seed: int
    """``run.seed``: the direction seeds of step t are a function of it, t and k."""
    directions: int
    """K, the directions (releases) per step (``zo.directions``)."""
    weight_decay: float
    """λ of the update (``train.weight_decay``)."""
    mechanism: Mechanism | None = None
    """The release mechanism (rank 0 of a zeroth-order run), else None."""
    optimizer: FirstOrder | None = None
    """A first-order method's optimiser (``firstorder``, ``dpsgd``), else None."""
    dist: Dist = field(default_factory=Dist)
    _share: tuple[np.ndarray, Any] | None = field(default=None, repr=False)


@dataclass(frozen=True)
class StepResult:
    """What one step produced. Rank 0 holds the releases and the private figures; other ranks hold ``None``."""

    step: int
    lr: float
    seeds: tuple[int, ...]
    releases: tuple[Release, ...] | None
    losses: np.ndarray | None
    """(n, K) per-record losses averaged over θ ± εz (private: computed on the pool)."""
    nonfinite: int
    """Non-finite estimates replaced by 0 (private)."""

    @property
    def values(self) -> list[float] | None:
        """The released values (rank 0), else None."""
        return None if self.releases is None else [r.value for r in self.releases]


def _my_records(inp: StepInput, enc) -> np.ndarray:
    """Indices (into ``enc``) of the records this rank scores: whole length-sorted micro-batches, dealt round-robin,
    so every record sits in the batch a single process would put it in."""
    size = inp.objective.micro_batch
    n_batches = -(-len(enc) // size)
    mine = [enc.order[b * size:(b + 1) * size] for b in inp.dist.batches(n_batches)]
    return np.concatenate(mine) if mine else np.zeros(0, dtype=np.int64)


def _local_pool(inp: StepInput, mine: np.ndarray):
    """This rank's share of the whole pool, encoded once (so that a cached prefix is computed once)."""
    if inp._share is None or not np.array_equal(inp._share[0], mine):
        local = inp.pool.subset(mine)
        inp.engine.cache(inp.objective, local)
        inp._share = (mine, local)
    return inp._share[1]


@dataclass(frozen=True)
class Estimates:
    """The two-point estimates of one step: the K public direction seeds and, on rank 0, the rest (``None`` and 0 on
    the other ranks)."""

    seeds: tuple[int, ...]
    g: np.ndarray | None
    """(n, K) estimates g_i = (L_i(θ+εz) − L_i(θ−εz))/(2ε), non-finite ones replaced by 0 (private)."""
    losses: np.ndarray | None
    """(n, K) per-record losses averaged over θ ± εz (private)."""
    nonfinite: int
    """How many estimates were non-finite (private)."""


def estimates(inp: StepInput, *, step: int) -> Estimates:
    """The K direction seeds, and on rank 0 the (n, K) estimates, the (n, K) losses and the non-finite count."""
    dist, pool = inp.dist, inp.pool
    chosen = dist.broadcast(inp.mechanism.sample(step=step, n=len(pool)) if dist.main else None)
    whole = chosen is None or np.array_equal(chosen, np.arange(len(pool)))
    enc = pool if whole else pool.subset(chosen)  # the pool itself where it can: its cached prefix is kept
    seeds = tuple(direction_seed(inp.public_seed, step, k) for k in range(inp.directions))
    mine = _my_records(inp, enc) if dist.active else np.arange(len(enc))
    local = enc if not dist.active else _local_pool(inp, mine) if whole else enc.subset(mine)
    K = len(seeds)
    both = np.zeros((len(local), 2 * K))
    if len(local):  # a Poisson batch may be empty: the release is then noise alone
        for k, seed in enumerate(seeds):
            both[:, k], both[:, K + k] = inp.engine.estimates(inp.objective, local, direction=seed)
    parts = dist.gather((mine, both))
    if parts is None:
        return Estimates(seeds=seeds, g=None, losses=None, nonfinite=0)
    if dist.active:
        both = assemble(parts, len(enc), 2 * K)
    g, losses = both[:, :K], both[:, K:]
    bad = ~np.isfinite(g)
    return Estimates(seeds=seeds, g=np.where(bad, 0.0, g), losses=losses, nonfinite=int(bad.sum()))


def release(inp: StepInput, *, step: int, lr: float) -> StepResult:
    """Estimates and, on rank 0, the mechanism's releases of ``step`` (nothing is updated yet)."""
    e = estimates(inp, step=step)
    releases = tuple(inp.mechanism.release_step(e.g, step=step)) if inp.dist.main else None
    return StepResult(step=step, lr=lr, seeds=e.seeds, releases=releases, losses=e.losses, nonfinite=e.nonfinite)


def apply_update(inp: StepInput, result: StepResult, *, stop_signal: int | None = None) -> int | None:
    """Apply the step's update on every rank (rank 0 first, then the broadcast). ``stop_signal``: the number of a
    signal rank 0 received (SIGTERM, SIGINT) that asks the run to stop after this step, else None; it travels with
    the update, and every rank returns rank 0's."""
    def update(values: list[float]) -> None:
        inp.engine.apply_step(result.seeds, values, lr=result.lr, weight_decay=inp.weight_decay)

    if inp.dist.main:
        update(result.values)
    values, stop_signal = inp.dist.broadcast((result.values, stop_signal) if inp.dist.main else None)
    if not inp.dist.main:
        update(values)
    return stop_signal


def first_order_step(inp: StepInput, *, step: int, lr: float) -> StepResult:
    """One step of a first-order method (:mod:`paczero.firstorder`): the gradient of the pool's per-record losses at θ
    (DP-SGD: of a secret Poisson batch's, clipped and noised), the optimiser's update. Nothing is released (no seeds,
    no releases); the losses are private."""
    losses = inp.optimizer.train_step(inp.engine, inp.objective, inp.pool, step=step, lr=lr,
                                      weight_decay=inp.weight_decay)
    return StepResult(step=step, lr=lr, seeds=(), releases=None, losses=losses[:, None], nonfinite=0)


def zo_step(inp: StepInput, *, step: int, lr: float) -> StepResult:
    """One whole step at learning rate ``lr``: :func:`release` then :func:`apply_update`."""
    result = release(inp, step=step, lr=lr)
    apply_update(inp, result)
    return result
