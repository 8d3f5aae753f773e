"""Reliability: resume after SIGKILL or SIGTERM ends bit-identical; torn ledgers; refused configs."""

from __future__ import annotations

import hashlib
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import TINY_CONFIG
from paczero import checkpoint
from paczero.cli import main
from paczero.errors import PaczeroError
from paczero.trainer import Trainer

ARGS = ["train.steps=12", "train.eval_every=4", "train.checkpoint_every=3", "run.name=r", "run.output_dir=runs"]


def _hashes(run_dir: Path) -> dict[str, str]:
    return {str(p.relative_to(run_dir)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(run_dir.rglob("*")) if p.is_file() and p.name != "timings.json"}


@pytest.fixture
def reference(tiny_config, tmp_path, monkeypatch):
    """An uninterrupted run in its own folder; returns the hashes of its files (timings aside)."""
    (tmp_path / "ref").mkdir()
    monkeypatch.chdir(tmp_path / "ref")
    trainer = Trainer(tiny_config(*ARGS))
    trainer.run()
    secret = (trainer.run_dir / "secret.json").read_bytes()
    return _hashes(trainer.run_dir), secret


def _start(data_dir: Path, cwd: Path, secret: bytes | None = None, *extra: str) -> subprocess.Popen:
    cwd.mkdir(exist_ok=True)
    cmd = [sys.executable, "-m", "paczero", "train", "--config", str(TINY_CONFIG), f"data.data_dir={data_dir}",
           *ARGS, *extra]
    return subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_steps(run_dir: Path, n: int, proc: subprocess.Popen, timeout: float = 120) -> None:
    ledger = run_dir / "ledger.jsonl"
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if ledger.exists() and ledger.read_bytes().count(b"\n") >= n:
            return
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.02)
    raise AssertionError("the run did not reach the step in time")


def _resume_in_process(run_dir: Path, monkeypatch) -> None:
    monkeypatch.chdir(run_dir.parent.parent)
    assert main(["train", "--resume", "runs/r"]) == 0


def _same_secret(run_dir: Path, secret: bytes) -> None:
    """Give the interrupted run the reference's secret so that the secret file compares equal too."""
    (run_dir / "secret.json").write_bytes(secret)


