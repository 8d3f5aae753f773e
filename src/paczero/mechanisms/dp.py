"""The (ε, δ)-DP baselines: DPZero and DP-AggZO (paczero-notes §9.2, §9.4).

Both sample the pool by **Poisson sampling** (each record joins step t's batch independently with
probability q, from the secret-keyed stream, so the batch is unpredictable and never published),
clip each sampled record's contribution, sum, add Gaussian noise of standard deviation σ·C per
released coordinate, and divide by a normaliser that does not depend on the realised batch:

* **DPZero** (K = 1): d_i = (ℓ_i(θ+εz) − ℓ_i(θ−εz))/(2ε) clipped to [−C, C];
  value = (Σ_i clip(d_i) + σC·ξ)/(qN).
* **DP-AggZO** (K directions): v_i = (d_i1, …, d_iK)/K clipped in L2 to ‖v_i‖ ≤ C;
  ḡ = (Σ_i v_i + σC·ξ)/B̃ with ξ ~ N(0, I_K), and B̃ = q·(N + Lap(1/ε_N)), a Laplace-noised pool size drawn
  once, which spends ε_N = ``pool_size_fraction``·ε (5 % as in the original); fraction 0 uses B̃ = qN.
  The value released for direction k is K·ḡ_k, so the common update (1/K) Σ_k value_k z_k equals the
  original Σ_k ḡ_k z_k.

With K = 1 and the Laplace step off the two coincide. The accounting (add/remove neighbours, Poisson
subsampled Gaussian, Opacus RDP/PRV) is in :mod:`paczero.privacy.accounting`; σ is found there for
the target ε (less the Laplace share). Nothing computed on the pool is logged by these runs.
"""

from __future__ import annotations

import numpy as np

from paczero.mechanisms.base import Mechanism, Release
from paczero.secret import SecretState


def clip_scalar(d: np.ndarray, clip: float) -> np.ndarray:
    """d · min(1, C/|d|), i.e. d clipped to [−C, C] (DPZero's ``dpzero_clip``)."""
    return np.clip(np.asarray(d, dtype=np.float64), -clip, clip)


def clip_rows(v: np.ndarray, clip: float) -> np.ndarray:
    """Each row v_i scaled by min(1, C/‖v_i‖₂) (DP-AggZO's per-example K-vector clipping)."""
    v = np.asarray(v, dtype=np.float64)
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    over = norms > clip
    return np.where(over, v * (clip / np.where(over, norms, 1.0)), v)


def poisson_sample(secret: SecretState, *, step: int, n: int, rate: float) -> np.ndarray:
    """Indices of the records in step ``step``'s Poisson batch: each kept independently with probability q."""
    return np.flatnonzero(secret.generator("poisson", step).random(n) < rate)


class _PoissonGaussian(Mechanism):
    pool_is_public = False

    def __init__(self, secret: SecretState, *, n: int, sample_rate: float, noise_multiplier: float, clip: float):
        self._secret = secret
        self.n = n
        self.sample_rate = sample_rate
        self.noise_multiplier = noise_multiplier
        self.clip = clip

    def sample(self, *, step: int, n: int) -> np.ndarray:
        return poisson_sample(self._secret, step=step, n=n, rate=self.sample_rate)

    def _noise(self, *, step: int, k: int) -> float:
        return self.noise_multiplier * self.clip * self._secret.gaussian(step=step, k=k)


class DPZero(_PoissonGaussian):
    """DPZero with Poisson sampling: one scalar per step, clipped per record, noised, normalised by qN."""

    name = "dpzero"

    def release_step(self, estimates: np.ndarray, *, step: int) -> list[Release]:
        if estimates.shape[1] != 1:
            raise ValueError(f"dpzero releases one direction per step, got {estimates.shape[1]}")
        total = clip_scalar(estimates[:, 0], self.clip).sum()
        return [Release(value=float((total + self._noise(step=step, k=0)) / (self.sample_rate * self.n)),
                        kind="dp")]


class DPAggZO(_PoissonGaussian):
    """DP-AggZO: the K directions' estimates clipped jointly in L2 per record, one Gaussian vector per step."""

    name = "dpaggzo"

    def __init__(self, secret: SecretState, *, n: int, sample_rate: float, noise_multiplier: float, clip: float,
                 pool_size_epsilon: float = 0.0):
        super().__init__(secret, n=n, sample_rate=sample_rate, noise_multiplier=noise_multiplier, clip=clip)
        noisy_n = float(n)
        if pool_size_epsilon > 0:
            noisy_n += secret.generator("pool-size").laplace(scale=1.0 / pool_size_epsilon)
        # At least one record's worth: a non-positive normaliser would flip or blow up every update.
        self._normaliser = sample_rate * max(noisy_n, 1.0)

    def release_step(self, estimates: np.ndarray, *, step: int) -> list[Release]:
        K = estimates.shape[1]
        total = clip_rows(estimates / K, self.clip).sum(axis=0)
        return [Release(value=float(K * (total[k] + self._noise(step=step, k=k)) / self._normaliser), kind="dp")
                for k in range(K)]
