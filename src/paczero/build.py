"""The one factory: everything a run, an evaluation, an audit, a replay or the benchmark needs, from a config.

``build(cfg)`` reads the task and its split, loads the model, builds the objective, encodes the pool, dev and
test records once, sets up the zeroth-order engine (caching the frozen bottom where asked), draws the public
membership matrix and, given the secret on rank 0, the mechanism. It writes nothing.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from paczero.config import Config
from paczero.data.registry import task_kind
from paczero.data.memory import InMemory
from paczero.data.registry import load_task
from paczero.data.tasks import Split, Task
from paczero.distributed import Dist
from paczero.firstorder import DPSGD, FirstOrder
from paczero.mechanisms.base import Mechanism
from paczero.mechanisms.registry import build_mechanism, dp_noise_multiplier, spec
from paczero.models import LoadedModel, Preloaded, context_length, load_model
from paczero.privacy.statement import Family
from paczero.objectives import Objective, build_objective
from paczero.progress import phase
from paczero.secret import SecretState
from paczero.step import StepInput
from paczero.subsets import membership_matrix
from paczero.zo import ZOEngine

SPLITS = ("pool", "dev", "test")


@dataclass
class Components:
    """The parts of a run, built once."""

    cfg: Config
    task: Task
    split: Split
    loaded: LoadedModel
    objective: Objective
    encoded: dict[str, Any]
    """The encoded ``pool``, ``dev`` and ``test`` records."""
    engine: ZOEngine
    membership: np.ndarray | None
    """The public membership matrix (mechanisms that use subsets), else None."""
    mechanism: Mechanism | None
    """The release mechanism (rank 0 of a training run), else None."""
    optimizer: FirstOrder | None = None
    """A first-order method's optimiser over the trainable tensors (``firstorder``, ``dpsgd``; on rank 0 of a training
    run), else None."""
    dist: Dist = field(default_factory=Dist)

    def step_input(self) -> StepInput:
        """What a training step reads of these parts (:mod:`paczero.step`); build it once per run."""
        cfg = self.cfg
        return StepInput(engine=self.engine, objective=self.objective, pool=self.encoded["pool"],
                         public_seed=cfg.run.seed, directions=cfg.zo.directions, weight_decay=cfg.train.weight_decay,
                         mechanism=self.mechanism, optimizer=self.optimizer, dist=self.dist)

    def evaluate(self, split: str) -> dict[str, Any]:
        """Loss and the task's metrics (accuracy and per-class figures, or F1 and EM) of the current weights on a
        split."""
        with phase(f"evaluating {split}", enabled=self.cfg.run.progress and self.dist.main):
            return self.engine.evaluate(self.objective, self.encoded[split], private=split == "pool")


def load_split(cfg: Config, memory: InMemory | None = None) -> tuple[Task, Split]:
    """The task and its pool/dev/test split, as a run with ``cfg`` sees them (``memory``: the records of
    ``data.in_memory``)."""
    return load_task(cfg.data, seed=cfg.run.seed, memory=memory)


def public_texts(task: Task, split: Split) -> list[str]:
    """The texts a ``model.name=tiny`` run builds its vocabulary from: the public dev and test records' (a pool word
    is unknown to it), so that its published tokenizer says nothing of the pool."""
    return task.texts(split.dev + split.test)


def tiny_texts(cfg: Config) -> list[str]:
    """The texts a ``model.name=tiny`` run builds its tokenizer from (empty for real models)."""
    if cfg.model.name != "tiny":
        return []
    return public_texts(*load_split(cfg))


def build_model(cfg: Config, *, texts: list[str] | None = None, preloaded: Preloaded | None = None) -> LoadedModel:
    """The model of ``cfg`` alone (what a replay needs), with the tiny model's vocabulary from ``texts``;
    ``preloaded`` is a model and tokenizer already in memory (``paczero.train(model=...)``)."""
    words = cfg.data.label_words if task_kind(cfg.data) == "classification" else None
    with phase(f"loading model {cfg.model.name}", enabled=cfg.run.progress):
        if preloaded is not None:
            return load_model(cfg.model, seed=cfg.run.seed, preloaded=preloaded, label_words=words)
        return load_model(cfg.model, seed=cfg.run.seed, tiny_texts=tiny_texts(cfg) if texts is None else texts,
                          label_words=words)


def build_key(cfg: Config) -> str:
    """What the shareable components depend on: the data, the model, the engine's settings and the public seed.

    Two configs with the same key get identical task, split, model (at θ_0), objective, encoded records and
    engine (with its cached frozen bottom); they may differ in the mechanism, its budget, the steps, the learning
    rate, K, the clip.
    """
    d = cfg.to_dict()
    shared = {"data": d["data"], "model": d["model"], "seed": cfg.run.seed,
              "zo": {k: d["zo"][k] for k in ("eps", "micro_batch", "cache_prefix")}}
    return json.dumps(shared, sort_keys=True)


def initial_weights(c: Components) -> list[torch.Tensor]:
    """A copy of the trainable tensors, to put θ_0 back with :func:`restore_weights` (one copy of the trainable
    tensors only: the frozen part, and its cached hidden states, never change)."""
    return [p.detach().clone() for _, p in c.loaded.trainable]


@torch.inference_mode()
def restore_weights(c: Components, initial: list[torch.Tensor]) -> None:
    """Put the trainable tensors back to ``initial`` (bit for bit)."""
    for (_, p), p0 in zip(c.loaded.trainable, initial, strict=True):
        p.copy_(p0)


def build(cfg: Config, *, dist: Dist | None = None, secret: SecretState | None = None,
          base: Components | None = None, memory: InMemory | None = None,
          preloaded: Preloaded | None = None) -> Components:
    """Every component of a run of ``cfg``; the mechanism only when ``secret`` is given (on rank 0).

    ``memory`` holds the records of a config with ``data.in_memory``, ``preloaded`` a model and tokenizer already
    loaded (both from :func:`paczero.train`).

    With ``base`` (the components of an earlier run whose :func:`build_key` matches, its weights put back to θ_0),
    the task, split, model, objective, encoded records and engine are reused: ``paczero compare`` builds them once
    per seed. The membership matrix and the mechanism are always the run's own.
    """
    dist = dist or Dist()
    if base is not None and build_key(base.cfg) == build_key(cfg):
        return _with_mechanism(dataclasses.replace(base, cfg=cfg, dist=dist), secret)
    shown = cfg.run.progress and dist.main
    with phase(f"reading {cfg.data.task} records", enabled=shown):
        task, split = load_split(cfg, memory)
    loaded = build_model(cfg, texts=public_texts(task, split), preloaded=preloaded)
    objective = build_objective(task, loaded.tokenizer, data=cfg.data, micro_batch=cfg.zo.micro_batch,
                                device=loaded.device, context_length=context_length(loaded.model))
    with phase("encoding records", enabled=shown):
        encoded = {name: objective.encode(getattr(split, name), where=f"{cfg.data.task} {name}") for name in SPLITS}
    autocast = torch.bfloat16 if cfg.model.autocast and loaded.device.type == "cuda" else None
    engine = ZOEngine(loaded.model, loaded.trainable, eps=cfg.zo.eps, cache=cfg.zo.cache_prefix, autocast=autocast)
    if cfg.zo.cache_prefix:
        with phase("caching the frozen bottom's hidden states", enabled=shown):
            for name, enc in encoded.items():
                if len(enc) and (name != "pool" or not dist.active):  # under torchrun each rank caches its own share
                    engine.cache(objective, enc)
    return _with_mechanism(Components(cfg=cfg, task=task, split=split, loaded=loaded, objective=objective,
                                      encoded=encoded, engine=engine, membership=None, mechanism=None, dist=dist),
                           secret)


def _with_mechanism(c: Components, secret: SecretState | None) -> Components:
    """``c`` with the run's own public membership matrix and, given the secret on rank 0, its mechanism."""
    cfg = c.cfg
    membership = (membership_matrix(n=len(c.split.pool), m=cfg.privacy.n_subsets, seed=cfg.run.seed)
                  if spec(cfg.privacy.mechanism).uses_subsets else None)
    mechanism = None
    if secret is not None and c.dist.main:
        with phase("calibrating the mechanism", enabled=cfg.run.progress and c.dist.main):
            mechanism = build_mechanism(cfg, membership=membership, secret=secret)
    optimizer = first_order_optimizer(cfg, c.loaded.trainable, secret)
    return dataclasses.replace(c, membership=membership, mechanism=mechanism, optimizer=optimizer)


def first_order_optimizer(cfg: Config, trainable: list, secret: SecretState | None) -> FirstOrder | None:
    """A first-order method's optimiser over the ``trainable`` tensors: Adam on the full batch (``firstorder``), or
    DP-SGD (a DP first-order method), whose batches and noise come from the run's ``secret`` (none without it);
    ``None`` for a zeroth-order mechanism."""
    s = spec(cfg.privacy.mechanism)
    if not s.first_order:
        return None
    if s.family == Family.NONE:
        return FirstOrder(trainable)
    if secret is None:
        return None
    p = cfg.privacy
    return DPSGD(trainable, secret=secret, n=cfg.data.n_pool, sample_rate=p.sample_rate,
                 noise_multiplier=dp_noise_multiplier(cfg), clip=p.grad_clip)
