"""The command line: privacy calculator values, user errors exit 2 without a traceback."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import TINY_CONFIG
from paczero.cli import main
from paczero.metrics import scalar_metrics
from paczero.privacy.bounds import dp_posterior_bound


def _json(capsys, argv) -> dict:
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


def test_privacy_dp_epsilon(capsys):
    out = _json(capsys, ["privacy", "--dp-epsilon", "2", "--json"])
    assert out["mi_nats"] == pytest.approx(0.3278, abs=1e-4)
    assert out["mia_posterior_bound"] == pytest.approx(0.8808, abs=1e-4)


def test_privacy_mi(capsys):
    out = _json(capsys, ["privacy", "--mi", "0.33", "--json"])
    assert out["dp_epsilon_equivalent"] == pytest.approx(2.0, abs=0.02)
    assert out["mia_posterior_bound"] == pytest.approx(dp_posterior_bound(out["dp_epsilon_equivalent"]), rel=1e-9)


def test_privacy_channel_is_conservative_on_both_channels(capsys):
    out = _json(capsys, ["privacy", "--channel", "--q", "0.5", "--beta", "5e-8", "--json"])
    assert out["awgn_sigma"] == pytest.approx(3162.28, rel=1e-5)  # paczero-notes §4's table
    assert 5e-8 * (1 - 1e-6) <= out["awgn_mi"] <= 5e-8 and 5e-8 * (1 - 1e-6) <= out["bsc_mi"] <= 5e-8
    assert out["bsc_sigma"] < out["awgn_sigma"] and out["bsc_true_sign_probability"] > 0.5


@pytest.mark.parametrize("argv, match", [
    (["privacy", "--channel", "--q", "0.5", "--beta", "1.0", "--json"], "beta"),
    (["privacy", "--mi", "-1"], "mi"),
    (["privacy"], "exactly one"),
    (["train", "--config", "no/such.yaml"], "not found"),
    (["train", "train.steps=0"], "train.steps"),
])
def test_user_errors_exit_2(capsys, argv, match):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("paczero: error:") and match in err and "Traceback" not in err


def test_train_bad_data_dir_leaves_no_run(tmp_path, capsys):
    argv = ["train", "--config", str(TINY_CONFIG), f"data.data_dir={tmp_path / 'missing'}",
            f"run.output_dir={tmp_path / 'runs'}"]
    assert main(argv) == 2
    assert "data directory not found" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_module_entry_point_runs():
    out = subprocess.run([sys.executable, "-m", "paczero", "privacy", "--dp-epsilon", "1", "--json"],
                         capture_output=True, text=True, check=True)
    assert json.loads(out.stdout)["mi_nats"] == pytest.approx(0.1109, abs=1e-4)


def test_eval_of_a_run_reproduces_its_test_metrics(tiny_config, capsys, tmp_path):
    from paczero.trainer import Trainer

    trainer = Trainer(tiny_config("run.name=ev", "train.steps=4", "train.eval_every=2"))
    metrics = trainer.run()
    capsys.readouterr()
    assert main(["eval", str(trainer.run_dir.path), "--splits", "test", "dev"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert scalar_metrics(out["test"]) == pytest.approx(scalar_metrics(metrics["test"]), rel=1e-6)
    assert out["test"]["confusion_matrix"] == metrics["test"]["confusion_matrix"]
    assert main(["eval", str(tmp_path / "nothing")]) == 2
    capsys.readouterr()
    assert main(["eval", str(trainer.run_dir.path), "--splits", "pool"]) == 2  # the pool's figures are private
    assert "--private" in capsys.readouterr().err
    assert main(["eval", str(trainer.run_dir.path), "--splits", "pool", "--private"]) == 0
    assert {"loss", "accuracy"} <= set(json.loads(capsys.readouterr().out)["pool"])


def test_train_command_prints_accuracies_and_statement(data_dir, tmp_path, capsys):
    argv = ["train", "--config", str(TINY_CONFIG), "--data-dir", str(data_dir),
            f"run.output_dir={tmp_path / 'runs'}", "train.steps=2", "train.eval_every=1"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "test accuracy before training" in out and "test accuracy after training" in out
    assert "I = 0 nats, MIA posterior <= 0.5" in out and "next: paczero privacy" in out
    assert [line for line in out.splitlines() if "unanimity" in line][0].startswith("[private] ")


def test_version(capsys):
    import paczero

    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0 and capsys.readouterr().out == f"paczero {paczero.__version__}\n"


def test_a_yaml_syntax_error_exits_2_with_one_line(tmp_path, capsys):
    path = tmp_path / "broken.yaml"
    path.write_text("train:\n  steps: 1\n   lr: 2\n")
    assert main(["train", "--config", str(path), f"run.output_dir={tmp_path / 'runs'}"]) == 2
    err = capsys.readouterr().err
    assert err == f"paczero: error: {path}:3: not valid YAML (mapping values are not allowed in this context)\n"
    assert not (tmp_path / "runs").exists()
