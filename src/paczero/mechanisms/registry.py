"""The one list of mechanisms: what each is, what it may release, how it is built and what it guarantees.

Every other module (config validation, the trainer, the audit, ``paczero compare``, the report, the statement)
asks this registry instead of listing names of its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

import numpy as np

from paczero.mechanisms.ablations import ABLATIONS, Ablation
from paczero.mechanisms.base import Mechanism
from paczero.mechanisms.dp import DPAggZO, DPZero
from paczero.mechanisms.mezo import MeZO
from paczero.mechanisms.mi import PacMI
from paczero.mechanisms.zpl import ZPL
from paczero.privacy.accounting import RELATION, noise_multiplier
from paczero.privacy.statement import DevSet, PrivacyStatement, dp_statement, no_statement, pac_statement
from paczero.releases import Abstain, AblationValue, Coin, DPNoisy, Free, NoisyBit, Projected, Release, Unanimous
from paczero.secret import SecretState

if TYPE_CHECKING:
    from paczero.config import Config



@dataclass(frozen=True)
class MechanismSpec:
    """What one mechanism is."""

    name: str
    family: str
    """``pac`` (PAC privacy: MI about the secret subset), ``dp`` ((ε, δ)-DP) or ``none``."""
    description: str
    trains_on_secret_subset: bool
    """Whether its update uses the secret subset S* (the audit's members are then S*, else the whole pool)."""
    uses_subsets: bool
    """Whether it needs the public membership matrix (written with the run)."""
    releases: tuple[type[Release], ...]
    """The release types it can produce."""
    build: Callable[["Config", np.ndarray | None, SecretState], Mechanism] | None
    """``None`` for a first-order method: it releases nothing per step (:mod:`paczero.firstorder`)."""
    statement: Callable[["Config", int, int], PrivacyStatement]
    """(config, steps in the transcript, releases in the transcript) → the run's statement."""
    first_order: bool = False
    """Trains by autograd on the trainable set (:mod:`paczero.firstorder`) instead of zeroth-order releases: no
    transcript."""


def dp_noise_multiplier(cfg: "Config") -> float:
    """σ for ``train.steps`` Poisson-subsampled Gaussian steps costing at most ``privacy.epsilon`` (replace-one)."""
    p = cfg.privacy
    return noise_multiplier(epsilon=p.epsilon, delta=p.delta, sample_rate=p.sample_rate, steps=cfg.train.steps,
                            relation=RELATION)


def dev_set(cfg: "Config") -> DevSet:
    """The dev set of a run of ``cfg``, as its statement describes it."""
    from paczero.config import dev_source

    source = dev_source(cfg.data)
    return DevSet(source=source, n=0 if source == "none" else cfg.data.n_dev,
                  from_private_file=source == "train" and cfg.data.task in ("jsonl", "hf"))


def _pac(mi_bound: Callable[["Config"], float]) -> Callable[["Config", int, int], PrivacyStatement]:
    def statement(cfg: "Config", steps: int, releases: int) -> PrivacyStatement:
        channel = cfg.privacy.mi_channel if cfg.privacy.mechanism == "mi" else None
        skips = cfg.privacy.mechanism == "zpl" and cfg.privacy.zpl_disagreement == "skip"
        return pac_statement(mechanism=cfg.privacy.mechanism, mi_bound=mi_bound(cfg), steps=steps, releases=releases,
                             n_subsets=cfg.privacy.n_subsets, channel=channel, skips=skips, dev=dev_set(cfg))
    return statement


def _dp(cfg: "Config", steps: int, releases: int) -> PrivacyStatement:
    p = cfg.privacy
    return dp_statement(mechanism=p.mechanism, noise_multiplier=dp_noise_multiplier(cfg), sample_rate=p.sample_rate,
                        delta=p.delta, steps=steps, releases=releases, relation=RELATION, dev=dev_set(cfg))


def _none(cfg: "Config", steps: int, releases: int) -> PrivacyStatement:
    return no_statement(mechanism=cfg.privacy.mechanism, steps=steps, releases=releases, dev=dev_set(cfg))


def _dp_build(cls: type) -> Callable[["Config", np.ndarray | None, SecretState], Mechanism]:
    def build(cfg: "Config", membership: np.ndarray | None, secret: SecretState) -> Mechanism:
        return cls(secret, n=cfg.data.n_pool, sample_rate=cfg.privacy.sample_rate,
                   noise_multiplier=dp_noise_multiplier(cfg), clip=cfg.zo.clip)
    return build


def _ablation(variant: str) -> MechanismSpec:
    private = variant == "random_sign"
    return MechanismSpec(
        name=variant, family="pac" if private else "none",
        description=("negative control: public fair coins (I = 0)" if private
                     else f"decomposition ablation {variant} (no privacy)"),
        trains_on_secret_subset=variant.endswith("_half"), uses_subsets=variant.endswith("_half"),
        releases=(AblationValue,),
        build=lambda cfg, membership, secret: Ablation(variant, membership=membership, secret=secret,
                                                       seed=cfg.run.seed, clip=cfg.zo.clip),
        statement=_pac(lambda cfg: 0.0) if private else _none)


REGISTRY: dict[str, MechanismSpec] = {spec.name: spec for spec in [
    MechanismSpec(
        name="zpl", family="pac", description="PACZero-ZPL: the unanimous sign or a public coin (I = 0)",
        trains_on_secret_subset=True, uses_subsets=True, releases=(Unanimous, Coin, Abstain),
        build=lambda cfg, membership, secret: ZPL(membership, seed=cfg.run.seed, clip=cfg.zo.clip,
                                                  disagreement=cfg.privacy.zpl_disagreement),
        statement=_pac(lambda cfg: 0.0)),
    MechanismSpec(
        name="mi", family="pac", description="PACZero-MI: free signs, else one calibrated bit (I <= B)",
        trains_on_secret_subset=True, uses_subsets=True, releases=(Free, NoisyBit, Coin),
        build=lambda cfg, membership, secret: PacMI(
            membership, secret, budget=cfg.privacy.budget, steps=cfg.train.steps,
            schedule=cfg.privacy.budget_schedule, free_threshold=cfg.privacy.free_threshold, seed=cfg.run.seed,
            clip=cfg.zo.clip, channel=cfg.privacy.mi_channel),
        statement=_pac(lambda cfg: cfg.privacy.budget)),
    MechanismSpec(
        name="mezo", family="none", description="MeZO: the minibatch mean of the two-point estimates (no privacy)",
        trains_on_secret_subset=False, uses_subsets=False, releases=(Projected,),
        build=lambda cfg, membership, secret: MeZO(seed=cfg.run.seed, batch_size=cfg.train.batch_size),
        statement=_none),
    MechanismSpec(
        name="dpzero", family="dp", description="DPZero: Poisson batch, scalar clip, discrete Gaussian ((eps, delta)-DP)",
        trains_on_secret_subset=False, uses_subsets=False, releases=(DPNoisy,), build=_dp_build(DPZero),
        statement=_dp),
    MechanismSpec(
        name="dpaggzo", family="dp",
        description="DP-AggZO: K-vector L2 clip, discrete Gaussian per direction ((eps, delta)-DP)",
        trains_on_secret_subset=False, uses_subsets=False, releases=(DPNoisy,), build=_dp_build(DPAggZO),
        statement=_dp),
    MechanismSpec(
        name="firstorder", family="none",
        description="first-order reference: autograd and Adam over the trainable set, full batch (no privacy)",
        trains_on_secret_subset=False, uses_subsets=False, releases=(), build=None, statement=_none,
        first_order=True),
    *[_ablation(v) for v in ABLATIONS],
]}
NAMES = tuple(REGISTRY)


def spec(name: str) -> MechanismSpec:
    """The spec of mechanism ``name``."""
    if name not in REGISTRY:
        raise ValueError(f"mechanism {name!r} is unknown; expected one of {', '.join(NAMES)}")
    return REGISTRY[name]


def names(*, family: str | None = None) -> tuple[str, ...]:
    """Every mechanism's name, or those of one family."""
    return tuple(n for n, s in REGISTRY.items() if family is None or s.family == family)


def build_mechanism(cfg: "Config", *, membership: np.ndarray | None, secret: SecretState) -> Mechanism | None:
    """The mechanism selected by ``privacy.mechanism`` (``None`` for a first-order method: it releases nothing)."""
    build = spec(cfg.privacy.mechanism).build
    return None if build is None else build(cfg, membership, secret)


def run_statement(cfg: "Config", *, steps: int, releases: int) -> PrivacyStatement:
    """The privacy statement of a run of ``cfg`` whose transcript holds ``steps`` steps and ``releases`` values."""
    return spec(cfg.privacy.mechanism).statement(cfg, steps, releases)
