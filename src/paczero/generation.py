"""Greedy decoding with the KV cache through a forward callable.

``transformers``' own ``generate`` calls the module it belongs to, so it cannot run under the
perturbed temporaries of :class:`paczero.zo.ZOEngine`; this loop only calls ``forward`` and so serves
the stored weights and the perturbed ones alike. Prompts are padded on the left with explicit
``position_ids`` (cumulative sum of the attention mask), so a batch generates what each prompt
would alone; one prefill over the prompts keeps only the last position's logits, then one token per
call reuses the cache (``past_key_values``). A sequence stops after a stop token (newline or EOS);
the batch stops when every sequence has stopped or after ``max_new_tokens``.
"""

from __future__ import annotations

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


@torch.inference_mode()
def greedy_generate(forward: Forward, prompts: Sequence[Sequence[int]], *, stop_ids: Sequence[int], pad_id: int,
                    max_new_tokens: int, device: torch.device) -> list[list[int]]:
    """The greedy continuation of each prompt, up to and including its first stop token."""
    batch = left_pad(prompts, pad_id=pad_id, device=device)
    mask = batch["attention_mask"]
    position = batch["position_ids"][:, -1:] + 1
    stop = torch.tensor(sorted(set(stop_ids)), dtype=torch.long, device=device)
    out = forward(**batch, use_cache=True, logits_to_keep=1, return_output=True)
    tokens, lengths = [], torch.full((len(prompts),), max_new_tokens, dtype=torch.long, device=device)
    done = torch.zeros(len(prompts), dtype=torch.bool, device=device)
    for step in range(max_new_tokens):
        token = out.logits[:, -1, :].argmax(dim=-1)
        tokens.append(token)
        stopped = ~done & torch.isin(token, stop)
        lengths[stopped] = step + 1
        done |= stopped
        if bool(done.all()) or step + 1 == max_new_tokens:
            break
        mask = torch.cat([mask, mask.new_ones((len(prompts), 1))], dim=1)
        out = forward(input_ids=token[:, None], attention_mask=mask, position_ids=position + step,
                      past_key_values=out.past_key_values, use_cache=True, return_output=True)
    generated = torch.stack(tokens, dim=1).cpu()
    return [generated[row, :n].tolist() for row, n in enumerate(lengths.tolist())]
