"""The transcript attack: the Bayes-optimal membership adversary of the PAC game (paczero-notes §2).

The adversary of the game knows the pool, the membership matrix A (A_ij = 1 iff record i ∈ S_j), the public seed
and the released bits — and therefore, step by step, everything the mechanism computed from them: the M subset
signs, the posterior, q₊ and each noisy bit's flip probability. The run's private release log holds exactly those
figures, so the attack reads it rather than re-evaluating the model. Every release is a function of the game's
public state and of the secret only through the sign s_{t,J} of the secret subset, so by Bayes' rule

    P(J = j | Y_1:T) ∝ Π_t P(Y_t | s_{t,j}, public state),

and the membership posterior of record i is P(i ∈ S* | Y_1:T) = Σ_j P(J = j | Y_1:T)·A_ij.

Per release kind, P(Y_t | s) for s = ±1 is:

* ``noisy`` (PACZero-MI): the bit, flipped with probability f: 1 − f if Y = s, f otherwise — the only kind whose
  likelihood depends on s (there is no real value to exploit: none is released);
* ``unanimous`` (ZPL), ``free`` (MI): the common sign of all subsets (of the posterior's support), a function
  of the game's public information, with the same likelihood under every j;
* ``coin``: a fair coin from the public seed, the same under every j.

The log is checked against these rules where that is cheap (a unanimous release equal to every subset's sign, a
free release equal to the sign of the most probable subset, a noisy release a bit with 0 ≤ f ≤ 1/2); an
inconsistent log is an error, a release kind without a likelihood model makes the attack not applicable. Pure
functions of the release records and the membership matrix: nothing here reads the secret.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.special import logsumexp

from paczero.privacy.posterior import uniform_log_posterior
from paczero.releases import Abstain, Coin, Free, NoisyBit, Release, Unanimous
from paczero.subsets import parse_signs

TIE_TOLERANCE = 1e-9
"""Membership posteriors within this of 1/2 are ties (uniform posteriors sum to 1/2 only up to rounding)."""


class NotApplicable(ValueError):
    """The release log lacks what the transcript attack needs (subset signs, a known release kind)."""


def release_log_likelihood(release: Release, *, most_probable_sign: int) -> tuple[float, float]:
    """(ln P(release | s_J = +1), ln P(release | s_J = −1)) of one release, up to a common constant.

    ``most_probable_sign`` is the sign of the subset with the largest posterior before this release (a free
    release must equal it, since that subset always carries more than the free threshold).
    """
    value = release.value
    if isinstance(release, NoisyBit):
        if value not in (1.0, -1.0) or not 0.0 <= release.flip <= 0.5:
            raise ValueError(f"noisy release {value} with flip {release.flip} is not a calibrated bit")
        keep = math.log1p(-release.flip)
        flip = math.log(release.flip) if release.flip > 0 else -math.inf
        return (keep, flip) if value > 0 else (flip, keep)
    if isinstance(release, Unanimous):
        if not np.all(parse_signs(release.signs) == value):
            raise ValueError(f"unanimous release {value} while the subset signs are {release.signs}")
        return 0.0, 0.0
    if isinstance(release, Free):
        if value != most_probable_sign:
            raise ValueError(f"free release {value} differs from the sign of the most probable subset")
        return 0.0, 0.0
    if isinstance(release, Coin):
        if value not in (1.0, -1.0):
            raise ValueError(f"coin release {value} is not a sign")
        return 0.0, 0.0
    if isinstance(release, Abstain):
        if value != 0.0 or np.all(parse_signs(release.signs) == parse_signs(release.signs)[0]):
            raise ValueError(f"abstention {value} while the subset signs are {release.signs}")
        return 0.0, 0.0
    raise NotApplicable(f"release kind {release.kind!r} has no likelihood model in the transcript attack")


def subset_log_posterior(steps: Iterable[Sequence[Release]], *, n_subsets: int) -> np.ndarray:
    """ln P(J = j | transcript) for j = 0..M−1, from the uniform prior (float64, normalised)."""
    log_post = uniform_log_posterior(n_subsets)
    for t, releases in enumerate(steps):
        for release in releases:
            signs_text = getattr(release, "signs", None)
            if signs_text is None:
                if isinstance(release, Coin):
                    continue  # a coin released without signs (MI with its budget spent) carries nothing
                raise NotApplicable(f"step {t} records no subset signs")
            signs = parse_signs(signs_text)
            if signs.size != n_subsets:
                raise ValueError(f"step {t} holds {signs.size} subset signs; expected {n_subsets}")
            try:
                l_plus, l_minus = release_log_likelihood(release, most_probable_sign=int(signs[np.argmax(log_post)]))
            except NotApplicable:
                raise
            except ValueError as exc:
                raise ValueError(f"step {t}: {exc}") from None
            if l_plus != l_minus:
                log_post = log_post + np.where(signs > 0, l_plus, l_minus)
                log_post -= logsumexp(log_post)
    return log_post


def membership_posterior(log_posterior: np.ndarray, membership: np.ndarray) -> np.ndarray:
    """P(i ∈ S* | transcript) = Σ_j p_j·A_ij for every record i (clipped to [0, 1] against rounding)."""
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
    """mean_i P(b_i = truth_i | transcript)."""


def bayes_decision(posterior: np.ndarray) -> np.ndarray:
    """The Bayes decision at prior 1/2: member iff P(i ∈ S* | transcript) > 1/2 (ties decide non-member)."""
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
