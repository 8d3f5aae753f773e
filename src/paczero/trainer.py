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
import math
import platform
import signal
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from paczero import ledger
from paczero.checkpoint import load_state, load_weights, save_weights
from paczero.config import Config, config_differences, load_run_config, selection_metric
from paczero.data.tasks import Split, Task, load_task
from paczero.distributed import Dist, DistError, assemble
from paczero.errors import PaczeroError
from paczero.fileio import append_jsonl, atomic_write, jsonl_line, write_json, write_text
from paczero.mechanisms import PAC_MECHANISMS, build_mechanism
from paczero.models import context_length, load_model
from paczero.objectives import build_objective
from paczero.privacy.statement import run_statement
from paczero.rng import direction_seed
from paczero.secret import SECRET_FILE, SecretState
from paczero.subsets import membership_matrix
from paczero.tensorboard_log import TensorBoardLog
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
    """Versions of Python and the libraries that determine a run's numbers (stored in metrics.json)."""
    import peft
    import transformers

    from paczero import __version__

    return {"paczero": __version__, "python": platform.python_version(), "torch": torch.__version__,
            "transformers": transformers.__version__, "peft": peft.__version__, "numpy": np.__version__}


def _texts(task: Task, split: Split) -> list[str]:
    """Every text the model will see: the vocabulary of ``model.name=tiny``'s tokenizer."""
    return task.texts(split.pool + split.dev + split.test)


def load_split(cfg: Config) -> tuple[Task, Split]:
    """The task and its pool/dev/test split, as a run with ``cfg`` sees them."""
    return load_task(cfg.data, seed=cfg.run.seed)


def tiny_texts(cfg: Config) -> list[str]:
    """The texts a ``model.name=tiny`` run builds its tokenizer from (empty for real models)."""
    if cfg.model.name != "tiny":
        return []
    return _texts(*load_split(cfg))


@dataclass
class Progress:
    """Everything the loop carries from step to step, saved with ``checkpoints/last`` for resume.

    Public state only: the mechanism's posterior and MI spent, counters, dev results, and how many
    lines of the diagnostics belong to the checkpoint (the ledger has one line per step). No generator
    state is needed: all randomness is derived statelessly from the public seed or the secret key and
    the step.
    """

    step: int = 0
    unanimous: int = 0
    nonfinite: int = 0
    zero_shot: dict[str, float] | None = None
    best: dict[str, Any] | None = None
    final_dev: dict[str, float] | None = None
    mechanism: dict[str, Any] = field(default_factory=dict)
    diagnostics_lines: int = 0
    fingerprint: str = ""


def _format(metrics: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.4f}" for k, v in metrics.items())


class Interrupted(PaczeroError):
    """Training stopped on SIGTERM/SIGINT after writing a resumable checkpoint."""

    def __init__(self, run_dir: Path, step: int, signum: int):
        super().__init__(f"stopped by {signal.Signals(signum).name} after step {step}; a checkpoint is saved. "
                         f"Resume with: paczero train --resume {run_dir}")
        self.exit_code = 128 + signum


def _truncate_lines(path: Path, keep: int) -> list[bytes]:
    """Keep the first ``keep`` complete lines of an append-only file; return the complete lines cut off.

    Whatever follows the last newline is a torn write and is dropped.
    """
    if not path.exists():
        return []
    lines = path.read_bytes().split(b"\n")
    complete = lines[:-1]
    if len(complete) < keep:
        raise PaczeroError(f"{path} holds {len(complete)} complete lines but the checkpoint expects {keep}")
    if len(complete) != keep or lines[-1]:
        atomic_write(path, lambda p: p.write_bytes(b"".join(line + b"\n" for line in complete[:keep])))
    return complete[keep:]


