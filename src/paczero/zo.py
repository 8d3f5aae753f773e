"""The zeroth-order engine: seeded directions, per-record two-point estimates, the update.

For a public direction seed, z is one Gaussian vector over the trainable tensors, generated tensor
by tensor from :func:`paczero.rng.tensor_seed` and never stored. Per record i (paczero-notes §3.4)::

    g_i = (L_i(θ + εz) − L_i(θ − εz)) / (2ε)

**Perturbed evaluation.** The stored weights are never written while estimating, so they are
"restored" exactly (bit for bit, in any dtype) by construction. Both evaluations run together, layer
by layer (:mod:`paczero.staged`): for each decoder layer the block z of each of its tensors is
generated once, the perturbed tensors θ ± εz exist only while that layer runs on every micro-batch
of both evaluations, and are then dropped. The tensors outside the layers (embeddings, final norm,
LM head) are perturbed while the prefix and while the suffix runs, one evaluation at a time, z
generated afresh each time, so that a large (tied) embedding is held once and never beside its z.
Extra memory: the records' hidden states between layers and the perturbed tensors of one stage,
never a second copy of the weights. Gaussian draws per estimate: one per parameter of the decoder
layers, four per parameter outside them (prefix and suffix, two evaluations each); the update draws
one per parameter and direction.

Objectives whose forward calls depend on the model's outputs (greedy generation) cannot be staged:
they are evaluated through ``functional_call`` with a perturbed copy of the trainable tensors.

**Update.** θ ← θ − η(Σ_k c_k z_k + λθ) regenerates each tensor's block of every direction in turn,
so no parameter-sized buffer is allocated for K > 1.

**Cached prefix.** When every trainable tensor lies in the top layers (``model.train_top_layers``),
the frozen bottom — the prefix and the layers below — gives the same hidden states at every
evaluation; with ``cache=True`` they are computed once per encoded set (:meth:`ZOEngine.cache`)
and the evaluations run the trainable layers only, with bit-identical results.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Sequence

import numpy as np
import torch
from torch.func import functional_call

from paczero.errors import PaczeroError
from paczero.generation import as_forward
from paczero.objectives import Objective, model_forward
from paczero.rng import tensor_seed
from paczero.staged import Batch, CallsChanged, StagedModel, record_calls, replayer

log = logging.getLogger("paczero")

PIECE = 1 << 18
"""Elements per independently seeded piece of a direction block (1 MiB of float32)."""

_NO_DECAY = ("bias", "norm")


def _decays(name: str) -> bool:
    lowered = name.lower()
    return not any(tag in lowered for tag in _NO_DECAY)


def _perturbed(p: torch.Tensor, z: torch.Tensor, scale: float, *, reuse: bool = False) -> torch.Tensor:
    """θ + scale·z in one pass, as a new tensor or written over ``z`` when ``reuse``."""
    return torch.add(p, z, alpha=scale, out=z if reuse else None)


class _Cached:
    """The frozen bottom's output for one encoded set: recorded calls, hidden states, layer arguments."""

    def __init__(self, enc: Any, micro_batch: int, calls: list[Batch], hidden: list[torch.Tensor],
                 kwargs: list[list[dict[str, Any]]]):
        self.enc, self.micro_batch, self.calls, self.hidden, self.kwargs = enc, micro_batch, calls, hidden, kwargs


