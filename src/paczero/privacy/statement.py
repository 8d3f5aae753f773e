"""A run's privacy statement: what is guaranteed, from the settings and the public transcript alone.

Pure functions of numbers (no config, model or mechanism objects), one per family of guarantee:

* :func:`pac_statement` — PACZero-ZPL (I = 0), PACZero-MI (I ≤ B by calibration: every noisy bit is calibrated to
  at most its step budget β_t, and the budgets sum to at most B), and the public-coin control (I = 0). By the
  chain rule I(S*; transcript) ≤ Σ_t β_t, and a membership attacker at prior 1/2 succeeds with probability at
  most p*(I), ln 2 − H_b(p*) = I (paczero-notes §6.2). The achieved MI of a run (≤ B) is computed on the pool, so
  it is a private figure of the owner's (:func:`paczero.ledger.private_summary`), not part of the statement.
* :func:`dp_statement` — the DP baselines: ε at δ of the transcript's T steps under the stated neighbouring
  relation, recomputed by the accountant from σ, q and T; the MIA bound (e^ε + δ)/(1 + e^ε).
* :func:`no_statement` — MeZO and the non-private ablations: no guarantee (bound 1).

A statement is a frozen :class:`PrivacyStatement`; ``to_dict`` gives what ``metrics.json`` holds.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Mapping

from paczero.privacy.accounting import RELATION_TEXT, dp_epsilon
from paczero.privacy.bounds import dp_epsilon_for_mi, dp_posterior_bound, mi_for_dp_epsilon, mia_posterior_bound

PUBLIC_PAC = (
    "the settings (config.yaml) and the public seed: data split, membership matrix, direction seeds, coins",
    "the membership matrix of the M candidate subsets (membership.npy)",
    "the transcript: per step the learning rate, the direction seeds and one released value per direction",
    "the weights (a function of the base model and the transcript)",
    "the dev set used for checkpoint selection (disjoint from the pool) and the dev/test metrics",
)
PUBLIC_DP = (
    "the settings (config.yaml), including the pool size N, and the public seed (data split, direction seeds)",
    "the transcript: per step the learning rate, the direction seeds and the released noisy values",
    "the weights (a function of the base model and the transcript)",
    "the dev set used for checkpoint selection (disjoint from the pool) and the dev/test metrics",
)
PROTECTED_PAC = "membership of each pool record in the secret subset S* (prior 1/2 per record)"
PROTECTED_DP = "each pool record, against replacement by any other record"
NOT_PROTECTED = ("the existence and size of the pool", "the public dev set", "the base model")


@dataclass(frozen=True)
class PrivacyStatement:
    """What a run guarantees. Every figure follows from the settings and the public transcript."""

    mechanism: str
    family: str
    """``pac``, ``dp`` or ``none``."""
    private: bool
    """Whether any guarantee holds (False for MeZO and the non-private ablations)."""
    steps: int
    """Steps in the transcript."""
    releases: int
    """Released values in the transcript."""
    mia_posterior_bound: float
    """Upper bound on any membership attacker's success at prior 1/2 (1.0: none)."""
    summary: str
    derivation: str
    """How the bound follows from the settings (one or two sentences)."""
    mi_bound_nats: float | None = None
    """PAC: the bound on I(S*; transcript) in nats."""
    dp_epsilon: float | None = None
    dp_delta: float | None = None
    dp_epsilon_equivalent: float | None = None
    """PAC: the ε whose ε-DP MIA bound equals this run's; DP: None (ε itself)."""
    mi_nats_matched: float | None = None
    """DP: the MI with the same MIA bound as (ε, 0)-DP."""
    neighbouring_relation: str | None = None
    noise_multiplier: float | None = None
    sample_rate: float | None = None
    channel: str | None = None
    """PACZero-MI: the channel its bits are calibrated on (``bsc`` or ``awgn``)."""
    protects: str | None = None
    not_protected: tuple[str, ...] = NOT_PROTECTED
    public: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        """The statement as plain JSON-ready values."""
        d = asdict(self)
        d["not_protected"], d["public"] = list(self.not_protected), list(self.public)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "PrivacyStatement":
        """Inverse of :meth:`to_dict`."""
        d = dict(d)
        d["not_protected"], d["public"] = tuple(d.get("not_protected", ())), tuple(d.get("public", ()))
        return cls(**d)


