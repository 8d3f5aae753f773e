"""Greedy decoding with the KV cache through a forward callable.

``transformers``' own ``generate`` calls the module it belongs to, so it cannot run under the
perturbed temporaries of :class:`paczero.zo.ZOEngine`; this loop only calls ``forward`` and so serves
the stored weights and the perturbed ones alike. Prompts are padded on the left with explicit
``position_ids`` (cumulative sum of the attention mask), so a batch generates what each prompt
would alone; one prefill over the prompts keeps only the last position's logits, then one token per
call reuses the cache (``past_key_values``). A sequence stops after a stop token (newline or EOS);
the batch stops when every sequence has stopped or after ``max_new_tokens``.

The decoding rule itself (:class:`GreedyDecoder`) is separate from the loop that calls the model, so
that the ZO engine can drive it stage by stage (:mod:`paczero.zo`); a forward that answers whole
:class:`GenerationRequest`\\ s itself (``forward.greedy``: the engine's recorded and replayed passes)
is asked for them instead of being called token by token.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch

Forward = Callable[..., Any]
"""``forward(input_ids=, attention_mask=, position_ids=, logits_to_keep=, ...)`` returns the logits;
with ``return_output=True`` the model's whole output (``.logits``, ``.past_key_values``)."""


def as_forward(call: Callable[..., Any]) -> Forward:
    """A :data:`Forward` over ``call(**kw)``, which returns a model output (e.g. ``model`` itself)."""

    def forward(*, return_output: bool = False, **kw: Any) -> Any:
        out = call(**kw)
        return out if return_output else out.logits

    return forward


def left_pad(seqs: Sequence[Sequence[int]], *, pad_id: int, device: torch.device) -> dict[str, torch.Tensor]:
    """``input_ids``, ``attention_mask`` and ``position_ids`` of ``seqs`` padded on the left."""
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for row, s in enumerate(seqs):
        ids[row, width - len(s):] = torch.tensor(s, dtype=torch.long)
        mask[row, width - len(s):] = 1
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    return {"input_ids": ids.to(device), "attention_mask": mask.to(device), "position_ids": positions.to(device)}


@dataclass(frozen=True)
class GenerationRequest:
    """Greedy continuations wanted for one micro-batch of prompts (hashable: a recorded call)."""

    prompts: tuple[tuple[int, ...], ...]
    stop_ids: tuple[int, ...]
    pad_id: int
    max_new_tokens: int
    device: torch.device


class GreedyDecoder:
    """Greedy decoding of one :class:`GenerationRequest`: the model inputs of each call, and the tokens chosen.

    :attr:`call` holds the inputs of the next forward call (the prefill first, with ``logits_to_keep=1``;
    then one token per sequence); :meth:`advance` takes that call's logits and returns the next call's inputs,
    or ``None`` when every sequence has stopped or ``max_new_tokens`` are generated.
    """

    def __init__(self, request: GenerationRequest):
        self.request = request
        n, device = len(request.prompts), request.device
        batch = left_pad(request.prompts, pad_id=request.pad_id, device=device)
        self._mask = batch["attention_mask"]
        self._position = batch["position_ids"][:, -1:] + 1
        self._stop = torch.tensor(sorted(set(request.stop_ids)), dtype=torch.long, device=device)
        self._tokens: list[torch.Tensor] = []
        self._lengths = torch.full((n,), request.max_new_tokens, dtype=torch.long, device=device)
        self._done = torch.zeros(n, dtype=torch.bool, device=device)
        self.call: dict[str, Any] | None = {**batch, "logits_to_keep": 1}

    def advance(self, logits: torch.Tensor) -> dict[str, Any] | None:
        """Choose each sequence's next token from the last position of ``logits``; the next call's inputs."""
        step = len(self._tokens)
        token = logits[:, -1, :].argmax(dim=-1)
        self._tokens.append(token)
        stopped = ~self._done & torch.isin(token, self._stop)
        self._lengths[stopped] = step + 1
        self._done |= stopped
        if bool(self._done.all()) or step + 1 == self.request.max_new_tokens:
            self.call = None
        else:
            self._mask = torch.cat([self._mask, self._mask.new_ones((len(token), 1))], dim=1)
            self.call = {"input_ids": token[:, None], "attention_mask": self._mask,
                         "position_ids": self._position + step}
        return self.call

    def result(self) -> list[list[int]]:
        """Each prompt's continuation, up to and including its first stop token."""
        generated = torch.stack(self._tokens, dim=1).cpu()
        return [generated[row, :n].tolist() for row, n in enumerate(self._lengths.tolist())]


@torch.inference_mode()
def greedy_generate(forward: Forward, prompts: Sequence[Sequence[int]], *, stop_ids: Sequence[int], pad_id: int,
                    max_new_tokens: int, device: torch.device) -> list[list[int]]:
    """The greedy continuation of each prompt, up to and including its first stop token."""
    request = GenerationRequest(prompts=tuple(tuple(p) for p in prompts), stop_ids=tuple(stop_ids), pad_id=pad_id,
                                max_new_tokens=max_new_tokens, device=device)
    answer = getattr(forward, "greedy", None)
    if answer is not None:
        return answer(request)
    decoder = GreedyDecoder(request)
    out = forward(**decoder.call, use_cache=True, return_output=True)
    while decoder.advance(out.logits) is not None:
        out = forward(**decoder.call, past_key_values=out.past_key_values, use_cache=True, return_output=True)
    return decoder.result()
