"""End-to-end tiny runs of the baselines and ablations: ledger, statement, replay, what they log."""

from __future__ import annotations

import hashlib
import json

import pytest

from paczero import ledger
from paczero.cli import main
from paczero.privacy.accounting import dp_epsilon
from paczero.privacy.bounds import dp_posterior_bound
from paczero.secret import SecretState
from paczero.trainer import Trainer

DP = {"dpzero": ["privacy.epsilon=2.0", "privacy.sample_rate=0.25"],
      "dpaggzo": ["privacy.epsilon=2.0", "privacy.sample_rate=0.25", "zo.directions=3"]}
RUNS = {"mezo": ["train.batch_size=8"], **DP,
        **{a: [] for a in ("raw_full", "quant_full", "raw_half", "quant_half", "random_sign")}}
COMMON = ["train.steps=6", "train.eval_every=3", "train.eval_before=false"]


def _run(tiny_config, mechanism, *extra, secret=None):
    trainer = Trainer(tiny_config(f"privacy.mechanism={mechanism}", f"run.name={mechanism}", *COMMON,
                                  *RUNS[mechanism], *extra), secret=secret)
    metrics = trainer.run()
    return trainer, metrics


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("mechanism", sorted(RUNS))
def test_every_mechanism_runs_end_to_end_and_replays(tiny_config, tmp_path, mechanism):
    trainer, metrics = _run(tiny_config, mechanism)
    records = ledger.read(trainer.run_dir)
    K = trainer.cfg.zo.directions
    assert [r["step"] for r in records] == list(range(6)) and all(len(r["directions"]) == K for r in records)
    kinds = {d["kind"] for r in records for d in r["directions"]}
    assert kinds == {"projected" if mechanism == "mezo" else "dp" if mechanism in DP else mechanism}
    if mechanism.startswith("quant") or mechanism == "random_sign":
        assert {abs(d["value"]) for r in records for d in r["directions"]} == {1.0}
    # The final weights are a function of the ledger alone, for every mechanism.
    assert main(["replay", str(trainer.run_dir), "--out", str(tmp_path / "rebuilt")]) == 0
    assert _sha(tmp_path / "rebuilt" / "model.safetensors") == _sha(
        trainer.run_dir / "checkpoints" / "last" / "model.safetensors")
    bound = metrics["privacy"]["mia_posterior_bound"]
    assert bound == (0.5 if mechanism == "random_sign" else bound if mechanism in DP else 1.0)


@pytest.mark.parametrize("mechanism", sorted(DP))
def test_dp_runs_state_epsilon_from_the_accountant_and_log_nothing_about_the_pool(tiny_config, mechanism):
    trainer, metrics = _run(tiny_config, mechanism)
    p = metrics["privacy"]
    cfg = trainer.cfg.privacy
    share = cfg.pool_size_fraction if mechanism == "dpaggzo" else 0.0
    # ε recomputed independently: the accountant over the steps in the ledger at the σ the run used.
    expected = dp_epsilon(noise_multiplier=p["noise_multiplier"], sample_rate=cfg.sample_rate, steps=6,
                          delta=cfg.delta) + share * cfg.epsilon
    assert p["dp_epsilon"] == pytest.approx(expected, rel=1e-12)
    assert cfg.epsilon - 0.011 <= p["dp_epsilon"] <= cfg.epsilon * (1 + 1e-9)
    assert p["mia_posterior_bound"] == pytest.approx(dp_posterior_bound(p["dp_epsilon"], cfg.delta), rel=1e-12)
    assert p["accountant"] == "rdp" and p["epsilon_prv"] <= p["epsilon_rdp"] + 0.011
    # Nothing computed on the private pool (its losses, its batch, its non-finite or truncation counts).
    for line in (trainer.run_dir / "diagnostics.jsonl").read_text().splitlines():
        assert set(json.loads(line)) <= {"step", "lr", "dev_loss", "dev_accuracy"}
    assert metrics["nonfinite_estimates"] is None and "pool" not in metrics["data"]["truncated"]
    assert metrics["unanimity_rate"] is None


def test_dp_runs_depend_on_the_secret_key_and_pac_subsets_do_not_matter(tiny_config, tmp_path, monkeypatch):
    """The Poisson batches and the noise come from the secret key: another key, another transcript."""
    values = []
    for salt in (1, 2):
        monkeypatch.chdir(tmp_path)
        trainer, _ = _run(tiny_config, "dpzero", f"run.output_dir=k{salt}",
                          secret=SecretState(key=salt.to_bytes(32, "big"), j_star=0))
        values.append([r["directions"][0]["value"] for r in ledger.read(trainer.run_dir)])
    assert values[0] != values[1]


def test_privacy_dp_noise_command(capsys):
    argv = ["privacy", "--dp-noise", "--epsilon", "2", "--delta", "1e-5", "--steps", "1000", "--sample-rate",
            "0.064", "--json"]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert {"noise_multiplier", "epsilon_rdp", "epsilon_prv"} <= set(out)
    again = dp_epsilon(noise_multiplier=out["noise_multiplier"], sample_rate=0.064, steps=1000, delta=1e-5)
    assert out["epsilon_rdp"] == pytest.approx(again, rel=1e-12) and 1.989 <= again <= 2.0
    assert out["epsilon_prv"] < out["epsilon_rdp"]  # PRV is tighter than RDP here


@pytest.mark.parametrize("argv, match", [
    (["privacy", "--dp-noise", "--epsilon", "2"], "--steps"),
    (["privacy", "--dp-noise", "--epsilon", "-1", "--steps", "10", "--sample-rate", "0.1"], "epsilon"),
    (["train", "--config", "configs/examples/tiny.yaml", "privacy.mechanism=dpzero"], "privacy.epsilon"),
    (["train", "--config", "configs/examples/tiny.yaml", "privacy.mechanism=dpzero", "privacy.epsilon=1",
      "zo.directions=2"], "zo.directions"),
    (["train", "--config", "configs/examples/tiny.yaml", "privacy.mechanism=dpaggzo", "privacy.epsilon=1",
      "privacy.sample_rate=0"], "privacy.sample_rate"),
])
def test_dp_user_errors_exit_2(capsys, argv, match):
    assert main(argv) == 2
    assert match in capsys.readouterr().err
