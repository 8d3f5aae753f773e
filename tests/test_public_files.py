"""Public means released: a run's public files depend on the secret only through the released values.

* ZPL: two runs that differ only in J* — each killed, resumed, audited, reported on, with TensorBoard on — leave
  byte-identical public files and print the same output apart from the lines marked private.
* MI and the DP baselines: a run with another secret (another J*, another key: other bits, other Poisson batches,
  other noise), made to release the first run's values, writes byte-identical public files: nothing else of the
  secret, of the pool or of the batches reaches them. And a replay of the public transcript alone rebuilds the
  weights.
"""

from __future__ import annotations

import dataclasses
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import TINY_CONFIG
from paczero.cli import main
from paczero.settings import load_config
from paczero.ledger import parse_releases, parse_transcript
from paczero.mechanisms import registry
from paczero.rundir import PRIVATE_TAG, RunDir
from paczero.secret import SecretState
from paczero.trainer import Trainer

ARGS = ["train.steps=8", "train.eval_every=4", "train.checkpoint_every=2", "run.name=r", "run.output_dir=runs"]


def _public(run: Path) -> dict[str, bytes]:
    run_dir = RunDir(run)
    return {str(p): (run / p).read_bytes() for p in run_dir.public_files()}


def _public_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if not line.startswith(PRIVATE_TAG)]


def _start(data_dir: Path, cwd: Path, *extra: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "paczero", "train", "--config", str(TINY_CONFIG), f"data.data_dir={data_dir}",
           *ARGS, *extra]
    return subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _kill_after(proc: subprocess.Popen, transcript: Path, steps: int) -> tuple[str, str]:
    end = time.monotonic() + 120
    while not (transcript.exists() and transcript.read_bytes().count(b"\n") >= steps):
        assert proc.poll() is None and time.monotonic() < end, proc.communicate()
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    return proc.communicate()


@pytest.mark.slow
def test_zpl_runs_differing_only_in_the_secret_publish_identical_files(data_dir, tmp_path, monkeypatch, capsys):
    outputs, publics = [], []
    for where, j_star in (("a", 0), ("b", 5)):
        base = tmp_path / where
        base.mkdir()
        monkeypatch.chdir(base)
        run = Path("runs") / "r"
        out, err = _kill_after(_start(data_dir, base, "logging.tensorboard=true"), base / run / "transcript.jsonl", 3)
        secret = RunDir(run).load_secret()
        RunDir(run).save_secret(SecretState(key=secret.key, j_star=j_star))  # ZPL has used neither so far
        assert main(["train", "--resume", str(run)]) == 0
        assert main(["audit", str(run)]) == 0
        assert main(["report", str(run), "--out", "report", "--private"]) == 0
        assert main(["privacy", str(run), "--private"]) == 0
        resumed = capsys.readouterr()
        outputs.append([_public_lines(t) for t in (out, err, resumed.out, resumed.err)])
        assert any(line.startswith(PRIVATE_TAG) for line in resumed.out.splitlines())
        publics.append({**_public(run), **{f"report/{p.name}": p.read_bytes() for p in Path("report").glob("*")
                                           if p.is_file()}})
        assert (run / "private" / "tensorboard").is_dir() and (run / "private" / "audit" / "scores.csv").is_file()
    assert outputs[0] == outputs[1]
    assert publics[0].keys() == publics[1].keys() and "transcript.jsonl" in publics[0]
    assert [k for k in publics[0] if publics[0][k] != publics[1][k]] == []


def _forced(monkeypatch, values: list[list[float]]) -> None:
    """Make every mechanism release ``values[t]`` at step t (whatever its own draw was), keeping the rest."""
    real = registry.build_mechanism

    def build(cfg, *, membership, secret):
        mech = real(cfg, membership=membership, secret=secret)
        own = mech.release_step

        def release_step(estimates, *, step):
            return [dataclasses.replace(r, value=v) for r, v in zip(own(estimates, step=step), values[step])]

        mech.release_step = release_step
        return mech

    monkeypatch.setattr("paczero.build.build_mechanism", build)


