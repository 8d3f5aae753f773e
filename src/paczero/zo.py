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

**Greedy generation** (SQuAD's −F1) is staged too: the objective's generation requests are recorded
like its forward calls, and each is decoded with a KV cache, every decoding call run stage by stage
(:meth:`paczero.staged.StagedModel.generate`). One evaluation at a time, so one micro-batch's KV cache
is alive, as in plain inference: the outer tensors are perturbed once per request, each layer's
θ ± εz is rebuilt from its z at every decoding call and dropped after it. Draws per request and
evaluation: (decoding calls)·(layer parameters) + (outer parameters); the tokens equal those of a
perturbed copy bit for bit. Models without a list of decoder layers take the perturbed-copy path
(``functional_call`` with θ + εz for every trainable tensor at once).

**Update.** θ ← θ − η(Σ_k c_k z_k + λθ) regenerates each tensor's block of every direction in turn,
so no parameter-sized buffer is allocated for K > 1.

**Cached prefix.** When every trainable tensor lies above the embeddings (``model.train_top_layers``, or a
``model.trainable`` set), the frozen bottom — the prefix and the layers below the lowest trainable tensor —
gives the same hidden states at every evaluation; with ``cache=True`` they are computed once per encoded set
(:meth:`ZOEngine.cache`) and the evaluations run what lies above only, with bit-identical results. For
generation the cache holds each prompt's hidden states entering the first trainable layer and the frozen
layers' keys and values: the prefill runs the top layers only, the frozen layers run for the new tokens.
Where every trainable tensor follows the last layer (the final norm, the label words' head rows) and the label
words are single tokens, the cache keeps each record's final hidden state alone and an evaluation is the label
words' logits of those states (:mod:`paczero.features`; equal to the full head's losses to float rounding), and
a subset of a cached set (a minibatch, a Poisson batch) takes its rows.

**Out of memory** (:mod:`paczero.oom`): a pass halves the objective's micro-batches for good and
restarts, both evaluations of an estimate together.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Hashable, Sequence

import numpy as np
import torch
from torch.func import functional_call

from paczero.errors import PaczeroError
from paczero.features import HeadSuffix, head_suffix, one_thread
from paczero.generation import GenerationRequest, GreedyDecoder, as_forward
from paczero.objectives import Objective, model_forward
from paczero.rng import tensor_seed
from paczero.staged import Batch, Call, PromptState, StagedModel, record_calls, replayer

PIECE = 1 << 18
"""Elements per independently seeded piece of a direction block (1 MiB of float32)."""

_NO_DECAY = ("bias", "norm")


def decays(name: str) -> bool:
    """Whether weight decay applies to the tensor ``name`` (not to biases and norms)."""
    lowered = name.lower()
    return not any(tag in lowered for tag in _NO_DECAY)


def _perturbed(p: torch.Tensor, z: torch.Tensor, scale: float, *, reuse: bool = False) -> torch.Tensor:
    """θ + scale·z in one pass, as a new tensor or written over ``z`` when ``reuse``."""
    return torch.add(p, z, alpha=scale, out=z if reuse else None)


def _call_key(call: Call) -> Hashable:
    """A recorded call as a dictionary key (a forward call by the values of its inputs)."""
    if isinstance(call, GenerationRequest):
        return call
    return tuple((k, (tuple(v.shape), v.cpu().numpy().tobytes()) if isinstance(v, torch.Tensor) else v)
                 for k, v in sorted(call.items()))


@dataclass
class _Cached:
    """The frozen bottom's output for one encoded set, per recorded call: for a forward call the hidden
    states entering the first trainable layer and the layers' arguments, for a generation request its
    :class:`~paczero.staged.PromptState`."""

    enc: Any
    micro_batch: int
    states: dict[Hashable, Any]


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
        self._features: dict[int, tuple[Any, torch.Tensor]] = {}
        """Per encoded set: the records' final hidden states at the scoring position (:mod:`paczero.features`)."""
        self._head: HeadSuffix | None = None
        self._head_checked = False
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
        if not isinstance(getattr(objective, "static_calls", None), bool):
            raise TypeError(f"{type(objective).__name__} does not declare static_calls (True or False), which the "
                            "Objective protocol requires: the engine cannot tell whether it may run it layer by "
                            "layer")
        return self.staged is not None and objective.static_calls

    def _record(self, objective: Objective, enc, evaluate: bool) -> list[Call]:
        method = objective.evaluate if evaluate else objective.losses
        calls = record_calls(lambda forward: method(forward, enc), vocab_size=self.model.config.vocab_size)
        if calls:
            first = calls[0]
            self.staged.ensure_discovered(GreedyDecoder(first).call if isinstance(first, GenerationRequest) else first)
        return calls

    def _bottom(self, calls: list[Batch], stop: int, direction: int, scales: Sequence[float]
                ) -> tuple[list[list[torch.Tensor]], list[list[dict[str, Any]]]]:
        """Per scale, the hidden states entering layer ``stop`` for every call; and the layers' arguments."""
        staged = self.staged
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

    def _generate(self, request: GenerationRequest, direction: int, scale: float,
                  prompt: PromptState | None) -> list[list[int]]:
        """Greedy continuations at θ + scale·z: the outer tensors perturbed once for the request, each layer's
        tensors rebuilt at every decoding call (one layer's temporaries at a time, never a copy of the weights)."""
        staged = self.staged
        outer = self._stream_params(sorted({*staged.prefix_params, *staged.suffix_params}), direction, scale)
        return staged.generate(request, outer=outer, prompt=prompt,
                               layer_params=lambda layer: self._layer_params(layer, direction, [scale])[0])

    def cache(self, objective: Objective, enc) -> None:
        """Compute and keep the frozen bottom's output for ``enc`` (needs ``cache=True``; no-op otherwise).

        It covers every call of ``objective.evaluate`` (which makes those of ``objective.losses`` too): for
        generation, the prompts' hidden states and the frozen layers' keys and values. Where every trainable tensor
        follows the last layer and the label words are single tokens, only each record's final hidden state at its
        scoring position is kept (:mod:`paczero.features`). Computed without autograd but outside inference mode, so
        that a first-order method can differentiate through what follows (:meth:`differentiable_losses`).
        """
        if not self._use_cache or not self._staged(objective, enc):
            return
        self._cached.pop(id(enc), None)
        self._features.pop(id(enc), None)
        calls = self._record(objective, enc, evaluate=True)
        if self.staged.prefix_params or not self.first_trainable_layer:
            raise PaczeroError("zo.cache_prefix: nothing to cache, the embeddings or the first decoder layer are "
                               "trainable (set model.train_top_layers below the number of layers, or a "
                               "model.trainable set above the first layer)")
        if self._head_suffix(objective, calls) is not None:
            self._features[id(enc)] = (enc, self._final_states(objective, enc, calls))
            return
        first = self.first_trainable_layer
        states: dict[Hashable, Any] = {}
        with torch.no_grad():
            batches = [c for c in calls if not isinstance(c, GenerationRequest)]
            if batches:
                hidden, kwargs = self._bottom(batches, first, 0, [0.0])
                states.update((_call_key(c), (h, kw)) for c, h, kw in zip(batches, hidden[0], kwargs))
            for c in calls:
                if isinstance(c, GenerationRequest):
                    states[_call_key(c)] = self.staged.prompt_state(c, first)
        self._cached[id(enc)] = _Cached(enc=enc, micro_batch=objective.micro_batch, states=states)

    def _head_suffix(self, objective: Objective, calls: list[Call]) -> HeadSuffix | None:
        """The suffix reduced to the label words (:func:`paczero.features.head_suffix`) where every trainable tensor
        is the final norm's or the head rows' and every label word is one token; else None. Checked once."""
        if not self._head_checked and calls and getattr(objective, "single_token", False) and (
                self.first_trainable_layer == self.staged.n_layers):
            self._head_checked = True
            head = head_suffix(self.staged, self.trainable, [c[0] for c in objective.candidates], calls[0])
            covered = set() if head is None else {*head.norm_params.values(), head.rows_index}
            self._head = head if covered >= set(range(len(self.trainable))) else None
        return self._head

    @torch.no_grad()
    def _final_states(self, objective: Objective, enc, calls: list[Call]) -> torch.Tensor:
        """(n, H): each record's last-layer output at its scoring position (the last one), in the records' order."""
        hidden, _ = self._bottom(calls, self.staged.n_layers, 0, [0.0])
        size = objective.micro_batch
        states = torch.empty((len(enc), hidden[0][0].shape[-1]), dtype=hidden[0][0].dtype, device=hidden[0][0].device)
        for b, h in enumerate(hidden[0]):
            states[torch.from_numpy(enc.order[b * size:(b + 1) * size]).to(states.device)] = h[:, -1, :]
        return states

    def _features_of(self, enc) -> torch.Tensor | None:
        """The cached final states of ``enc``, or of the set it is a subset of (its rows), else None."""
        entry = self._features.get(id(enc))
        if entry is not None and entry[0] is enc:
            return entry[1]
        origin = getattr(enc, "origin", None)
        parent = None if origin is None else self._features_of(origin[0])
        return None if parent is None else parent[torch.from_numpy(origin[1]).to(parent.device)]

    def _head_scores(self, objective: Objective, enc, features: torch.Tensor, direction: int,
                     scales: Sequence[float], evaluate: bool) -> list[Any]:
        """Per scale s, the losses (or metrics) at θ + s·z from the cached final states: z generated once per tensor."""
        self.cache_hits += 1
        indices = range(len(self.trainable))
        z = {i: self.direction_block(direction, i) for i in indices} if any(scales) else {}
        results = []
        with one_thread():
            for scale in scales:
                values = {i: _perturbed(self.trainable[i][1], z[i], scale) for i in indices} if scale else {}
                logits = self._head.logits(features, values).float()
                results.append(objective.metrics_from_scores(logits, enc.labels) if evaluate
                               else objective.losses_from_scores(logits, enc.labels).cpu())
        return results

    def _from_cache(self, objective: Objective, enc, calls: list[Call]) -> list[Any] | None:
        """The cached state of every call, or ``None`` when ``enc`` (at this micro-batch size) is not cached."""
        entry = self._cached.get(id(enc)) if self.first_trainable_layer else None
        if entry is None or entry.enc is not enc or entry.micro_batch != objective.micro_batch:
            return None
        states = [entry.states.get(_call_key(c)) for c in calls]
        if any(state is None for state in states):
            return None
        self.cache_hits += 1
        return states

    def _staged_pass(self, objective: Objective, enc, direction: int,
                     scales: Sequence[float], evaluate: bool, grad: bool = False) -> list[Any]:
        staged = self.staged
        calls = self._record(objective, enc, evaluate)
        states = self._from_cache(objective, enc, calls)
        generated: list[dict[int, list[list[int]]]] = [{} for _ in scales]
        for i, call in enumerate(calls):
            if isinstance(call, GenerationRequest):
                for k, scale in enumerate(scales):  # one evaluation at a time: one KV cache at a time
                    generated[k][i] = self._generate(call, direction, scale, None if states is None else states[i])
        batches = [i for i, c in enumerate(calls) if not isinstance(c, GenerationRequest)]
        position = {i: b for b, i in enumerate(batches)}
        hidden: list[list[torch.Tensor]] = [[] for _ in scales]
        if batches and states is None:
            hidden, kwargs = self._bottom([calls[i] for i in batches], staged.n_layers, direction, scales)
        elif batches:
            hidden = [[states[i][0] for i in batches] for _ in scales]
            kwargs = [states[i][1] for i in batches]
            self._layers(hidden, kwargs, range(self.first_trainable_layer, staged.n_layers), direction, scales)
        results = []
        for k, (stream, scale) in enumerate(zip(hidden, scales)):
            params = self._stream_params(staged.suffix_params or [], direction, scale) if batches else {}

            def answer(i: int, call: Call, k: int = k, stream: list[torch.Tensor] = stream,
                       params: dict[str, torch.Tensor] = params) -> Any:
                if isinstance(call, GenerationRequest):
                    return generated[k][i]
                return staged.suffix(call, stream[position[i]], params)

            forward = replayer(answer, calls)
            results.append(objective.evaluate(forward, enc) if evaluate else objective.losses(forward, enc, grad=grad))
            del params, answer, forward
        return results

    @torch.inference_mode()
    def _staged_scores(self, objective: Objective, enc, *, direction: int, scales: Sequence[float],
                       evaluate: bool = False, private: bool = True) -> list[Any]:
        """Per scale s, the objective's losses (or metrics) at θ + s·z, from one staged pass.

        Out of memory, the micro-batches are halved (for good) and every evaluation restarts, so the
        evaluations of one estimate never mix two batchings (:mod:`paczero.oom`).
        """
        features = self._features_of(enc)
        if features is not None:
            return self._head_scores(objective, enc, features, direction, scales, evaluate)

        def run(size: int) -> list[Any]:
            with self._autocast():
                return self._staged_pass(objective, enc, direction, scales, evaluate)

        return objective.batching.run(run, what="evaluating", private=private)

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

    def evaluate(self, objective: Objective, enc, *, private: bool = True) -> dict[str, Any]:
        """The objective's metrics at the stored weights (staged, so a cached prefix is used).

        ``private=False`` says that ``enc`` holds public records (dev, test): an out-of-memory warning may then
        say what ran out of memory (:func:`paczero.oom.log_out_of_memory`).
        """
        if not self._staged(objective, enc):
            def run(size: int) -> dict[str, float]:
                with torch.inference_mode(), self._autocast():
                    return objective.evaluate(model_forward(self.model), enc)

            return objective.batching.run(run, what="evaluating", private=private)
        return self._staged_scores(objective, enc, direction=0, scales=[0.0], evaluate=True, private=private)[0]

    def differentiable_losses(self, objective: Objective, enc) -> torch.Tensor:
        """Per-record losses at the stored weights, differentiable in the trainable tensors (first-order methods).

        From the cached final states or the cached bottom where ``enc`` (or the set it is a subset of) has them, so
        that only what lies above the lowest trainable tensor runs, with autograd; otherwise the whole model.
        """
        features = self._features_of(enc)
        if features is not None:
            return objective.losses_from_scores(self._head.logits(features, {}).float(), enc.labels)
        if not self._staged(objective, enc):
            with self._autocast():
                return objective.losses(model_forward(self.model), enc, grad=True)
        with self._autocast():
            return objective.batching.run(
                lambda size: self._staged_pass(objective, enc, 0, [0.0], evaluate=False, grad=True)[0],
                what="evaluating", private=True)

    def per_record_gradients(self, objective: Objective, enc) -> tuple[torch.Tensor, torch.Tensor]:
        """Each record's gradient of its own loss over the trainable tensors, flattened and concatenated in their
        order ((n, d), float64), and the records' losses ((n,), float64) — DP-SGD's per-example gradients.

        From the cached final states (the head set) by ``torch.func.vmap`` of ``torch.func.grad`` over one
        record's loss, logsumexp(logits) − logits[y] as :meth:`Objective.losses_from_scores` computes it; otherwise
        one record at a time through :meth:`differentiable_losses` (a one-record subset: its own batching, which
        changes the hidden states by float rounding only).
        """
        from torch.func import grad_and_value, vmap

        params = tuple(p.detach() for _, p in self.trainable)
        if not len(enc):
            return torch.zeros((0, sum(p.numel() for p in params)), dtype=torch.float64), torch.zeros(0, dtype=torch.float64)
        features = self._features_of(enc)
        if features is not None:
            head = self._head
            gold = torch.nn.functional.one_hot(torch.from_numpy(enc.labels), len(objective.candidates)).to(
                features.device, torch.float32)

            def loss(values: tuple[torch.Tensor, ...], h: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
                logits = head.logits(h[None], dict(enumerate(values))).float()[0]
                return torch.logsumexp(logits, 0) - (logits * y).sum()

            with one_thread():
                grads, losses = vmap(grad_and_value(loss), in_dims=(None, 0, 0))(params, features, gold)
            flat = torch.cat([g.reshape(len(enc), -1) for g in grads], dim=1)
            return flat.double().cpu(), losses.double().cpu()
        rows, losses = [], []
        for i in range(len(enc)):
            one = self.differentiable_losses(objective, enc.subset(np.array([i])))
            grads = torch.autograd.grad(one.sum(), [p for _, p in self.trainable])
            rows.append(torch.cat([g.reshape(-1) for g in grads]).double().cpu())
            losses.append(float(one.detach().double().sum()))
        return torch.stack(rows), torch.tensor(losses, dtype=torch.float64)

    def estimates(self, objective: Objective, enc, *, direction: int) -> tuple[np.ndarray, np.ndarray]:
        """Per-record two-point estimates (float64, unclipped) and per-record losses averaged over both evaluations.

        The losses are a by-product of the two evaluations (no extra forward pass).
        """
        if self._staged(objective, enc):
            plus, minus = self._staged_scores(objective, enc, direction=direction, scales=[self.eps, -self.eps])
        else:  # both evaluations in one pass: an out-of-memory retry restarts both at the smaller size
            plus, minus = objective.batching.run(
                lambda size: [self.perturbed_losses(objective, enc, direction=direction, scale=s)
                              for s in (self.eps, -self.eps)], what="evaluating", private=True)
        plus, minus = plus.double(), minus.double()
        g = ((plus - minus) / (2 * self.eps)).numpy()
        return g, ((plus + minus) / 2).numpy()

    def apply_step(self, seeds: Sequence[int], values: Sequence[float], *, lr: float,
                   weight_decay: float = 0.0) -> None:
        """One step's update from its released values: θ ← θ − lr·((1/K) Σ_k value_k z_k + λθ) over the K direction
        ``seeds``. The one place the update rule is written: training (:func:`paczero.step.apply_update`), the
        replay of a transcript and ``verify`` all call it, so they compute the same floats."""
        k = len(seeds)
        self.update([(seed, value / k) for seed, value in zip(seeds, values)], lr=lr, weight_decay=weight_decay)

    @torch.inference_mode()
    def update(self, coefficients: Sequence[tuple[int, float]], *, lr: float, weight_decay: float = 0.0) -> None:
        """θ ← θ − lr·(Σ_k c_k z_k + λθ) for ``coefficients = [(direction seed, c_k), ...]``.

        A zero coefficient adds nothing (not even ``+0.0``), so a zero update leaves the weights bit-identical.
        One direction block of one tensor exists at a time.
        """
        for i, (name, p) in enumerate(self.trainable):
            if weight_decay and decays(name):
                p.mul_(1.0 - lr * weight_decay)
            for direction, c in coefficients:
                if c != 0.0:
                    p.add_(self.direction_block(direction, i), alpha=-lr * c)
