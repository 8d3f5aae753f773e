"""The label words' logits from each record's cached final hidden state: a head-set step in a few small products.

When every trainable tensor lies after the last decoder layer — the final norm and the label words' rows of the LM
head (``model.trainable.final_norm``, ``head_rows``) — and every label word is one token, a record's loss depends on
the trainable tensors only through h_i, the last decoder layer's output at its scoring position (the last one: the
objectives pad on the left). :meth:`paczero.zo.ZOEngine.cache` keeps h_i of every record of a set (an (n, H) matrix
in the records' order), and an evaluation at any θ is::

    logits_i = norm(h_i; w) · Rᵀ (+ the rows' bias),    loss_i = logsumexp_c(logits_ic) − logits_i,y_i

with w the final norm's weights and R the C label rows (trained, or the frozen head's own). The norm is the model's
own module, called with substituted weights. The objective scores the log-softmax over the whole vocabulary at the
label ids instead; its normaliser is common to the C candidates and cancels in their cross-entropy and their
argmax, so the two agree to float rounding, not bit for bit (``tests/test_features.py`` holds them to 1e-5, and a
float64 loop written out in the test to the same).

The features of a subset of a cached set (a minibatch, a Poisson batch) are its rows of the set's matrix: the
subset's own batching would pad its records differently, which changes h_i by float rounding only (the attention
masks the padding and the rotary positions are relative).

Where the model computes anything else after its layers (another module with weights, or a parameter-free
transform such as Gemma's logit soft-capping), the check in :func:`head_suffix` finds the logits differ and the
engine keeps the generic cache (the hidden states through every layer, the model's own suffix).
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator, Mapping, Sequence

import torch
from torch import nn
from torch.func import functional_call

from paczero.models import LabelRowsHead
from paczero.staged import Batch, StagedModel

_CHECK_RTOL = 1e-4


@contextmanager
def one_thread() -> Iterator[None]:
    """Run the enclosed torch operations on one thread: an evaluation of the head set is a few operations on an
    (n, H) matrix, microseconds each, which several threads only slow down (on a busy machine, by waiting for each
    other at every operation: measured 0.1 s per step instead of a few milliseconds), and whose rounding then no
    longer depends on the number of cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@dataclass
class HeadSuffix:
    """What follows the last decoder layer, reduced to the label words: the final norm and the C head rows.

    ``norm_params`` maps the norm's own parameter names to their indices among the trainable tensors (those that
    are trainable); ``rows_index`` is the trainable index of the head rows (``None``: the frozen head's rows).
    """

    norm: nn.Module
    norm_params: dict[str, int]
    rows_index: int | None
    rows: torch.Tensor
    bias: torch.Tensor | None

    def logits(self, hidden: torch.Tensor, values: Mapping[int, torch.Tensor]) -> torch.Tensor:
        """(n, C) label-word logits of final hidden states ``hidden`` (n, H) at the trainable tensors ``values``
        (by trainable index; a tensor not in ``values`` is the stored one)."""
        substitutes = {name: values[i] for name, i in self.norm_params.items() if i in values}
        normed = functional_call(self.norm, substitutes, args=(hidden,)) if substitutes else self.norm(hidden)
        rows = values.get(self.rows_index, self.rows) if self.rows_index is not None else self.rows
        return nn.functional.linear(normed, rows, self.bias)


@torch.no_grad()
def head_suffix(staged: StagedModel, trainable: Sequence[tuple[str, nn.Parameter]], candidates: Sequence[int],
                probe: Batch) -> HeadSuffix | None:
    """The suffix reduced to the label words ``candidates``, or ``None`` where the model's suffix is not a norm then
    the head (checked on the recorded call ``probe``: the reduced logits must equal the model's at the candidates,
    less the log-softmax normaliser, to ``1e-4`` relative)."""
    hidden, kwargs = staged.prefix(probe, {})
    for layer in range(staged.n_layers):
        hidden = staged.layer(layer, hidden, kwargs[layer], {})
    modules, logits = staged.modules_after_layers(probe, hidden)
    head = staged.model.get_output_embeddings()
    if len(modules) != 2 or modules[1] is not head:
        return None
    norm = modules[0]
    index = {id(p): i for i, (_, p) in enumerate(trainable)}
    ids = torch.tensor(list(candidates), device=head.weight.device)
    rows_index = index.get(id(head.rows)) if isinstance(head, LabelRowsHead) else None
    rows = head.rows if isinstance(head, LabelRowsHead) else head.weight[ids]
    bias = None if head.bias is None else head.bias[ids]
    suffix = HeadSuffix(norm=norm, norm_params={n: index[id(p)] for n, p in norm.named_parameters() if id(p) in index},
                        rows_index=rows_index, rows=rows, bias=bias)
    full = torch.log_softmax(logits[:, -1, :].float(), dim=-1)[:, ids]
    reduced = torch.log_softmax(suffix.logits(hidden[:, -1, :], {}).float(), dim=-1)
    full = full - torch.logsumexp(full, dim=-1, keepdim=True)
    return suffix if torch.allclose(reduced, full, rtol=_CHECK_RTOL, atol=_CHECK_RTOL) else None
