"""Rebuild a run's trained weights from the base model and its public transcript alone.

The trainer never modifies the weights except through :meth:`ZOEngine.update` (the perturbed evaluations use
temporaries), so replaying the transcript's updates — direction seeds, released values and learning rates, in
order — on θ_0 reproduces the weights bit for bit. This is the auditor's proof that the released model is a
function of the public transcript: no secret, no pool.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from paczero import progress
from paczero.build import build_model
from paczero.checkpoint import save_weights
from paczero.config import Config
from paczero.errors import PaczeroError
from paczero.ledger import TranscriptStep, parse_transcript
from paczero.mechanisms.registry import spec
from paczero.models import LoadedModel
from paczero.rundir import RunDir
from paczero.zo import ZOEngine


def replay_transcript(loaded: LoadedModel, steps: Sequence[TranscriptStep], *, eps: float, weight_decay: float,
                      show: bool = True) -> None:
    """Apply every step's update of ``steps`` to ``loaded`` in place."""
    engine = ZOEngine(loaded.model, loaded.trainable, eps=eps)
    bar = progress.bar(total=len(steps), desc="replaying the transcript", unit="step", enabled=show)
    with bar:
        for step in steps:
            engine.apply_step([d.seed for d in step.directions], [d.value for d in step.directions], lr=step.lr,
                              weight_decay=weight_decay)
            bar.update(1)


def read_steps(run: RunDir, *, upto: int | None = None) -> list[TranscriptStep]:
    """The run's transcript (its first ``upto`` steps), checked; a malformed one is a :class:`PaczeroError`."""
    try:
        steps = parse_transcript(run.read_transcript())
    except ValueError as exc:
        raise PaczeroError(f"{run.transcript_path}: {exc}") from None
    if upto is not None:
        if upto > len(steps):
            raise PaczeroError(f"{run.transcript_path} holds {len(steps)} steps; the checkpoint needs {upto}")
        steps = steps[:upto]
    return steps


def replay_run(run_dir: Path, out: Path, *, config: Config, upto: int | None = None) -> LoadedModel:
    """Rebuild ``run_dir``'s weights after its first ``upto`` steps (default: all) into ``out``."""
    if spec(config.privacy.mechanism).first_order:
        raise PaczeroError(f"{run_dir} is a privacy.mechanism={config.privacy.mechanism} run: it publishes no "
                           "transcript, so its weights cannot be rebuilt; they are its checkpoints, as trained "
                           "(paczero export publishes them, paczero verify checks what it can)")
    steps = read_steps(RunDir.open(run_dir), upto=upto)
    loaded = build_model(config)
    replay_transcript(loaded, steps, eps=config.zo.eps, weight_decay=config.train.weight_decay,
                      show=config.run.progress)
    save_weights(loaded, out)
    return loaded
