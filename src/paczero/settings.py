"""Settings: from files and overrides to a checked :class:`~paczero.config.Config` (:func:`load_config`), and the
settings as a run publishes them (:func:`public_config`).

:mod:`paczero.config` is the schema (a leaf); this module sits above it, the data options
(:mod:`paczero.data.options`) and the mechanism registry, and asks each to check its own options.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import logging
import re
from pathlib import Path
from typing import Any, Sequence

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from paczero.config import (PATH_KEYS, WITHHELD, Config, Tuning, _load_yaml, _override_layer, get, merge_config,
                            require)
from paczero.data.files import data_folder
from paczero.data.options import validate_data
from paczero.data.registry import TASKS, dev_source, task_kind
from paczero.errors import PaczeroError
from paczero.layout import CONFIG_FILE, WITHHELD_PATHS_FILE
from paczero.mechanisms.registry import names, spec

log = logging.getLogger("paczero")

_CHOICES = {
    "model.dtype": ("float32", "float64", "bfloat16", "float16"),
    "model.tuning": tuple(Tuning),
    "privacy.mi_channel": ("bsc", "awgn"),
    "privacy.zpl_disagreement": ("coin", "skip"),
    "privacy.budget_schedule": ("adaptive", "uniform"),
    "train.lr_schedule": ("linear", "constant"),
    "data.overlong": ("truncate", "refuse"),
    "data.objective": ("f1", "lm"),
}


def validate(cfg: Config) -> Config:
    """Check ranges and choices; raise :class:`PaczeroError` naming the key. Returns ``cfg``."""
    for key, choices in {**_CHOICES, "data.task": tuple(TASKS), "privacy.mechanism": names()}.items():
        value = get(cfg, key)
        require(value in choices, key, value, f"expected one of {', '.join(choices)}")
    validate_data(cfg)
    positive = ["data.n_pool", "data.n_dev", "data.max_length", "data.max_new_tokens", "zo.eps", "zo.clip",
                "zo.directions", "zo.micro_batch", "train.steps", "train.lr", "train.eval_every",
                "train.checkpoint_every", "train.batch_size", "model.lora.r", "model.lora.alpha"]
    for key in positive:
        value = get(cfg, key)
        require(value > 0, key, value, "expected a positive number")
    require(cfg.train.lr_end >= 0, "train.lr_end", cfg.train.lr_end, "expected >= 0")
    require(cfg.train.weight_decay >= 0, "train.weight_decay", cfg.train.weight_decay, "expected >= 0")
    m = cfg.privacy.n_subsets
    require(m >= 2 and m % 2 == 0, "privacy.n_subsets", m, "expected an even number >= 2 (each record "
             "joins exactly M/2 subsets)")
    spec(cfg.privacy.mechanism).check(cfg)
    if cfg.train.select_on is not None:
        require(dev_source(cfg.data) != "none", "train.select_on", cfg.train.select_on,
                 "there is no dev set (data.dev_source=none): the last checkpoint is released; leave it unset")
    if spec(cfg.privacy.mechanism).first_order and task_kind(cfg.data) == "generation":
        require(cfg.data.objective == "lm", "data.objective", cfg.data.objective,
                 f"privacy.mechanism={cfg.privacy.mechanism} follows the loss's gradient: expected lm (the -F1 of a "
                 "greedy answer has none)")
    require(1e-15 <= cfg.privacy.free_threshold < 1e-3, "privacy.free_threshold", cfg.privacy.free_threshold,
             "expected 1e-15 <= threshold < 1e-3 (below 1e-15 the posterior mass on +1 can round to 1 and a "
             "release to a coin)")
    require(cfg.data.n_test is None or cfg.data.n_test > 0, "data.n_test", cfg.data.n_test,
             "expected a positive number or null (all)")
    if cfg.model.dtype != "float32" and cfg.model.tuning == Tuning.FULL:
        log.warning("model.dtype=%s with full fine-tuning: updates of size lr·|z| below the weights' rounding "
                    "step are lost; float32 is recommended", cfg.model.dtype)
    if cfg.logging.tensorboard and importlib.util.find_spec("tensorboard") is None:
        raise PaczeroError("config: logging.tensorboard=true needs the tensorboard package; "
                           "pip install 'paczero[tensorboard]' or set logging.tensorboard=false")
    require(cfg.model.device_map is None or cfg.model.name != "tiny", "model.device_map", cfg.model.device_map,
             "expected null for model.name=tiny (it is built in place, not loaded)")
    require(cfg.model.threads is None or cfg.model.threads > 0, "model.threads", cfg.model.threads,
             "expected a positive number or null")
    top = cfg.model.train_top_layers
    require(top is None or top > 0, "model.train_top_layers", top, "expected a positive number of layers or null")
    require(top is None or cfg.model.tuning == Tuning.FULL, "model.train_top_layers", top,
             f"expected null with model.tuning={cfg.model.tuning} (it selects layers for full tuning)")
    _validate_trainable(cfg)
    require(not cfg.zo.cache_prefix or top is not None or cfg.model.tuning == Tuning.SET, "zo.cache_prefix",
             cfg.zo.cache_prefix, "a cached prefix needs a frozen bottom: set model.train_top_layers or "
             "model.tuning=set with model.trainable too")
    return cfg


def _validate_trainable(cfg: Config) -> None:
    """``model.trainable``: some part with ``model.tuning=set``, none otherwise; counts >= 0; a valid pattern; head
    rows for classification only."""
    t = cfg.model.trainable
    if cfg.model.tuning != Tuning.SET:
        require(not t.parts(), "model.trainable", ", ".join(t.parts()),
                 f"model.trainable applies with model.tuning=set (it is {cfg.model.tuning})")
        return
    require(bool(t.parts()), "model.trainable", "{}", "model.tuning=set tunes the parts of model.trainable: set at "
             "least one of head_rows, final_norm, norms, biases, lora_layers, layers, pattern")
    for key in ("norms", "biases", "lora_layers", "layers"):
        value = getattr(t, key)
        require(value >= 0, f"model.trainable.{key}", value, "expected a number of top decoder layers >= 0")
    if t.pattern is not None:
        try:
            re.compile(t.pattern)
        except re.error as exc:
            raise PaczeroError(f"config: model.trainable.pattern={t.pattern!r} is not a regular expression "
                               f"({exc})") from None
    kind = task_kind(cfg.data)
    require(not t.head_rows or kind == "classification", "model.trainable.head_rows", t.head_rows,
             f"the label words' head rows exist for classification tasks only; data.task={cfg.data.task} is a {kind} "
             "task (tune final_norm, norms, lora_layers, layers or a pattern)")


def load_config(source: "str | Path | dict[str, Any] | Config | None" = None, overrides: Sequence[str] = ()) -> Config:
    """Build a validated :class:`Config` from defaults, an optional source (a YAML file's path, a nested dict such as
    ``{"train": {"steps": 50}}``, or a :class:`Config`) and dotted overrides."""
    return validate(merge_config(source, overrides))


def config_from_dict(d: dict[str, Any]) -> Config:
    """Rebuild a :class:`Config` from :meth:`Config.to_dict` output (e.g. a run's ``config.yaml``)."""
    try:
        cfg = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(Config), OmegaConf.create(d)))
    except OmegaConfBaseException as exc:
        raise PaczeroError(f"config: {str(exc).splitlines()[0]}") from None
    assert isinstance(cfg, Config)
    return validate(cfg)