class Trainer:
    """One run. ``Trainer(cfg).run()`` = ``setup()`` + ``train()``; returns the metrics dict.

    ``secret`` replaces the fresh secret draw (tests use it to vary J* alone); never pass one in real use.
    :meth:`resume` continues a killed run from its last checkpoint.
    """

    def __init__(self, config: Config, *, secret: SecretState | None = None, config_name: str | None = None,
                 dist: Dist | None = None):
        self.cfg = config
        self.dist = dist or Dist()
        self._secret = secret
        self.config_name = config_name
        self.run_dir: Path | None = None
        self.progress = Progress(fingerprint=config.fingerprint())
        self._stop_signal: int | None = None
        self._released: dict[int, bytes] = {}
        self._exhausted = False
        self._tensorboard: TensorBoardLog | None = None
        self._local: tuple[np.ndarray, Any] | None = None  # this rank's share of the pool: (indices, encoded)

    # ---------------------------------------------------------------- setup
    def prepare(self) -> None:
        """Load data, model and objective; writes nothing (``paczero eval`` stops here)."""
        cfg = self.cfg
        self.task, self.split = load_split(cfg)
        self.loaded = load_model(cfg.model, seed=cfg.run.seed, tiny_texts=_texts(self.task, self.split))
        self.objective = build_objective(self.task, self.loaded.tokenizer, data=cfg.data,
                                         micro_batch=cfg.zo.micro_batch, device=self.loaded.device,
                                         context_length=context_length(self.loaded.model))
        self.encoded = {name: self.objective.encode(getattr(self.split, name), where=f"{cfg.data.task} {name}")
                        for name in ("pool", "dev", "test")}
        autocast = torch.bfloat16 if cfg.model.autocast and self.loaded.device.type == "cuda" else None
        self.engine = ZOEngine(self.loaded.model, self.loaded.trainable, eps=cfg.zo.eps, cache=cfg.zo.cache_prefix,
                               autocast=autocast)
        for name, enc in self.encoded.items():
            if name != "pool" or not self.dist.active:  # under torchrun each rank caches its share (_local_pool)
                self.engine.cache(self.objective, enc)

    def _build(self, secret: SecretState | None) -> None:
        """Everything a step needs; the mechanism (and the secret) only on rank 0."""
        cfg = self.cfg
        self.prepare()
        self.membership = membership_matrix(n=len(self.split.pool), m=cfg.privacy.n_subsets, seed=cfg.run.seed)
        self.mechanism = None if secret is None else build_mechanism(cfg, membership=self.membership, secret=secret)

    def setup(self) -> None:
        """:meth:`prepare`, then the subsets, the secret, the mechanism and the run directory (rank 0)."""
        cfg, dist = self.cfg, self.dist
        t0 = time.perf_counter()
        secret = (self._secret or SecretState.fresh(cfg.privacy.n_subsets)) if dist.main else None
        self._build(secret)
        self.timings: dict[str, float] = {"setup_s": time.perf_counter() - t0}
        # Everything that can fail on user input has been checked: only now create the run directory.
        run_dir, error = None, None
        if dist.main:
            try:
                run_dir = self._make_run_dir()
            except PaczeroError as exc:
                error = str(exc)
        run_dir, error = dist.broadcast((run_dir, error))
        if error is not None:
            raise PaczeroError(error)
        self.run_dir = run_dir
        if not dist.main:
            return
        write_text(self.run_dir / "config.yaml", cfg.to_yaml())
        atomic_write(self.run_dir / "membership.npy", self._write_membership)
        secret.save(self.run_dir / SECRET_FILE)
        log.info("run %s: %s on %s (%s, %d trainable tensors, %d parameters), N=%d, M=%d, T=%d, K=%d%s",
                 self.run_dir, cfg.privacy.mechanism, cfg.model.name, cfg.model.tuning, len(self.loaded.trainable),
                 self.loaded.n_trainable, len(self.split.pool), cfg.privacy.n_subsets, cfg.train.steps,
                 cfg.zo.directions, f", {dist.world} processes" if dist.active else "")

    def _write_membership(self, path: Path) -> None:
        with open(path, "wb") as fh:  # a file object: np.save would append ".npy" to a path
            np.save(fh, self.membership)

    @classmethod
    def resume(cls, run_dir: Path, *, config: Config | None = None, dist: Dist | None = None) -> "Trainer":
        """A trainer positioned at ``run_dir``'s last checkpoint (or its start if it has none).

        ``config``, if given, must equal the run's own (cosmetic keys aside); otherwise the differing keys
        are named in the error.
        """
        run_dir = Path(run_dir)
        saved = load_run_config(run_dir)
        if config is not None and config.fingerprint() != saved.fingerprint():
            raise PaczeroError(f"cannot resume {run_dir} with another config; differing keys: "
                               f"{', '.join(config_differences(saved, config))}")
        if (run_dir / METRICS_FILE).exists():
            raise PaczeroError(f"{run_dir} has finished (metrics.json exists); nothing to resume")
        trainer = cls(saved, dist=dist)
        if config is not None:
            trainer.cfg.run.progress = config.run.progress
        t0 = time.perf_counter()
        secret = None
        if trainer.dist.main:  # only rank 0 reads the secret
            secret = SecretState.load(run_dir / SECRET_FILE)
            if not 0 <= secret.j_star < saved.privacy.n_subsets:  # the message must not reveal J*
                raise PaczeroError(f"{run_dir / SECRET_FILE} does not match privacy.n_subsets in config.yaml")
        trainer._build(secret)
        trainer.run_dir = run_dir
        state = load_state(run_dir / "checkpoints" / "last")
        if state is not None:
            if state["fingerprint"] != saved.fingerprint():
                raise PaczeroError(f"the checkpoint in {run_dir} was written by another config")
            trainer.progress = Progress(**state)
            load_weights(trainer.loaded, run_dir / "checkpoints" / "last", lora=saved.model.tuning == "lora")
            if trainer.mechanism is not None:
                trainer.mechanism.load_state_dict(trainer.progress.mechanism)
        if trainer.dist.main:
            # Steps after the checkpoint were already released: they are recomputed and must come out identical,
            # since their noise is a function of (key, step) and two different values with one noise would leak.
            done = trainer.progress.step
            trainer._released = dict(enumerate(_truncate_lines(run_dir / ledger.LEDGER_FILE, done), start=done))
            _truncate_lines(run_dir / DIAGNOSTICS_FILE, trainer.progress.diagnostics_lines)
        trainer.timings = {"setup_s": time.perf_counter() - t0}
        log.info("resuming %s after step %d", run_dir, trainer.progress.step)
        return trainer

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

    # ---------------------------------------------------------------- evaluation and checkpoints
    def evaluate(self, split: str) -> dict[str, float]:
        """Loss and the task's metrics (accuracy, or F1 and EM) of the current weights on a split."""
        return self.engine.evaluate(self.objective, self.encoded[split])

    def _save(self, name: str, state: dict[str, Any] | None = None) -> None:
        assert self.run_dir is not None
        save_weights(self.loaded, self.run_dir / "checkpoints" / name, lora=self.cfg.model.tuning == "lora",
                     state=state)

    def _is_better(self, dev: dict[str, float]) -> bool:
        best = self.progress.best
        key = selection_metric(self.cfg)
        if not math.isfinite(dev[key]):
            return best is None
        if best is None or not math.isfinite(best[key]):
            return True
        return dev[key] < best[key] if key == "loss" else dev[key] > best[key]

    def _diagnose(self, record: dict[str, Any]) -> None:
        assert self.run_dir is not None
        append_jsonl(self.run_dir / DIAGNOSTICS_FILE, record)
        self.progress.diagnostics_lines += 1
        if self._tensorboard is not None:
            self._tensorboard.log(record)

    # ---------------------------------------------------------------- training
    def _my_records(self, enc) -> np.ndarray:
        """Indices (into ``enc``) of the records this rank scores: whole length-sorted micro-batches, dealt
        round-robin, so every record sits in the batch a single process would put it in."""
        size = self.objective.micro_batch
        n_batches = -(-len(enc) // size)
        mine = [enc.order[b * size:(b + 1) * size] for b in self.dist.batches(n_batches)]
        return np.concatenate(mine) if mine else np.zeros(0, dtype=np.int64)

    def _local_pool(self, mine: np.ndarray):
        """This rank's share of the whole pool, encoded once (so that a cached prefix is computed once)."""
        if self._local is None or not np.array_equal(self._local[0], mine):
            local = self.encoded["pool"].subset(mine)
            self.engine.cache(self.objective, local)
            self._local = (mine, local)
        return self._local[1]

    def _estimates(self, step: int) -> tuple[np.ndarray, list[int], np.ndarray, int]:
        """Per-record estimates (n, K) of the records the mechanism samples, the K direction seeds, the
        per-record mean losses (n, K) and the count of non-finite estimates (replaced by 0). Rank 0 gets the
        whole arrays; other ranks get ``None`` for them."""
        cfg, dist = self.cfg, self.dist
        K = cfg.zo.directions
        pool = self.encoded["pool"]
        chosen = self.mechanism.sample(step=step, n=len(pool)) if dist.main else None
        chosen = dist.broadcast(chosen)
        whole = chosen is None or np.array_equal(chosen, np.arange(len(pool)))
        enc = pool if whole else pool.subset(chosen)  # the pool itself where it can: its cached prefix is kept
        seeds = [direction_seed(cfg.run.seed, step, k) for k in range(K)]
        mine = self._my_records(enc) if dist.active else np.arange(len(enc))
        local = enc if not dist.active else self._local_pool(mine) if whole else enc.subset(mine)
        G, losses = np.zeros((len(local), K)), np.zeros((len(local), K))
        if len(local):  # a Poisson batch may be empty: the release is then noise alone
            for k, seed in enumerate(seeds):
                G[:, k], losses[:, k] = self.engine.estimates(self.objective, local, direction=seed)
        parts = dist.gather((mine, np.concatenate([G, losses], axis=1)))
        if parts is None:
            return None, seeds, None, 0
        both = assemble(parts, len(enc), 2 * K) if dist.active else np.concatenate([G, losses], axis=1)
        G, losses = both[:, :K], both[:, K:]
        bad = ~np.isfinite(G)
        return np.where(bad, 0.0, G), seeds, losses, int(bad.sum())

    def _step(self, step: int) -> dict[str, Any]:
        """One step: K directions, their releases, the ledger line, the update. Returns the postfix figures.

        Rank 0 releases, writes the ledger line and updates; then it broadcasts the values (and whether to
        stop) to the other ranks, which apply the same update. A failure of that broadcast therefore leaves
        rank 0 with a complete step to checkpoint.
        """
        cfg, p, dist = self.cfg, self.progress, self.dist
        K = cfg.zo.directions
        lr = learning_rate(step=step, steps=cfg.train.steps, lr=cfg.train.lr, lr_end=cfg.train.lr_end,
                           schedule=cfg.train.lr_schedule)
        if self.mechanism is not None:
            self.mechanism.begin_step(step)
        G, seeds, losses, nonfinite = self._estimates(step)
        postfix = {"lr": f"{lr:.2e}"}
        if dist.main:
            releases = list(zip(seeds, self.mechanism.release_step(G, step=step)))
            values = [r.value for _, r in releases]
            postfix.update(self._record(step, lr, releases, losses, nonfinite))
            self.engine.update([(s, v / K) for s, v in zip(seeds, values)], lr=lr,
                               weight_decay=cfg.train.weight_decay)
            self._exhausted = self.mechanism.exhausted
        p.step = step + 1
        payload = dist.broadcast((values, self._exhausted, self._stop_signal) if dist.main else None)
        if not dist.main:
            values, self._exhausted, self._stop_signal = payload
            self.engine.update([(s, v / K) for s, v in zip(seeds, values)], lr=lr,
                               weight_decay=cfg.train.weight_decay)
        return postfix

    def _record(self, step: int, lr: float, releases: list, losses: np.ndarray, nonfinite: int) -> dict[str, str]:
        """Rank 0: the ledger line (refused if a resumed step differs from its published line) and diagnostics."""
        p, K = self.progress, self.cfg.zo.directions
        record = ledger.step_record(step=step, lr=lr, releases=releases)
        assert self.run_dir is not None
        released = self._released.pop(step, None)
        if released is not None and jsonl_line(record) != released:
            ledger_path = self.run_dir / ledger.LEDGER_FILE
            with open(ledger_path, "ab") as fh:  # keep the transcript as it was published
                fh.write(b"".join(line + b"\n" for line in [released, *self._released.values()]))
            raise PaczeroError(f"resuming recomputed step {step} differently from its released ledger line "
                               "(non-deterministic kernels?); continuing would re-release it with the same noise. "
                               "Refusing: resume on the same hardware, or use train.checkpoint_every=1")
        ledger.append(self.run_dir, record)
        n_unanimous = sum(d["unanimous"] for d in record["directions"])
        p.unanimous += n_unanimous
        if not self.mechanism.pool_is_public:
            # DP baselines: nothing computed on the sampled records may be logged, not even their number.
            self._diagnose({"step": step, "lr": lr})
            return {}
        p.nonfinite += nonfinite
        pool_loss = float(losses.mean()) if losses.size else float("nan")
        self._diagnose({"step": step, "pool_loss": pool_loss, "unanimous": n_unanimous / K,
                        "nonfinite": nonfinite, "cum_mi": self.mechanism.spent})
        return {"unanimous": f"{p.unanimous / ((step + 1) * K):.2f}"}

    def _on_signal(self, signum: int, frame: Any) -> None:
        self._stop_signal = signum
        log.warning("%s received: finishing the current step, then writing a checkpoint",
                    signal.Signals(signum).name)

    def train(self) -> dict[str, Any]:
        """Run the remaining steps, then the final test evaluation. Returns the metrics (``{}`` on ranks > 0)."""
        cfg, run_dir, p, dist = self.cfg, self.run_dir, self.progress, self.dist
        assert run_dir is not None, "call setup() first"
        T = cfg.train.steps
        t_start = time.perf_counter()
        if dist.main and cfg.train.eval_before and p.zero_shot is None:
            p.zero_shot = self.evaluate("test")
            log.info("test before training: %s", _format(p.zero_shot))
        if dist.main:
            self._exhausted = self.mechanism.exhausted
        handlers = {}
        if threading.current_thread() is threading.main_thread():
            handlers = {s: signal.signal(s, self._on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        step_seconds: list[float] = []
        # Public figures only; purge_step hides the events a killed run wrote after its checkpoint.
        if cfg.logging.tensorboard and dist.main:
            self._tensorboard = TensorBoardLog(run_dir, purge_step=p.step + 1)
        bar = tqdm(total=T, initial=p.step, desc=f"{cfg.privacy.mechanism} steps", unit="step", dynamic_ncols=True,
                   disable=None if cfg.run.progress and dist.main else True)
        try:
            while p.step < T and not self._exhausted:
                t0 = time.perf_counter()
                try:
                    postfix = self._step(p.step)
                except DistError as exc:
                    if dist.main:  # rank 0's state is complete up to p.step: make it resumable
                        p.mechanism = self.mechanism.state_dict()
                        self._save("last", state=asdict(p))
                        raise PaczeroError(f"{exc}; a checkpoint after step {p.step} is saved. Resume with: "
                                           f"paczero train --resume {run_dir} (alone or under torchrun)") from None
                    raise
                step_seconds.append(time.perf_counter() - t0)
                if dist.main:
                    self._after_step(postfix)
                bar.update(1)
                bar.set_postfix(postfix)
                if self._stop_signal is not None:
                    raise Interrupted(run_dir, p.step, self._stop_signal)
        finally:
            bar.close()
            if self._tensorboard is not None:
                self._tensorboard.flush()
            for s, h in handlers.items():
                signal.signal(s, h)
        if not dist.main:
            return {}
        if self._exhausted and p.step < T:
            log.info("MI budget spent after %d steps: stopped early", p.step)
        self.timings["train_s"] = time.perf_counter() - t_start
        return self._finish(step_seconds)

    def _after_step(self, postfix: dict[str, str]) -> None:
        """Rank 0: the dev evaluation and the checkpoints due after a step."""
        cfg, p = self.cfg, self.progress
        done = p.step == cfg.train.steps or self._exhausted
        evaluate = p.step % cfg.train.eval_every == 0 or done
        if evaluate:
            p.final_dev = self.evaluate("dev")
            self._diagnose({"step": p.step - 1, **{f"dev_{k}": v for k, v in p.final_dev.items()}})
            if self._is_better(p.final_dev):
                p.best = {"step": p.step, **p.final_dev}
                self._save("best")
            postfix[f"dev_{self.objective.metric}"] = f"{p.final_dev[self.objective.metric]:.3f}"
        if evaluate or p.step % cfg.train.checkpoint_every == 0 or self._stop_signal is not None:
            p.mechanism = self.mechanism.state_dict()
            self._save("last", state=asdict(p))

    def _finish(self, step_seconds: list[float]) -> dict[str, Any]:
        cfg, run_dir, p = self.cfg, self.run_dir, self.progress
        assert run_dir is not None and p.best is not None
        K = cfg.zo.directions
        load_weights(self.loaded, run_dir / "checkpoints" / "best", lora=cfg.model.tuning == "lora")
        test = self.evaluate("test")
        log.info("test after training (best dev step %d): %s", p.best["step"], _format(test))
        if self._tensorboard is not None:
            self._tensorboard.log({"step": p.step - 1, **{f"test_{k}": v for k, v in test.items()}})
            self._tensorboard.close()
        statement = run_statement(ledger.read(run_dir), cfg)
        public_pool = self.mechanism.pool_is_public
        metrics = {
            "config": cfg.to_dict(),
            "model": {"name": cfg.model.name, "tuning": cfg.model.tuning,
                      "trainable_parameters": self.loaded.n_trainable},
            "data": {"n_pool": len(self.split.pool), "n_dev": len(self.split.dev), "n_test": len(self.split.test),
                     "truncated": {k: v.truncated for k, v in self.encoded.items() if public_pool or k != "pool"},
                     "dev_is_public": True},
            "zero_shot_test": p.zero_shot,
            "best_dev": p.best,
            "final_dev": p.final_dev,
            "test": test,
            "steps_run": p.step,
            "unanimity_rate": p.unanimous / (p.step * K) if cfg.privacy.mechanism in PAC_MECHANISMS else None,
            "nonfinite_estimates": p.nonfinite if public_pool else None,
            "privacy": statement,
            "versions": versions(),
            "timings_file": TIMINGS_FILE,
        }
        write_json(run_dir / METRICS_FILE, metrics)
        if step_seconds:
            self.timings.update(step_s_mean=float(np.mean(step_seconds)), step_s_median=float(np.median(step_seconds)))
        self.timings["steps_timed"] = len(step_seconds)
        write_json(run_dir / TIMINGS_FILE, self.timings)
        return metrics

    def run(self) -> dict[str, Any]:
        """:meth:`setup` then :meth:`train`: a whole run; returns the metrics."""
        self.setup()
        return self.train()


def train(config: Config, *, config_name: str | None = None) -> dict[str, Any]:
    """Run one training job from a :class:`~paczero.config.Config` and return its metrics."""
    return Trainer(config, config_name=config_name).run()
