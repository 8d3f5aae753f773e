"""(ε, δ)-DP accounting of the DP baselines through Opacus' accountants (paczero-notes §9.2, §9.4).

A DP baseline run is T compositions of the Poisson-subsampled Gaussian mechanism: each step samples
every pool record independently with probability q, sums the clipped per-record contributions (L2
norm ≤ C) and adds N(0, σ²C²) per coordinate. The neighbouring relation is **add/remove one record**
(the relation under which Poisson subsampling amplifies privacy, and the one Opacus' RDP and PRV
accountants analyse); the sum is divided by a public normaliser, never by the realised batch size.
The official DPZero pairs fixed-size batches with this Poisson accountant; we sample as we account.

``rdp`` (Mironov 2017; Mironov, Talwar & Zhang 2019) is the default; ``prv`` (Gopi, Lee & Wutschitz
2021) is tighter and reported alongside. Both functions are pure and memoised: a calibration takes
seconds (each RDP evaluation at fractional orders costs ~0.2 s) and runs reuse it for their statement.
"""

from __future__ import annotations

import math
import warnings
from contextlib import contextmanager
from functools import lru_cache
from typing import Iterator

import numpy as np

ACCOUNTANTS = ("rdp", "prv")
RDP_ORDERS = [1 + x / 10.0 for x in range(1, 100)] + list(range(12, 64)) + [128, 256, 512, 1024]
"""Rényi orders tried by the RDP accountant: Opacus' defaults extended to 1024, since short runs at large ε
(few steps, tiny tests) have their optimum above Opacus' largest order (256)."""


def _check(*, sample_rate: float, steps: int, delta: float) -> None:
    if not 0.0 < sample_rate <= 1.0:
        raise ValueError(f"sample_rate={sample_rate!r} is invalid; expected 0 < q <= 1")
    if not steps >= 1:
        raise ValueError(f"steps={steps!r} is invalid; expected >= 1")
    if not 0.0 < delta < 1.0:
        raise ValueError(f"delta={delta!r} is invalid; expected 0 < delta < 1")


def _accountant(name: str):
    if name not in ACCOUNTANTS:
        raise ValueError(f"accountant={name!r} is unknown; expected one of {', '.join(ACCOUNTANTS)}")
    from opacus.accountants import PRVAccountant, RDPAccountant

    return RDPAccountant() if name == "rdp" else PRVAccountant()


@lru_cache(maxsize=256)
def dp_epsilon(*, noise_multiplier: float, sample_rate: float, steps: int, delta: float,
               accountant: str = "rdp") -> float:
    """ε after ``steps`` Poisson-subsampled Gaussian releases with noise multiplier σ (noise std σ·C)."""
    _check(sample_rate=sample_rate, steps=steps, delta=delta)
    if not noise_multiplier > 0.0:
        raise ValueError(f"noise_multiplier={noise_multiplier!r} is invalid; expected > 0")
    acc = _accountant(accountant)
    acc.history = [(float(noise_multiplier), float(sample_rate), int(steps))]
    with _quiet():
        return float(acc.get_epsilon(delta=delta, **_orders(accountant)))


def _orders(accountant: str) -> dict:
    return {"alphas": RDP_ORDERS} if accountant == "rdp" else {}


@contextmanager
def _quiet() -> Iterator[None]:
    """Silence Opacus' "optimal order is the largest alpha" notice: the ε it comes with is still a valid
    upper bound, only a looser one (and the PRV accountant triggers it internally when sizing its domain)."""
    with warnings.catch_warnings(), np.errstate(divide="ignore"):  # PRV takes log(0) harmlessly when q = 1
        warnings.filterwarnings("ignore", message="Optimal order is the largest alpha")
        yield


@lru_cache(maxsize=256)
def noise_multiplier(*, epsilon: float, delta: float, sample_rate: float, steps: int,
                     accountant: str = "rdp", tolerance: float = 0.01) -> float:
    """The σ for which ``steps`` releases cost at most ``epsilon`` (and at least ``epsilon − tolerance``).

    Opacus' ``get_noise_multiplier`` (a bisection on σ that keeps the side with ε ≤ target).
    """
    _check(sample_rate=sample_rate, steps=steps, delta=delta)
    if not (epsilon > 0.0 and math.isfinite(epsilon)):
        raise ValueError(f"epsilon={epsilon!r} is invalid; expected a finite DP epsilon > 0")
    _accountant(accountant)
    from opacus.accountants.utils import get_noise_multiplier

    with _quiet():
        return float(get_noise_multiplier(target_epsilon=epsilon, target_delta=delta, sample_rate=sample_rate,
                                          steps=steps, accountant=accountant, epsilon_tolerance=tolerance,
                                          **_orders(accountant)))