@pytest.mark.parametrize("extra", [
    ("privacy.mechanism=mi", "privacy.budget=0.3"),
    ("privacy.mechanism=dpzero", "privacy.epsilon=2", "privacy.sample_rate=0.5"),
    ("privacy.mechanism=dpaggzo", "privacy.epsilon=2", "privacy.sample_rate=0.5", "zo.directions=3"),
], ids=["mi", "dpzero", "dpaggzo"])
def test_public_files_depend_on_the_secret_only_through_the_released_values(data_dir, tmp_path, monkeypatch,
                                                                             extra):
    cfg = load_config(TINY_CONFIG, [f"data.data_dir={data_dir}", *ARGS, *extra])
    runs = []
    for where, secret in (("a", SecretState(key=bytes(32), j_star=1)),
                          ("b", SecretState(key=bytes(range(32)), j_star=6))):
        (tmp_path / where).mkdir()
        monkeypatch.chdir(tmp_path / where)
        if where == "b":
            first = parse_transcript(runs[0].read_transcript())
            _forced(monkeypatch, [[d.value for d in s.directions] for s in first])
        trainer = Trainer(cfg, secret=secret)
        trainer.run()
        runs.append(RunDir(tmp_path / where / "runs" / "r"))
    a, b = runs
    own = [[r for r in step] for step in parse_releases(b.read_private(b.releases_path))]
    first = [[r for r in step] for step in parse_releases(a.read_private(a.releases_path))]
    assert own != first  # the second run's secret did change what it computed in private
    if "dp" in extra[0]:
        assert [r.batch for s in own for r in s] != [r.batch for s in first for r in s]  # other Poisson batches
    assert _public(a.path) == _public(b.path)


DPSGD = ["model.tuning=set", "model.trainable.head_rows=true", "model.trainable.final_norm=true",
         "zo.cache_prefix=true", "privacy.mechanism=dpsgd", "privacy.epsilon=2", "privacy.sample_rate=0.5",
         "train.lr=0.05"]


@pytest.mark.slow
def test_dpsgd_public_files_depend_on_the_secret_only_through_the_noisy_gradients(data_dir, tmp_path, monkeypatch,
                                                                                  capsys):
    """DP-SGD publishes no per-step value. Two runs with other secrets (other Poisson batches, other noise): their
    public files differ in the weights and what is evaluated from them only, and hold no transcript, batch size,
    norm or timing; made to use the first run's noisy gradients, the second writes byte-identical public files and
    prints the same untagged lines — nothing else of the secret, the pool or the batches reaches them."""
    import json

    import paczero.firstorder as firstorder

    real = firstorder.noisy_gradient
    seen: dict[str, list] = {"a": [], "b": [], "c": []}
    runs, printed = {}, {}
    for where, secret in (("a", SecretState(key=bytes(32), j_star=0)), ("b", SecretState(key=bytes(range(32)),
                                                                                         j_star=0)),
                          ("c", SecretState(key=bytes(range(32)), j_star=0))):
        (tmp_path / where).mkdir()
        monkeypatch.chdir(tmp_path / where)

        def noisy(grads, *, step, where=where, **kw):
            own = real(grads, step=step, **kw)
            seen[where].append((len(grads), own))
            return seen["a"][step][1] if where == "c" else own

        monkeypatch.setattr(firstorder, "noisy_gradient", noisy)
        monkeypatch.setattr("paczero.trainer.Trainer", lambda cfg, *, secret_=secret, **kw: Trainer(
            cfg, secret=secret_, **kw))
        assert main(["train", "--config", str(TINY_CONFIG), f"data.data_dir={data_dir}", *ARGS, *DPSGD]) == 0
        out = capsys.readouterr()
        printed[where] = (_public_lines(out.out), _public_lines(out.err))
        runs[where] = _public(Path("runs") / "r")
    a, b, c = runs["a"], runs["b"], runs["c"]
    assert [n for n, _ in seen["a"]] != [n for n, _ in seen["b"]]  # other Poisson batches
    assert set(a) == {"config.yaml", "evaluations.jsonl", "metrics.json", "checkpoints/best/model.safetensors",
                      "checkpoints/last/model.safetensors", "checkpoints/last/progress.json"}
    differ = {k for k in a if a[k] != b[k]}
    assert {"checkpoints/best/model.safetensors", "checkpoints/last/model.safetensors"} <= differ <= {
        "checkpoints/best/model.safetensors", "checkpoints/last/model.safetensors", "checkpoints/last/progress.json",
        "evaluations.jsonl", "metrics.json"}
    evaluated = ("zero_shot_test", "best_dev", "final_dev", "test", "best")
    for name in ("metrics.json", "checkpoints/last/progress.json"):  # beside the weights' evaluations, the same
        x, y = json.loads(a[name]), json.loads(b[name])
        assert {k: v for k, v in x.items() if k not in evaluated} == {k: v for k, v in y.items() if k not in evaluated}
    metrics = json.loads(a["metrics.json"])
    assert metrics["privacy"]["releases"] == 0 and metrics["steps_run"] == 8
    assert all(set(row) == {"step", "loss", "accuracy", "macro_f1"}
               for row in map(json.loads, a["evaluations.jsonl"].splitlines()))

    def keys(d):
        return {k for k, v in d.items()} | {x for v in d.values() if isinstance(v, dict) for x in keys(v)}

    published = keys({k: v for k, v in metrics.items() if k != "config"}) | keys(json.loads(
        a["checkpoints/last/progress.json"]))
    assert not [k for k in published if any(w in k for w in ("batch", "norm", "grad", "time", "second"))]
    assert c == a and printed["c"] == printed["a"]


