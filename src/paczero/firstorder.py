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

:class:`DPSGD` (``privacy.mechanism: dpsgd``) is the private first-order method on the same path: per step a secret
Poisson batch, each record's gradient (:meth:`paczero.zo.ZOEngine.per_record_gradients`), clipped, rounded and
noised with discrete Gaussian noise (:mod:`paczero.mechanisms.dpsgd`), then :meth:`FirstOrder.apply` with SGD.
"""

from __future__ import annotations

import base64
from typing import Any, Sequence

import numpy as np
import torch
from safetensors.torch import load as load_tensors, save as save_tensors

from paczero.mechanisms.dp import poisson_sample
from paczero.mechanisms.dpsgd import noisy_gradient
from paczero.secret import SecretState
from paczero.zo import ZOEngine, decays

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

    def train_step(self, engine: ZOEngine, objective: Any, pool: Any, *, step: int, lr: float,
                   weight_decay: float = 0.0) -> np.ndarray:
        """One step on the encoded ``pool``; returns the per-record losses it computed (private), float64."""
        losses = engine.differentiable_losses(objective, pool)
        self.step(losses, lr=lr, weight_decay=weight_decay)
        return losses.detach().double().numpy()

    def step(self, losses: torch.Tensor, *, lr: float, weight_decay: float = 0.0) -> None:
        """One update from the per-record ``losses`` (differentiable): the gradient of their mean, then :meth:`apply`."""
        self.optimizer.zero_grad(set_to_none=True)
        losses.mean().backward()
        self.apply(lr=lr, weight_decay=weight_decay)

    def apply(self, *, lr: float, weight_decay: float = 0.0) -> None:
        """Decoupled decay θ ← (1 − η λ)θ on tensors other than biases and norms, then the optimiser's step on the
        ``.grad``s."""
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


class DPSGD(FirstOrder):
    """DP-SGD: plain SGD, θ ← θ − η_t ĝ, on the noisy mean ĝ of the clipped per-record gradients of a secret Poisson
    batch (:mod:`paczero.mechanisms.dpsgd`), never published. SGD and not Adam: Adam divides each coordinate by its
    own running scale, so where the noise dominates a coordinate (σC/(qN) per coordinate against a clipped mean of
    norm at most C over d of them) every step moves it by about η whatever the signal — the first sweep on the head
    set with Adam lost accuracy at every rate; SGD keeps the noise a random walk of size η·σC/(qN) per step, which
    the signal, summed over steps, outgrows. It has no state between steps."""

    def __init__(self, trainable: Sequence[tuple[str, torch.nn.Parameter]], *, secret: SecretState, n: int,
                 sample_rate: float, noise_multiplier: float, clip: float):
        super().__init__(trainable)
        self.optimizer = torch.optim.SGD([p for _, p in self.trainable], lr=0.0, foreach=False)
        self._secret = secret
        self.n, self.sample_rate, self.noise_multiplier, self.clip = n, sample_rate, noise_multiplier, clip

    def train_step(self, engine: ZOEngine, objective: Any, pool: Any, *, step: int, lr: float,
                   weight_decay: float = 0.0) -> np.ndarray:
        batch = poisson_sample(self._secret, step=step, n=len(pool), rate=self.sample_rate)
        grads, losses = engine.per_record_gradients(objective, pool.subset(batch))
        noisy = noisy_gradient(grads.numpy(), secret=self._secret, step=step, clip=self.clip,
                               noise_multiplier=self.noise_multiplier, sample_rate=self.sample_rate, n=self.n)
        offset = 0
        for _, p in self.trainable:
            p.grad = torch.from_numpy(noisy[offset:offset + p.numel()]).reshape(p.shape).to(p.dtype)
            offset += p.numel()
        self.apply(lr=lr, weight_decay=weight_decay)
        return losses.numpy()
