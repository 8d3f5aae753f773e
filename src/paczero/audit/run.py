"""``paczero audit RUN``: empirical membership inference against a finished run.

Members and non-members:

* a run that trains on a secret subset (PACZero ZPL/MI, the half-pool ablations): members = the records
  of S* = S_J*, non-members = the rest of the pool. J* is read from ``secret.json``: this is the one
  place outside training that reads the secret, and everything it writes is an evaluation output
  labelled ``uses_secret`` (``audit/`` is written with mode 0600, since its scores reveal S*).
* a run that trains on the whole pool (the DP and non-private baselines, the full-pool ablations): members =
  the pool, non-members = the dev set (never trained on). Such runs may keep a secret key (noise, sampling);
  the audit does not read it.

Attacks: the loss and reference-calibrated attacks on the released (best-dev) model (:mod:`.attacks`), and for
secret-subset runs the Bayes-optimal transcript attack (:mod:`.transcript`), whose success is set against the run's
theoretical bound p*(I). Outputs: ``audit/summary.json``, ``audit/scores.csv`` (one row per record),
``audit/roc.png``, and the summary under ``"audit"`` in ``metrics.json``.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from paczero import ledger
from paczero.audit.attacks import loss_scores, median_decision, reference_scores
from paczero.audit.metrics import attack_summary, candidate_p_value, proportion_interval, roc_curve
from paczero.audit.transcript import (
    NotApplicable,
    bayes_decision,
    bayes_success,
    membership_posterior,
    subset_log_posterior,
)
from paczero.errors import PaczeroError
from paczero.fileio import write_json, write_text

AUDIT_DIR = "audit"
SECRET_SUBSET_MECHANISMS = ("zpl", "mi", "raw_half", "quant_half")
"""Mechanisms whose update uses the secret subset S* (PACZero and the half-pool ablations). Every other run
(MeZO, DPZero, DP-AggZO, the full-pool ablations) trains on the whole pool, even if it keeps a secret key."""
PRIVATE_MODE = 0o600
PUBLIC_MODE = 0o644


def _secret_subset(run_dir: Path, n_pool: int, n_subsets: int) -> tuple[np.ndarray, int]:
    """The public membership matrix and J*, with clear errors when either is missing."""
    from paczero.secret import SECRET_FILE, SecretState

    secret_path = run_dir / SECRET_FILE
    if not secret_path.is_file():
        raise PaczeroError(f"{secret_path} was deleted (paczero train --forget-secret): the audit needs the secret "
                           "subset S* to know which records were members, so this run can no longer be audited")
    membership = np.load(run_dir / "membership.npy")
    if membership.shape != (n_pool, n_subsets):
        raise PaczeroError(f"{run_dir / 'membership.npy'} has shape {membership.shape}; the run's config gives "
                           f"{(n_pool, n_subsets)}")
    j_star = SecretState.load(secret_path).j_star
    if not 0 <= j_star < n_subsets:  # the message must not reveal J*
        raise PaczeroError(f"{secret_path} does not match privacy.n_subsets in config.yaml")
    return membership, j_star


def _losses(run_dir: Path, cfg: Any, *, checkpoint: str, splits: Sequence[str],
            progress: bool) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Per-record losses of ``splits`` under the base model θ_0 and under the checkpoint."""
    from paczero.checkpoint import load_weights
    from paczero.objectives import model_forward
    from paczero.trainer import Trainer

    folder = run_dir / "checkpoints" / checkpoint
    if not folder.is_dir():
        raise PaczeroError(f"checkpoint folder not found: {folder}")
    trainer = Trainer(cfg)
    trainer.prepare()
    forward = model_forward(trainer.loaded.model)
    base, final = {}, {}
    with tqdm(total=2 * len(splits), desc="audit: per-record losses", unit="pass",
              disable=None if progress else True) as bar:
        for losses in (base, final):
            if losses is final:
                load_weights(trainer.loaded, folder, lora=cfg.model.tuning == "lora")
            for split in splits:
                losses[split] = trainer.objective.losses(forward, trainer.encoded[split]).double().numpy()
                bar.update(1)
    return base, final


def _transcript(run_dir: Path, *, membership: np.ndarray, labels: np.ndarray, j_star: int,
                bound: float | None) -> tuple[dict[str, Any], np.ndarray | None]:
    try:
        log_post = subset_log_posterior(ledger.read(run_dir), n_subsets=membership.shape[1])
    except NotApplicable as exc:
        return {"applicable": False, "reason": str(exc)}, None
    except ValueError as exc:
        raise PaczeroError(f"{run_dir / ledger.LEDGER_FILE} is inconsistent: {exc}") from None
    posterior = membership_posterior(log_post, membership)
    success = bayes_success(posterior, labels)
    interval = proportion_interval(success.successes, labels.size)
    result = attack_summary(posterior, labels, predicted=bayes_decision(posterior))
    result.update(
        applicable=True,
        bayes_success=success.success,
        bayes_success_interval=list(interval),
        expected_success=success.expected,
        mean_posterior_on_truth=success.mean_posterior_on_truth,
        theoretical_bound=bound,
        consistent_with_bound=None if bound is None else interval[0] <= bound,
        secret_subset_posterior=float(np.exp(log_post[j_star])),
        max_subset_posterior=float(np.exp(log_post.max())),
    )
    return result, posterior


