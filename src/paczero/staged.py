"""Layer-major evaluation of a decoder-only Hugging Face model over many micro-batches.

An objective scores records by calling ``forward(**batch)`` once per micro-batch. Evaluating the
perturbed model θ + εz that way would rebuild every perturbed weight once per micro-batch, or keep a
whole perturbed copy of the weights. Instead the objective's calls are first *recorded* (they depend
on the encoded records only, not on the model's outputs), then run stage by stage over all recorded
micro-batches at once:

1. the **prefix** — everything the model computes before its first decoder layer (token and position
   embeddings, the attention masks, rotary tables), captured by stand-ins for the decoder layers;
2. each **decoder layer** in turn, for every micro-batch;
3. the **suffix** — everything after the last layer (final norm, LM head), while the objective's calls
   are *replayed* with the real logits.

Weights are substituted per stage with :func:`torch.func.functional_call`, so a stage can run with
temporaries (perturbed weights) that live only while that stage runs, and the stored weights are
never written. Every micro-batch goes through exactly the modules and kernels of a plain forward, so
the logits equal the plain forward's bit for bit.

Which trainable tensors each stage reads is found by hooks, once: the prefix and the suffix may share
a tensor (tied input and output embeddings).

Greedy generation depends on the logits, so it is recorded as requests (one per micro-batch of
prompts) and each request decoded here call by call (:meth:`StagedModel.generate`): every call runs
the prefix with the request's KV cache, the layers (which append to it) and the suffix, so a layer's
substitutes may be rebuilt at every call. A :class:`PromptState` holds a request's prompts after the
frozen bottom layers (their hidden states and keys and values), from which generation resumes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
import inspect
from typing import Any, Callable, Mapping, Sequence, Union

import torch
from torch import nn
from torch.func import functional_call

from paczero.errors import PaczeroError
from paczero.generation import GenerationRequest, GreedyDecoder

Batch = dict[str, Any]
"""The keyword arguments of one recorded forward call (``input_ids``, ``attention_mask``, ...)."""


class CallsChanged(RuntimeError):
    """The objective's calls during a replay differ from the recorded ones: they depended on something other
    than the records (a bug in the objective; the out-of-memory policy never re-batches inside a pass)."""


class _StopPrefix(Exception):
    """Raised by the last layer stand-in once the prefix has been captured."""


class _StandIn(nn.Module):
    """Takes the place of decoder layer ``index`` while the prefix or the suffix runs.

    During the prefix it records the keyword arguments the model passes to the layer (masks, rotary
    tables) and passes the hidden states through; the last one aborts the forward. During the suffix
    every stand-in returns the precomputed output of the last layer. Attribute look-ups the model makes
    on its layers (e.g. ``attention_type``) fall through to the real layer.
    """

    def __init__(self, layer: nn.Module, index: int, last: bool, run: "_Run"):
        super().__init__()
        self._real = (layer,)  # a tuple, so that the real layer is not registered as a submodule
        self._index = index
        self._last = last
        self._run = run

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self._real[0], name)

    def forward(self, hidden_states: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        run = self._run
        if run.mode == "prefix":
            if args:
                raise TypeError("decoder layers called with positional arguments beyond the hidden states are "
                                "not supported by the staged forward")
            run.layer_kwargs.append(kwargs)
            if self._last:
                run.hidden = hidden_states
                raise _StopPrefix
            return hidden_states
        if self._last:
            run.after_layers = True
        return run.hidden


@dataclass
class _Run:
    """Scratch state shared by the stand-ins during one prefix or suffix call."""

    mode: str = "prefix"
    hidden: torch.Tensor | None = None
    layer_kwargs: list[dict[str, Any]] = field(default_factory=list)
    after_layers: bool = False


def _find_layers(model: nn.Module) -> tuple[nn.Module, str, nn.ModuleList]:
    """The ``nn.ModuleList`` of decoder layers (the list of same-class blocks holding the most parameters)."""
    best: tuple[int, nn.Module, str, nn.ModuleList] | None = None
    for owner in model.modules():
        for attr, child in owner.named_children():
            if not isinstance(child, nn.ModuleList) or len(child) == 0:
                continue
            if len({type(m) for m in child}) != 1:
                continue
            size = sum(p.numel() for p in child.parameters())
            if best is None or size > best[0]:
                best = (size, owner, attr, child)
    if best is None:
        raise ValueError(f"{type(model).__name__} has no list of decoder layers; the staged forward needs one")
    return best[1], best[2], best[3]


class StagedModel:
    """Runs a decoder-only causal LM stage by stage (prefix, layers, suffix) with substituted weights.

    ``trainable`` lists the tensors that callers may substitute, as ``(name, parameter)`` pairs named
    as in ``model.named_parameters()``. :attr:`layer_params` and :attr:`prefix_params` /
    :attr:`suffix_params` say, by index into ``trainable``, which tensors each stage reads.
    """

    def __init__(self, model: nn.Module, trainable: Sequence[tuple[str, nn.Parameter]]):
        self.model = model
        self.trainable = list(trainable)
        self.owner, self.attr, self.layers = _find_layers(model)
        self.n_layers = len(self.layers)
        index = {id(p): i for i, (_, p) in enumerate(self.trainable)}
        in_layers: set[int] = set()
        self.layer_params: list[list[tuple[int, str]]] = []
        for layer in self.layers:
            local = [(index[id(p)], name) for name, p in layer.named_parameters() if id(p) in index]
            self.layer_params.append(local)
            in_layers.update(i for i, _ in local)
        self.outer = [i for i in range(len(self.trainable)) if i not in in_layers]
        self._run = _Run()
        base = model.get_base_model() if hasattr(model, "get_base_model") else model  # a peft model passes it on
        self._cache_keyword = "cache" if "cache" in inspect.signature(base.forward).parameters else "past_key_values"
        self.prefix_params: list[int] | None = None
        self.suffix_params: list[int] | None = None

    # ------------------------------------------------------------------ which tensors each stage reads
    def _outer_readers(self) -> dict[nn.Module, list[int]]:
        """Modules outside the decoder layers that own outer trainable tensors, with those tensors."""
        outer_ids = {id(self.trainable[i][1]): i for i in self.outer}
        readers: dict[nn.Module, list[int]] = {}
        for module in self.model.modules():
            owned = [outer_ids[id(p)] for p in module.parameters(recurse=False) if id(p) in outer_ids]
            if owned:
                readers[module] = owned
        return readers

    def _discover(self, batch: Batch) -> None:
        """Find, by hooks on one unperturbed prefix and suffix call, which outer tensors each stage reads.

        A module whose forward encloses the decoder layers (an ancestor of the layer list) counts for both.
        """
        readers = self._outer_readers()
        enclosing = {m for m in self.model.modules() if any(c is self.layers for c in m.modules())}
        seen: dict[str, set[int]] = {"prefix": set(), "suffix": set()}

        def hook(module: nn.Module, args: Any) -> None:
            run = self._run
            if module in enclosing:
                seen["prefix"].update(readers[module])
                seen["suffix"].update(readers[module])
            elif run.mode == "prefix":
                seen["prefix"].update(readers[module])
            elif run.after_layers:
                seen["suffix"].update(readers[module])

        handles = [m.register_forward_pre_hook(hook) for m in readers]
        try:
            hidden, _ = self.prefix(batch, {}, discovering=True)
            self.suffix(batch, hidden, {}, discovering=True)
        finally:
            for h in handles:
                h.remove()
        self.prefix_params = sorted(seen["prefix"])
        self.suffix_params = sorted(seen["suffix"])

    def ensure_discovered(self, batch: Batch) -> None:
        """Find, once, which trainable tensors the prefix and the suffix read (by running ``batch``)."""
        if self.prefix_params is None:
            self._discover(batch)

    # ------------------------------------------------------------------ the three stages
    def _with_stand_ins(self, mode: str, call: Callable[[], Any]) -> Any:
        run = self._run
        run.mode, run.layer_kwargs, run.after_layers = mode, [], False
        stand_ins = nn.ModuleList([_StandIn(layer, i, i == self.n_layers - 1, run)
                                   for i, layer in enumerate(self.layers)])
        setattr(self.owner, self.attr, stand_ins)
        try:
            return call()
        finally:
            setattr(self.owner, self.attr, self.layers)

    def _call_model(self, params: Mapping[str, torch.Tensor], batch: Batch, cache: Any = None) -> Any:
        use = {"use_cache": False} if cache is None else {"use_cache": True, self._cache_keyword: cache}
        return functional_call(self.model, dict(params), args=(), kwargs={**batch, **use})

    def prefix(self, batch: Batch, params: Mapping[str, torch.Tensor], *, cache: Any = None,
               discovering: bool = False) -> tuple[torch.Tensor, list[dict[str, Any]]]:
        """Hidden states entering the first decoder layer, and every layer's keyword arguments.

        With a KV ``cache`` (:meth:`new_cache`) the layers' arguments refer to it, so that running the layers
        appends this call's keys and values to it, as in a plain forward with that cache.
        """
        if not discovering:
            self.ensure_discovered(batch)
        run = self._run

        def call() -> None:
            try:
                self._call_model(params, {k: v for k, v in batch.items() if k != "logits_to_keep"}, cache)
            except _StopPrefix:
                return
            raise RuntimeError("the model never called its last decoder layer")

        self._with_stand_ins("prefix", call)
        hidden, kwargs = run.hidden, run.layer_kwargs
        run.hidden, run.layer_kwargs = None, []
        assert hidden is not None and len(kwargs) == self.n_layers
        return hidden, kwargs

    def new_cache(self, filled: Sequence[tuple[torch.Tensor, torch.Tensor]] = ()) -> Any:
        """A KV cache for the model whose first ``len(filled)`` layers hold the given (keys, values)."""
        from transformers import DynamicCache

        return DynamicCache(ddp_cache_data=list(filled) or None, config=self.model.config)

    @staticmethod
    def cached(cache: Any, layers: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """The (keys, values) that the first ``layers`` layers have put in ``cache``."""
        return [(layer.keys, layer.values) for layer in cache.layers[:layers]]

    def layer(self, index: int, hidden: torch.Tensor, kwargs: dict[str, Any],
              params: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Decoder layer ``index`` on one micro-batch (``params`` named relative to the layer)."""
        out = functional_call(self.layers[index], dict(params), args=(hidden,), kwargs=kwargs)
        return out[0] if isinstance(out, tuple) else out

    def suffix(self, batch: Batch, hidden: torch.Tensor, params: Mapping[str, torch.Tensor], *,
               discovering: bool = False) -> torch.Tensor:
        """Logits from the last layer's output ``hidden`` (the model's own code after its layers)."""
        self._run.hidden = hidden
        try:
            return self._with_stand_ins("suffix", lambda: self._call_model(params, batch).logits)
        finally:
            self._run.hidden = None

    def modules_after_layers(self, batch: Batch, hidden: torch.Tensor) -> tuple[list[nn.Module], torch.Tensor]:
        """The modules with weights of their own that run after the last layer (in order), and the logits, from one
        unsubstituted suffix call on the last layer's output ``hidden``."""
        inside = {id(m) for m in self.layers.modules()}
        owners = [m for m in self.model.modules() if id(m) not in inside and next(m.parameters(recurse=False), None)
                  is not None]
        ran: list[nn.Module] = []

        def hook(module: nn.Module, args: Any) -> None:
            if self._run.after_layers and module not in ran:
                ran.append(module)

        handles = [m.register_forward_pre_hook(hook) for m in owners]
        try:
            logits = self.suffix(batch, hidden, {})
        finally:
            for h in handles:
                h.remove()
        return ran, logits

    # ------------------------------------------------------------------ greedy generation, stage by stage
    def prompt_state(self, request: GenerationRequest, layers: int) -> "PromptState":
        """``request``'s prompts through the prefix and the first ``layers`` layers, unperturbed (a cached prefix)."""
        cache = self.new_cache()
        hidden, kwargs = self.prefix(GreedyDecoder(request).call, {}, cache=cache)
        for layer in range(layers):
            hidden = self.layer(layer, hidden, kwargs[layer], {})
        return PromptState(layers=layers, hidden=hidden, kwargs=kwargs, cache=cache)

    def generate(self, request: GenerationRequest, *, outer: Mapping[str, torch.Tensor],
                 layer_params: Callable[[int], Mapping[str, torch.Tensor]],
                 prompt: "PromptState | None" = None) -> list[list[int]]:
        """Greedy continuations of ``request``'s prompts with the KV cache, every call run stage by stage.

        ``outer`` substitutes tensors outside the layers for the whole generation; ``layer_params(i)`` is asked
        for layer i's substitutes at every call, so that they may be temporaries of that layer alone. From a
        ``prompt`` state the prefill starts at its layer and the layers below run for the new tokens only.
        """
        decoder = GreedyDecoder(request)
        if prompt is None:
            cache, start = self.new_cache(), 0
            hidden, kwargs = self.prefix(decoder.call, outer, cache=cache)
        else:
            cache, start, hidden = self.new_cache(self.cached(prompt.cache, prompt.layers)), prompt.layers, prompt.hidden
            kwargs = [{k: cache if v is prompt.cache else v for k, v in kw.items()} for kw in prompt.kwargs]
        while True:
            for layer in range(start, self.n_layers):
                hidden = self.layer(layer, hidden, kwargs[layer], layer_params(layer))
            if decoder.advance(self.suffix(decoder.call, hidden, outer)) is None:
                return decoder.result()
            hidden, kwargs = self.prefix(decoder.call, outer, cache=cache)
            start = 0


