"""The Python entry point: :func:`train` on a config (a :class:`~paczero.config.Config`, a dict or a YAML file) and,
optionally, the user's own objects — records as ``datasets.Dataset``/``DatasetDict``, a model and tokenizer already
loaded.

The config stays the record of the run: records passed in memory are read like ``data.task=hf`` (columns named in
``data.prompt``) and marked ``data.in_memory: true``, never stored (their SHA-256 digests go to the run's private
folder, so that a resume refuses other records); a model passed in memory is recorded by ``model.name`` (its
``name_or_path``, unless the config names it) and ``model.fingerprint`` (SHA-256 of its weights and tokenizer).
"""

from __future__ import annotations

import logging
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

from paczero.config import Config, DataConfig, ModelConfig, merge_config
from paczero.settings import load_run_config, validate
from paczero.data.memory import InMemory
from paczero.errors import PaczeroError
from paczero.privacy.statement import PrivacyStatement

log = logging.getLogger("paczero")


@dataclass(frozen=True)
class TrainResult:
    """What :func:`train` returns: where the run was written, its metrics (``metrics.json``) and its statement."""

    run_dir: Path
    metrics: dict[str, Any]
    statement: PrivacyStatement
    config: Config

    @property
    def test(self) -> dict[str, Any]:
        """The test metrics of the released checkpoint (``metrics["test"]``)."""
        return self.metrics["test"]

    def __str__(self) -> str:
        metric = "accuracy" if "accuracy" in self.test else "f1"
        return (f"run {self.run_dir}: test {metric} {self.test[metric]:.4f}; privacy: {self.statement.summary}")


def _is(obj: Any, name: str) -> bool:
    try:
        import datasets
    except ImportError:
        return False
    return isinstance(obj, getattr(datasets, name))


def _records(data: DataConfig, *, data_arg: Any, pool: Any, dev: Any, test: Any) -> InMemory | None:
    """The records passed in memory: ``data`` (a ``Dataset`` of train records, or a ``DatasetDict`` whose splits
    ``data.train_split``, ``data.dev_split`` and ``data.test_split`` are taken) or ``pool``/``dev``/``test``."""
    if data_arg is None and pool is None:
        if dev is not None or test is not None:
            raise PaczeroError("dev= and test= records need the train records too (data= or pool=)")
        return None
    if data_arg is not None and pool is not None:
        raise PaczeroError("give the train records once: data= or pool=, not both")
    if _is(data_arg, "DatasetDict"):
        if dev is not None or test is not None:
            raise PaczeroError("with data= a DatasetDict, name its splits in data.dev_split and data.test_split "
                               "instead of passing dev= or test=")
        wanted = {"train": data.train_split, "dev": data.dev_split,
                  "test": data.test_split if data.test_fraction is None else None}
        missing = [f"data.{k}_split={v!r}" for k, v in wanted.items() if v is not None and v not in data_arg]
        if missing:
            raise PaczeroError(f"config: {', '.join(missing)} is not a split of the DatasetDict passed (it has: "
                               f"{', '.join(data_arg)})")
        return InMemory(**{k: data_arg[v] for k, v in wanted.items() if v is not None})
    if data_arg is not None and not _is(data_arg, "Dataset"):
        raise PaczeroError(f"data= must be a datasets.Dataset or DatasetDict, not a {type(data_arg).__name__}")
    default = DataConfig()
    for key in ("train_split", "dev_split", "test_split"):
        if getattr(data, key) != getattr(default, key):
            raise PaczeroError(f"config: data.{key} selects a split of a DatasetDict; the records were passed as "
                               "datasets.Dataset objects")
    return InMemory(train=pool if pool is not None else data_arg, dev=dev, test=test)


