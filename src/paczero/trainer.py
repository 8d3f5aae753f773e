"""The training recipe: ``setup`` → ``train`` → ``save_checkpoint`` → ``cleanup`` (torchtune's shape).

The parts live elsewhere: :func:`paczero.build.build` makes the components, :mod:`paczero.step` runs one step,
:class:`paczero.rundir.RunDir` owns the files (public and private). This module wires them: per step t, the
release, the transcript line (checked in place on resume), the owner's private logs, the update; the public dev
set evaluated every ``eval_every`` steps and the best checkpoint reloaded for the final test evaluation.
"""

from __future__ import annotations

import logging
import math
import signal
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

from paczero import ledger, progress
from paczero.about import versions
from paczero.build import Components, build
from paczero.checkpoint import load_weights, save_weights
from paczero.config import Config, config_differences
from paczero.settings import load_run_config, public_config
from paczero.data.registry import data_name, dev_source, selection_metric
from paczero.data.memory import InMemory
from paczero.distributed import Dist, DistError
from paczero.errors import Interrupted, PaczeroError
from paczero.fileio import jsonl_line
from paczero.mechanisms.registry import spec
from paczero.metrics import scalar_metrics
from paczero.privacy.statement import Family
from paczero.models import Preloaded
from paczero.publication import Progress, is_better, metrics_document
from paczero.rundir import PublishedLineMismatch, RunDir
from paczero.secret import SecretState
from paczero.step import StepInput, StepResult, apply_update, first_order_step, learning_rate, release
from paczero.tensorboard_log import TensorBoardLog

log = logging.getLogger("paczero")


@dataclass
class PrivateProgress:
    """The private state carried from step to step (``private/state/<step>.json``)."""

    mechanism: dict[str, Any] = field(default_factory=dict)
    nonfinite: int = 0


