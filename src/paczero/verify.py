"""``paczero verify``: what anyone can check of a published model, and what the holder of the pool can check more.

* **From the public files alone** (an exported folder or a run folder): every direction seed is the one the
  public seed derives and every learning rate is the schedule's; replaying the transcript's updates on the base
  model rebuilds the published weights bit for bit (on the device type the run used).
* **With the pool** (``--data-dir``, for the data owner or an auditor; no secret needed): every step's estimates
  are recomputed at the replayed weights, and each release is checked against the mechanism's rules — ZPL: the
  sign every subset agrees on, else the public coin; PACZero-MI: the free sign where the posterior's support
  agrees, the public coin where nothing is left, else a bit whose calibration (the posterior, q₊, the step budget
  β ≤ (B − spent)/(T − t)/K, the flip probability on the run's channel) is recomputed and charged, the charges
  summing to at most B. The statement is then printed as verified.

A failed check raises :class:`VerificationFailed` with one line naming the first fault.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from paczero import progress
from paczero.config import Config, config_from_dict, load_run_config
from paczero.errors import PaczeroError
from paczero.fileio import read_json
from paczero.ledger import TranscriptStep, parse_transcript
from paczero.models import LoadedModel, publishable
from paczero.rng import direction_seed, public_coin
from paczero.step import learning_rate

EXPORT_DIR = "paczero"
"""The folder of an export that holds its public transcript."""


class VerificationFailed(PaczeroError):
    """The published files do not follow from the public transcript (or a release breaks the mechanism's rules)."""

    exit_code = 1


@dataclass(frozen=True)
class Published:
    """What a verification reads: the settings, the transcript, and the weights to compare with."""

    cfg: Config
    steps: list[TranscriptStep]
    targets: list[tuple[str, Path, str, int]]
    """(label, folder, format, steps included): ``full`` (a whole HF model), ``adapter`` (a peft adapter),
    ``merged`` (LoRA merged into the base) or ``checkpoint`` (a run's checkpoint of the trainable tensors)."""


def _steps(path: Path, where: str) -> list[TranscriptStep]:
    from paczero.fileio import read_jsonl

    if not path.is_file():
        raise PaczeroError(f"{where} has no {path.name}")
    try:
        return parse_transcript(read_jsonl(path))
    except (ValueError, KeyError, TypeError) as exc:
        raise VerificationFailed(f"{path}: {exc}") from None


def read_published(path: str | Path) -> Published:
    """An exported folder (``paczero/run.yaml`` and the transcript inside it) or a finished run folder."""
    path = Path(path)
    if (path / EXPORT_DIR / "run.yaml").is_file():
        from omegaconf import OmegaConf

        cfg = config_from_dict(OmegaConf.to_container(OmegaConf.load(path / EXPORT_DIR / "run.yaml")))
        info = read_json(path / EXPORT_DIR / "export.json")
        steps = _steps(path / EXPORT_DIR / "transcript.jsonl", str(path))
        return Published(cfg=cfg, steps=steps, targets=[("exported model", path, info["format"], info["step"])])
    from paczero.rundir import RunDir

    run = RunDir.open(path)
    metrics = run.read_metrics()
    if metrics is None:
        raise PaczeroError(f"{path} has not finished (no metrics.json): export or verify a finished run")
    steps = _steps(run.transcript_path, str(path))
    targets = [("best checkpoint", run.checkpoint("best"), "checkpoint", metrics["best_dev"]["step"]),
               ("last checkpoint", run.checkpoint("last"), "checkpoint", len(steps))]
    return Published(cfg=load_run_config(path), steps=steps, targets=targets)


def check_schedule(cfg: Config, steps: list[TranscriptStep]) -> None:
    """Every seed is the public seed's direction and every learning rate the configured schedule's."""
    t = cfg.train
    if len(steps) != t.steps:
        raise VerificationFailed(f"the transcript holds {len(steps)} steps; the settings give train.steps={t.steps}")
    for s in steps:
        lr = learning_rate(step=s.step, steps=t.steps, lr=t.lr, lr_end=t.lr_end, schedule=t.lr_schedule)
        if s.lr != lr:
            raise VerificationFailed(f"step {s.step}: learning rate {s.lr!r} is not the schedule's {lr!r}")
        if len(s.directions) != cfg.zo.directions:
            raise VerificationFailed(f"step {s.step}: {len(s.directions)} directions; the settings give "
                                     f"zo.directions={cfg.zo.directions}")
        for k, d in enumerate(s.directions):
            if d.seed != direction_seed(cfg.run.seed, s.step, k):
                raise VerificationFailed(f"step {s.step}, direction {k}: seed {d.seed} is not the one the public "
                                         f"seed {cfg.run.seed} derives")


def _state(loaded: LoadedModel, fmt: str, *, lora: bool) -> dict[str, torch.Tensor]:
    """The rebuilt model's tensors in the layout of a published ``fmt`` (a LoRA run's checkpoint is an adapter)."""
    if fmt == "adapter" or (fmt == "checkpoint" and lora):
        from peft import get_peft_model_state_dict

        return get_peft_model_state_dict(loaded.model)
    if fmt == "checkpoint":
        return {n: p.detach() for n, p in loaded.trainable}
    if fmt == "merged":
        return copy.deepcopy(loaded.model).merge_and_unload().state_dict()
    return publishable(loaded).state_dict()


def _published(folder: Path) -> dict[str, torch.Tensor]:
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise PaczeroError(f"{folder} holds no .safetensors weights")
    out: dict[str, torch.Tensor] = {}
    for f in files:
        out.update(load_file(str(f)))
    return out


def first_difference(loaded: LoadedModel, folder: Path, fmt: str, *, lora: bool) -> str | None:
    """The first published tensor that differs from the rebuilt one (by name), or None when all are equal."""
    rebuilt = _state(loaded, fmt, lora=lora)
    for name, tensor in _published(folder).items():
        ours = rebuilt.get(name)
        if ours is None:
            return f"{name} (not a tensor of the rebuilt model)"
        if ours.shape != tensor.shape or not torch.equal(ours.detach().cpu().to(tensor.dtype), tensor):
            return name
    return None


def verify_weights(published: Published, *, show: bool = True) -> list[str]:
    """Replay the transcript on the base model and compare with every target; returns one line per target."""
    from paczero.build import build_model
    from paczero.replay import replay_transcript

    cfg = published.cfg
    check_schedule(cfg, published.steps)
    loaded = build_model(cfg)
    done, lines = 0, []
    for label, folder, fmt, upto in sorted(published.targets, key=lambda x: x[3]):
        if not folder.is_dir():
            raise PaczeroError(f"{folder} not found ({label})")
        replay_transcript(loaded, published.steps[done:upto], eps=cfg.zo.eps, weight_decay=cfg.train.weight_decay,
                          show=show)
        done = upto
        diff = first_difference(loaded, folder, fmt, lora=cfg.model.tuning == "lora")
        if diff is not None:
            raise VerificationFailed(f"NOT verified: {label} ({folder}) differs from the base model updated by the "
                                     f"first {upto} transcript steps, first at tensor {diff}")
        lines.append(f"{label} = base model + the first {upto} of {len(published.steps)} public transcript steps")
    return lines


def verify_rules(published: Published, *, data_dir: str | None, show: bool = True) -> dict[str, Any]:
    """Recompute every release from the pool and check it against the mechanism's rules; returns the statement.

    Needs the pool (``data_dir``), never the secret. Applies to the PAC mechanisms (ZPL, MI); the other
    mechanisms' releases depend on secret noise or batches, or follow no rule a pool holder could check.
    """
    import numpy as np

    from paczero.build import build
    from paczero.mechanisms.mi import ENTROPY_CAP, calibrate, step_budget
    from paczero.mechanisms.registry import run_statement
    from paczero.privacy.channel import binary_entropy
    from paczero.privacy.posterior import agreeing_sign, bit_update, q_plus, uniform_log_posterior
    from paczero.subsets import clip_estimates, subset_means, subset_signs

    cfg = copy.deepcopy(published.cfg)
    mechanism = cfg.privacy.mechanism
    if mechanism not in ("zpl", "mi"):
        raise PaczeroError(f"verify --data-dir checks the rules of zpl and mi runs; a {mechanism} run's releases "
                           "depend on its secret noise or batches (the weights check still applies)")
    if data_dir is not None:
        cfg.data.data_dir = data_dir
    check_schedule(cfg, published.steps)
    c = build(cfg)
    if len(c.split.pool) != cfg.data.n_pool:
        raise VerificationFailed(f"the pool read from the data has {len(c.split.pool)} records; the settings give "
                                 f"{cfg.data.n_pool}")
    log_post, spent, T, K = uniform_log_posterior(cfg.privacy.n_subsets), 0.0, cfg.train.steps, cfg.zo.directions
    with progress.bar(total=len(published.steps), desc="verifying releases against the pool", unit="step",
                      enabled=show) as bar:
        for s in published.steps:
            beta_step = step_budget(budget=cfg.privacy.budget, spent=spent, step=s.step, steps=T,
                                    schedule=cfg.privacy.budget_schedule) / K if mechanism == "mi" else 0.0
            for k, d in enumerate(s.directions):
                g, _ = c.engine.estimates(c.objective, c.encoded["pool"], direction=d.seed)
                g = np.where(np.isfinite(g), g, 0.0)
                signs = subset_signs(subset_means(c.membership, clip_estimates(g, cfg.zo.clip)[0]))
                where = f"step {s.step}, direction {k}"
                if mechanism == "zpl":
                    agreed, skips = bool(np.all(signs == signs[0])), cfg.privacy.zpl_disagreement == "skip"
                    expected = (float(signs[0]) if agreed else 0.0 if skips
                                else float(public_coin(cfg.run.seed, s.step, k)))
                    if d.value != expected:
                        what = ("the sign all subsets agree on" if agreed else "0, no update (the subsets disagree)"
                                if skips else "the public coin (the subsets disagree)")
                        raise VerificationFailed(f"NOT verified: {where} released {d.value:+g}; ZPL releases {what}, "
                                                 f"{expected:+g}")
                    continue
                common = agreeing_sign(log_posterior=log_post, signs=signs, threshold=cfg.privacy.free_threshold)
                q = q_plus(log_posterior=log_post, signs=signs)
                beta = min(beta_step, ENTROPY_CAP * binary_entropy(q))
                if common is not None or beta <= 0.0:
                    expected = float(common) if common is not None else float(public_coin(cfg.run.seed, s.step, k))
                    if d.value != expected:
                        what = "the free sign of the posterior's support" if common is not None else "the public coin"
                        raise VerificationFailed(f"NOT verified: {where} released {d.value:+g}; MI releases {what}, "
                                                 f"{expected:+g}")
                    continue
                if d.value not in (1.0, -1.0):
                    raise VerificationFailed(f"NOT verified: {where} released {d.value!r}, not a bit")
                flip, _, charged = calibrate(q=q, beta=beta, channel=cfg.privacy.mi_channel)
                if not charged <= beta:
                    raise VerificationFailed(f"NOT verified: {where} would charge {charged!r} > its budget {beta!r}")
                log_post = bit_update(log_posterior=log_post, signs=signs, bit=int(d.value), flip=flip)
                spent += charged
            c.engine.update([(d.seed, d.value / K) for d in s.directions], lr=s.lr, weight_decay=cfg.train.weight_decay)
            bar.update(1)
    if mechanism == "mi" and not spent <= cfg.privacy.budget * (1 + 1e-9):
        raise VerificationFailed(f"NOT verified: the releases charge {spent!r} nats, more than the budget "
                                 f"{cfg.privacy.budget!r}")
    statement = run_statement(cfg, steps=len(published.steps),
                              releases=sum(len(s.directions) for s in published.steps)).to_dict()
    return {"statement": statement, "charged_nats": spent}


