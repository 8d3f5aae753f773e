"""The one list of mechanisms: what each is, what it may release, how it is built and what it guarantees.

Every other module (config validation, the trainer, the audit, ``paczero compare``, the report, the statement)
asks this registry instead of listing names of its own.
"""

from __future__ import annotations

from dataclasses import dataclass
import math
from typing import Callable

import numpy as np

from paczero.mechanisms.ablations import ABLATIONS, Ablation
from paczero.mechanisms.base import Mechanism
from paczero.mechanisms.dp import DPAggZO, DPZero
from paczero.mechanisms.mezo import MeZO
from paczero.mechanisms.mi import PacMI
from paczero.mechanisms.zpl import ZPL
from paczero.privacy.accounting import RELATION, noise_multiplier
from paczero.privacy.statement import DevSet, Family, PrivacyStatement, dp_statement, no_statement, pac_statement
from paczero.releases import Abstain, AblationValue, Coin, DPNoisy, Free, NoisyBit, Projected, Release, Unanimous
from paczero.secret import SecretState

from paczero.config import Config, Tuning, require
from paczero.data.registry import dev_source, task_spec
from paczero.privacy.bounds import VACUOUS_BOUND, vacuous_dp_epsilon, vacuous_mi_budget



@dataclass(frozen=True)
class MechanismSpec:
    """What one mechanism is."""

    name: str
    family: Family
    """PAC privacy (MI about the secret subset), (ε, δ)-DP, or none."""
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
    check: Callable[["Config"], None] = lambda cfg: None
    """Checks the mechanism's own options (``privacy.*``, and what it needs of ``zo.*``); raises naming the key."""


_VACUOUS = ("the statement would promise nothing (an attacker may be right about 999 records in 1000); set "
            "privacy.allow_vacuous=true to run it anyway, never to be exported with a privacy card")


def _check_dp(cfg: Config) -> None:
    """The DP methods' options: a finite ε below the vacuous limit, 0 < δ < 1, 0 < q <= 1, a finite clip (``zo.clip``
    for the zeroth-order baselines, ``privacy.grad_clip`` and a trainable set for DP-SGD)."""
    p = cfg.privacy
    eps = p.epsilon
    require(eps is not None and 0 < eps < float("inf"), "privacy.epsilon", eps,
             f"expected a finite DP epsilon > 0 for privacy.mechanism={p.mechanism}")
    require(0 < p.delta < 1, "privacy.delta", p.delta, "expected 0 < delta < 1")
    limit = vacuous_dp_epsilon(p.delta)
    require(p.allow_vacuous or eps < limit, "privacy.epsilon", eps,
             f"at delta={p.delta:g} an epsilon of {limit:.4g} or more bounds membership inference only by "
             f"(e^eps + delta)/(1 + e^eps) >= {VACUOUS_BOUND}: {_VACUOUS}")
    require(0 < p.sample_rate <= 1, "privacy.sample_rate", p.sample_rate, "expected 0 < q <= 1")
    if spec(p.mechanism).first_order:  # DP-SGD: a gradient clip, per-record gradients over a trainable set
        require(math.isfinite(p.grad_clip) and p.grad_clip > 0, "privacy.grad_clip", p.grad_clip,
                f"{p.mechanism} bounds each record's gradient by this L2 norm: expected a finite clip > 0")
        require(cfg.model.tuning == Tuning.SET, "model.tuning", cfg.model.tuning,
                f"{p.mechanism} computes per-record gradients over a trainable set: expected set, with "
                "model.trainable (e.g. model.trainable.head_rows=true)")
        return
    require(math.isfinite(cfg.zo.clip), "zo.clip", cfg.zo.clip,
             f"privacy.mechanism={p.mechanism} bounds each record's contribution by the clip: expected a finite "
             "clip > 0")
    if p.mechanism == "dpzero":
        require(cfg.zo.directions == 1, "zo.directions", cfg.zo.directions,
                 "dpzero releases one direction per step; expected 1 (use privacy.mechanism=dpaggzo for K > 1)")

def _check_mi(cfg: Config) -> None:
    """PACZero-MI's budget: positive, and below the budget that promises nothing."""
    require(cfg.privacy.budget > 0, "privacy.budget", cfg.privacy.budget,
            "expected a positive MI budget in nats (use privacy.mechanism=zpl for I = 0)")
    require(cfg.privacy.allow_vacuous or cfg.privacy.budget < vacuous_mi_budget(), "privacy.budget",
            cfg.privacy.budget, f"a budget of {vacuous_mi_budget():.4f} nats or more bounds membership inference "
            f"only by {VACUOUS_BOUND} or more (by 1 from ln 2 = {math.log(2):.4f}): {_VACUOUS}")


