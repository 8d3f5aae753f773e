"""The transcript attack: the Bayes-optimal membership adversary of the PAC game (paczero-notes §2).

The adversary knows the pool, the membership matrix A (A_ij = 1 iff record i ∈ S_j), the public seed and the
ledger. Every release of step t is a function of public state and of the secret only through the sign s_{t,J}
of the secret subset's mean, and the ledger records all M signs, so by Bayes' rule

    P(J = j | Y_1:T) ∝ Π_t P(Y_t | s_{t,j}, public state),

and the membership posterior of record i is P(i ∈ S* | Y_1:T) = Σ_j P(J = j | Y_1:T)·A_ij.

Per release kind, P(Y_t | s) for s = ±1 is:

* ``noisy`` (PACZero-MI): ỹ = s_J + σξ, so N(ỹ; s, σ²) — the only kind whose likelihood depends on s;
* ``unanimous`` (ZPL), ``free`` (MI): the common sign of all subsets (of the posterior's support), a function
  of public information, with the same likelihood under every j;
* ``coin``: a fair coin from the public seed, the same under every j.

The ledger is checked against these rules where that is cheap (a unanimous release equal to every subset's
sign, a free release equal to the sign of the most probable subset, a noisy release equal to sign(ỹ)); an
inconsistent ledger is an error, a release kind without a likelihood model makes the attack not applicable.
Pure functions of the ledger records and the membership matrix: nothing here reads the secret.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.special import logsumexp

from paczero.privacy.posterior import uniform_log_posterior
from paczero.subsets import parse_signs

TIE_TOLERANCE = 1e-9
"""Membership posteriors within this of 1/2 are ties (uniform posteriors sum to 1/2 only up to rounding)."""


class NotApplicable(ValueError):
    """The ledger lacks what the transcript attack needs (subset signs, a known release kind)."""


def release_log_likelihood(direction: dict[str, Any], *, most_probable_sign: int) -> tuple[float, float]:
    """(ln P(release | s_J = +1), ln P(release | s_J = −1)) of one ledger direction, up to a common constant.

    ``most_probable_sign`` is the sign of the subset with the largest posterior before this release (a free
    release must equal it, since that subset always carries more than the free threshold).
    """
    kind, value = direction["kind"], direction["value"]
    signs = parse_signs(direction["signs"])
    if kind == "noisy":
        y, sigma = float(direction["y"]), float(direction["sigma"])
        if value != (1.0 if y >= 0 else -1.0) or not sigma > 0:
            raise ValueError(f"noisy release with value {value}, y={y}, sigma={sigma} is inconsistent")
        return -((y - 1.0) ** 2) / (2 * sigma**2), -((y + 1.0) ** 2) / (2 * sigma**2)
    if kind == "unanimous":
        if not np.all(signs == value):
            raise ValueError(f"unanimous release {value} while the subset signs are {direction['signs']}")
        return 0.0, 0.0
    if kind == "free":
        if value != most_probable_sign:
            raise ValueError(f"free release {value} differs from the sign of the most probable subset")
        return 0.0, 0.0
    if kind == "coin":
        if value not in (1.0, -1.0):
            raise ValueError(f"coin release {value} is not a sign")
        return 0.0, 0.0
    raise NotApplicable(f"release kind {kind!r} has no likelihood model in the transcript attack")


def subset_log_posterior(records: Iterable[dict[str, Any]], *, n_subsets: int) -> np.ndarray:
    """ln P(J = j | ledger) for j = 0..M−1, from the uniform prior (float64, normalised)."""
    log_post = uniform_log_posterior(n_subsets)
    for record in records:
        for direction in record["directions"]:
            if "signs" not in direction:
                raise NotApplicable(f"ledger step {record['step']} records no subset signs")
            signs = parse_signs(direction["signs"])
            if signs.size != n_subsets:
                raise ValueError(f"ledger step {record['step']} holds {signs.size} subset signs; expected {n_subsets}")
            try:
                l_plus, l_minus = release_log_likelihood(direction,
                                                         most_probable_sign=int(signs[np.argmax(log_post)]))
            except NotApplicable:
                raise
            except (ValueError, KeyError) as exc:
                raise ValueError(f"ledger step {record['step']}: {exc}") from None
            if l_plus != l_minus:
                log_post = log_post + np.where(signs > 0, l_plus, l_minus)
                log_post -= logsumexp(log_post)
    return log_post


def membership_posterior(log_posterior: np.ndarray, membership: np.ndarray) -> np.ndarray:
    """P(i ∈ S* | ledger) = Σ_j p_j·A_ij for every record i (clipped to [0, 1] against rounding)."""
    return np.clip(np.asarray(membership, dtype=np.float64) @ np.exp(log_posterior), 0.0, 1.0)


@dataclass(frozen=True)
class BayesSuccess:
    """Success rate of the transcript attacker's decision, with its interval."""
    success: float
    """Fraction of records whose membership the Bayes decision (posterior > 1/2) gets right; ties count ½."""
    successes: float
    expected: float
    """The adversary's own expected success, mean_i max(p_i, 1 − p_i): needs no secret."""
    mean_posterior_on_truth: float
    """mean_i P(b_i = truth_i | ledger)."""


def bayes_decision(posterior: np.ndarray) -> np.ndarray:
    """The Bayes decision at prior 1/2: member iff P(i ∈ S* | ledger) > 1/2 (ties decide non-member)."""
    return np.asarray(posterior, dtype=np.float64) > 0.5 + TIE_TOLERANCE


def bayes_success(posterior: np.ndarray, truth: np.ndarray) -> BayesSuccess:
    """Score :func:`bayes_decision` against the true membership bits; a tie is a fair guess, worth ½."""
    p = np.asarray(posterior, dtype=np.float64)
    truth = np.asarray(truth, dtype=bool)
    tie = np.abs(p - 0.5) <= TIE_TOLERANCE
    correct = (bayes_decision(p) == truth) & ~tie
    successes = float(correct.sum() + 0.5 * tie.sum())
    return BayesSuccess(success=successes / p.size, successes=successes,
                        expected=float(np.maximum(p, 1 - p).mean()),
                        mean_posterior_on_truth=float(np.where(truth, p, 1 - p).mean()))
