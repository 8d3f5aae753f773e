"""The first-order, non-private reference: autograd and Adam over the trainable set, from the cached features.

``privacy.mechanism: firstorder``. **No privacy**: every step's gradient is computed from every pool record, with no
noise, and nothing bounds what the weights reveal about them; its statement is "no privacy guarantee" (family
``none``). It is the ceiling the private runs are measured against: the same records, split, trainable set
(``model.tuning`` / ``model.trainable``), learning-rate schedule, evaluation cadence and dev-selected checkpoint.

Per step t (full batch)::

    L(θ) = (1/N) Σ_i loss_i(θ),    θ ← θ − η_t λ θ (tensors other than biases and norms),    θ ← Adam(θ, ∇L, η_t)

with the per-record losses from :meth:`paczero.zo.ZOEngine.differentiable_losses` — from each record's cached final
hidden state for the head set, from the cached bottom for a set in the top layers — so only what lies above the lowest
trainable tensor runs, with autograd. Nothing is released per step, so a first-order run has no transcript; its
optimiser state (computed on the pool) is private and saved with each checkpoint for resuming bit for bit.

A private first-order method on the same path (DP-SGD) needs per-record gradients: ``differentiable_losses`` is a
per-record loss over cached features, so ``torch.func.vmap`` of ``torch.func.grad`` over it (or micro-batches of one
record), then clipping and noise before :meth:`FirstOrder.apply`, fit here unchanged.
"""

from __future__ import annotations

import base64
from typing import Any, Sequence

import torch
from safetensors.torch import load as load_tensors, save as save_tensors

from paczero.zo import decays

ADAM_BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8


class FirstOrder:
    """Adam over the trainable tensors, its state, and one step from a batch's per-record losses."""

    spent = 0.0
    """Mutual information charged (none: nothing is released; the trainer's diagnostics read it)."""

    def __init__(self, trainable: Sequence[tuple[str, torch.nn.Parameter]]):
        self.trainable = list(trainable)
        self.optimizer = torch.optim.Adam([p for _, p in self.trainable], lr=0.0, betas=ADAM_BETAS, eps=ADAM_EPS,
                                          foreach=False)

    def step(self, losses: torch.Tensor, *, lr: float, weight_decay: float = 0.0) -> None:
        """One update from the per-record ``losses`` (differentiable): the gradient of their mean, then :meth:`apply`."""
        self.optimizer.zero_grad(set_to_none=True)
        losses.mean().backward()
        self.apply(lr=lr, weight_decay=weight_decay)

    def apply(self, *, lr: float, weight_decay: float = 0.0) -> None:
        """Decoupled decay θ ← (1 − η λ)θ on tensors other than biases and norms, then Adam's step on the ``.grad``s."""
        with torch.no_grad():
            for name, p in self.trainable:
                if weight_decay and decays(name):
                    p.mul_(1.0 - lr * weight_decay)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)

    def state_dict(self) -> dict[str, Any]:
        """Adam's state (private: computed on the pool), JSON-ready: its tensors as base64 safetensors bytes."""
        state = self.optimizer.state_dict()["state"]
        tensors = {f"{i}.{k}": v.detach().cpu().contiguous() for i, s in state.items() for k, v in s.items()}
        return {"adam": base64.b64encode(save_tensors(tensors)).decode("ascii") if tensors else ""}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` (an empty state: before the first step)."""
        if not state.get("adam"):
            return
        tensors = load_tensors(base64.b64decode(state["adam"]))
        full = self.optimizer.state_dict()
        per: dict[int, dict[str, torch.Tensor]] = {}
        for key, value in tensors.items():
            i, name = key.split(".", 1)
            per.setdefault(int(i), {})[name] = value
        full["state"] = per
        self.optimizer.load_state_dict(full)