@pytest.mark.parametrize("kill_after", [0, 2, 5, 7, 10])
def test_sigkill_then_resume_is_bit_identical(reference, data_dir, tmp_path, monkeypatch, kill_after):
    ref_hashes, ref_secret = reference
    cwd = tmp_path / "killed"
    proc = _start(data_dir, cwd)
    run_dir = cwd / "runs" / "r"
    _wait_for_steps(run_dir, kill_after, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert (run_dir / "secret.json").exists()
    _resume_in_process(run_dir, monkeypatch)
    ref_hashes.pop("secret.json")
    got = _hashes(run_dir)
    got.pop("secret.json")
    assert got == ref_hashes


def test_crash_while_writing_a_checkpoint_then_resume(reference, tiny_config, tmp_path, monkeypatch):
    """Fault injection: the process dies after a checkpoint's weights are written, before its state."""
    ref_hashes, ref_secret = reference
    (tmp_path / "crash").mkdir()
    monkeypatch.chdir(tmp_path / "crash")
    calls = {"n": 0}
    real = checkpoint.write_json

    class Crash(BaseException):
        pass

    def dying_write_json(path, obj, **kw):
        calls["n"] += 1
        if calls["n"] == 3:  # the third resume state (after step 6), mid-checkpoint
            raise Crash
        return real(path, obj, **kw)

    monkeypatch.setattr(checkpoint, "write_json", dying_write_json)
    trainer = Trainer(tiny_config(*ARGS))
    with pytest.raises(Crash):
        trainer.run()
    monkeypatch.setattr(checkpoint, "write_json", real)
    assert (trainer.run_dir / "checkpoints" / ".last.tmp").exists()  # the half-written checkpoint
    _same_secret(trainer.run_dir, ref_secret)
    # a torn last ledger line, as a kill in the middle of an append would leave
    with open(trainer.run_dir / "ledger.jsonl", "a") as fh:
        fh.write('{"directions":[{"kind":"co')
    _resume_in_process(trainer.run_dir, monkeypatch)
    assert _hashes(trainer.run_dir) == ref_hashes
    assert not (trainer.run_dir / "checkpoints" / ".last.tmp").exists()


def test_interrupted_replacement_is_recovered(tmp_path):
    last = tmp_path / "last"
    (tmp_path / ".last.old").mkdir()
    (tmp_path / ".last.old" / checkpoint.STATE_FILE).write_text('{"step": 3}')
    assert checkpoint.load_state(last) == {"step": 3}
    assert last.is_dir() and not (tmp_path / ".last.old").exists()


def test_sigterm_writes_a_checkpoint_and_resumes(reference, data_dir, tmp_path, monkeypatch):
    ref_hashes, ref_secret = reference
    cwd = tmp_path / "term"
    proc = _start(data_dir, cwd)
    run_dir = cwd / "runs" / "r"
    _wait_for_steps(run_dir, 1, proc)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    if proc.returncode == 0:
        pytest.skip("the run finished before the signal arrived")
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "Resume with: paczero train --resume" in err
    state = checkpoint.load_state(run_dir / "checkpoints" / "last")
    assert state is not None
    assert (run_dir / "ledger.jsonl").read_bytes().count(b"\n") == state["step"]
    _same_secret(run_dir, ref_secret)
    _resume_in_process(run_dir, monkeypatch)
    assert _hashes(run_dir) == ref_hashes


def test_resume_with_another_config_is_refused(tiny_config, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    trainer = Trainer(tiny_config(*ARGS, "train.steps=2"))
    trainer.setup()
    with pytest.raises(PaczeroError, match=r"train\.lr"):
        Trainer.resume(trainer.run_dir, config=tiny_config(*ARGS, "train.steps=2", "train.lr=0.5"))
    assert main(["train", "--resume", str(trainer.run_dir), "zo.clip=3"]) == 2
    assert "zo.clip" in capsys.readouterr().err


def test_finished_runs_cannot_resume_and_can_forget_their_secret(tiny_config, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    unfinished = Trainer(tiny_config(*ARGS, "run.name=u"))
    unfinished.setup()
    assert main(["train", "--forget-secret", str(unfinished.run_dir)]) == 2
    assert (unfinished.run_dir / "secret.json").exists()
    trainer = Trainer(tiny_config(*ARGS, "train.steps=2"))
    trainer.run()
    assert main(["train", "--resume", str(trainer.run_dir)]) == 2
    assert "finished" in capsys.readouterr().err
    assert main(["train", "--forget-secret", str(trainer.run_dir)]) == 0
    assert not (trainer.run_dir / "secret.json").exists()
    assert not any("secret" in p.name for p in (trainer.run_dir / "checkpoints").rglob("*"))


def _crash_at_third_checkpoint(trainer: Trainer, monkeypatch) -> None:
    real = checkpoint.write_json
    calls = {"n": 0}

    class Crash(BaseException):
        pass

    def dying_write_json(path, obj, **kw):
        calls["n"] += 1
        if calls["n"] == 3:
            raise Crash
        return real(path, obj, **kw)

    monkeypatch.setattr(checkpoint, "write_json", dying_write_json)
    with pytest.raises(Crash):
        trainer.run()
    monkeypatch.setattr(checkpoint, "write_json", real)


@pytest.mark.parametrize("extra", [
    ("privacy.mechanism=mi", "privacy.budget=0.3"),
    ("privacy.mechanism=dpaggzo", "privacy.epsilon=2", "privacy.sample_rate=0.3", "zo.directions=2"),
], ids=["mi", "dpaggzo"])
def test_keyed_runs_resume_bit_identical(tiny_config, tmp_path, monkeypatch, extra):
    """The posterior, the MI spent, the keyed noise and the keyed Poisson batches survive a crash: same files
    as an uninterrupted run."""
    for where in ("crashed", "ref"):
        (tmp_path / where).mkdir()
    monkeypatch.chdir(tmp_path / "crashed")
    crashed = Trainer(tiny_config(*ARGS, *extra))
    _crash_at_third_checkpoint(crashed, monkeypatch)
    state = checkpoint.load_state(crashed.run_dir / "checkpoints" / "last")
    if "privacy.mechanism=mi" in extra:
        assert state["mechanism"]["spent"] > 0  # the resume starts from a posterior that has moved
    crashed_dir = crashed.run_dir.resolve()
    _resume_in_process(crashed_dir, monkeypatch)
    monkeypatch.chdir(tmp_path / "ref")
    from paczero.secret import SecretState

    ref = Trainer(tiny_config(*ARGS, *extra), secret=SecretState.load(crashed_dir / "secret.json"))
    ref.run()
    assert _hashes(crashed_dir) == _hashes(ref.run_dir)


def test_a_resume_that_would_change_a_released_step_is_refused(tiny_config, tmp_path, monkeypatch, capsys):
    """Steps written after the last checkpoint were published: recomputing them differently would release
    a second value under the same noise, so the resume stops and leaves the transcript as published."""
    monkeypatch.chdir(tmp_path)
    trainer = Trainer(tiny_config(*ARGS, "privacy.mechanism=mi", "privacy.budget=0.3"))
    _crash_at_third_checkpoint(trainer, monkeypatch)  # checkpoint after step 4; steps 5-6 released
    path = trainer.run_dir / "ledger.jsonl"
    lines = path.read_bytes().split(b"\n")
    assert len(lines) - 1 == 6
    lines[5] = lines[5].replace(b'"lr":', b'"lr":1e-9,"was_lr":', 1)  # what another recomputation would give
    path.write_bytes(b"\n".join(lines))
    published = path.read_bytes()
    assert main(["train", "--resume", str(trainer.run_dir)]) == 2
    assert "differently from its released ledger line" in capsys.readouterr().err
    assert path.read_bytes() == published
