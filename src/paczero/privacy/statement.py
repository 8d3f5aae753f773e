"""A run's privacy statement, computed from its public ledger (never copied from the config).

The MI of every noisy release is recomputed from its public (q₊, σ) with the channel formula, and
the total is converted into the membership-inference posterior bound and the matched DP ε
(paczero-notes §6.2–§6.3). Free/unanimous releases and public coins charge 0 nats.
"""

from __future__ import annotations

from typing import Any, Iterable

from paczero.privacy.bounds import dp_epsilon_for_mi, mia_posterior_bound
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
    counts: dict[str, int] = {}
    for d in releases:
        counts[d["kind"]] = counts.get(d["kind"], 0) + 1
    allowed = {"zpl": {"unanimous", "coin"}, "mi": {"free", "noisy", "coin"}}[mechanism]
    unexpected = set(counts) - allowed
    if unexpected:
        raise ValueError(f"ledger holds release kinds {sorted(unexpected)} that a {mechanism} run cannot produce")
    mi = sum((channel_mi(q=d["q_plus"], sigma=d["sigma"]) for d in releases if d["kind"] == "noisy"), 0.0)
    posterior = mia_posterior_bound(mi)
    statement = {
        "mechanism": mechanism,
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
