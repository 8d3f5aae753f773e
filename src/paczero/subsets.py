"""Candidate subsets (public) and their per-subset signs (paczero-notes §3.1, §3.6).

Each of the N pool records joins exactly M/2 of the M candidate subsets, chosen uniformly, so the
marginal prior of membership in the secret subset is exactly 1/2. The matrix is drawn from the
public seed and saved with the run: the adversary is assumed to know it.
"""

from __future__ import annotations

import numpy as np

from paczero.errors import PaczeroError
from paczero.rng import public_generator


def membership_matrix(*, n: int, m: int, seed: int) -> np.ndarray:
    """Boolean (n, m) matrix A with exactly m/2 ones per row, uniformly placed; A[i, j] = record i ∈ S_j."""
    if m < 2 or m % 2:
        raise PaczeroError(f"privacy.n_subsets={m} is invalid; expected an even number >= 2")
    if n < 1:
        raise PaczeroError(f"the pool is empty (n={n}); expected at least one record")
    rng = public_generator(seed, "membership")
    chosen = np.argsort(rng.random((n, m)), axis=1, kind="stable")[:, : m // 2]
    a = np.zeros((n, m), dtype=bool)
    np.put_along_axis(a, chosen, True, axis=1)
    return a


def subset_means(membership: np.ndarray, estimates: np.ndarray) -> np.ndarray:
    """ḡ_m = Σ_i A_im g_i / max(1, Σ_i A_im): plain mean over members; an empty subset gives 0."""
    counts = membership.sum(axis=0)
    return (membership.T.astype(np.float64) @ np.asarray(estimates, dtype=np.float64)) / np.maximum(counts, 1)


def subset_signs(means: np.ndarray) -> np.ndarray:
    """s_m = +1 if ḡ_m ≥ 0 else −1 (ties, hence empty subsets, map to +1), as int8."""
    return np.where(np.asarray(means) >= 0, 1, -1).astype(np.int8)


def format_signs(signs: np.ndarray) -> str:
    """The M subset signs as a string of ``+``/``-`` (the ledger's ``signs`` field)."""
    return "".join("+" if s > 0 else "-" for s in np.asarray(signs))


def parse_signs(text: str) -> np.ndarray:
    """Inverse of :func:`format_signs` (int8 ±1)."""
    if set(text) - {"+", "-"}:
        raise ValueError(f"not a sign string: {text!r}")
    return np.array([1 if c == "+" else -1 for c in text], dtype=np.int8)


def clip_estimates(estimates: np.ndarray, clip: float) -> tuple[np.ndarray, int]:
    """Clip to [−clip, clip]; non-finite estimates become 0 (they then carry no information).

    Returns the clipped float64 array and the number of non-finite entries replaced.
    """
    g = np.asarray(estimates, dtype=np.float64)
    bad = ~np.isfinite(g)
    return np.clip(np.where(bad, 0.0, g), -clip, clip), int(bad.sum())