def dp_noise_multiplier(cfg: "Config") -> float:
    """σ for ``train.steps`` Poisson-subsampled Gaussian steps costing at most ``privacy.epsilon`` (replace-one)."""
    p = cfg.privacy
    return noise_multiplier(epsilon=p.epsilon, delta=p.delta, sample_rate=p.sample_rate, steps=cfg.train.steps,
                            relation=RELATION)


def dev_set(cfg: "Config") -> DevSet:
    """The dev set of a run of ``cfg``, as its statement describes it."""
    source = dev_source(cfg.data)
    return DevSet(source=source, n=0 if source == "none" else cfg.data.n_dev,
                  from_private_file=source == "train" and task_spec(cfg.data.task).user_data)


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
                        delta=p.delta, steps=steps, releases=releases, relation=RELATION, dev=dev_set(cfg),
                        gradients=spec(p.mechanism).first_order)


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
        name=variant, family=Family.PAC if private else Family.NONE,
        description=("negative control: public fair coins (I = 0)" if private
                     else f"decomposition ablation {variant} (no privacy)"),
        trains_on_secret_subset=variant.endswith("_half"), uses_subsets=variant.endswith("_half"),
        releases=(AblationValue,),
        build=lambda cfg, membership, secret: Ablation(variant, membership=membership, secret=secret,
                                                       seed=cfg.run.seed, clip=cfg.zo.clip),
        statement=_pac(lambda cfg: 0.0) if private else _none)


REGISTRY: dict[str, MechanismSpec] = {spec.name: spec for spec in [
    MechanismSpec(
        name="zpl", family=Family.PAC, description="PACZero-ZPL: the unanimous sign or a public coin (I = 0)",
        trains_on_secret_subset=True, uses_subsets=True, releases=(Unanimous, Coin, Abstain),
        build=lambda cfg, membership, secret: ZPL(membership, seed=cfg.run.seed, clip=cfg.zo.clip,
                                                  disagreement=cfg.privacy.zpl_disagreement),
        statement=_pac(lambda cfg: 0.0)),
    MechanismSpec(
        name="mi", family=Family.PAC, description="PACZero-MI: free signs, else one calibrated bit (I <= B)",
        trains_on_secret_subset=True, uses_subsets=True, releases=(Free, NoisyBit, Coin),
        build=lambda cfg, membership, secret: PacMI(
            membership, secret, budget=cfg.privacy.budget, steps=cfg.train.steps,
            schedule=cfg.privacy.budget_schedule, free_threshold=cfg.privacy.free_threshold, seed=cfg.run.seed,
            clip=cfg.zo.clip, channel=cfg.privacy.mi_channel),
        statement=_pac(lambda cfg: cfg.privacy.budget), check=_check_mi),
    MechanismSpec(
        name="mezo", family=Family.NONE, description="MeZO: the minibatch mean of the two-point estimates (no privacy)",
        trains_on_secret_subset=False, uses_subsets=False, releases=(Projected,),
        build=lambda cfg, membership, secret: MeZO(seed=cfg.run.seed, batch_size=cfg.train.batch_size),
        statement=_none),
    MechanismSpec(
        name="dpzero", family=Family.DP, description="DPZero: Poisson batch, scalar clip, discrete Gaussian ((eps, delta)-DP)",
        trains_on_secret_subset=False, uses_subsets=False, releases=(DPNoisy,), build=_dp_build(DPZero),
        statement=_dp, check=_check_dp),
    MechanismSpec(
        name="dpaggzo", family=Family.DP,
        description="DP-AggZO: K-vector L2 clip, discrete Gaussian per direction ((eps, delta)-DP)",
        trains_on_secret_subset=False, uses_subsets=False, releases=(DPNoisy,), build=_dp_build(DPAggZO),
        statement=_dp, check=_check_dp),
    MechanismSpec(
        name="firstorder", family=Family.NONE,
        description="first-order reference: autograd and Adam over the trainable set, full batch (no privacy)",
        trains_on_secret_subset=False, uses_subsets=False, releases=(), build=None, statement=_none,
        first_order=True),
    MechanismSpec(
        name="dpsgd", family=Family.DP,
        description="DP-SGD: per-record gradients of a Poisson batch, L2 clip, discrete Gaussian, SGD ((eps, delta)-DP)",
        trains_on_secret_subset=False, uses_subsets=False, releases=(), build=None, statement=_dp,
        first_order=True, check=_check_dp),
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