def _scores_csv(columns: dict[str, np.ndarray]) -> str:
    cells = [[format(v, ".9g") for v in c] if c.dtype.kind == "f" else [str(v) for v in c.tolist()]
             for c in columns.values()]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(list(columns))
    writer.writerows(zip(*cells))
    return buf.getvalue()


def _secret_membership(run_dir: Path, cfg: Any,
                       metrics: dict[str, Any]) -> tuple[np.ndarray | None, int | None]:
    """The membership matrix and J* of a run that trained on S*, or (None, None) for one that trained on the
    whole pool."""
    if cfg.privacy.mechanism not in SECRET_SUBSET_MECHANISMS:
        return None, None
    if not (run_dir / "membership.npy").is_file():
        raise PaczeroError(f"{run_dir} is a {cfg.privacy.mechanism} run without membership.npy; cannot tell "
                           "the candidate subsets")
    n_pool = metrics.get("data", {}).get("n_pool", cfg.data.n_pool)
    return _secret_subset(run_dir, n_pool, cfg.privacy.n_subsets)


def _describe(pac: bool) -> dict[str, Any]:
    if pac:
        return {"uses_secret": True,
                "members": "records of the secret subset S* (J* read from secret.json); non-members: the rest of "
                           "the pool",
                "note": "evaluation output: these figures depend on J* (anyone who can recompute the attack scores "
                        "can match them to a candidate subset); do not publish them with the model"}
    return {"uses_secret": False,
            "members": "the pool (trained on); non-members: the dev set (never trained on); no secret subset",
            "note": "evaluation output of a run without a secret subset"}


def _write_outputs(out: Path, *, summary: dict[str, Any], columns: dict[str, np.ndarray],
                   curves: dict[str, tuple[np.ndarray, np.ndarray, float]], private: bool) -> None:
    from paczero.report import roc_figure, save_png

    mode = PRIVATE_MODE if private else PUBLIC_MODE
    out.mkdir(exist_ok=True)
    out.chmod(0o700 if private else 0o755)
    write_text(out / "scores.csv", _scores_csv(columns), mode=mode)
    save_png(roc_figure(curves, title=f"Membership inference, {out.parent.name}"), out / "roc.png", mode=mode)
    write_json(out / "summary.json", summary, mode=mode)


def audit_run(run_dir: str | Path, *, checkpoint: str = "best", overrides: Sequence[str] = (),
              progress: bool = True) -> dict[str, Any]:
    """Audit a finished run; writes ``audit/`` and ``metrics.json["audit"]`` and returns the summary."""
    from paczero.config import load_run_config
    from paczero.trainer import METRICS_FILE

    run_dir = Path(run_dir)
    cfg = load_run_config(run_dir, overrides)
    metrics_path = run_dir / METRICS_FILE
    if not metrics_path.is_file():
        raise PaczeroError(f"{run_dir} has not finished (no {METRICS_FILE}): there is no released model to audit")
    metrics = json.loads(metrics_path.read_text())
    membership, j_star = _secret_membership(run_dir, cfg, metrics)
    pac = membership is not None
    base, final = _losses(run_dir, cfg, checkpoint=checkpoint, splits=["pool"] if pac else ["pool", "dev"],
                          progress=progress)
    n_pool = base["pool"].size
    if pac and n_pool != membership.shape[0]:
        raise PaczeroError(f"the pool has {n_pool} records but membership.npy has {membership.shape[0]} rows")
    split = np.array([name for name in base for _ in range(base[name].size)])
    base_all, final_all = np.concatenate(list(base.values())), np.concatenate(list(final.values()))
    labels = membership[:, j_star].astype(np.int64) if pac else (split == "pool").astype(np.int64)
    scores = {"loss": loss_scores(final_all),
              "reference": reference_scores(base_losses=base_all, final_losses=final_all)}
    attacks: dict[str, Any] = {}
    for name, s in scores.items():
        attacks[name] = attack_summary(s, labels, predicted=median_decision(s))
        if pac:
            attacks[name]["candidate_p_value"] = candidate_p_value(s, membership, j_star=j_star)
    bound = metrics.get("privacy", {}).get("mia_posterior_bound")
    if pac:
        attacks["transcript"], posterior = _transcript(run_dir, membership=membership, labels=labels,
                                                       j_star=j_star, bound=bound)
        if posterior is not None:
            scores["transcript"] = posterior
    else:
        attacks["transcript"] = {"applicable": False, "reason": "no secret subset: the run trained on the whole "
                                 "pool (members = pool, non-members = dev set)"}
    summary = {"run": str(run_dir), "checkpoint": checkpoint, **_describe(pac), "n_members": int(labels.sum()),
               "n_nonmembers": int(labels.size - labels.sum()), "mia_posterior_bound": bound, "attacks": attacks}
    columns = {"record": np.r_[np.arange(n_pool), np.arange(split.size - n_pool)], "split": split,
               "member": labels, "loss_base": base_all, "loss_final": final_all,
               "score_loss": scores["loss"], "score_reference": scores["reference"]}
    if "transcript" in scores:
        columns["transcript_posterior"] = scores["transcript"]
    curves = {name: (*roc_curve(s, labels)[:2], attacks[name]["auc"]) for name, s in scores.items()}
    _write_outputs(run_dir / AUDIT_DIR, summary=summary, columns=columns, curves=curves, private=pac)
    metrics["audit"] = summary
    write_json(metrics_path, metrics)
    return summary
