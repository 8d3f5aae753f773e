"""Reliability: resume after SIGKILL, SIGTERM or a crash anywhere ends bit-identical to an uninterrupted run, and
never rewrites a published line: recomputed steps are checked against the transcript in place."""

from __future__ import annotations

import hashlib
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import TINY_CONFIG
from paczero import checkpoint, rundir
from paczero.cli import main
from paczero.settings import load_config
from paczero.errors import PaczeroError
from paczero.rundir import RunDir
from paczero.secret import SecretState
from paczero.trainer import Trainer

ARGS = ["train.steps=12", "train.eval_every=4", "train.checkpoint_every=3", "run.name=r", "run.output_dir=runs"]
IGNORED = {"private/secret.json", "private/timings.json"}


class Crash(BaseException):
    """An injected fault (a BaseException, like a kill: nothing catches it)."""


def _hashes(run_dir: Path) -> dict[str, str]:
    """Every file of a run but the secret and the timings (a ZPL run's other files do not depend on the secret)."""
    run_dir = Path(run_dir)
    return {str(p.relative_to(run_dir)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(run_dir.rglob("*")) if p.is_file() and str(p.relative_to(run_dir)) not in IGNORED}


@pytest.fixture(scope="module")
def config(data_dir):
    def make(*extra: str):
        return load_config(TINY_CONFIG, [f"data.data_dir={data_dir}", *ARGS, *extra])
    return make


@pytest.fixture(scope="module")
def reference(config, tmp_path_factory):
    """One uninterrupted ZPL run for the whole module: the hashes of its files and its transcript's lines."""
    with pytest.MonkeyPatch.context() as mp:  # the same relative run.output_dir as every run here: equal configs
        mp.chdir(tmp_path_factory.mktemp("ref"))
        trainer = Trainer(config())
        trainer.run()
        return _hashes(trainer.run_dir.path), trainer.run_dir.transcript_path.read_bytes().split(b"\n")[:-1]


def _start(data_dir: Path, cwd: Path) -> subprocess.Popen:
    cwd.mkdir(exist_ok=True)
    cmd = [sys.executable, "-m", "paczero", "train", "--config", str(TINY_CONFIG), f"data.data_dir={data_dir}", *ARGS]
    return subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_steps(run_dir: Path, n: int, proc: subprocess.Popen, timeout: float = 120) -> None:
    transcript = run_dir / "transcript.jsonl"
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if transcript.exists() and transcript.read_bytes().count(b"\n") >= n:
            return
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.02)
    raise AssertionError("the run did not reach the step in time")


def _resume(run_dir: Path) -> int:
    return main(["train", "--resume", str(run_dir)])