@dataclass
class PromptState:
    """A generation request's prompts after the first ``layers`` decoder layers: the hidden states entering the
    next layer, every layer's arguments for the prefill, and the KV cache those arguments refer to."""

    layers: int
    hidden: torch.Tensor
    kwargs: list[dict[str, Any]]
    cache: Any


Call = Union[Batch, GenerationRequest]
"""One recorded call of an objective: a forward call, or a request for greedy continuations."""


class _Recorder:
    """A forward that records every call and answers with zero logits or empty continuations."""

    def __init__(self, vocab_size: int):
        self.vocab_size = vocab_size
        self.calls: list[Call] = []

    def __call__(self, **kw: Any) -> torch.Tensor:
        self.calls.append(kw)
        ids = kw["input_ids"]
        keep = kw.get("logits_to_keep", 0) or ids.shape[1]
        return torch.zeros((ids.shape[0], keep, self.vocab_size), device=ids.device)

    def greedy(self, request: GenerationRequest) -> list[list[int]]:
        self.calls.append(request)
        return [[] for _ in request.prompts]


def record_calls(score: Callable[[Callable[..., torch.Tensor]], Any], *, vocab_size: int) -> list[Call]:
    """The forward calls and generation requests ``score(forward)`` makes, answered with zero logits and
    empty continuations (nothing is computed).

    Valid for objectives whose calls depend on the records alone, never on what the calls return.
    """
    recorder = _Recorder(vocab_size)
    score(recorder)
    return recorder.calls