class Trainer:
    """One run. ``Trainer(cfg).run()`` = :meth:`setup` + :meth:`train` + :meth:`cleanup`; returns the metrics.

    ``secret`` replaces the fresh secret draw (tests use it to vary J* alone); never pass one in real use.
    ``base`` lends the components of an earlier run at θ_0 (:func:`paczero.build.build`); ``memory`` and
    ``preloaded`` are the records and the model passed in memory to :func:`paczero.train`.
    """

    def __init__(self, config: Config, *, secret: SecretState | None = None, config_name: str | None = None,
                 dist: Dist | None = None, base: Components | None = None, memory: InMemory | None = None,
                 preloaded: Preloaded | None = None):
        self.cfg, self.dist, self.config_name = config, dist or Dist(), config_name
        self._secret, self._base, self._memory, self._preloaded = secret, base, memory, preloaded
        self.progress, self.private = Progress(fingerprint=config.fingerprint()), PrivateProgress()
        self.run_dir: RunDir | None = None
        self.c: Components | None = None
        self.steps: StepInput | None = None
        """What each step reads of :attr:`c` (built with it)."""
        self._stop: int | None = None
        """The number of a stop signal received (SIGTERM, SIGINT): the run stops after the current step."""
        self._tensorboard: TensorBoardLog | None = None
        self.timings: dict[str, float] = {}
        self.private_figures: dict[str, Any] = {}
        """The owner's figures of a finished run (also in ``private/privacy.json``): computed on the pool."""

    # ---------------------------------------------------------------- setup
    def setup(self, *, resume: Path | None = None) -> None:
        """Build the components; create the run folder (or reopen ``resume`` at its last checkpoint, rank 0)."""
        cfg, dist = self.cfg, self.dist
        t0 = time.perf_counter()
        if dist.active and spec(cfg.privacy.mechanism).first_order:
            raise PaczeroError(f"privacy.mechanism={cfg.privacy.mechanism} runs in one process; start it without "
                               "torchrun")
        run = RunDir.open(resume) if resume is not None else None
        secret = None
        if dist.main:
            secret = run.load_secret() if run is not None else self._secret or SecretState.fresh(cfg.privacy.n_subsets)
            if not 0 <= secret.j_star < cfg.privacy.n_subsets:  # the message must not reveal J*
                raise PaczeroError("the run's secret state does not match privacy.n_subsets in config.yaml")
        if run is not None and dist.main:
            self._check_records(run)
        self.c = build(cfg, dist=dist, secret=secret, base=self._base, memory=self._memory,
                       preloaded=self._preloaded)
        self.steps = self.c.step_input()
        if dist.main:
            self._announce_public_records()
        if run is None:  # everything that can fail on user input has been checked: only now create the folder
            run = self._create_run_dir(secret)
        else:
            self._reopen(run)
        self.run_dir = run
        if dist.main:
            self._transcript, self._evaluations = run.transcript(), run.evaluations()
        self.timings["setup_s"] = time.perf_counter() - t0
        log.info("%s %s: %s on %s (%s, %d trainable tensors, %d parameters), N=%d, M=%d, T=%d, K=%d%s",
                 "resuming" if resume else "run", run.path, cfg.privacy.mechanism, cfg.model.name, cfg.model.tuning,
                 len(self.c.loaded.trainable), self.c.loaded.n_trainable, len(self.c.split.pool),
                 cfg.privacy.n_subsets, cfg.train.steps, cfg.zo.directions,
                 f", {dist.world} processes" if dist.active else "")

    def _create_run_dir(self, secret: SecretState | None) -> RunDir:
        """Rank 0 creates the folder and writes the config, the membership matrix and the secret; all ranks get it."""
        cfg, run, error = self.cfg, None, None
        if self.dist.main:
            try:
                run = RunDir.create(Path(cfg.run.output_dir) / self._run_name(),
                                    closed=spec(cfg.privacy.mechanism).family == Family.DP)
            except PaczeroError as exc:
                error = str(exc)
        run, error = self.dist.broadcast((run, error))
        if error is not None:
            raise PaczeroError(error)
        if self.dist.main:
            public, withheld = public_config(cfg)
            if withheld:  # where the owner keeps the data: in the private folder, never in a public file
                run.write_private_json(run.withheld_paths_path, withheld)
            run.write_config(public.to_yaml())
            if self.c.membership is not None:
                run.write_membership(self.c.membership)
            run.save_secret(secret)
            if self._memory is not None:
                run.write_private_json(run.records_path, self._memory.digests())
        return run

    def _check_records(self, run: RunDir) -> None:
        """On resume: the records passed in memory are those the run started with (digests in its private folder)."""
        if not self.cfg.data.in_memory:
            return
        if self._memory is None:
            raise PaczeroError(f"{run.path} was trained on records passed in memory: resume it from Python with the "
                               f"same objects, paczero.train(resume={str(run.path)!r}, data=...)")
        saved = run.read_private_json(run.records_path)
        differ = [name for name, digest in self._memory.digests().items() if saved.get(name) != digest]
        differ += [name for name in saved if name not in self._memory.splits()]
        if differ:
            raise PaczeroError(f"cannot resume {run.path} with other records: the {', '.join(sorted(set(differ)))} "
                               "records passed differ from those the run started with")

    def _announce_public_records(self) -> None:
        """Say at the start which of the user's records the run publishes (a dev or test set drawn from the private
        train records), and that without a dev set the last checkpoint is released."""
        data, split = self.cfg.data, self.c.split
        own = data.task in ("jsonl", "hf")
        source = dev_source(data)
        if source == "none":
            log.info("no dev set (data.dev_source=none): no checkpoint selection, the last checkpoint is released")
        elif source == "train" and own:
            log.warning("data.dev_source=train: %d records of the private train records become the public dev set "
                        "(disjoint from the pool; they and their metrics are published, and nothing protects them)",
                        len(split.dev))
        if data.test_fraction is not None:
            log.warning("data.test_fraction=%g: %d records of the private train records become the public test set "
                        "(never in the pool; their metrics are published)", data.test_fraction,
                        len(split.test))

    def _reopen(self, run: RunDir) -> None:
        """Position the run at its last checkpoint (or its start); rank 0 cuts its private logs back to it."""
        cfg, saved = self.cfg, run.read_progress()
        if saved is not None:
            if saved["fingerprint"] != cfg.fingerprint():
                raise PaczeroError(f"the checkpoint in {run.path} was written by another config")
            self.progress = Progress(**saved)
            load_weights(self.c.loaded, run.checkpoint("last"))
        if self.dist.main:
            if saved is not None:
                self.private = PrivateProgress(**run.load_state(self.progress.step))
                self._stateful.load_state_dict(self.private.mechanism)
            run.truncate_private_logs(releases=0 if self.c.optimizer is not None else self.progress.step,
                                      diagnostics=self.progress.step)

    @property
    def _stateful(self) -> Any:
        """What carries private state from step to step: the mechanism, or a first-order method's optimiser."""
        return self.c.optimizer if self.c.optimizer is not None else self.c.mechanism

    def _run_name(self) -> str:
        cfg = self.cfg
        return cfg.run.name or "-".join(filter(None, [data_name(cfg) or self.config_name, cfg.privacy.mechanism,
                                                      f"s{cfg.run.seed}",
                                                      datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")]))

    @classmethod
    def resume(cls, run_dir: Path, *, config: Config | None = None, dist: Dist | None = None,
               base: Components | None = None, memory: InMemory | None = None,
               preloaded: Preloaded | None = None) -> "Trainer":
        """A trainer set up at ``run_dir``'s last checkpoint; ``config``, if given, must equal the run's own."""
        saved = load_run_config(run_dir)
        if config is not None and config.fingerprint() != saved.fingerprint():
            raise PaczeroError(f"cannot resume {run_dir} with another config; differing keys: "
                               f"{', '.join(config_differences(saved, config))}")
        if RunDir(run_dir).finished:
            raise PaczeroError(f"{run_dir} has finished (metrics.json exists); nothing to resume")
        trainer = cls(saved, dist=dist, base=base, memory=memory, preloaded=preloaded)
        if config is not None:
            trainer.cfg.run.progress = config.run.progress
        trainer.setup(resume=Path(run_dir))
        return trainer

    # ---------------------------------------------------------------- training
    def train(self) -> dict[str, Any]:
        """Run the remaining steps, then the final test evaluation. Returns the metrics (``{}`` on ranks > 0)."""
        cfg, p, dist, run = self.cfg, self.progress, self.dist, self.run_dir
        assert run is not None and self.c is not None, "call setup() first"
        t_start = time.perf_counter()
        if dist.main and cfg.train.eval_before and p.zero_shot is None:
            p.zero_shot = self.c.evaluate("test")
            log.info("test before training: %s", _format(p.zero_shot))
        handlers = {}
        if threading.current_thread() is threading.main_thread():
            handlers = {s: signal.signal(s, self._on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        if cfg.logging.tensorboard and dist.main:
            self._tensorboard = TensorBoardLog(run.tensorboard_dir, purge_step=p.step + 1)
        # A DP step's time follows its secret Poisson batch: that bar shows no clock and moves at evaluations only.
        secret_timing = spec(cfg.privacy.mechanism).family == Family.DP
        bar = progress.bar(total=cfg.train.steps, initial=p.step, desc=f"{cfg.privacy.mechanism} steps", unit="step",
                           enabled=cfg.run.progress and dist.main, timed=not secret_timing)
        step_seconds: list[float] = []
        try:
            while p.step < cfg.train.steps:
                t0 = time.perf_counter()
                postfix = self._one_step()
                step_seconds.append(time.perf_counter() - t0)
                if not secret_timing or len(postfix) > 1 or p.step == cfg.train.steps:  # a dev evaluation was due
                    bar.update(p.step - bar.n)
                    bar.set_postfix(postfix)
                if self._stop is not None:
                    raise Interrupted(run.path, p.step, self._stop)
            if not dist.main:
                return {}
            self.timings.update(train_s=time.perf_counter() - t_start, steps_timed=len(step_seconds),
                                step_s_median=float(np.median(step_seconds)) if step_seconds else math.nan)
            return self._finish()
        finally:
            bar.close()
            for s, h in handlers.items():
                signal.signal(s, h)
            self.cleanup()

    def _one_step(self) -> dict[str, str]:
        """Release, record (rank 0), update; the dev evaluation and checkpoints due after it."""
        cfg, p = self.cfg, self.progress
        t = cfg.train
        lr = learning_rate(step=p.step, steps=t.steps, lr=t.lr, lr_end=t.lr_end, schedule=t.lr_schedule)
        if self.c.optimizer is not None:  # a first-order method: nothing is released, so no transcript line
            self._diagnose(first_order_step(self.steps, step=p.step, lr=lr))
            p.step += 1
            postfix = {"lr": f"{lr:.2e}"}
            self._after_step(postfix)
            return postfix
        try:
            result = release(self.steps, step=p.step, lr=lr)
        except DistError as exc:
            self._fail(exc)  # nothing released or applied: the state is complete up to p.step
        if self.dist.main:
            self._record(result)
        try:
            self._stop = apply_update(self.steps, result, stop_signal=self._stop)
        except DistError as exc:
            p.step += 1  # rank 0 applied its update before the broadcast failed
            self._fail(exc)
        p.step += 1
        postfix = {"lr": f"{lr:.2e}"}
        if self.dist.main:
            self._after_step(postfix)
        return postfix

    def _fail(self, exc: DistError) -> NoReturn:
        if self.dist.main:
            self.save_checkpoint()
            raise PaczeroError(f"{exc}; a checkpoint after step {self.progress.step} is saved. Resume with: "
                               f"paczero train --resume {self.run_dir.path} (alone or under torchrun)") from None
        raise exc

    def _record(self, result: StepResult) -> None:
        """Rank 0: the public transcript line (checked in place if already published), then the private logs."""
        run, step = self.run_dir, result.step
        line = ledger.transcript_step(step=step, lr=result.lr, seeds=result.seeds, releases=result.releases)
        try:
            self._transcript.write(step, line.line())
        except PublishedLineMismatch:
            raise PaczeroError(f"resuming recomputed step {step} differently from its published transcript line "
                               "(non-deterministic kernels?); continuing would re-release it with the same noise. "
                               "Refusing, with the transcript as published: resume on the same hardware, or use "
                               "train.checkpoint_every=1") from None
        run.append_private(run.releases_path, ledger.release_record(step=step, releases=result.releases))
        self._diagnose(result)

    def _diagnose(self, result: StepResult) -> None:
        """Rank 0: the step's private diagnostics (pool loss, unanimity, non-finite estimates, MI spent)."""
        self.private.nonfinite += result.nonfinite
        releases = result.releases or ()
        diagnostics = {"step": result.step,
                       "pool_loss": float(result.losses.mean()) if result.losses.size else math.nan,
                       "unanimous": sum(r.agreed for r in releases) / len(releases) if releases else math.nan,
                       "nonfinite": result.nonfinite, "mi_spent": self._stateful.spent}
        self.run_dir.append_private(self.run_dir.diagnostics_path, diagnostics)
        if self._tensorboard is not None:
            self._tensorboard.log(diagnostics)

    def _on_signal(self, signum: int, frame: Any) -> None:
        self._stop = signum
        log.warning("%s received: finishing the current step, then writing a checkpoint", signal.Signals(signum).name)

    def _after_step(self, postfix: dict[str, str]) -> None:
        """Rank 0: the dev evaluation (public) and the checkpoints due after a step."""
        cfg, p = self.cfg, self.progress
        done = p.step == cfg.train.steps
        evaluate = (p.step % cfg.train.eval_every == 0 or done) and dev_source(cfg.data) != "none"
        if evaluate:
            p.final_dev = self.c.evaluate("dev")
            scalars = scalar_metrics(p.final_dev)
            self._evaluations.write(p.evaluations, jsonl_line({"step": p.step, **scalars}))
            p.evaluations += 1
            if self._tensorboard is not None:
                self._tensorboard.log({"step": p.step - 1, **{f"dev_{k}": v for k, v in scalars.items()}})
            if is_better(p.final_dev, p.best, selection_metric(cfg)):
                p.best = {"step": p.step, "selected_on": selection_metric(cfg), **p.final_dev}
                save_weights(self.c.loaded, self.run_dir.checkpoint("best"))
            postfix[f"dev_{self.c.objective.metric}"] = f"{p.final_dev[self.c.objective.metric]:.3f}"
        elif done and dev_source(cfg.data) == "none":  # no selection: the last weights are the released ones
            p.best = {"step": p.step, "selected_on": "last"}
            save_weights(self.c.loaded, self.run_dir.checkpoint("best"))
        if evaluate or done or p.step % cfg.train.checkpoint_every == 0 or self._stop is not None:
            self.save_checkpoint()

    def save_checkpoint(self) -> None:
        """Rank 0: the private state of this step, then the weights and public progress as ``checkpoints/last``."""
        run = self.run_dir
        self.private.mechanism = self._stateful.state_dict()
        run.save_state(self.progress.step, asdict(self.private))
        save_weights(self.c.loaded, run.checkpoint("last"), progress=asdict(self.progress))
        run.prune_states(keep=self.progress.step)

    def _finish(self) -> dict[str, Any]:
        cfg, run, p, c = self.cfg, self.run_dir, self.progress, self.c
        load_weights(c.loaded, run.checkpoint("best"))
        test = c.evaluate("test")
        chosen = "last step {}, no dev set" if p.best["selected_on"] == "last" else "best dev step {}"
        log.info("test after training (%s): %s", chosen.format(p.best["step"]), _format(test))
        if c.optimizer is not None:  # a first-order method released nothing per step: there is no transcript
            steps, releases = p.step, 0
        else:
            transcript = run.read_transcript()
            steps, releases = len(transcript), sum(len(r["directions"]) for r in transcript)
        figures = {"zero_shot_test": p.zero_shot, "best_dev": p.best, "final_dev": p.final_dev, "test": test,
                   "data": {"n_dev": len(c.split.dev), "n_test": len(c.split.test),
                            "truncated": {k: c.encoded[k].truncated for k in ("dev", "test")}},
                   "versions": versions()}
        metrics = metrics_document(public_config(cfg)[0], trainable_parameters=c.loaded.n_trainable,
                                   steps=steps, releases=releases, figures=figures)
        run.write_metrics(metrics)
        releases = ledger.parse_releases(run.read_private(run.releases_path))
        self.private_figures = {**ledger.private_summary(releases), "nonfinite_estimates": self.private.nonfinite,
                                "pool_truncated": c.encoded["pool"].truncated}
        run.write_private_json(run.privacy_path, self.private_figures)
        run.write_private_json(run.timings_path, self.timings)
        run.open_to_all()
        if self._tensorboard is not None:
            self._tensorboard.log({"step": p.step - 1, **{f"test_{k}": v for k, v in scalar_metrics(test).items()}})
        return metrics

    def cleanup(self) -> None:
        """Close what the run holds open (the TensorBoard writer)."""
        if self._tensorboard is not None:
            self._tensorboard.close()
            self._tensorboard = None

    def run(self) -> dict[str, Any]:
        """:meth:`setup` then :meth:`train` (which ends with :meth:`cleanup`): a whole run; returns the metrics."""
        self.setup()
        return self.train()


def _format(metrics: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v:.4f}" for k, v in scalar_metrics(metrics).items())