def load_run_config(run_dir: str | Path, overrides: Sequence[str] = ()) -> Config:
    """The resolved config saved in a run directory (``config.yaml``), with the data paths it withholds where the
    run's private folder still holds them (the owner's machine), and optional dotted overrides."""
    path = Path(run_dir) / CONFIG_FILE
    if not path.is_file():
        raise PaczeroError(f"{run_dir} is not a run directory (no {CONFIG_FILE})")
    withheld_path = Path(run_dir) / WITHHELD_PATHS_FILE
    withheld = [f"{k}={v}" for k, v in json.loads(withheld_path.read_text()).items()] if withheld_path.is_file() else []
    try:
        merged = OmegaConf.merge(_load_yaml(path), _override_layer([*withheld, *overrides]))
    except OmegaConfBaseException as exc:
        raise PaczeroError(f"config: {str(exc).splitlines()[0]}") from None
    return config_from_dict(OmegaConf.to_container(merged))


def _published_path(value: str, folder: Path | None) -> str:
    """A data path as the published settings say it: relative to the data folder when inside it, else withheld."""
    path = Path(value).expanduser()
    if folder is not None:
        try:
            return path.resolve().relative_to(folder.resolve()).as_posix()
        except ValueError:
            pass
    return WITHHELD + path.suffix


def public_config(cfg: Config) -> tuple[Config, dict[str, str]]:
    """The settings as published (``config.yaml``, ``metrics.json``, an export's ``run.yaml``), and the values they
    withhold, keyed ``data.<key>`` (kept in the run's private folder).

    A path can itself be sensitive (``/home/alice/hiv-clinic/patients.csv``): ``data.data_dir`` is never
    published, a data file or local data set is published relative to the data folder when it lies inside it (so
    ``paczero verify --data-dir`` finds it) and as ``<withheld>`` otherwise; a hub data set's name is published.
    """
    public, withheld = copy.deepcopy(cfg), {}
    folder = data_folder(cfg.data.data_dir)
    for key in PATH_KEYS:
        value = getattr(cfg.data, key)
        if value is None or (key == "dataset" and not Path(value).expanduser().exists()):
            continue
        shown = None if key == "data_dir" else _published_path(value, folder)
        if shown != value:
            withheld[f"data.{key}"] = value
            setattr(public.data, key, shown)
    return public, withheld
