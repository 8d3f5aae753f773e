"""Rebuild a run's trained weights from the base model and its public ledger alone.

The trainer never modifies the weights except through :meth:`ZOEngine.update` (the perturbed
evaluations use temporaries), so replaying the ledger's updates — direction seeds, released values
and learning rates, in order — on θ_0 reproduces the final weights bit for bit. This is the
auditor's proof that the released model is a function of the public transcript: no secret, no data.
"""

from __future__ import annotations

from pathlib import Path

from tqdm.auto import tqdm

from paczero import ledger
from paczero.checkpoint import save_weights
from paczero.config import Config
from paczero.errors import PaczeroError
from paczero.models import LoadedModel, load_model
from paczero.zo import ZOEngine


def replay_ledger(loaded: LoadedModel, records: list[dict], *, eps: float, weight_decay: float,
                  progress: bool = True) -> None:
    """Apply every step's update of ``records`` to ``loaded`` in place."""
    engine = ZOEngine(loaded.model, loaded.trainable, eps=eps)
    for record in tqdm(records, desc="replay", unit="step", disable=None if progress else True):
        k = len(record["directions"])
        engine.update([(d["seed"], d["value"] / k) for d in record["directions"]], lr=record["lr"],
                      weight_decay=weight_decay)


def replay_run(run_dir: Path, out: Path, *, config: Config, tiny_texts: list[str] | None = None) -> LoadedModel:
    """Rebuild ``run_dir``'s final weights into ``out`` (same layout as ``checkpoints/last``)."""
    records = ledger.read(run_dir)
    steps = [r["step"] for r in records]
    if steps != list(range(len(steps))):
        raise PaczeroError(f"{run_dir / ledger.LEDGER_FILE} is not a contiguous transcript (steps {steps[:5]}...)")
    loaded = load_model(config.model, seed=config.run.seed, tiny_texts=tiny_texts or ())
    replay_ledger(loaded, records, eps=config.zo.eps, weight_decay=config.train.weight_decay,
                  progress=config.run.progress)
    save_weights(loaded, out, lora=config.model.tuning == "lora")
    return loaded
