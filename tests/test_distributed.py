"""torchrun data parallelism: two gloo processes reproduce the one-process run; a dead rank ends the job
with a resumable checkpoint instead of a hang."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from conftest import TINY_CONFIG
from paczero.settings import load_config
from paczero.secret import SecretState
from paczero.trainer import Trainer

TIMEOUT = 240


def _torchrun(cwd: Path, data_dir: Path, *overrides: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "paczero",
           "train", "--config", str(TINY_CONFIG), f"data.data_dir={data_dir}", "model.threads=1", *overrides]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _one_process(cfg, secret: SecretState) -> Path:
    threads = torch.get_num_threads()
    try:
        trainer = Trainer(cfg, secret=secret)
        trainer.run()
    finally:
        torch.set_num_threads(threads)
    return trainer.run_dir.path


def _metrics(run: Path) -> dict:
    metrics = json.loads((run / "metrics.json").read_text())
    metrics["config"]["run"].pop("name")
    metrics["config"]["run"].pop("output_dir")
    return metrics


@pytest.mark.slow
@pytest.mark.parametrize("mechanism", [("privacy.mechanism=zpl",), ("privacy.mechanism=mi",),
                                       ("privacy.mechanism=zpl", "model.tiny.num_layers=3", "model.train_top_layers=1",
                                        "zo.cache_prefix=true")], ids=["zpl", "mi", "zpl-cached-prefix"])
def test_two_processes_give_the_one_process_run(tiny_config, data_dir, tmp_path, mechanism):
    extra = [*mechanism, "privacy.budget=0.3", "train.steps=8", "train.eval_every=4",
             "zo.micro_batch=16"]  # 4 micro-batches of the 64-record pool: 2 per rank
    proc = _torchrun(tmp_path, data_dir, "run.name=two", "run.output_dir=runs", *extra)
    out, err = proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == 0, err[-3000:]
    two = tmp_path / "runs" / "two"
    assert out.count("run directory:") == 1  # only rank 0 prints
    one = _one_process(tiny_config("run.name=one", "model.threads=1", *extra),
                       SecretState.load(two / "private" / "secret.json"))
    for name in ("transcript.jsonl", "evaluations.jsonl", "private/releases.jsonl", "private/diagnostics.jsonl"):
        assert (one / name).read_bytes() == (two / name).read_bytes(), name
    for name in ("last", "best"):
        assert ((one / "checkpoints" / name / "model.safetensors").read_bytes()
                == (two / "checkpoints" / name / "model.safetensors").read_bytes())
    assert _metrics(one) == _metrics(two)


def _rank_pid(parent: int, rank: int) -> int | None:
    """The pid of the worker with RANK=rank among ``parent``'s descendants."""
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            stat = Path(f"/proc/{pid}/stat").read_text().split()
        except OSError:
            continue
        if int(stat[3]) == parent and f"RANK={rank}".encode() in environ:
            return int(pid)
    return None


@pytest.mark.slow
def test_a_killed_rank_ends_the_job_with_a_resumable_checkpoint(tiny_config, data_dir, tmp_path, monkeypatch):
    extra = ["train.steps=400", "train.eval_every=400", "train.checkpoint_every=5", "zo.micro_batch=16",
             "train.eval_before=false", "run.dist_timeout_s=60"]
    proc = _torchrun(tmp_path, data_dir, "run.name=r", "run.output_dir=runs", *extra)
    ledger = tmp_path / "runs" / "r" / "transcript.jsonl"
    deadline = time.monotonic() + TIMEOUT
    while not (ledger.exists() and ledger.read_bytes().count(b"\n") >= 12):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.02)
    victim = _rank_pid(proc.pid, 1)
    assert victim is not None
    os.kill(victim, signal.SIGKILL)
    _, err = proc.communicate(timeout=TIMEOUT)  # no hang: the job ends well within the timeout
    assert proc.returncode != 0
    assert "failed" in err.lower()
    done = ledger.read_bytes().count(b"\n")
    assert 12 <= done < 400
    # The run resumes in one process and finishes with a complete, contiguous transcript.
    monkeypatch.chdir(tmp_path)
    threads = torch.get_num_threads()
    try:
        cfg = load_config(TINY_CONFIG, [f"data.data_dir={data_dir}", "model.threads=1", "run.name=r",
                                        "run.output_dir=runs", *extra])
        Trainer.resume(tmp_path / "runs" / "r", config=cfg).train()
    finally:
        torch.set_num_threads(threads)
    steps = [json.loads(line)["step"] for line in ledger.read_text().splitlines()]
    assert steps == list(range(400))
