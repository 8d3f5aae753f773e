"""The (ε, δ)-DP baselines: DPZero and DP-AggZO (paczero-notes §9.2, §9.4), with exact discrete noise.

Both sample the pool by **Poisson sampling** (each record joins step t's batch independently with probability
q, decided by a 64-bit word of the secret-keyed stream, so the batch is unpredictable and never published),
clip each sampled record's contribution, round it onto a grid of 2⁻⁴⁰·C, sum the integers, add discrete
Gaussian noise of standard deviation σ·Δ (Δ: a record's largest contribution in grid units) and divide by the
public normaliser qN:

* **DPZero** (K = 1): d_i = (ℓ_i(θ+εz) − ℓ_i(θ−εz))/(2ε) clipped to [−C, C], so Δ = 2⁴⁰;
  value = C·2⁻⁴⁰·(Σ_i k_i + noise)/(qN) with k_i = round(2⁴⁰·d_i/C).
* **DP-AggZO** (K directions): v_i = (d_i1, …, d_iK)/K clipped in L2 to ‖v_i‖ ≤ C, rounded per coordinate, so
  ‖k_i‖ ≤ 2⁴⁰ + √K/2 ≤ Δ = 2⁴⁰ + ⌈√K⌉ (Δ = 2⁴⁰ for K = 1); one independent noise draw per coordinate. The value released for
  direction k is K·ḡ_k, so the common update (1/K) Σ_k value_k z_k equals the original Σ_k ḡ_k z_k.

Everything secret is integer arithmetic on the keyed stream: the released value is a deterministic function of
an integer that has exactly the discrete Gaussian mechanism's distribution, so its floating-point bits tell
nothing more (the attack of Mironov 2012 finds no purchase). The neighbouring relation is replace-one (N is
public): the accounting, and why the DP-AggZO original's Laplace-noised pool size buys nothing here, is in
:mod:`paczero.privacy.accounting`. With K = 1 the two mechanisms coincide.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

from paczero.mechanisms.base import Mechanism
from paczero.privacy.discrete_gaussian import discrete_gaussian
from paczero.releases import DPNoisy, Release
from paczero.secret import SecretState

GRID_BITS = 40
"""Contributions are rounded to multiples of 2⁻⁴⁰·C before they are summed."""
_SCALE = 2**GRID_BITS


def clip_scalar(d: np.ndarray, clip: float) -> np.ndarray:
    """d · min(1, C/|d|), i.e. d clipped to [−C, C] (DPZero's ``dpzero_clip``)."""
    return np.clip(np.asarray(d, dtype=np.float64), -clip, clip)


def clip_rows(v: np.ndarray, clip: float) -> np.ndarray:
    """Each row v_i scaled by min(1, C/‖v_i‖₂) (DP-AggZO's per-example K-vector clipping)."""
    v = np.asarray(v, dtype=np.float64)
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    over = norms > clip
    return np.where(over, v * (clip / np.where(over, norms, 1.0)), v)


def to_grid(x: np.ndarray, clip: float) -> np.ndarray:
    """round(2⁴⁰·x/C) as exact Python integers (x already clipped, so |result| ≤ 2⁴⁰ per coordinate)."""
    return np.rint(np.asarray(x, dtype=np.float64) / clip * _SCALE).astype(np.int64).astype(object)


def grid_value(noisy: int, *, clip: float, scale: float, sample_rate: float, n: int) -> float:
    """The value released for the noisy grid total ``noisy``: ``scale``·C·2⁻⁴⁰·noisy/(qN) (the DP baselines' rule)."""
    return scale * clip * (noisy / _SCALE) / (sample_rate * n)


def grid_integer(value: float, *, clip: float, scale: float, sample_rate: float, n: int) -> int | None:
    """The integer whose :func:`grid_value` is exactly ``value``, or None when ``value`` is not on the grid.

    Everything a DP baseline publishes is the image of an integer under :func:`grid_value`; a value that is not
    (real-valued noise, an edited transcript) is refused by ``paczero verify``.
    """
    if not math.isfinite(value):
        return None
    guess = round(value * sample_rate * n / (scale * clip) * _SCALE)
    for k in sorted(range(guess - 2, guess + 3), key=lambda k: abs(k - guess)):
        if grid_value(k, clip=clip, scale=scale, sample_rate=sample_rate, n=n) == value:
            return k
    return None


def poisson_sample(secret: SecretState, *, step: int, n: int, rate: float) -> np.ndarray:
    """Indices of step ``step``'s Poisson batch: record i is in iff its 64-bit word is below ⌊q·2⁶⁴⌋.

    Each record is kept with probability ⌊q·2⁶⁴⌋/2⁶⁴ ≤ q (the accounting's q; privacy only improves below it).
    """
    stream = secret.stream("poisson", step)
    threshold = math.floor(rate * 2.0**64)
    return np.array([i for i in range(n) if stream.word64() < threshold], dtype=np.int64)


class _PoissonDiscreteGaussian(Mechanism):
    def __init__(self, secret: SecretState, *, n: int, sample_rate: float, noise_multiplier: float, clip: float):
        if not math.isfinite(clip) or clip <= 0:
            raise ValueError(f"clip={clip!r} is invalid; a DP mechanism needs a finite clip > 0")
        self._secret = secret
        self.n = n
        self.sample_rate = sample_rate
        self.noise_multiplier = noise_multiplier
        self.clip = clip

    def sample(self, *, step: int, n: int) -> np.ndarray:
        return poisson_sample(self._secret, step=step, n=n, rate=self.sample_rate)

    def _release(self, total: int, *, step: int, k: int, sensitivity: int, scale: float) -> float:
        """``scale``·C·2⁻⁴⁰·(total + noise)/(qN), noise ~ N_Z(0, (σ·sensitivity)²) from the keyed stream."""
        variance = Fraction(self.noise_multiplier) ** 2 * sensitivity**2
        noisy = total + discrete_gaussian(variance, self._secret.stream("dp-noise", step, k))
        return grid_value(noisy, clip=self.clip, scale=scale, sample_rate=self.sample_rate, n=self.n)


class DPZero(_PoissonDiscreteGaussian):
    """DPZero with Poisson sampling: one scalar per step, clipped per record, noised, normalised by qN."""

    name = "dpzero"

    def release_step(self, estimates: np.ndarray, *, step: int) -> list[Release]:
        if estimates.shape[1] != 1:
            raise ValueError(f"dpzero releases one direction per step, got {estimates.shape[1]}")
        total = int(to_grid(clip_scalar(estimates[:, 0], self.clip), self.clip).sum())
        value = self._release(total, step=step, k=0, sensitivity=_SCALE, scale=1.0)
        return [DPNoisy(value=value, batch=int(estimates.shape[0]))]


class DPAggZO(_PoissonDiscreteGaussian):
    """DP-AggZO: the K directions' estimates clipped jointly in L2 per record, one discrete Gaussian per coordinate."""

    name = "dpaggzo"

    def release_step(self, estimates: np.ndarray, *, step: int) -> list[Release]:
        K = estimates.shape[1]
        totals = to_grid(clip_rows(estimates / K, self.clip), self.clip).sum(axis=0) if len(estimates) else [0] * K
        # The norm of a rounded clipped row: ≤ 2⁴⁰ + √K/2 ≤ 2⁴⁰ + ⌈√K⌉ (exactly ≤ 2⁴⁰ for K = 1, a grid point).
        sensitivity = _SCALE if K == 1 else _SCALE + math.isqrt(K - 1) + 1
        return [DPNoisy(value=self._release(int(totals[k]), step=step, k=k, sensitivity=sensitivity, scale=K),
                        batch=int(estimates.shape[0])) for k in range(K)]
