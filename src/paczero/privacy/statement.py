"""A run's privacy statement, computed from its public ledger (never copied from the config).

PAC runs: the MI of every noisy release is recomputed from its public (q₊, σ) with the channel
formula, and the total is converted into the membership-inference posterior bound and the matched
DP ε (paczero-notes §6.2–§6.3). Free/unanimous releases and public coins charge 0 nats.

DP baselines: ε from the number of steps in the ledger, σ and q, by Opacus' RDP and PRV accountants,
plus DP-AggZO's Laplace share; the MIA bound of (ε, δ)-DP puts them on the same axis as the PAC runs.

Everything else (MeZO, the ablations) has no guarantee: bound 1 — except ``random_sign``, whose
releases are public coins (I = 0).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable

if TYPE_CHECKING:
    from paczero.config import Config

from paczero.privacy.accounting import dp_epsilon
from paczero.privacy.bounds import dp_epsilon_for_mi, dp_posterior_bound, mi_for_dp_epsilon, mia_posterior_bound
from paczero.privacy.channel import channel_mi

PUBLIC_ITEMS = [
    "the pool's records (the PAC game protects which candidate subset was used, not the records)",
    "the membership matrix of the M candidate subsets (membership.npy)",
    "the public seed: data split, direction seeds and coins",
    "the dev set used for checkpoint selection (disjoint from the pool)",
    "the ledger (released values) and the diagnostics derived from public state",
]


def statement_from_ledger(records: Iterable[dict[str, Any]], *, mechanism: str, budget: float | None,
                          n_subsets: int) -> dict[str, Any]:
    """Total MI (nats), MIA posterior bound, matched ε and release counts of a PAC run."""
    releases = [d for r in records for d in r["directions"]]
    counts = _kinds(releases, {"zpl": {"unanimous", "coin"}, "mi": {"free", "noisy", "coin"}}[mechanism], mechanism)
    mi = sum((channel_mi(q=d["q_plus"], sigma=d["sigma"]) for d in releases if d["kind"] == "noisy"), 0.0)
    posterior = mia_posterior_bound(mi)
    statement = {
        "mechanism": mechanism,
        "private": True,
        "mi_nats": mi,
        "mia_posterior_bound": posterior,
        "dp_epsilon_equivalent": dp_epsilon_for_mi(mi),
        "budget_nats": budget if mechanism == "mi" else 0.0,
        "n_subsets": n_subsets,
        "releases": len(releases),
        "release_kinds": counts,
        "free_release_mi_nats": 0.0,
        "public": PUBLIC_ITEMS,
        "summary": f"I = {mi:.6g} nats, MIA posterior <= {posterior:.6g}, dev set public",
    }
    return statement


def _kinds(releases: list[dict[str, Any]], allowed: set[str], mechanism: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for d in releases:
        counts[d["kind"]] = counts.get(d["kind"], 0) + 1
    unexpected = set(counts) - allowed
    if unexpected:
        raise ValueError(f"ledger holds release kinds {sorted(unexpected)} that a {mechanism} run cannot produce")
    return counts


def dp_statement(records: list[dict[str, Any]], cfg: "Config") -> dict[str, Any]:
    """(ε, δ) of a DP baseline run from its ledger: one subsampled Gaussian release per recorded step."""
    from paczero.mechanisms import dp_calibration

    p = cfg.privacy
    releases = [d for r in records for d in r["directions"]]
    counts = _kinds(releases, {"dp"}, p.mechanism)
    cal = dp_calibration(cfg)
    steps = len(records)
    epsilons = {}
    for name in ("rdp", "prv"):
        gaussian = 0.0 if steps == 0 else dp_epsilon(noise_multiplier=cal.noise_multiplier, sample_rate=p.sample_rate,
                                                      steps=steps, delta=p.delta, accountant=name)
        epsilons[name] = gaussian + cal.pool_size_epsilon
    eps = epsilons[p.accountant]
    bound = dp_posterior_bound(eps, p.delta)
    return {
        "mechanism": p.mechanism,
        "private": True,
        "dp_epsilon": eps,
        "dp_delta": p.delta,
        "accountant": p.accountant,
        "epsilon_rdp": epsilons["rdp"],
        "epsilon_prv": epsilons["prv"],
        "target_epsilon": p.epsilon,
        "noise_multiplier": cal.noise_multiplier,
        "sample_rate": p.sample_rate,
        "steps": steps,
        "pool_size_epsilon": cal.pool_size_epsilon,
        "neighbouring_relation": "add/remove one record (Poisson sampling)",
        "mia_posterior_bound": bound,
        "mi_nats_matched": mi_for_dp_epsilon(eps),
        "releases": len(releases),
        "release_kinds": counts,
        "summary": f"({eps:.4g}, {p.delta:g})-DP by {p.accountant.upper()} (add/remove), MIA posterior <= {bound:.6g}",
    }


def nonprivate_statement(records: list[dict[str, Any]], *, mechanism: str) -> dict[str, Any]:
    """MeZO and the ablations: no guarantee (bound 1), except ``random_sign`` (public coins: I = 0)."""
    releases = [d for r in records for d in r["directions"]]
    allowed = {"projected"} if mechanism == "mezo" else {mechanism}
    counts = _kinds(releases, allowed, mechanism)
    coins = mechanism == "random_sign"
    return {
        "mechanism": mechanism,
        "private": coins,
        "mi_nats": 0.0 if coins else None,
        "mia_posterior_bound": mia_posterior_bound(0.0) if coins else 1.0,
        "releases": len(releases),
        "release_kinds": counts,
        "summary": "I = 0 nats (the releases are public coins)" if coins else "no privacy guarantee",
    }


def run_statement(records: list[dict[str, Any]], cfg: "Config") -> dict[str, Any]:
    """The statement of any run, from its ledger and config."""
    from paczero.config import DP_MECHANISMS

    p = cfg.privacy
    if p.mechanism in ("zpl", "mi"):
        return statement_from_ledger(records, mechanism=p.mechanism, budget=p.budget, n_subsets=p.n_subsets)
    if p.mechanism in DP_MECHANISMS:
        return dp_statement(records, cfg)
    return nonprivate_statement(records, mechanism=p.mechanism)
