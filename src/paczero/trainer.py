"""The training loop: one :class:`Trainer` per run (``setup`` → ``train``), and :func:`train` for notebooks.

Per step t (paczero-notes §3): for each of K public direction seeds, per-record two-point estimates
over the whole pool, clipped; the mechanism releases one value per direction; the update
θ ← θ − η_t((1/K) Σ_k Y_k z_k + λθ); the ledger line. The dev set (public) is evaluated every
``eval_every`` steps and the best checkpoint is reloaded for the final test evaluation.

Outputs in ``runs/<run_id>/``: ``config.yaml``, ``membership.npy``, ``secret.json`` (0600),
``ledger.jsonl``, ``diagnostics.jsonl``, ``checkpoints/{best,last}``, ``metrics.json`` and
``timings.json`` (wall-clock figures, kept apart so that every other file is a deterministic
function of the public seed and the released values).
"""

from __future__ import annotations

import logging
import platform
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from paczero import ledger
from paczero.checkpoint import load_weights, save_weights
from paczero.config import Config
from paczero.data.tasks import ClassificationTask, Split, load_task_data
from paczero.errors import PaczeroError
from paczero.fileio import append_jsonl, atomic_write, write_json, write_text
from paczero.mechanisms import build_mechanism
from paczero.models import load_model
from paczero.objectives import ClassificationObjective, model_forward
from paczero.privacy.statement import statement_from_ledger
from paczero.rng import direction_seed
from paczero.secret import SECRET_FILE, SecretState
from paczero.subsets import clip_estimates, membership_matrix
from paczero.zo import ZOEngine

log = logging.getLogger("paczero")

DIAGNOSTICS_FILE = "diagnostics.jsonl"
METRICS_FILE = "metrics.json"
TIMINGS_FILE = "timings.json"


def learning_rate(*, step: int, steps: int, lr: float, lr_end: float, schedule: str) -> float:
    """η_t: linear decay from ``lr`` (t = 0) towards ``lr_end`` (t = T), or constant."""
    if schedule == "constant":
        return lr
    return lr_end + (lr - lr_end) * (1.0 - step / steps)


def versions() -> dict[str, str]:
    import peft
    import transformers

    from paczero import __version__

    return {"paczero": __version__, "python": platform.python_version(), "torch": torch.__version__,
            "transformers": transformers.__version__, "peft": peft.__version__, "numpy": np.__version__}


def _texts(task: ClassificationTask, split: Split, cfg: Config) -> list[str]:
    """Every text the model will see: the vocabulary of ``model.name=tiny``'s tokenizer."""
    return [task.render(e) for e in split.pool + split.dev + split.test] + list(cfg.data.label_words)


def load_split(cfg: Config) -> tuple[ClassificationTask, Split]:
    """The task and its pool/dev/test split, as a run with ``cfg`` sees them."""
    task = ClassificationTask(prompt=cfg.data.prompt, label_words=tuple(cfg.data.label_words))
    split = load_task_data(cfg.data.task, data_dir=cfg.data.data_dir, n_pool=cfg.data.n_pool, n_dev=cfg.data.n_dev,
                           n_test=cfg.data.n_test, seed=cfg.run.seed, task=task)
    return task, split


def tiny_texts(cfg: Config) -> list[str]:
    """The texts a ``model.name=tiny`` run builds its tokenizer from (empty for real models)."""
    if cfg.model.name != "tiny":
        return []
    task, split = load_split(cfg)
    return _texts(task, split, cfg)


@dataclass
class _Best:
    step: int
    loss: float
    accuracy: float


