"""``paczero audit`` end to end on tiny runs: ZPL (consistent with chance), a leaky MI run and a leaky toy
mechanism (found), the missing-secret error, and the pool-vs-dev audit of a run without candidate subsets."""

from __future__ import annotations

import csv
import json
import shutil
import stat

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from conftest import TINY_CONFIG
from paczero.audit import audit_run
from paczero.audit.transcript import membership_posterior
from paczero.cli import main
from paczero.settings import load_config
from paczero.errors import PaczeroError
from paczero.mechanisms.base import Mechanism
from paczero.privacy.bounds import mia_posterior_bound
from paczero.releases import Coin
from paczero.secret import SecretState
from paczero.trainer import Trainer

J_STAR = 3


def _train(data_dir, out, *overrides, secret=None):
    cfg = load_config(TINY_CONFIG, [f"data.data_dir={data_dir}", f"run.output_dir={out}", *overrides])
    trainer = Trainer(cfg, secret=secret or SecretState(key=bytes(32), j_star=J_STAR))
    trainer.run()
    return trainer.run_dir


@pytest.fixture(scope="module")
def zpl_run(data_dir, tmp_path_factory):
    return _train(data_dir, tmp_path_factory.mktemp("runs"), "run.name=zpl")


@pytest.fixture(scope="module")
def zpl_audit(zpl_run):
    return audit_run(zpl_run.path, show=False)


def _csv(path):
    with open(path) as fh:
        return list(csv.DictReader(fh))


def test_zpl_audit_writes_only_private_outputs(zpl_run, zpl_audit):
    out = zpl_run.audit_dir
    assert stat.S_IMODE(out.stat().st_mode) == 0o700
    for name in ("summary.json", "scores.csv", "roc.png"):
        assert (out / name).stat().st_size > 0
        assert stat.S_IMODE((out / name).stat().st_mode) == 0o600  # the scores reveal S*
    assert "audit" not in zpl_run.read_metrics()
    assert not any("audit" in str(p) for p in zpl_run.public_files())
    assert json.loads((out / "summary.json").read_text()) == zpl_audit
    membership = zpl_run.read_membership()
    rows = _csv(out / "scores.csv")
    assert [int(r["member"]) for r in rows] == membership[:, J_STAR].astype(int).tolist()
    assert zpl_audit["uses_secret"] and zpl_audit["n_members"] == membership[:, J_STAR].sum()
    members = np.array([int(r["member"]) for r in rows])
    for attack, column in (("loss", "score_loss"), ("reference", "score_reference")):
        scores = np.array([float(r[column]) for r in rows])
        assert zpl_audit["attacks"][attack]["auc"] == pytest.approx(roc_auc_score(members, scores), abs=1e-6)
    np.testing.assert_allclose([float(r["score_loss"]) for r in rows], [-float(r["loss_final"]) for r in rows])


def test_zpl_attacks_are_consistent_with_chance(zpl_audit):
    """The ZPL model is a function of public information: no attack may do better than a coin."""
    for attack in ("loss", "reference"):
        low, high = zpl_audit["attacks"][attack]["auc_interval"]
        assert low <= 0.5 <= high
    transcript = zpl_audit["attacks"]["transcript"]
    assert transcript["auc"] == 0.5 and transcript["bayes_success"] == 0.5
    assert transcript["theoretical_bound"] == 0.5 and transcript["consistent_with_bound"]
    assert transcript["secret_subset_posterior"] == pytest.approx(1 / 8)


def test_leaky_mi_run_is_found_by_the_transcript_attack(data_dir, tmp_path):
    """A budget of 5 nats on 8 subsets lets the bits single out S*; the attack must find it, within the (then
    vacuous) bound, and its posterior must be the one the mechanism itself tracked."""
    run = _train(data_dir, tmp_path, "run.name=mi", "privacy.mechanism=mi", "privacy.budget=5",
                 "privacy.allow_vacuous=true")
    summary = audit_run(run.path, show=False)
    transcript = summary["attacks"]["transcript"]
    assert transcript["auc"] > 0.95 and transcript["bayes_success"] > 0.9
    assert transcript["theoretical_bound"] == mia_posterior_bound(5.0)
    assert transcript["consistent_with_bound"]
    state = run.load_state(run.read_progress()["step"])
    tracked = membership_posterior(np.array(state["mechanism"]["log_posterior"]), run.read_membership())
    rows = _csv(run.audit_dir / "scores.csv")
    np.testing.assert_allclose([float(r["transcript_posterior"]) for r in rows], tracked, atol=1e-8)


