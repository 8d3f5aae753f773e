"""``paczero audit RUN``: empirical membership inference against a finished run (the owner's tool).

Members and non-members:

* a run that trains on a secret subset (PACZero ZPL/MI, the half-pool ablations): members = the records
  of S* = S_J*, non-members = the rest of the pool. J* is read from the private folder;
* a run that trains on the whole pool (the DP and non-private baselines, the full-pool ablations): members =
  the pool, non-members = the dev set (never trained on). Such runs may keep a secret key (noise, sampling);
  the audit does not read it.

Attacks: the loss and reference-calibrated attacks on the released (best-dev) model (:mod:`.attacks`), and for
secret-subset runs the Bayes-optimal transcript attack (:mod:`.transcript`), whose success is set against the run's
bound p*(I). Every figure depends on J* or on per-record pool losses, so everything goes to
``private/audit/`` (mode 0700, files 0600) — ``summary.json``, ``scores.csv`` (one row per record), ``roc.png``
— and nothing into the run's public files.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from paczero import progress
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
from paczero.ledger import parse_releases
from paczero.rundir import PRIVATE_DIR_MODE, PRIVATE_MODE, RunDir


def _secret_subset(run: RunDir, n_pool: int, n_subsets: int) -> tuple[np.ndarray, int]:
    """The public membership matrix and J*, with clear errors when either is missing."""
    if not run.secret_path.is_file():
        raise PaczeroError(f"{run.secret_path} was deleted (paczero train --forget-secret): the audit needs the "
                           "secret subset S* to know which records were members, so this run can no longer be audited")
    membership = run.read_membership()
    if membership.shape != (n_pool, n_subsets):
        raise PaczeroError(f"{run.membership_path} has shape {membership.shape}; the run's config gives "
                           f"{(n_pool, n_subsets)}")
    j_star = run.load_secret().j_star
    if not 0 <= j_star < n_subsets:  # the message must not reveal J*
        raise PaczeroError(f"{run.secret_path} does not match privacy.n_subsets in config.yaml")
    return membership, j_star


def _losses(run: RunDir, cfg: Any, *, checkpoint: str, splits: Sequence[str],
            show: bool) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Per-record losses of ``splits`` under the base model θ_0 and under the checkpoint."""
    from paczero.build import build
    from paczero.checkpoint import load_weights
    from paczero.objectives import model_forward

    folder = run.checkpoint(checkpoint)
    if not folder.is_dir():
        raise PaczeroError(f"checkpoint folder not found: {folder}")
    c = build(cfg)
    forward = model_forward(c.loaded.model)
    base, final = {}, {}
    with progress.bar(total=2 * len(splits), desc="audit: per-record losses", unit="pass", enabled=show) as bar:
        for losses in (base, final):
            if losses is final:
                load_weights(c.loaded, folder)
            for split in splits:
                losses[split] = c.objective.losses(forward, c.encoded[split]).double().numpy()
                bar.update(1)
    return base, final


def _transcript(run: RunDir, *, membership: np.ndarray, labels: np.ndarray, j_star: int,
                bound: float | None) -> tuple[dict[str, Any], np.ndarray | None]:
    try:
        steps = parse_releases(run.read_private(run.releases_path))
        log_post = subset_log_posterior(steps, n_subsets=membership.shape[1])
    except NotApplicable as exc:
        return {"applicable": False, "reason": str(exc)}, None
    except (ValueError, KeyError, TypeError) as exc:
        raise PaczeroError(f"{run.releases_path} is inconsistent: {exc}") from None
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


def _describe(secret_subset: bool) -> dict[str, Any]:
    if secret_subset:
        return {"uses_secret": True,
                "members": "records of the secret subset S* (J* read from the private folder); non-members: the "
                           "rest of the pool",
                "note": "uses the secret: these figures depend on J* (anyone who can recompute the attack scores can "
                        "match them to a candidate subset); private, never publish them"}
    return {"uses_secret": False,
            "members": "the pool (trained on); non-members: the dev set (never trained on); no secret subset",
            "note": "per-record losses of the private pool: private, never publish them"}


