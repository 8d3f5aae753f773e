"""End-to-end tiny runs of the baselines and ablations: transcript, statement, replay, and what they keep private."""

from __future__ import annotations

import hashlib
import json

import pytest

from paczero.cli import main
from paczero.ledger import parse_releases, parse_transcript
from paczero.privacy.accounting import dp_epsilon, noise_multiplier
from paczero.privacy.bounds import dp_posterior_bound
from paczero.secret import SecretState
from paczero.trainer import Trainer

DP = {"dpzero": ["privacy.epsilon=2.0", "privacy.sample_rate=0.25"],
      "dpaggzo": ["privacy.epsilon=2.0", "privacy.sample_rate=0.25", "zo.directions=3"]}
RUNS = {"mezo": ["train.batch_size=8"], **DP,
        **{a: [] for a in ("raw_full", "quant_full", "raw_half", "quant_half", "random_sign")}}
KINDS = {"mezo": "projected", "dpzero": "dp", "dpaggzo": "dp"}
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
    run, K = trainer.run_dir, trainer.cfg.zo.directions
    steps = parse_transcript(run.read_transcript())
    assert [s.step for s in steps] == list(range(6)) and all(len(s.directions) == K for s in steps)
    kinds = {r.kind for step in parse_releases(run.read_private(run.releases_path)) for r in step}
    assert kinds == {KINDS.get(mechanism, "ablation")}
    if mechanism.startswith("quant") or mechanism == "random_sign":
        assert {abs(d.value) for s in steps for d in s.directions} == {1.0}
    # The final weights are a function of the transcript alone, for every mechanism.
    assert main(["replay", str(run.path), "--out", str(tmp_path / "rebuilt")]) == 0
    assert _sha(tmp_path / "rebuilt" / "model.safetensors") == _sha(run.checkpoint("last") / "model.safetensors")
    expected_bound = {"random_sign": 0.5, "dpzero": None, "dpaggzo": None}.get(mechanism, 1.0)
    if expected_bound is not None:
        assert metrics["privacy"]["mia_posterior_bound"] == expected_bound
    assert (run.membership_path.is_file()) == mechanism.endswith("_half")  # only they use the subsets


@pytest.mark.parametrize("mechanism", sorted(DP))
def test_dp_runs_state_epsilon_from_the_accountant_and_keep_the_pool_private(tiny_config, mechanism):
    trainer, metrics = _run(tiny_config, mechanism)
    p, cfg = metrics["privacy"], trainer.cfg.privacy
    # ε recomputed independently: the accountant over the transcript's steps at the σ calibrated for the target.
    sigma = noise_multiplier(epsilon=cfg.epsilon, delta=cfg.delta, sample_rate=cfg.sample_rate, steps=6)
    assert p["noise_multiplier"] == sigma
    assert p["dp_epsilon"] == dp_epsilon(noise_multiplier=sigma, sample_rate=cfg.sample_rate, steps=6,
                                         delta=cfg.delta)
    assert cfg.epsilon * (1 - 1e-3) <= p["dp_epsilon"] <= cfg.epsilon
    assert p["mia_posterior_bound"] == dp_posterior_bound(p["dp_epsilon"], cfg.delta)
    assert p["neighbouring_relation"].startswith("replace-one") and "replace-one" in p["summary"]
    # Nothing computed on the private pool or its batches in any public file.
    public = json.dumps({k: v for k, v in metrics.items() if k != "config"})  # the config names micro_batch
    assert "batch" not in public and "timing" not in public and "nonfinite" not in public
    batches = [r.batch for step in parse_releases(trainer.run_dir.read_private(trainer.run_dir.releases_path))
               for r in step]
    assert len(set(batches)) > 1  # the private log does hold the (secret) batch sizes


def test_dp_runs_depend_on_the_secret_key(tiny_config, tmp_path, monkeypatch):
    """The Poisson batches and the noise come from the secret key: another key, another transcript."""
    values = []
    for salt in (1, 2):
        monkeypatch.chdir(tmp_path)
        trainer, _ = _run(tiny_config, "dpzero", f"run.output_dir=k{salt}",
                          secret=SecretState(key=salt.to_bytes(32, "big"), j_star=0))
        values.append([s.directions[0].value for s in parse_transcript(trainer.run_dir.read_transcript())])
    assert values[0] != values[1]


def test_privacy_dp_noise_command(capsys):
    argv = ["privacy", "--dp-noise", "--epsilon", "2", "--delta", "1e-5", "--steps", "1000", "--sample-rate",
            "0.064", "--json"]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["neighbouring_relation"] == "replace_one"
    again = dp_epsilon(noise_multiplier=out["noise_multiplier"], sample_rate=0.064, steps=1000, delta=1e-5)
    assert out["epsilon"] == again and 2 * (1 - 1e-3) <= again <= 2.0


@pytest.mark.parametrize("argv, match", [
    (["privacy", "--dp-noise", "--epsilon", "2"], "--steps"),
    (["privacy", "--dp-noise", "--epsilon", "-1", "--steps", "10", "--sample-rate", "0.1"], "epsilon"),
    (["train", "--config", "configs/examples/tiny.yaml", "privacy.mechanism=dpzero"], "privacy.epsilon"),
    (["train", "--config", "configs/examples/tiny.yaml", "privacy.mechanism=dpzero", "privacy.epsilon=1",
      "zo.directions=2"], "zo.directions"),
    (["train", "--config", "configs/examples/tiny.yaml", "privacy.mechanism=dpaggzo", "privacy.epsilon=1",
      "privacy.sample_rate=0"], "privacy.sample_rate"),
    (["train", "--config", "configs/examples/tiny.yaml", "privacy.mechanism=dpzero", "privacy.epsilon=1",
      "zo.clip=inf"], "zo.clip"),
])
def test_dp_user_errors_exit_2(capsys, argv, match):
    assert main(argv) == 2
    assert match in capsys.readouterr().err
