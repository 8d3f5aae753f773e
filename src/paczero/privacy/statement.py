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

A statement is a frozen :class:`PrivacyStatement`; ``to_dict`` gives what ``metrics.json`` holds. It says what the
dev set is (:class:`DevSet`) and whether it promises nothing (``vacuous``: an MIA bound of
:data:`~paczero.privacy.bounds.VACUOUS_BOUND` or more).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any, Mapping

from paczero.privacy.accounting import RELATION_TEXT, dp_epsilon
from paczero.privacy.bounds import (dp_epsilon_for_mi, dp_posterior_bound, mi_for_dp_epsilon, mia_posterior_bound,
                                    vacuous_dp_epsilon, vacuous_mi_budget)

class Family(StrEnum):
    """The family of a guarantee: PAC privacy (mutual information about the secret subset), (ε, δ)-DP, or none. A
    ``str``, so statements read and write it as the plain word (``"pac"``, ``"dp"``, ``"none"``)."""

    PAC = "pac"
    DP = "dp"
    NONE = "none"


PUBLIC_PAC = (
    "the settings (config.yaml) and the public seed: data split, membership matrix, direction seeds, coins",
    "the membership matrix of the M candidate subsets (membership.npy)",
    "the transcript: per step the learning rate, the direction seeds and one released value per direction",
    "the weights (a function of the base model and the transcript)",
)
PUBLIC_DP = (
    "the settings (config.yaml), including the pool size N, and the public seed (data split, direction seeds)",
    "the transcript: per step the learning rate, the direction seeds and the released noisy values",
    "the weights (a function of the base model and the transcript)",
)
PUBLIC_DPSGD = (
    "the settings (config.yaml), including the pool size N, and the public seed (data split)",
    "the weights of the dev-selected and of the last step (no per-step value: no gradient, batch, norm or timing)",
)
PROTECTED_PAC = "membership of each pool record in the secret subset S* (prior 1/2 per record)"
PROTECTED_DP = "each pool record, against replacement by any other record"
NOT_PROTECTED = ("the existence and size of the pool", "the base model")
VACUOUS_SUMMARY = "promises nothing: "


@dataclass(frozen=True)
class DevSet:
    """The dev set that selected the released checkpoint: where it came from and how many records it holds."""

    source: str
    """``train`` (drawn from the train file or split, disjoint from the pool), ``separate`` (its own file or split)
    or ``none`` (no selection: the last checkpoint is released)."""
    n: int
    from_private_file: bool
    """``source=train`` on a user's own records (not a built-in public data set): those records are published."""

    @property
    def summary(self) -> str:
        """A few words for the statement's one-line summary."""
        if self.source == "none":
            return "no dev set"
        return f"{self.n} records of the private file public as dev set" if self.from_private_file \
            else "dev set public"

    @property
    def text(self) -> str:
        """One sentence: what the dev set is and what publishing it means."""
        if self.source == "none":
            return "no dev set: no checkpoint selection, the last checkpoint is released"
        if self.source == "separate":
            return f"the dev set ({self.n} records of a separate dev file or split), its records and metrics public"
        if self.from_private_file:
            return (f"the dev set: {self.n} records drawn from the private train file, disjoint from the pool; they "
                    "and their metrics are public, and nothing protects them")
        return (f"the dev set: {self.n} records drawn from the public data set's train split, disjoint from the pool, "
                "and their metrics")


@dataclass(frozen=True)
class PrivacyStatement:
    """What a run guarantees. Every figure follows from the settings and the public transcript."""

    mechanism: str
    family: Family
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
    vacuous: bool = False
    """Whether the statement promises nothing a reader can use: an MIA bound of 0.999 or more (an MI budget or a DP
    ε run with ``privacy.allow_vacuous``), or no guarantee at all. Such a run is never published with a privacy
    card."""
    dev_set: str = ""
    """What the dev set is (:attr:`DevSet.text`)."""

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
        d["family"] = Family(d["family"])
        d.setdefault("vacuous", d["family"] == Family.NONE)
        return cls(**d)


def _public(listed: tuple[str, ...], dev: DevSet) -> tuple[str, ...]:
    return listed + (dev.text, "the test metrics")


def _not_protected(dev: DevSet) -> tuple[str, ...]:
    return NOT_PROTECTED + (() if dev.source == "none" else ("the records of the dev set",))


