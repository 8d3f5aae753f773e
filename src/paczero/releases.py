"""What a mechanism releases for one direction: the public value, and the owner's record of how it came about.

Each kind of release is a frozen dataclass. Only ``value`` — the multiplier of the direction in the update
θ ← θ − η((1/K) Σ_k value_k z_k + λθ) — is published (the transcript). Every other field is computed on the
pool or touches the secret and goes to the run's private release log (:mod:`paczero.ledger`): the subset signs,
the posterior mass q₊, the step budget, the flip probability, the MI charged, the Poisson batch size.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, ClassVar, Mapping


@dataclass(frozen=True)
class Release:
    """A released value (public) and its private details (the other fields of a subclass)."""

    value: float
    kind: ClassVar[str] = ""
    agreed: ClassVar[bool] = False
    """Whether the subsets (or the posterior's support) agreed on the released sign: a free release."""

    def private_record(self) -> dict[str, Any]:
        """The owner's record of this release: its kind, its value and every private field."""
        return {"kind": self.kind, **asdict(self)}


@dataclass(frozen=True)
class Unanimous(Release):
    """PACZero-ZPL: every one of the M subsets had this sign (a function of the pool, not of S*)."""

    signs: str
    kind: ClassVar[str] = "unanimous"
    agreed: ClassVar[bool] = True


@dataclass(frozen=True)
class Coin(Release):
    """A fair coin from the public seed: ZPL when the subsets disagree, MI with nothing left to spend, and the
    ``random_sign`` control."""

    signs: str | None = None
    kind: ClassVar[str] = "coin"


@dataclass(frozen=True)
class Abstain(Release):
    """PACZero-ZPL with ``privacy.zpl_disagreement=skip``: the subsets disagreed, so nothing moves (value 0)."""

    signs: str
    kind: ClassVar[str] = "abstain"


@dataclass(frozen=True)
class Free(Release):
    """PACZero-MI: every subset with posterior mass above the threshold had this sign (0 nats)."""

    signs: str
    q_plus: float
    kind: ClassVar[str] = "free"
    agreed: ClassVar[bool] = True


@dataclass(frozen=True)
class NoisyBit(Release):
    """PACZero-MI: the secret subset's sign, flipped with probability ``flip``, calibrated to at most ``beta``."""

    signs: str
    q_plus: float
    beta: float
    flip: float
    sigma: float
    """The Gaussian noise scale with Φ(−1/σ) = flip (the bit is sign(s_J* + σξ))."""
    mi: float
    """The MI charged for this release (≤ beta), on ``channel``."""
    channel: str
    kind: ClassVar[str] = "noisy"


@dataclass(frozen=True)
class DPNoisy(Release):
    """DPZero / DP-AggZO: the noisy normalised sum of the Poisson batch's clipped contributions."""

    batch: int
    kind: ClassVar[str] = "dp"


@dataclass(frozen=True)
class Projected(Release):
    """MeZO: the minibatch mean of the two-point estimates (no privacy)."""

    batch: int
    kind: ClassVar[str] = "projected"


@dataclass(frozen=True)
class AblationValue(Release):
    """One of the paper's decomposition ablations (no privacy, except ``random_sign``, which releases coins)."""

    variant: str
    kind: ClassVar[str] = "ablation"


KINDS: dict[str, type[Release]] = {cls.kind: cls for cls in (Unanimous, Coin, Abstain, Free, NoisyBit, DPNoisy,
                                                              Projected, AblationValue)}


def from_record(record: Mapping[str, Any]) -> Release:
    """Inverse of :meth:`Release.private_record`."""
    kind = record.get("kind")
    if kind not in KINDS:
        raise ValueError(f"release kind {kind!r} is unknown; expected one of {', '.join(KINDS)}")
    cls = KINDS[kind]
    names = {f.name for f in fields(cls)}
    missing = names - set(record)
    if missing:
        raise ValueError(f"a {kind} release lacks {', '.join(sorted(missing))}")
    return cls(**{k: record[k] for k in names})
