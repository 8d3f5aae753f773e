"""The user's error type: the message is one public line; the private part stays off it and is printed by the CLI
only on a second line tagged ``[private]``."""

from __future__ import annotations

import signal

import pytest

from paczero import cli
from paczero.errors import PRIVATE_TAG, Interrupted, PaczeroError

SECRET_VALUE = "the record reads: my diagnosis is X"


def test_the_private_part_is_kept_off_the_message():
    exc = PaczeroError("data.jsonl line 3: field 'label' is not an integer", private=SECRET_VALUE)
    assert exc.private == SECRET_VALUE
    assert SECRET_VALUE not in str(exc) and SECRET_VALUE not in repr(exc)
    assert all(SECRET_VALUE not in str(a) for a in exc.args)
    assert PaczeroError("plain").private is None


def test_the_cli_prints_the_private_part_only_on_a_tagged_line(monkeypatch, capsys):
    def fail(args):
        raise PaczeroError("data.jsonl line 3: field 'label' is not an integer", private=SECRET_VALUE)

    monkeypatch.setattr(cli, "_cmd_privacy", fail)
    assert cli.main(["privacy", "--mi", "0.1"]) == 2
    out, err = capsys.readouterr()
    assert SECRET_VALUE not in out
    lines = err.splitlines()
    assert lines[0] == "paczero: error: data.jsonl line 3: field 'label' is not an integer"
    assert [line for line in lines if SECRET_VALUE in line] == [f"{PRIVATE_TAG} {SECRET_VALUE}"]
    assert "Traceback" not in err


def test_an_error_without_a_private_part_prints_one_line(monkeypatch, capsys):
    def fail(args):
        raise PaczeroError("train.steps=0 is invalid; expected >= 1")

    monkeypatch.setattr(cli, "_cmd_privacy", fail)
    assert cli.main(["privacy", "--mi", "0.1"]) == 2
    assert capsys.readouterr().err.splitlines() == ["paczero: error: train.steps=0 is invalid; expected >= 1"]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_an_interruption_exits_128_plus_the_signal_and_says_how_to_resume(signum, tmp_path):
    exc = Interrupted(tmp_path / "run", 41, signum)
    assert isinstance(exc, PaczeroError)
    assert exc.exit_code == 128 + int(signum)
    assert signal.Signals(signum).name in str(exc) and "after step 41" in str(exc)
    assert f"paczero train --resume {tmp_path / 'run'}" in str(exc) and "\n" not in str(exc)