@pytest.mark.slow
@pytest.mark.parametrize("kill_after", [0, 2, 5, 7, 10])
def test_sigkill_then_resume_is_bit_identical(reference, data_dir, tmp_path, kill_after):
    ref_hashes, _ = reference
    cwd = tmp_path / "killed"
    proc = _start(data_dir, cwd)
    run_dir = cwd / "runs" / "r"
    _wait_for_steps(run_dir, kill_after, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert (run_dir / "private" / "secret.json").exists()
    assert _resume(run_dir) == 0
    assert _hashes(run_dir) == ref_hashes


def _crash_at_third_checkpoint(cfg, monkeypatch) -> Trainer:
    """Run until the third ``checkpoints/last`` (after step 6) dies while its progress file is written; the last
    complete checkpoint is then after step 4, and steps 5 and 6 are already in the transcript."""
    real = checkpoint.write_json
    calls = {"n": 0}

    def dying_write_json(path, obj, **kw):
        calls["n"] += 1
        if calls["n"] == 3:
            raise Crash
        return real(path, obj, **kw)

    monkeypatch.setattr(checkpoint, "write_json", dying_write_json)
    trainer = Trainer(cfg)
    with pytest.raises(Crash):
        trainer.run()
    monkeypatch.setattr(checkpoint, "write_json", real)
    return trainer


def test_crash_while_writing_a_checkpoint_with_a_torn_line_then_resume(reference, config, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ref_hashes, ref_lines = reference
    trainer = _crash_at_third_checkpoint(config("run.output_dir=runs"), monkeypatch)
    run = trainer.run_dir
    assert run.checkpoint(".last.tmp").exists()  # the half-written checkpoint
    assert run.read_progress()["step"] == 4 and run.transcript_path.read_bytes().count(b"\n") == 6
    with open(run.transcript_path, "ab") as fh:  # a kill in the middle of an append leaves a prefix of line 7
        fh.write(ref_lines[6][:37])
    assert _resume(run.path) == 0
    assert _hashes(run.path) == ref_hashes
    assert not run.checkpoint(".last.tmp").exists()


def test_a_torn_line_that_the_recomputation_contradicts_is_refused(config, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    trainer = _crash_at_third_checkpoint(config("run.output_dir=runs"), monkeypatch)
    path = trainer.run_dir.transcript_path
    with open(path, "ab") as fh:
        fh.write(b'{"directions":[{"seed":1,"value":')
    published = path.read_bytes()
    assert _resume(trainer.run_dir.path) == 2
    assert "differently" in capsys.readouterr().err
    assert path.read_bytes() == published


def test_crashes_while_recomputing_published_steps_never_shorten_the_transcript(reference, config, tmp_path,
                                                                                 monkeypatch):
    """Crash the resume while it re-derives step 5 (already published), then crash the next resume while it
    re-derives step 6: the transcript on disk keeps every line throughout, and the third resume completes the run
    identical to an uninterrupted one."""
    monkeypatch.chdir(tmp_path)
    ref_hashes, _ = reference
    trainer = _crash_at_third_checkpoint(config("run.output_dir=runs"), monkeypatch)
    run = trainer.run_dir
    sizes = [run.transcript_path.stat().st_size]
    real = rundir.AppendOnlyLog.write
    for crash_at in (4, 5):  # 0-based line index: steps 5 and 6 of the 1-based count
        def dying(self, index, line, crash_at=crash_at):
            if self.path.name == "transcript.jsonl" and index == crash_at:
                raise Crash
            return real(self, index, line)

        monkeypatch.setattr(rundir.AppendOnlyLog, "write", dying)
        with pytest.raises(Crash):
            _resume(run.path)
        monkeypatch.setattr(rundir.AppendOnlyLog, "write", real)
        sizes.append(run.transcript_path.stat().st_size)
    assert sizes == sorted(sizes) and sizes[0] == sizes[-1]
    assert _resume(run.path) == 0
    assert _hashes(run.path) == ref_hashes


def test_interrupted_replacement_is_recovered(tmp_path):
    run = RunDir.create(tmp_path / "r")
    old = run.checkpoint(".last.old")
    old.mkdir(parents=True)
    (old / checkpoint.PROGRESS_FILE).write_text('{"step": 3}')
    assert run.read_progress() == {"step": 3}
    assert run.checkpoint("last").is_dir() and not old.exists()


@pytest.mark.slow
def test_sigterm_writes_a_checkpoint_and_resumes(reference, data_dir, tmp_path):
    ref_hashes, _ = reference
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
    progress = RunDir(run_dir).read_progress()
    assert (run_dir / "transcript.jsonl").read_bytes().count(b"\n") == progress["step"]
    assert _resume(run_dir) == 0
    assert _hashes(run_dir) == ref_hashes


def test_resume_with_another_config_is_refused(config, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    cfg = config("run.output_dir=runs", "train.steps=2")
    trainer = Trainer(cfg)
    trainer.setup()
    with pytest.raises(PaczeroError, match=r"train\.lr"):
        Trainer.resume(trainer.run_dir.path, config=config("run.output_dir=runs", "train.steps=2",
                                                           "train.lr=0.5"))
    assert main(["train", "--resume", str(trainer.run_dir.path), "zo.clip=3"]) == 2
    assert "zo.clip" in capsys.readouterr().err


def test_finished_runs_cannot_resume_and_can_forget_their_secret(config, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    unfinished = Trainer(config("run.output_dir=runs", "run.name=u"))
    unfinished.setup()
    assert main(["train", "--forget-secret", str(unfinished.run_dir.path)]) == 2
    assert unfinished.run_dir.secret_path.exists()
    trainer = Trainer(config("run.output_dir=runs", "train.steps=2", "privacy.mechanism=mi"))
    trainer.run()
    run = trainer.run_dir
    public = {p: (run.path / p).read_bytes() for p in run.public_files()}
    assert main(["train", "--resume", str(run.path)]) == 2
    assert "finished" in capsys.readouterr().err
    assert main(["audit", str(run.path)]) == 0
    capsys.readouterr()
    assert main(["train", "--forget-secret", str(run.path)]) == 0
    out = capsys.readouterr().out
    for name in ("secret.json", "releases.jsonl", "summary.json", "scores.csv"):
        assert name in out
    remaining = {p.relative_to(run.private) for p in run.private.rglob("*") if p.is_file()}
    assert remaining == {Path("diagnostics.jsonl"), Path("paths.json")}  # pool figures, data paths: no J*, no key
    assert {p: (run.path / p).read_bytes() for p in run.public_files()} == public
    assert main(["audit", str(run.path)]) == 2


@pytest.mark.parametrize("extra", [
    ("privacy.mechanism=mi", "privacy.budget=0.3"),
    ("privacy.mechanism=dpaggzo", "privacy.epsilon=2", "privacy.sample_rate=0.3", "zo.directions=2"),
], ids=["mi", "dpaggzo"])
def test_keyed_runs_resume_bit_identical(config, tmp_path, monkeypatch, extra):
    """The posterior, the MI spent, the keyed noise and the keyed Poisson batches survive a crash: same files as an
    uninterrupted run with the same secret."""
    for where in ("a", "b"):
        (tmp_path / where).mkdir()
    monkeypatch.chdir(tmp_path / "a")
    crashed = _crash_at_third_checkpoint(config(*extra), monkeypatch)
    state = crashed.run_dir.load_state(4)
    if "privacy.mechanism=mi" in extra:
        assert state["mechanism"]["spent"] > 0  # the resume starts from a posterior that has moved
    assert _resume(crashed.run_dir.path) == 0
    secret = crashed.run_dir.load_secret()
    monkeypatch.chdir(tmp_path / "b")
    ref = Trainer(config(*extra), secret=secret)
    ref.run()
    assert _hashes(tmp_path / "a" / "runs" / "r") == _hashes(tmp_path / "b" / "runs" / "r")


def test_a_resume_that_would_change_a_released_step_is_refused(config, tmp_path, monkeypatch, capsys):
    """Steps written after the last checkpoint were published: recomputing them differently would release a second
    value under the same noise, so the resume stops and leaves the transcript as published."""
    monkeypatch.chdir(tmp_path)
    trainer = _crash_at_third_checkpoint(config("run.output_dir=runs", "privacy.mechanism=mi",
                                                "privacy.budget=0.3"), monkeypatch)
    path = trainer.run_dir.transcript_path
    lines = path.read_bytes().split(b"\n")
    assert len(lines) - 1 == 6
    lines[5] = lines[5].replace(b'"lr":', b'"lr":1e-9,"was_lr":', 1)  # what another recomputation would give
    path.write_bytes(b"\n".join(lines))
    published = path.read_bytes()
    assert _resume(trainer.run_dir.path) == 2
    assert "differently from its published transcript line" in capsys.readouterr().err
    assert path.read_bytes() == published


def test_secret_stays_out_of_the_public_files(config, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    secret = SecretState(key=bytes(range(32)), j_star=5)
    trainer = Trainer(config("run.output_dir=runs", "train.steps=2", "privacy.mechanism=mi"),
                      secret=secret)
    trainer.run()
    for p in trainer.run_dir.public_files():
        assert secret.key.hex().encode() not in (trainer.run_dir.path / p).read_bytes()