class Trainer:
    """One run. ``Trainer(cfg).run()`` = ``setup()`` + ``train()``; returns the metrics dict.

    ``secret`` replaces the fresh secret draw (tests use it to vary J* alone); never pass one in real use.
    """

    def __init__(self, config: Config, *, secret: SecretState | None = None, config_name: str | None = None):
        self.cfg = config
        self._secret = secret
        self.config_name = config_name
        self.run_dir: Path | None = None

    # ---------------------------------------------------------------- setup
    def prepare(self) -> None:
        """Load data, model and objective; writes nothing (``paczero eval`` stops here)."""
        cfg = self.cfg
        self.task, self.split = load_split(cfg)
        self.loaded = load_model(cfg.model, seed=cfg.run.seed, tiny_texts=_texts(self.task, self.split, cfg))
        self.objective = ClassificationObjective(self.loaded.tokenizer, self.task, max_length=cfg.data.max_length,
                                                 micro_batch=cfg.zo.micro_batch, device=self.loaded.device)
        self.encoded = {name: self.objective.encode(getattr(self.split, name)) for name in ("pool", "dev", "test")}

    def setup(self) -> None:
        """:meth:`prepare`, then the subsets, the secret, the mechanism and the run directory."""
        cfg = self.cfg
        t0 = time.perf_counter()
        self.prepare()
        self.membership = membership_matrix(n=len(self.split.pool), m=cfg.privacy.n_subsets, seed=cfg.run.seed)
        secret = self._secret or SecretState.fresh(cfg.privacy.n_subsets)
        self.mechanism = build_mechanism(cfg, membership=self.membership, secret=secret)
        self.engine = ZOEngine(self.loaded.model, self.loaded.trainable, eps=cfg.zo.eps)
        self.timings: dict[str, float] = {"setup_s": time.perf_counter() - t0}
        # Everything that can fail on user input has been checked: only now create the run directory.
        self.run_dir = self._make_run_dir()
        write_text(self.run_dir / "config.yaml", cfg.to_yaml())
        atomic_write(self.run_dir / "membership.npy", lambda p: np.save(open(p, "wb"), self.membership))
        secret.save(self.run_dir / SECRET_FILE)
        log.info("run %s: %s on %s (%s, %d trainable tensors, %d parameters), N=%d, M=%d, T=%d, K=%d",
                 self.run_dir, cfg.privacy.mechanism, cfg.model.name, cfg.model.tuning, len(self.loaded.trainable),
                 self.loaded.n_trainable, len(self.split.pool), cfg.privacy.n_subsets, cfg.train.steps,
                 cfg.zo.directions)

    def _make_run_dir(self) -> Path:
        cfg = self.cfg
        name = cfg.run.name or "-".join(filter(None, [
            self.config_name, cfg.privacy.mechanism, f"s{cfg.run.seed}",
            datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")]))
        run_dir = Path(cfg.run.output_dir) / name
        if run_dir.exists():
            raise PaczeroError(f"run directory {run_dir} already exists; choose another run.name")
        run_dir.mkdir(parents=True)
        return run_dir

    # ---------------------------------------------------------------- evaluation
    def evaluate(self, split: str) -> dict[str, float]:
        """Loss and accuracy of the current weights on ``pool``, ``dev`` or ``test``."""
        return self.objective.evaluate(model_forward(self.loaded.model), self.encoded[split])

    def _save(self, name: str) -> None:
        assert self.run_dir is not None
        save_weights(self.loaded, self.run_dir / "checkpoints" / name, lora=self.cfg.model.tuning == "lora")

    def _better(self, dev: dict[str, float], best: _Best | None) -> bool:
        if best is None:
            return True
        if self.cfg.train.select_on == "loss":
            return dev["loss"] < best.loss
        return dev["accuracy"] > best.accuracy

    # ---------------------------------------------------------------- training
    def train(self) -> dict[str, Any]:
        cfg, run_dir = self.cfg, self.run_dir
        assert run_dir is not None, "call setup() first"
        K, T = cfg.zo.directions, cfg.train.steps
        t_start = time.perf_counter()
        zero_shot = None
        if cfg.train.eval_before:
            zero_shot = self.evaluate("test")
            log.info("test before training: accuracy %.4f, loss %.4f", zero_shot["accuracy"], zero_shot["loss"])
        best: _Best | None = None
        step_seconds, unanimous, nonfinite_total, steps_run = [], 0, 0, 0
        bar = tqdm(range(T), desc=f"{cfg.privacy.mechanism} steps", unit="step", dynamic_ncols=True,
                   disable=None if cfg.run.progress else True)
        for step in bar:
            t0 = time.perf_counter()
            lr = learning_rate(step=step, steps=T, lr=cfg.train.lr, lr_end=cfg.train.lr_end,
                               schedule=cfg.train.lr_schedule)
            self.mechanism.begin_step(step)
            releases, pool_losses, nonfinite = [], [], 0
            for k in range(K):
                seed = direction_seed(cfg.run.seed, step, k)
                g, pool_loss = self.engine.estimates(self.objective, self.encoded["pool"], direction=seed)
                g, bad = clip_estimates(g, cfg.zo.clip)
                releases.append((seed, self.mechanism.release(g, step=step, k=k)))
                pool_losses.append(pool_loss)
                nonfinite += bad
            self.engine.update([(s, r.value / K) for s, r in releases], lr=lr, weight_decay=cfg.train.weight_decay)
            record = ledger.step_record(step=step, lr=lr, releases=releases)
            ledger.append(run_dir, record)
            n_unanimous = sum(d["unanimous"] for d in record["directions"])
            unanimous += n_unanimous
            nonfinite_total += nonfinite
            steps_run = step + 1
            diag = {"step": step, "pool_loss": float(np.mean(pool_losses)), "unanimous": n_unanimous / K,
                    "nonfinite": nonfinite, "cum_mi": float(self.mechanism.state_dict().get("spent", 0.0))}
            append_jsonl(run_dir / DIAGNOSTICS_FILE, diag)
            step_seconds.append(time.perf_counter() - t0)
            postfix = {"lr": f"{lr:.2e}", "unanimous": f"{unanimous / (steps_run * K):.2f}"}
            last = steps_run == T or self.mechanism.exhausted
            if steps_run % cfg.train.eval_every == 0 or last:
                dev = self.evaluate("dev")
                append_jsonl(run_dir / DIAGNOSTICS_FILE, {"step": step, "dev_loss": dev["loss"],
                                                          "dev_accuracy": dev["accuracy"]})
                if self._better(dev, best):
                    best = _Best(step=step, loss=dev["loss"], accuracy=dev["accuracy"])
                    self._save("best")
                postfix["dev_acc"] = f"{dev['accuracy']:.3f}"
            bar.set_postfix(postfix)
            if self.mechanism.exhausted:
                log.info("MI budget spent after %d steps: stopping", steps_run)
                break
        bar.close()
        final_dev = dev
        self._save("last")
        self.timings["train_s"] = time.perf_counter() - t_start
        assert best is not None
        load_weights(self.loaded, run_dir / "checkpoints" / "best", lora=cfg.model.tuning == "lora")
        test = self.evaluate("test")
        log.info("test after training (best dev step %d): accuracy %.4f, loss %.4f", best.step + 1,
                 test["accuracy"], test["loss"])
        statement = statement_from_ledger(ledger.read(run_dir), mechanism=cfg.privacy.mechanism,
                                          budget=cfg.privacy.budget, n_subsets=cfg.privacy.n_subsets)
        metrics = {
            "config": cfg.to_dict(),
            "model": {"name": cfg.model.name, "tuning": cfg.model.tuning,
                      "trainable_parameters": self.loaded.n_trainable},
            "data": {"n_pool": len(self.split.pool), "n_dev": len(self.split.dev), "n_test": len(self.split.test),
                     "truncated": {k: v.truncated for k, v in self.encoded.items()}, "dev_is_public": True},
            "zero_shot_test": zero_shot,
            "best_dev": {"step": best.step + 1, "loss": best.loss, "accuracy": best.accuracy},
            "final_dev": final_dev,
            "test": test,
            "steps_run": steps_run,
            "unanimity_rate": unanimous / (steps_run * K),
            "nonfinite_estimates": nonfinite_total,
            "privacy": statement,
            "versions": versions(),
            "timings_file": TIMINGS_FILE,
        }
        write_json(run_dir / METRICS_FILE, metrics)
        self.timings.update(step_s_mean=float(np.mean(step_seconds)), step_s_median=float(np.median(step_seconds)),
                            steps=steps_run, total_s=self.timings["setup_s"] + time.perf_counter() - t_start)
        write_json(run_dir / TIMINGS_FILE, self.timings)
        return metrics

    def run(self) -> dict[str, Any]:
        self.setup()
        return self.train()


def train(config: Config, *, config_name: str | None = None) -> dict[str, Any]:
    """Run one training job from a :class:`~paczero.config.Config` and return its metrics."""
    return Trainer(config, config_name=config_name).run()