class ZOEngine:
    """Two-point estimates and updates over a fixed, ordered list of trainable tensors.

    ``cache=True`` keeps the frozen bottom's hidden states of the sets passed to :meth:`cache`;
    ``autocast`` (e.g. ``torch.bfloat16`` on a GPU) runs the forward passes under autocast, while the
    weights, their perturbations and the updates stay in the weights' dtype.
    """

    def __init__(self, model: torch.nn.Module, trainable: Sequence[tuple[str, torch.nn.Parameter]], *,
                 eps: float, cache: bool = False, autocast: torch.dtype | None = None):
        self.model = model
        self.autocast = autocast
        self.trainable = list(trainable)
        self.eps = eps
        try:
            self.staged: StagedModel | None = StagedModel(model, self.trainable)
        except ValueError:  # no list of decoder layers: every evaluation takes the perturbed-copy path
            self.staged = None
        self._use_cache = cache
        self._cached: dict[int, _Cached] = {}
        self.cache_hits = 0
        """Evaluations that started from a cached prefix."""
        self._workers = max(1, torch.get_num_threads())
        self._pool = ThreadPoolExecutor(max_workers=self._workers) if self._workers > 1 else None
        first = [i for i, params in enumerate(self.staged.layer_params) if params] if self.staged else [0]
        self.first_trainable_layer = first[0] if first else self.staged.n_layers

    # ------------------------------------------------------------------ directions
    def direction_block(self, direction: int, index: int) -> torch.Tensor:
        """Block of direction ``direction`` for trainable tensor ``index`` (standard normal, param dtype).

        Generated in pieces of :data:`PIECE` elements (each from :func:`~paczero.rng.tensor_seed` with its
        piece number), filled on worker threads on CPU: one generator is single-threaded.
        """
        param = self.trainable[index][1]
        z = torch.empty(param.shape, device=param.device, dtype=torch.float32)
        flat = z.view(-1)

        def fill(piece: int) -> None:
            gen = torch.Generator(device=param.device).manual_seed(tensor_seed(direction, index, piece))
            with torch.inference_mode():  # grad mode is per thread
                flat[piece * PIECE:(piece + 1) * PIECE].normal_(generator=gen)

        pieces = range((flat.numel() + PIECE - 1) // PIECE)
        if self._pool is None or len(pieces) < 2 or param.device.type != "cpu":
            for piece in pieces:
                fill(piece)
        else:
            list(self._pool.map(fill, pieces))
        return z if param.dtype == torch.float32 else z.to(param.dtype)

    def _stream_params(self, indices: Sequence[int], direction: int, scale: float) -> dict[str, torch.Tensor]:
        """θ + scale·z for the trainable tensors ``indices`` (z generated afresh), keyed by parameter name."""
        if scale == 0.0:
            return {}
        return {self.trainable[i][0]: _perturbed(self.trainable[i][1], self.direction_block(direction, i), scale,
                                                 reuse=True) for i in indices}

    def _layer_params(self, layer: int, direction: int, scales: Sequence[float]) -> list[dict[str, torch.Tensor]]:
        """θ + s·z for the tensors of one layer and each scale s, from one generation of z per tensor."""
        local = self.staged.layer_params[layer]
        if not local or all(s == 0.0 for s in scales):
            return [{} for _ in scales]

        def build(entry: tuple[int, str]) -> list[torch.Tensor]:
            p, z = self.trainable[entry[0]][1], self.direction_block(direction, entry[0])
            return [_perturbed(p, z, s, reuse=k == len(scales) - 1) for k, s in enumerate(scales)]

        built = [build(entry) for entry in local]
        return [{name: tensors[k] for (_, name), tensors in zip(local, built)} for k in range(len(scales))]

    def _autocast(self) -> torch.autocast:
        device = self.trainable[0][1].device.type if self.trainable else "cpu"
        return torch.autocast(device, dtype=self.autocast or torch.bfloat16, enabled=self.autocast is not None)

    # ------------------------------------------------------------------ staged evaluation
    def _staged(self, objective: Objective, enc) -> bool:
        return self.staged is not None and getattr(objective, "static_calls", False)

    def _record(self, objective: Objective, enc) -> list[Batch]:
        vocab = self.model.config.vocab_size
        return record_calls(lambda forward: objective.scores(forward, enc), vocab_size=vocab)

    def _bottom(self, calls: list[Batch], stop: int, direction: int, scales: Sequence[float]
                ) -> tuple[list[list[torch.Tensor]], list[list[dict[str, Any]]]]:
        """Per scale, the hidden states entering layer ``stop`` for every call; and the layers' arguments."""
        staged = self.staged
        if calls:
            staged.ensure_discovered(calls[0])
        hidden: list[list[torch.Tensor]] = []
        kwargs: list[list[dict[str, Any]]] = []
        unperturbed: list[torch.Tensor] | None = None
        for k, scale in enumerate(scales):  # one evaluation at a time: a large (tied) embedding is held once
            params = self._stream_params(staged.prefix_params or [], direction, scale)
            if not params and unperturbed is not None:
                hidden.append(list(unperturbed))  # the same computation: share it
                continue
            stream = []
            for batch in calls:
                h, kw = staged.prefix(batch, params)
                stream.append(h)
                if k == 0:
                    kwargs.append(kw)
            del params
            hidden.append(stream)
            if not staged.prefix_params or scale == 0.0:
                unperturbed = stream
        self._layers(hidden, kwargs, range(stop), direction, scales)
        return hidden, kwargs

    def _layers(self, hidden: list[list[torch.Tensor]], kwargs: list[list[dict[str, Any]]], layers: range,
                direction: int, scales: Sequence[float]) -> None:
        """Run ``layers`` over every call of every evaluation, in place in ``hidden``."""
        for layer in layers:
            params = self._layer_params(layer, direction, scales)
            shared: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}  # unperturbed layer, input shared by streams
            for stream, p in zip(hidden, params):
                for b, h in enumerate(stream):
                    if not p and id(h) in shared and shared[id(h)][0] is h:
                        stream[b] = shared[id(h)][1]
                        continue
                    stream[b] = self.staged.layer(layer, h, kwargs[b][layer], p)
                    if not p:
                        shared[id(h)] = (h, stream[b])
            del params, shared

    def cache(self, objective: Objective, enc) -> None:
        """Compute and keep the frozen bottom's output for ``enc`` (needs ``cache=True``; no-op otherwise)."""
        if not self._use_cache or not self._staged(objective, enc):
            return
        self._cached.pop(id(enc), None)
        calls = self._record(objective, enc)
        if calls:
            self.staged.ensure_discovered(calls[0])
        if self.staged.prefix_params or not self.first_trainable_layer:
            raise PaczeroError("zo.cache_prefix: nothing to cache, the first decoder layer or the embeddings are "
                               "trainable (set model.train_top_layers below the number of layers)")
        with torch.inference_mode():
            hidden, kwargs = self._bottom(calls, self.first_trainable_layer, 0, [0.0])
        self._cached[id(enc)] = _Cached(enc, objective.micro_batch, calls, hidden[0], kwargs)

    def _from_cache(self, objective: Objective, enc,
                    n: int) -> tuple[list[Batch], list[list[torch.Tensor]], list[list[dict[str, Any]]]] | None:
        entry = self._cached.get(id(enc))
        if entry is None or entry.enc is not enc or entry.micro_batch != objective.micro_batch:
            return None
        self.cache_hits += 1
        return entry.calls, [list(entry.hidden) for _ in range(n)], entry.kwargs

    def _staged_pass(self, objective: Objective, enc, direction: int,
                     scales: Sequence[float], evaluate: bool) -> list[Any]:
        staged = self.staged
        cached = self._from_cache(objective, enc, len(scales)) if self.first_trainable_layer else None
        if cached is None:
            calls = self._record(objective, enc)
            hidden, kwargs = self._bottom(calls, staged.n_layers, direction, scales)
        else:
            calls, hidden, kwargs = cached
            self._layers(hidden, kwargs, range(self.first_trainable_layer, staged.n_layers), direction, scales)
        results = []
        for stream, scale in zip(hidden, scales):
            params = self._stream_params(staged.suffix_params or [], direction, scale)

            def logits(b: int, batch: Batch, stream: list[torch.Tensor] = stream,
                       params: dict[str, torch.Tensor] = params) -> torch.Tensor:
                return staged.suffix(batch, stream[b], params)

            forward = replayer(logits, calls)
            results.append(objective.evaluate(forward, enc) if evaluate else objective.losses(forward, enc))
            del params, logits, forward
        return results

    @torch.inference_mode()
    def _staged_scores(self, objective: Objective, enc, *, direction: int,
                       scales: Sequence[float], evaluate: bool = False) -> list[Any]:
        """Per scale s, the objective's losses (or metrics) at θ + s·z, from one staged pass.

        Out of memory, the micro-batches are halved (for good) and every evaluation restarts, so the
        evaluations of one estimate never mix two batchings.
        """
        while True:
            size = objective.micro_batch
            try:
                with self._autocast():
                    results = self._staged_pass(objective, enc, direction, scales, evaluate)
                if objective.micro_batch == size:
                    return results
                continue  # the objective itself shrank its micro-batches during the replay
            except CallsChanged:
                continue
            except (torch.OutOfMemoryError, MemoryError):
                pass  # leave the handler first: its traceback would keep the failed stage's tensors alive
            if size == 1:
                raise PaczeroError("out of memory evaluating a single record; lower data.max_length or use a "
                                   "smaller model or dtype")
            objective.micro_batch = size // 2
            log.warning("out of memory with micro-batches of %d records: retrying with %d", size, objective.micro_batch)
            if torch.cuda.is_available():
                torch.cuda.empty_cache()

    # ------------------------------------------------------------------ public API
    @torch.inference_mode()
    def perturbed_losses(self, objective: Objective, enc, *, direction: int, scale: float) -> torch.Tensor:
        """Per-record losses at θ + scale·z, without modifying the stored weights."""
        if self._staged(objective, enc):
            return self._staged_scores(objective, enc, direction=direction, scales=[scale])[0]
        params = {name: _perturbed(p, self.direction_block(direction, i), scale, reuse=True)
                  for i, (name, p) in enumerate(self.trainable)}
        forward = as_forward(lambda **kw: functional_call(self.model, params, args=(), kwargs=kw))
        with self._autocast():
            return objective.losses(forward, enc)

    def evaluate(self, objective: Objective, enc) -> dict[str, float]:
        """The objective's metrics at the stored weights (staged, so a cached prefix is used)."""
        if not self._staged(objective, enc):
            with torch.inference_mode(), self._autocast():
                return objective.evaluate(model_forward(self.model), enc)
        return self._staged_scores(objective, enc, direction=0, scales=[0.0], evaluate=True)[0]

    def estimates(self, objective: Objective, enc, *, direction: int) -> tuple[np.ndarray, np.ndarray]:
        """Per-record two-point estimates (float64, unclipped) and per-record losses averaged over both evaluations.

        The losses are a by-product of the two evaluations (no extra forward pass).
        """
        if self._staged(objective, enc):
            plus, minus = (t.double() for t in self._staged_scores(objective, enc, direction=direction,
                                                                    scales=[self.eps, -self.eps]))
        else:
            while True:  # both evaluations must batch the records alike (an out-of-memory retry shrinks the batches)
                size = objective.micro_batch
                plus = self.perturbed_losses(objective, enc, direction=direction, scale=self.eps).double()
                minus = self.perturbed_losses(objective, enc, direction=direction, scale=-self.eps).double()
                if objective.micro_batch == size:
                    break
        g = ((plus - minus) / (2 * self.eps)).numpy()
        return g, ((plus + minus) / 2).numpy()

    @torch.inference_mode()
    def update(self, coefficients: Sequence[tuple[int, float]], *, lr: float, weight_decay: float = 0.0) -> None:
        """θ ← θ − lr·(Σ_k c_k z_k + λθ) for ``coefficients = [(direction seed, c_k), ...]``.

        A zero coefficient adds nothing (not even ``+0.0``), so a zero update leaves the weights bit-identical.
        One direction block of one tensor exists at a time.
        """
        for i, (name, p) in enumerate(self.trainable):
            if weight_decay and _decays(name):
                p.mul_(1.0 - lr * weight_decay)
            for direction, c in coefficients:
                if c != 0.0:
                    p.add_(self.direction_block(direction, i), alpha=-lr * c)