def pac_statement(*, mechanism: str, mi_bound: float, steps: int, releases: int, n_subsets: int,
                  channel: str | None = None, dev: DevSet, skips: bool = False) -> PrivacyStatement:
    """The statement of a PAC run whose transcript carries at most ``mi_bound`` nats about S*; ``skips``: a ZPL run
    that releases 0 (no update) instead of a coin where the subsets disagree."""
    if not 0.0 <= mi_bound:
        raise ValueError(f"mi_bound={mi_bound!r} is invalid; expected >= 0 nats")
    bound = mia_posterior_bound(mi_bound)
    vacuous = mi_bound >= vacuous_mi_budget()
    if skips:
        how = ("Every released value is either the sign all M subsets agree on or 0 (no update) when they disagree: "
               "whether they agree is a function of the pool and the public membership matrix, not of which subset "
               "is secret, so I(S*; transcript) = 0 and the attacker's posterior equals the prior 1/2.")
        summary = f"I = 0 nats, MIA posterior <= 0.5, {dev.summary}"
    elif mi_bound == 0.0:
        how = ("Every released value is either the sign all M subsets agree on or a fair coin drawn from the public "
               "seed: neither depends on which subset is secret, so I(S*; transcript) = 0 and the attacker's "
               "posterior equals the prior 1/2.")
        summary = f"I = 0 nats, MIA posterior <= 0.5, {dev.summary}"
    else:
        how = (f"Each non-free release is one bit, its flip probability calibrated on the {channel or 'bsc'} "
               f"channel so that it carries at most its step budget; the budgets sum to at most B = {mi_bound:.6g} "
               "nats, so I(S*; transcript) <= B (chain rule), and ln 2 - H_b(p) <= I bounds the attacker's "
               "success p.")
        summary = (VACUOUS_SUMMARY if vacuous else "") + \
            f"I <= {mi_bound:.6g} nats, MIA posterior <= {bound:.6g}, {dev.summary}"
    return PrivacyStatement(
        mechanism=mechanism, family=Family.PAC, private=True, steps=steps, releases=releases, mia_posterior_bound=bound,
        summary=summary, derivation=how, mi_bound_nats=mi_bound, dp_epsilon_equivalent=dp_epsilon_for_mi(mi_bound),
        channel=channel, protects=f"{PROTECTED_PAC}, one of M = {n_subsets} candidate subsets",
        not_protected=_not_protected(dev), public=_public(PUBLIC_PAC, dev), vacuous=vacuous, dev_set=dev.text)


def dp_statement(*, mechanism: str, noise_multiplier: float, sample_rate: float, delta: float, steps: int,
                 releases: int, relation: str, dev: DevSet, gradients: bool = False) -> PrivacyStatement:
    """(ε, δ) of ``steps`` Poisson-subsampled discrete Gaussian releases, recomputed by the accountant;
    ``gradients``: DP-SGD's steps, whose noisy gradients are used by the optimiser and never published."""
    eps = 0.0 if steps == 0 else dp_epsilon(noise_multiplier=noise_multiplier, sample_rate=sample_rate, steps=steps,
                                            delta=delta, relation=relation)
    bound = dp_posterior_bound(eps, delta)
    vacuous = eps >= vacuous_dp_epsilon(delta)
    rel = RELATION_TEXT[relation]
    return PrivacyStatement(
        mechanism=mechanism, family=Family.DP, private=True, steps=steps, releases=releases, mia_posterior_bound=bound,
        summary=(VACUOUS_SUMMARY if vacuous else "") +
        f"({eps:.4g}, {delta:g})-DP ({relation.replace('_', '-')}), MIA posterior <= {bound:.6g}, {dev.summary}",
        derivation=(f"{steps} Poisson-subsampled (q = {sample_rate:g}) discrete Gaussian "
                    f"{'noisy gradients (clipped per record, never published)' if gradients else 'releases'} of noise "
                    f"multiplier {noise_multiplier:.6g}, composed by a privacy-loss-distribution accountant "
                    f"(dp-accounting) under {rel}; "
                    f"{'the weights are post-processing of them; ' if gradients else ''}"
                    "(e^eps + delta)/(1 + e^eps) bounds the attacker's success."),
        dp_epsilon=eps, dp_delta=delta, mi_nats_matched=mi_for_dp_epsilon(eps), neighbouring_relation=rel,
        noise_multiplier=noise_multiplier, sample_rate=sample_rate, protects=PROTECTED_DP,
        not_protected=_not_protected(dev), public=_public(PUBLIC_DPSGD if gradients else PUBLIC_DP, dev),
        vacuous=vacuous, dev_set=dev.text)


def no_statement(*, mechanism: str, steps: int, releases: int, dev: DevSet) -> PrivacyStatement:
    """MeZO and the non-private ablations: nothing is guaranteed."""
    return PrivacyStatement(
        mechanism=mechanism, family=Family.NONE, private=False, steps=steps, releases=releases, mia_posterior_bound=1.0,
        summary=f"no privacy guarantee, {dev.summary}",
        derivation="The released values are functions of the pool's records with no noise; nothing is protected.",
        not_protected=_not_protected(dev), public=_public(PUBLIC_DP, dev), vacuous=True, dev_set=dev.text)