def _write_outputs(out: Path, *, summary: dict[str, Any], columns: dict[str, np.ndarray],
                   curves: dict[str, tuple[np.ndarray, np.ndarray, float]]) -> None:
    from paczero.fileio import write_json, write_text
    from paczero.report import roc_figure, save_png

    out.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)
    out.chmod(PRIVATE_DIR_MODE)
    write_text(out / "scores.csv", _scores_csv(columns), mode=PRIVATE_MODE)
    save_png(roc_figure(curves, title=f"PRIVATE: membership inference, {out.parent.parent.name}"), out / "roc.png",
             mode=PRIVATE_MODE)
    write_json(out / "summary.json", summary, mode=PRIVATE_MODE)


def audit_run(run_dir: str | Path, *, checkpoint: str = "best", overrides: Sequence[str] = (),
              show: bool = True) -> dict[str, Any]:
    """Audit a finished run; writes ``private/audit/`` and returns the (private) summary."""
    from paczero.settings import load_run_config
    from paczero.data.registry import dev_source
    from paczero.mechanisms.registry import spec

    run = RunDir.open(run_dir)
    cfg = load_run_config(run.path, overrides)
    metrics = run.read_metrics()
    if metrics is None:
        raise PaczeroError(f"{run.path} has not finished (no metrics.json): there is no released model to audit")
    secret_subset = spec(cfg.privacy.mechanism).trains_on_secret_subset
    if not secret_subset and dev_source(cfg.data) == "none":
        raise PaczeroError(f"the audit of a {cfg.privacy.mechanism} run compares the pool (trained on) with the dev set "
                           "(never trained on), and this run has no dev set (data.dev_source=none)")
    membership, j_star = (_secret_subset(run, metrics["data"]["n_pool"], cfg.privacy.n_subsets) if secret_subset
                          else (None, None))
    base, final = _losses(run, cfg, checkpoint=checkpoint, splits=["pool"] if secret_subset else ["pool", "dev"],
                          show=show and cfg.run.progress)
    n_pool = base["pool"].size
    if secret_subset and n_pool != membership.shape[0]:
        raise PaczeroError(f"the pool has {n_pool} records but membership.npy has {membership.shape[0]} rows")
    split = np.array([name for name in base for _ in range(base[name].size)])
    base_all, final_all = np.concatenate(list(base.values())), np.concatenate(list(final.values()))
    labels = membership[:, j_star].astype(np.int64) if secret_subset else (split == "pool").astype(np.int64)
    scores = {"loss": loss_scores(final_all),
              "reference": reference_scores(base_losses=base_all, final_losses=final_all)}
    attacks: dict[str, Any] = {}
    for name, s in scores.items():
        attacks[name] = attack_summary(s, labels, predicted=median_decision(s))
        if secret_subset:
            attacks[name]["candidate_p_value"] = candidate_p_value(s, membership, j_star=j_star)
    bound = metrics["privacy"]["mia_posterior_bound"]
    if secret_subset:
        attacks["transcript"], posterior = _transcript(run, membership=membership, labels=labels, j_star=j_star,
                                                       bound=bound)
        if posterior is not None:
            scores["transcript"] = posterior
    else:
        attacks["transcript"] = {"applicable": False, "reason": "no secret subset: the run trained on the whole "
                                 "pool (members = pool, non-members = dev set)"}
    summary = {"run": str(run.path), "checkpoint": checkpoint, **_describe(secret_subset),
               "n_members": int(labels.sum()), "n_nonmembers": int(labels.size - labels.sum()),
               "mia_posterior_bound": bound, "attacks": attacks, "folder": str(run.audit_dir)}
    columns = {"record": np.r_[np.arange(n_pool), np.arange(split.size - n_pool)], "split": split,
               "member": labels, "loss_base": base_all, "loss_final": final_all,
               "score_loss": scores["loss"], "score_reference": scores["reference"]}
    if "transcript" in scores:
        columns["transcript_posterior"] = scores["transcript"]
    curves = {name: (*roc_curve(s, labels)[:2], attacks[name]["auc"]) for name, s in scores.items()}
    _write_outputs(run.audit_dir, summary=summary, columns=columns, curves=curves)
    return summary
