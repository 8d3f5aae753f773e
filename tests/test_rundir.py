"""The run folder: public and private files, append-only logs, and who can read what while a run goes on."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from conftest import TINY_CONFIG
from paczero.errors import PaczeroError
from paczero.rundir import AppendOnlyLog, PublishedLineMismatch, RunDir, check_outside_public_side

NOBODY = 65534


def _as_nobody() -> None:
    os.setgid(NOBODY)
    os.setuid(NOBODY)


def _other_user_reads(path: Path) -> bool:
    """Whether another local user (``nobody``) can read ``path``; needs root to become that user."""
    return subprocess.run(["cat", str(path)], preexec_fn=_as_nobody, capture_output=True).returncode == 0


def test_append_only_log_checks_republished_lines_and_completes_a_torn_one(tmp_path):
    log = AppendOnlyLog(tmp_path / "t.jsonl")
    log.write(0, b'{"a":1}')
    log.write(1, b'{"a":2}')
    (tmp_path / "t.jsonl").write_bytes(b'{"a":1}\n{"a":2}\n{"a"')  # a crash cut line 3 short
    again = AppendOnlyLog(tmp_path / "t.jsonl")
    again.write(0, b'{"a":1}')
    with pytest.raises(PublishedLineMismatch):
        again.write(1, b'{"a":9}')
    with pytest.raises(PublishedLineMismatch):
        again.write(2, b'{"b":3}')
    again.write(2, b'{"a":3}')
    assert (tmp_path / "t.jsonl").read_bytes() == b'{"a":1}\n{"a":2}\n{"a":3}\n'


def test_a_closed_run_folder_opens_when_the_run_ends(tmp_path):
    run = RunDir.create(tmp_path / "r", closed=True)
    assert stat.S_IMODE(run.path.stat().st_mode) == 0o700
    assert stat.S_IMODE(run.private.stat().st_mode) == 0o700
    run.open_to_all()
    assert stat.S_IMODE(run.path.stat().st_mode) == 0o755 and stat.S_IMODE(run.private.stat().st_mode) == 0o700


def test_nothing_is_written_among_a_runs_public_files(tmp_path):
    run = RunDir.create(tmp_path / "r")
    (run.path / "transcript.jsonl").write_text("")
    run.write_config("run: {}\n")
    for inside in (run.path, run.path / "x", run.path / "checkpoints" / "y"):
        with pytest.raises(PaczeroError, match="among its public files"):
            check_outside_public_side(inside, what="a report")
    check_outside_public_side(run.private / "report", what="a report")
    check_outside_public_side(tmp_path / "elsewhere", what="a report")


@pytest.mark.slow
def test_another_user_cannot_time_a_running_dp_runs_steps(data_dir):
    """A DP step's duration follows its secret Poisson batch, and the transcript grows once per step: while the run
    goes on its folder is closed to other users (the control: once it has finished, they read it)."""
    root = Path(tempfile.mkdtemp(prefix="paczero-observer-"))
    try:
        root.chmod(0o755)  # reachable by other users: only the run folder's own mode keeps them out
        cmd = [sys.executable, "-m", "paczero", "train", "--config", str(TINY_CONFIG), f"data.data_dir={data_dir}",
               f"run.output_dir={root}", "run.name=dp", "privacy.mechanism=dpzero", "privacy.epsilon=2",
               "train.steps=400", "train.eval_every=400", "train.checkpoint_every=400"]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        transcript = root / "dp" / "transcript.jsonl"
        end = time.monotonic() + 300
        while not (transcript.exists() and transcript.read_bytes().count(b"\n") >= 2):
            assert proc.poll() is None and time.monotonic() < end, proc.communicate()
            time.sleep(0.01)
        running = stat.S_IMODE((root / "dp").stat().st_mode)
        seen_running = _other_user_reads(transcript) if os.geteuid() == 0 else None
        assert proc.wait(timeout=300) == 0, proc.communicate()
        assert running == 0o700 and stat.S_IMODE((root / "dp").stat().st_mode) == 0o755
        if seen_running is not None:
            assert not seen_running and _other_user_reads(transcript)
            assert not _other_user_reads(root / "dp" / "private" / "secret.json")
    finally:
        subprocess.run(["rm", "-rf", str(root)], check=True)