def pac_statement(*, mechanism: str, mi_bound: float, steps: int, releases: int, n_subsets: int,
                  channel: str | None = None, skips: bool = False) -> PrivacyStatement:
    """The statement of a PAC run whose transcript carries at most ``mi_bound`` nats about S*; ``skips``: a ZPL run
    that releases 0 (no update) instead of a coin where the subsets disagree."""
    if not 0.0 <= mi_bound:
        raise ValueError(f"mi_bound={mi_bound!r} is invalid; expected >= 0 nats")
    bound = mia_posterior_bound(mi_bound)
    if skips:
        how = ("Every released value is either the sign all M subsets agree on or 0 (no update) when they disagree: "
               "whether they agree is a function of the pool and the public membership matrix, not of which subset "
               "is secret, so I(S*; transcript) = 0 and the attacker's posterior equals the prior 1/2.")
        summary = "I = 0 nats, MIA posterior <= 0.5, dev set public"
    elif mi_bound == 0.0:
        how = ("Every released value is either the sign all M subsets agree on or a fair coin drawn from the public "
               "seed: neither depends on which subset is secret, so I(S*; transcript) = 0 and the attacker's "
               "posterior equals the prior 1/2.")
        summary = "I = 0 nats, MIA posterior <= 0.5, dev set public"
    else:
        how = (f"Each non-free release is one bit, its flip probability calibrated on the {channel or 'bsc'} "
               f"channel so that it carries at most its step budget; the budgets sum to at most B = {mi_bound:.6g} "
               "nats, so I(S*; transcript) <= B (chain rule), and ln 2 - H_b(p) <= I bounds the attacker's "
               "success p.")
        summary = f"I <= {mi_bound:.6g} nats, MIA posterior <= {bound:.6g}, dev set public"
    return PrivacyStatement(
        mechanism=mechanism, family="pac", private=True, steps=steps, releases=releases, mia_posterior_bound=bound,
        summary=summary, derivation=how, mi_bound_nats=mi_bound, dp_epsilon_equivalent=dp_epsilon_for_mi(mi_bound),
        channel=channel, protects=f"{PROTECTED_PAC}, one of M = {n_subsets} candidate subsets", public=PUBLIC_PAC)


def dp_statement(*, mechanism: str, noise_multiplier: float, sample_rate: float, delta: float, steps: int,
                 releases: int, relation: str) -> PrivacyStatement:
    """(ε, δ) of ``steps`` Poisson-subsampled discrete Gaussian releases, recomputed by the accountant."""
    eps = 0.0 if steps == 0 else dp_epsilon(noise_multiplier=noise_multiplier, sample_rate=sample_rate, steps=steps,
                                            delta=delta, relation=relation)
    bound = dp_posterior_bound(eps, delta)
    rel = RELATION_TEXT[relation]
    return PrivacyStatement(
        mechanism=mechanism, family="dp", private=True, steps=steps, releases=releases, mia_posterior_bound=bound,
        summary=f"({eps:.4g}, {delta:g})-DP ({relation.replace('_', '-')}), MIA posterior <= {bound:.6g}",
        derivation=(f"{steps} Poisson-subsampled (q = {sample_rate:g}) discrete Gaussian releases of noise multiplier "
                    f"{noise_multiplier:.6g}, composed by a privacy-loss-distribution accountant (dp-accounting) "
                    f"under {rel}; (e^eps + delta)/(1 + e^eps) bounds the attacker's success."),
        dp_epsilon=eps, dp_delta=delta, mi_nats_matched=mi_for_dp_epsilon(eps), neighbouring_relation=rel,
        noise_multiplier=noise_multiplier, sample_rate=sample_rate, protects=PROTECTED_DP, public=PUBLIC_DP)


def no_statement(*, mechanism: str, steps: int, releases: int) -> PrivacyStatement:
    """MeZO and the non-private ablations: nothing is guaranteed."""
    return PrivacyStatement(
        mechanism=mechanism, family="none", private=False, steps=steps, releases=releases, mia_posterior_bound=1.0,
        summary="no privacy guarantee",
        derivation="The released values are functions of the pool's records with no noise; nothing is protected.",
        public=PUBLIC_DP)
