"""Progress a person can see: every phase of a run, an export and a verification shows on a terminal, and
nothing shows with ``run.progress=false`` (or when stderr is not a terminal)."""

from __future__ import annotations

import io
import sys

from paczero.cli import main
from paczero.trainer import Trainer

PHASES = ["reading sst2 records", "loading model tiny", "encoding records", "evaluating test", "zpl steps",
          "evaluating dev"]


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _terminal(monkeypatch) -> Terminal:
    """Stand-in for a terminal on stderr (inside the test body: pytest resets sys.stderr after fixtures run)."""
    fake = Terminal()
    monkeypatch.setattr(sys, "stderr", fake)
    return fake


def test_every_phase_of_a_run_shows_on_a_terminal(tiny_config, monkeypatch):
    terminal = _terminal(monkeypatch)
    Trainer(tiny_config("run.name=shown", "run.progress=true", "train.steps=2", "train.eval_every=1")).run()
    shown = terminal.getvalue()
    for phase in PHASES:
        assert phase in shown, phase


def test_nothing_shows_with_progress_off(tiny_config, monkeypatch):
    terminal = _terminal(monkeypatch)
    Trainer(tiny_config("run.name=quiet", "run.progress=false", "train.steps=2", "train.eval_every=1")).run()
    assert not any(phase in terminal.getvalue() for phase in PHASES)


def test_export_and_verify_show_their_phases(tiny_config, monkeypatch, tmp_path, capsys):
    terminal = _terminal(monkeypatch)
    trainer = Trainer(tiny_config("run.name=r", "run.progress=true", "train.steps=2", "train.eval_every=1"))
    trainer.run()
    terminal.seek(0)
    terminal.truncate()
    monkeypatch.setenv("PACZERO_DATA_DIR", str(trainer.cfg.data.data_dir))  # the tiny model's vocabulary
    assert main(["export", str(trainer.run_dir.path), "--out", str(tmp_path / "out")]) == 0
    assert main(["verify", str(tmp_path / "out")]) == 0
    shown = terminal.getvalue()
    for phase in ("loading model tiny", "replaying the transcript", f"writing {tmp_path / 'out'}"):
        assert phase in shown, phase
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("exported the best checkpoint") and lines[1].startswith(f"verified {tmp_path}")


def test_the_dp_bar_moves_at_evaluations_only(tiny_config, monkeypatch):
    """A DP step's duration follows its secret Poisson batch: its bar shows no clock or rate and is drawn at the
    dev evaluations only (the ZPL bar, the control, is drawn at every step)."""
    import re

    counts = {}
    for mechanism, extra in (("dpzero", ["privacy.epsilon=2"]), ("zpl", [])):
        terminal = _terminal(monkeypatch)
        Trainer(tiny_config(f"run.name={mechanism}", "run.progress=true", "train.steps=12", "train.eval_every=4",
                            f"privacy.mechanism={mechanism}", *extra)).run()
        drawn = re.findall(rf"{mechanism} steps: *(?:\d+%\|[^|]*\| )?(\d+)/12", terminal.getvalue())
        counts[mechanism] = sorted({int(n) for n in drawn})
        if mechanism == "dpzero":
            assert "it/s" not in terminal.getvalue() and "step/s" not in terminal.getvalue()
    assert counts["dpzero"] == [0, 4, 8, 12]
    assert counts["zpl"] == list(range(13))


class NotebookStream(io.StringIO):
    """A Jupyter kernel's stderr: no terminal, yet it shows what is written to it."""

    def isatty(self) -> bool:
        return False


def test_a_notebook_shows_the_bars_though_its_stderr_is_no_terminal(tiny_config, monkeypatch):
    """``paczero.train`` in a notebook: the bars show (tqdm.auto draws them as widgets or, without ipywidgets, text)."""
    import paczero.progress

    stream = NotebookStream()
    monkeypatch.setattr(sys, "stderr", stream)
    monkeypatch.setattr(paczero.progress, "in_notebook", lambda: True)
    Trainer(tiny_config("run.name=nb", "run.progress=true", "train.steps=2", "train.eval_every=1")).run()
    assert "zpl steps" in stream.getvalue()
    monkeypatch.setattr(paczero.progress, "in_notebook", lambda: False)
    stream.truncate(0)
    Trainer(tiny_config("run.name=log", "run.progress=true", "train.steps=2", "train.eval_every=1")).run()
    assert "zpl steps" not in stream.getvalue()  # a log file or a pipe: no bars