def test_mi_runs_with_another_secret_release_other_bits_and_replay_from_the_transcript(data_dir, tmp_path,
                                                                                       monkeypatch):
    monkeypatch.chdir(tmp_path)
    transcripts = []
    for name, secret in (("a", SecretState(key=bytes(32), j_star=1)), ("b", SecretState(key=bytes(range(32)),
                                                                                        j_star=6))):
        cfg = load_config(TINY_CONFIG, [f"data.data_dir={data_dir}", *ARGS, f"run.name={name}",
                                        "privacy.mechanism=mi", "privacy.budget=0.3"])
        Trainer(cfg, secret=secret).run()
        transcripts.append(RunDir(Path("runs") / name).read_transcript())
    assert transcripts[0] != transcripts[1]  # the bits carry the (bounded) information about S*
    assert main(["replay", "runs/a", "--out", "rebuilt"]) == 0
    assert (Path("rebuilt") / "model.safetensors").read_bytes() == (
        Path("runs/a/checkpoints/last/model.safetensors").read_bytes())


def test_no_public_file_names_where_the_owner_keeps_the_data(data_dir, tmp_path, monkeypatch, capsys):
    """A path can itself be sensitive: the published settings hold a data file relative to the data folder when it
    lies inside it and ``<withheld>`` otherwise, never the data folder itself; the owner's private folder keeps
    the paths (so eval and resume still find the data), and verify finds the files from the published names."""
    import json
    import shutil

    from paczero.settings import load_run_config

    folder = tmp_path / "alice-hiv-clinic"
    (folder / "tickets").mkdir(parents=True)
    outside = tmp_path / "patients-of-dr-bob.jsonl"
    rows = [json.dumps({"text": f"{w} film {i}", "label": int(w == "good")}) for i in range(40)
            for w in ("good", "bad")]
    (folder / "tickets" / "train.jsonl").write_text("\n".join(rows) + "\n")
    shutil.copyfile(folder / "tickets" / "train.jsonl", outside)
    monkeypatch.chdir(tmp_path)
    cfg = load_config(TINY_CONFIG, [f"data.data_dir={folder}", "data.task=jsonl", "data.kind=classification",
                                    f"data.train_file={folder / 'tickets' / 'train.jsonl'}",
                                    f"data.test_file={outside}", "data.n_pool=32", "data.n_dev=16", *ARGS])
    Trainer(cfg).run()
    run = RunDir("runs/r")
    assert main(["export", str(run.path), "--out", "export", "--data-dir", str(folder),
                 "--set", f"data.test_file={outside}"]) == 0
    published = {**{f"run/{p}": (run.path / p).read_bytes() for p in run.public_files()},
                 **{f"export/{p.relative_to('export')}": p.read_bytes() for p in Path("export").rglob("*")
                    if p.is_file()}}
    for name, data in published.items():
        for secret in (b"alice-hiv-clinic", b"patients-of-dr-bob", str(tmp_path).encode()):
            assert secret not in data, (name, secret)
    settings = json.loads((run.path / "metrics.json").read_text())["config"]["data"]
    assert (settings["data_dir"], settings["train_file"], settings["test_file"]) == (
        None, "tickets/train.jsonl", "<withheld>.jsonl")
    assert stat_mode(run.withheld_paths_path) == 0o600
    assert load_run_config(run.path).data.test_file == str(outside)  # the owner's own tools find it
    capsys.readouterr()
    assert main(["verify", "export", "--data-dir", str(folder), "--set", f"data.test_file={outside}"]) == 0
    assert "dev and test figures recomputed" in capsys.readouterr().out
    assert main(["verify", "export", "--data-dir", str(folder)]) == 2
    assert "data.test_file was withheld" in capsys.readouterr().err