class _Replayer:
    """A forward that answers the i-th call with ``answer(i, call)``, checking it is the recorded one."""

    def __init__(self, answer: Callable[[int, Call], Any], calls: list[Call]):
        self.answer, self.calls = answer, calls
        self.position = 0

    def _next(self, same: Callable[[Call], bool]) -> int:
        i = self.position
        if i >= len(self.calls) or not same(self.calls[i]):
            raise CallsChanged("the objective's forward calls changed between recording and replay")
        self.position += 1
        return i

    def __call__(self, **kw: Any) -> torch.Tensor:
        i = self._next(lambda call: isinstance(call, dict) and torch.equal(kw["input_ids"], call["input_ids"]))
        return self.answer(i, self.calls[i])

    def greedy(self, request: GenerationRequest) -> list[list[int]]:
        i = self._next(lambda call: call == request)
        return self.answer(i, request)


def replayer(answer: Callable[[int, Call], Any], calls: list[Call]) -> Callable[..., torch.Tensor]:
    """A forward that answers the i-th recorded call (a forward call or a generation request) with
    ``answer(i, call)``: logits, or the continuations of the request's prompts."""
    return _Replayer(answer, calls)


def discovered_stages(model: nn.Module) -> "StagedModel":
    """The model's stages over all its parameters, with which tensors the prefix and the suffix read discovered."""
    staged = StagedModel(model, list(model.named_parameters()))
    probe = torch.tensor([[0, 1]], device=next(model.parameters()).device)
    with torch.inference_mode():
        staged.ensure_discovered({"input_ids": probe, "attention_mask": torch.ones_like(probe)})
    assert staged.prefix_params is not None and staged.suffix_params is not None
    return staged


def train_top_layers_only(model: nn.Module, n: int) -> None:
    """Freeze all but the top ``n`` decoder layers and the tensors after them that the input side does not read
    (a tied input/output embedding stays frozen, so the layers below never change)."""
    staged = discovered_stages(model)
    if n > staged.n_layers:
        raise PaczeroError(f"config: model.train_top_layers={n} exceeds the model's {staged.n_layers} decoder layers")
    keep = {i for layer in staged.layer_params[staged.n_layers - n:] for i, _ in layer}
    keep |= set(staged.suffix_params) - set(staged.prefix_params)
    for i, (_, p) in enumerate(staged.trainable):
        p.requires_grad_(i in keep)