class SecretMeanLeak(Mechanism):
    """A deliberately broken mechanism: releases the S*-only mean estimate, unquantised and without noise, and
    labels it a coin, so the run's statement claims I = 0. Plain ZO-SGD on S*."""

    name = "leak"

    def __init__(self, membership, secret):
        self.members = membership[:, secret.j_star]

    def release_step(self, estimates, *, step):
        return [Coin(value=float(np.mean(estimates[self.members, 0])))]


@pytest.mark.slow  # a 300-step run
def test_leaky_toy_mechanism_is_found_by_the_loss_attack(data_dir, tmp_path, monkeypatch):
    monkeypatch.setattr("paczero.build.build_mechanism", lambda cfg, membership, secret: SecretMeanLeak(
        membership, secret))
    run = _train(data_dir, tmp_path, "run.name=leak", "data.n_pool=32", "privacy.n_subsets=2", "train.steps=300",
                 "train.lr=0.001", "train.lr_schedule=constant", "train.eval_every=300", "train.eval_before=false",
                 secret=SecretState(key=bytes(32), j_star=0))
    summary = audit_run(run.path, show=False)
    for attack in ("loss", "reference"):
        assert summary["attacks"][attack]["auc_interval"][0] > 0.5
        assert summary["attacks"][attack]["leak_p_value"] < 0.01
    assert summary["attacks"]["transcript"]["auc"] == 0.5  # coins without signs: nothing to weigh


def test_deleted_secret_is_a_clear_error(zpl_run, tmp_path, capsys):
    run = tmp_path / "copy"
    shutil.copytree(zpl_run.path, run)
    assert main(["train", "--forget-secret", str(run)]) == 0
    capsys.readouterr()
    assert main(["audit", str(run)]) == 2
    err = capsys.readouterr().err
    assert "secret.json was deleted" in err and "--forget-secret" in err and "Traceback" not in err


def test_unfinished_and_incomplete_runs_are_refused(zpl_run, tmp_path):
    run = tmp_path / "copy"
    shutil.copytree(zpl_run.path, run)
    (run / "membership.npy").unlink()
    with pytest.raises(PaczeroError, match="no membership.npy"):
        audit_run(run, show=False)
    (run / "metrics.json").unlink()
    with pytest.raises(PaczeroError, match="has not finished"):
        audit_run(run, show=False)


def test_run_without_candidate_subsets_is_audited_pool_against_dev(zpl_run, tmp_path, monkeypatch):
    """The DP and non-private baselines train on the whole pool: members = pool, non-members = dev, and the
    secret key they may keep (for noise) is not read."""
    run = tmp_path / "baseline"
    shutil.copytree(zpl_run.path, run)
    shutil.rmtree(run / "private" / "audit")
    (run / "config.yaml").write_text((run / "config.yaml").read_text().replace("mechanism: zpl", "mechanism: mezo"))
    summary = audit_run(run, show=False)
    assert not summary["uses_secret"] and (summary["n_members"], summary["n_nonmembers"]) == (64, 32)
    assert summary["attacks"]["transcript"]["applicable"] is False
    rows = _csv(run / "private" / "audit" / "scores.csv")
    assert [r["split"] for r in rows] == ["pool"] * 64 + ["dev"] * 32
    assert [int(r["member"]) for r in rows] == [1] * 64 + [0] * 32
    assert stat.S_IMODE((run / "private" / "audit" / "scores.csv").stat().st_mode) == 0o600  # pool losses


def test_cli_audit_prints_every_attack_as_private(zpl_run, capsys):
    assert main(["audit", str(zpl_run.path)]) == 0
    out = capsys.readouterr().out
    assert "uses the secret" in out and "loss attack: AUC" in out and "reference attack: AUC" in out
    assert "Bayes-optimal success 0.500" in out and "bound 0.5000" in out
    assert all(line.startswith("[private] ") for line in out.splitlines())
    assert main(["audit", str(zpl_run.path), "--json"]) == 0  # untagged: only where the private summary is
    assert json.loads(capsys.readouterr().out) == {"private_summary": str(zpl_run.private / "audit" / "summary.json")}
    assert main(["audit", str(zpl_run.path), "--json", "--private"]) == 0
    assert json.loads(capsys.readouterr().out)["attacks"]["transcript"]["bayes_success"] == 0.5