def _complete(cfg: Config, memory: InMemory | None, model: Any, tokenizer: Any) -> Config:
    """``cfg`` marked with what was passed in memory (records, model), then validated."""
    if memory is not None:
        cfg.data.task, cfg.data.in_memory = "hf", True
        if memory.dev is not None and cfg.data.dev_source is None:
            cfg.data.dev_source = "separate"
        if memory.test is None and cfg.data.test_fraction is None:
            raise PaczeroError("no test records: pass test= (or a DatasetDict with data.test_split) or set "
                               "data.test_fraction to draw them from the train records")
    if model is not None:
        from paczero.models import model_fingerprint

        if tokenizer is None:
            raise PaczeroError("model= needs its tokenizer: paczero.train(..., model=model, tokenizer=tokenizer)")
        if cfg.model.name == ModelConfig().name:
            cfg.model.name = str(getattr(model, "name_or_path", "") or "in-memory")
        cfg.model.fingerprint = model_fingerprint(model, tokenizer, dtype=cfg.model.dtype)
    elif tokenizer is not None:
        raise PaczeroError("tokenizer= is used with model= only")
    return validate(cfg)


def _data_name(memory: InMemory | None) -> str | None:
    if memory is None:
        return None
    info = getattr(memory.train, "info", None)
    return getattr(info, "dataset_name", None) or "memory"


@contextmanager
def _shown() -> Iterator[None]:
    """The run's log lines on stderr while it runs, unless the caller has configured logging."""
    if logging.getLogger().hasHandlers() or log.handlers:
        yield
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    level = log.level
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        yield
    finally:
        log.removeHandler(handler)
        log.setLevel(level)


def train(config: "Config | dict[str, Any] | str | Path | None" = None, overrides: Sequence[str] = (), *,
          data: Any = None, pool: Any = None, dev: Any = None, test: Any = None, model: Any = None,
          tokenizer: Any = None, resume: str | Path | None = None, config_name: str | None = None) -> TrainResult:
    """Train, and return the run folder, its metrics and its privacy statement.

    ``config``: a :class:`~paczero.config.Config`, a nested dict (``{"train": {"steps": 50}}``) or a YAML file's path,
    with dotted ``overrides`` on top. Records of your own, in memory: ``data`` (a ``datasets.Dataset`` of train
    records — the pool, and with ``data.dev_source=train`` the dev set, are drawn from them — or a ``DatasetDict``
    whose splits ``data.train_split``/``data.dev_split``/``data.test_split`` are used), or ``pool`` with optional
    ``dev`` and ``test`` Datasets; read like ``data.task=hf``. ``model`` and ``tokenizer``: a causal LM already
    loaded (trained in place: it ends holding the released weights). ``resume``: a run folder to continue; pass the
    same records and model again. Progress shows as bars in a terminal or a notebook (``run.progress``).
    """
    from paczero.models import Preloaded
    from paczero.trainer import Trainer

    preloaded = Preloaded(model, tokenizer) if model is not None else None
    with _shown():
        if resume is not None:
            if config is not None:
                raise PaczeroError("resume= continues a run with its own config.yaml: give no config (overrides of "
                                   "run.* display keys only)")
            saved = load_run_config(resume)
            memory = _records(saved.data, data_arg=data, pool=pool, dev=dev, test=test)
            given = None
            if overrides or model is not None:
                given = _complete(load_run_config(resume, overrides), None, model, tokenizer)
            trainer = Trainer.resume(Path(resume), config=given, memory=memory, preloaded=preloaded)
            metrics = trainer.train()
        else:
            cfg = merge_config(config, overrides)
            memory = _records(cfg.data, data_arg=data, pool=pool, dev=dev, test=test)
            cfg = _complete(cfg, memory, model, tokenizer)
            name = config_name or _data_name(memory) or (Path(config).stem if isinstance(config, (str, Path))
                                                         else None)
            trainer = Trainer(cfg, config_name=name, memory=memory, preloaded=preloaded)
            metrics = trainer.run()
    assert trainer.run_dir is not None
    return TrainResult(run_dir=trainer.run_dir.path, metrics=metrics,
                       statement=PrivacyStatement.from_dict(metrics["privacy"]), config=trainer.cfg)
