"""DP-SGD's noisy gradient (Abadi et al., CCS 2016) with the DP baselines' exact discrete noise.

Per step t: the pool is Poisson-sampled (record i joins with probability q, decided by a word of the secret-keyed
stream: :func:`~paczero.mechanisms.dp.poisson_sample`); each sampled record's gradient over the trainable set is
clipped in L2 to ‖v_i‖ ≤ C (``privacy.grad_clip``) and rounded per coordinate onto the grid of 2⁻⁴⁰·C, so
‖k_i‖ ≤ 2⁴⁰ + √d/2 ≤ Δ = 2⁴⁰ + ⌈√d⌉ in grid units; the integer sums get one discrete Gaussian draw
N_Z(0, σ²Δ²) per coordinate from the keyed stream ``("dp-noise", t)``, and the noisy mean is

    ĝ = C·2⁻⁴⁰·(Σ_i k_i + noise)/(qN)

(:func:`~paczero.mechanisms.dp.grid_value`, normalised by the public qN). This is DP-AggZO's step with the d
coordinates of the gradient in place of its K directions, so it is accounted the same way: T compositions of a
Poisson-subsampled Gaussian of multiplier σ, replace-one (:mod:`paczero.privacy.accounting`).

Nothing of a step is published — not ĝ, not the batch, not a norm: the optimiser (SGD) turns ĝ into the next
weights, and only the dev-selected and last weights and the public evaluations are released. The weights are a
deterministic function of the base model and the integers Σ_i k_i + noise, each with exactly the discrete Gaussian
mechanism's distribution, so their floating-point bits say nothing beyond them (the attack of Mironov 2012 on
floating-point noise finds no purchase), and every released value is post-processing of the accounted steps.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

from paczero.mechanisms.dp import clip_rows, grid_value, to_grid
from paczero.privacy.discrete_gaussian import discrete_gaussian
from paczero.secret import SecretState


def sensitivity(dim: int) -> int:
    """Δ: the largest L2 norm of a clipped, rounded per-record gradient of ``dim`` coordinates, in grid units."""
    return 2**40 + math.isqrt(dim - 1) + 1 if dim > 1 else 2**40


def grid_sum(grads: np.ndarray, *, clip: float) -> list[int]:
    """Σ_i round(2⁴⁰·clip_C(g_i)/C) per coordinate, exact Python integers (``grads``: (n, d) per-record gradients).

    A record whose gradient has a non-finite coordinate contributes 0 (as a DP baseline's non-finite estimate does):
    clipping cannot bound NaN, and 0 depends on that record alone."""
    if not len(grads):
        return [0] * grads.shape[1]
    grads = np.where(np.isfinite(grads).all(axis=1, keepdims=True), grads, 0.0)
    k = to_grid(clip_rows(grads, clip), clip).astype(np.int64)  # |k| ≤ 2⁴⁰ per record: the sum fits int64 to n < 2²³
    return [int(x) for x in k.sum(axis=0)]


def noisy_gradient(grads: np.ndarray, *, secret: SecretState, step: int, clip: float, noise_multiplier: float,
                   sample_rate: float, n: int) -> np.ndarray:
    """ĝ of step ``step`` from the sampled records' gradients ``grads`` ((n_batch, d), float64): clip, round, sum,
    add N_Z(0, (σΔ)²) per coordinate from the keyed stream, divide by qN. Float64, one value per coordinate."""
    dim = grads.shape[1]
    variance = Fraction(noise_multiplier) ** 2 * sensitivity(dim) ** 2
    stream = secret.stream("dp-noise", step)
    totals = grid_sum(grads, clip=clip)
    return np.array([grid_value(total + discrete_gaussian(variance, stream), clip=clip, scale=1.0,
                                sample_rate=sample_rate, n=n) for total in totals])