def stat_mode(path: Path) -> int:
    import stat

    return stat.S_IMODE(path.stat().st_mode)


COMMANDS = [
    ["train", "--config", "{config}", "data.data_dir={data}", *ARGS],
    ["privacy", "runs/r"], ["privacy", "runs/r", "--json"], ["privacy", "runs/r", "--private"],
    ["eval", "runs/r", "--splits", "test", "dev"],
    ["audit", "runs/r"], ["audit", "runs/r", "--json"],
    ["report", "runs/r", "--out", "report"], ["report", "runs/r", "--out", "owner", "--private"],
    ["replay", "runs/r", "--out", "rebuilt"],
    ["export", "runs/r", "--out", "export", "--data-dir", "{data}"],
    ["verify", "export"], ["verify", "runs/r"], ["verify", "export", "--data-dir", "{data}"],
    ["train", "--forget-secret", "runs/r"],
]
"""Every command and output format a user runs on a finished run (the private opt-ins aside: ``--private --json``
and ``eval --splits pool --private`` print what they were asked to)."""


@pytest.mark.slow
def test_no_untagged_line_of_any_command_depends_on_the_secret(data_dir, tmp_path, monkeypatch, capsys):
    """Two ZPL runs that differ only in J* and the key: every command, in every format, prints the same lines apart
    from those tagged [private] (their untagged output may be shared)."""
    from paczero.trainer import Trainer as RealTrainer

    monkeypatch.setenv("PACZERO_DATA_DIR", str(data_dir))  # where the tiny model's public vocabulary texts are
    outputs = []
    for where, secret in (("a", SecretState(key=bytes(32), j_star=1)), ("b", SecretState(key=bytes(range(32)),
                                                                                        j_star=6))):
        (tmp_path / where).mkdir()
        monkeypatch.chdir(tmp_path / where)
        monkeypatch.setattr("paczero.trainer.Trainer", lambda cfg, *, secret_=secret, **kw: RealTrainer(
            cfg, secret=secret_, **kw))
        printed = []
        for argv in COMMANDS:
            argv = [a.format(config=TINY_CONFIG, data=data_dir) for a in argv]
            assert main(argv) == 0, argv
            out = capsys.readouterr()
            printed.append((argv[:2], _public_lines(out.out), _public_lines(out.err)))
        left = {str(p): p.read_bytes() for p in Path("runs/r").rglob("*") if p.is_file()}  # after --forget-secret
        outputs.append((printed, left))
    assert outputs[0][0] == outputs[1][0]
    assert outputs[0][1] == outputs[1][1] and "runs/r/private/diagnostics.jsonl" in outputs[0][1]
    outputs = [printed for printed, _ in outputs]
    assert any(lines for _, lines, _ in outputs[0])  # the commands did print (the comparison is not empty)
