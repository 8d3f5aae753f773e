"""The GGUF cache: a cached load equals the GGUF load bit for bit; corrupt entries and changed files are rebuilt."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from paczero import gguf_cache
from paczero.config import ModelConfig
from paczero.models import load_model, packaged_smollm2

TEXTS = ["the river ran", "The river, the king\nand 42 ships.", "<s>the</s>"]


def write_tiny_gguf(path: Path, *, seed: int = 0, hidden: int = 32, layers: int = 2, heads: int = 4,
                    kv_heads: int = 2, ffn: int = 64) -> Path:
    """A Llama GGUF with a byte-level BPE tokenizer and random weights, some of them Q8_0 and Q4_1 blocks."""
    from gguf import GGMLQuantizationType as Q
    from gguf import GGUFWriter
    from gguf.quants import quantize
    from tokenizers.pre_tokenizers import ByteLevel

    merges = ["t h", "th e", "Ġ th", "Ġth e", "r i", "v e", "ri ve", "rive r", "Ġ river"]
    tokens = ["<unk>", "<s>", "</s>", *sorted(ByteLevel.alphabet()), *(m.replace(" ", "") for m in merges)]
    w = GGUFWriter(str(path), "llama")
    w.add_block_count(layers)
    w.add_context_length(128)
    w.add_embedding_length(hidden)
    w.add_feed_forward_length(ffn)
    w.add_head_count(heads)
    w.add_head_count_kv(kv_heads)
    w.add_rope_freq_base(10000.0)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_vocab_size(len(tokens))
    w.add_rope_dimension_count(hidden // heads)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("gpt2")
    w.add_token_list(tokens)
    w.add_token_types([3, 3, 3] + [1] * (len(tokens) - 3))
    w.add_token_merges(merges)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)
    w.add_pad_token_id(2)
    w.add_add_bos_token(False)
    rng = np.random.default_rng(seed)

    def tensor(name: str, shape: tuple[int, ...], qtype=Q.F32) -> None:
        data = rng.normal(0.0, 0.2, size=shape).astype(np.float32) + (1.0 if name.endswith("norm.weight") else 0.0)
        if qtype == Q.F32:
            w.add_tensor(name, data)
        else:
            w.add_tensor(name, quantize(data, qtype), raw_dtype=qtype)

    kv = kv_heads * (hidden // heads)
    tensor("token_embd.weight", (len(tokens), hidden), Q.Q8_0)
    for i in range(layers):
        for name, shape, qtype in [("attn_norm", (hidden,), Q.F32), ("attn_q", (hidden, hidden), Q.Q4_1),
                                   ("attn_k", (kv, hidden), Q.Q4_1), ("attn_v", (kv, hidden), Q.Q8_0),
                                   ("attn_output", (hidden, hidden), Q.F32), ("ffn_norm", (hidden,), Q.F32),
                                   ("ffn_gate", (ffn, hidden), Q.Q4_1), ("ffn_up", (ffn, hidden), Q.F32),
                                   ("ffn_down", (hidden, ffn), Q.Q8_0)]:
            tensor(f"blk.{i}.{name}.weight", shape, qtype)
    tensor("output_norm.weight", (hidden,))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


@pytest.fixture
def tiny_gguf(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("PACZERO_CACHE_DIR", str(tmp_path / "cache"))
    (tmp_path / "model").mkdir()
    return write_tiny_gguf(tmp_path / "model" / "tiny.gguf")


@pytest.fixture
def builds(monkeypatch) -> list[Path]:
    """The GGUF files de-quantised into the cache (each call of the cache's builder)."""
    seen, real = [], gguf_cache._build
    monkeypatch.setattr(gguf_cache, "_build", lambda gguf, sha, folder: seen.append(gguf) or real(gguf, sha, folder))
    return seen


def _direct(folder: Path, gguf_file: str, dtype: torch.dtype):
    """The model and tokenizer read from the GGUF by transformers itself, no cache."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return (AutoModelForCausalLM.from_pretrained(folder, gguf_file=gguf_file, dtype=dtype),
            AutoTokenizer.from_pretrained(folder, gguf_file=gguf_file))


def _assert_same(loaded, model, tokenizer) -> None:
    ours = loaded.model.state_dict()
    theirs = model.state_dict()
    assert ours.keys() == theirs.keys() and len(ours) > 10
    for name, tensor in theirs.items():
        assert ours[name].dtype == tensor.dtype and torch.equal(ours[name], tensor), name
    assert loaded.model.config.tie_word_embeddings == model.config.tie_word_embeddings
    for text in TEXTS:
        assert loaded.tokenizer(text).input_ids == tokenizer(text).input_ids
    for attr in ("bos_token_id", "eos_token_id", "pad_token_id", "unk_token_id"):
        assert getattr(loaded.tokenizer, attr) == getattr(tokenizer, attr), attr


def _config(gguf: Path, **kw) -> ModelConfig:
    return ModelConfig(name=str(gguf.parent), gguf_file=gguf.name, device="cpu", **kw)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_cached_load_equals_the_gguf_load_bit_for_bit(tiny_gguf, builds, dtype):
    first = load_model(_config(tiny_gguf, dtype=dtype), seed=0)
    again = load_model(_config(tiny_gguf, dtype=dtype), seed=0)
    assert builds == [tiny_gguf.resolve()]  # the second load read the cache
    model, tokenizer = _direct(tiny_gguf.parent, tiny_gguf.name, getattr(torch, dtype))
    _assert_same(first, model, tokenizer)
    _assert_same(again, model, tokenizer)
    entry = gguf_cache.dequantised(tiny_gguf)
    assert entry.parent.parent == Path(os.environ["PACZERO_CACHE_DIR"]) and entry.name == gguf_cache.sha256_of(tiny_gguf)
    assert "quantization_config" not in json.loads((entry / "config.json").read_text())


def _truncate(entry: Path) -> None:
    path = entry / "model.safetensors"
    path.write_bytes(path.read_bytes()[:-100])


def _garble(entry: Path) -> None:  # one byte in the middle of the weights: same size, same header
    path = entry / "model.safetensors"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def _claim_another_gguf(entry: Path) -> None:
    manifest = json.loads((entry / gguf_cache.MANIFEST).read_text())
    (entry / gguf_cache.MANIFEST).write_text(json.dumps({**manifest, "gguf_sha256": "0" * 64}))


@pytest.mark.parametrize("corrupt", [
    _truncate, _garble, _claim_another_gguf,
    lambda entry: (entry / "tokenizer.json").unlink(),
    lambda entry: (entry / gguf_cache.MANIFEST).write_text("{not json"),
    lambda entry: (entry / gguf_cache.MANIFEST).unlink(),
], ids=["truncated", "garbled", "another-gguf", "missing-file", "garbled-manifest", "no-manifest"])
def test_a_corrupt_entry_is_rebuilt_never_used(tiny_gguf, builds, corrupt):
    entry = gguf_cache.dequantised(tiny_gguf)
    corrupt(entry)
    assert gguf_cache.dequantised(tiny_gguf) == entry
    assert len(builds) == 2
    _assert_same(load_model(_config(tiny_gguf), seed=0), *_direct(tiny_gguf.parent, tiny_gguf.name, torch.float32))
    assert [p.name for p in entry.parent.iterdir() if p.name.startswith(".")] == []  # no temporary folder left


def test_a_changed_gguf_is_read_again(tiny_gguf, builds):
    before = load_model(_config(tiny_gguf), seed=0)
    stat = tiny_gguf.stat()
    write_tiny_gguf(tiny_gguf, seed=1)
    os.utime(tiny_gguf, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))  # even within one clock tick
    after = load_model(_config(tiny_gguf), seed=0)
    assert len(builds) == 2
    _assert_same(after, *_direct(tiny_gguf.parent, tiny_gguf.name, torch.float32))
    assert not torch.equal(before.model.model.norm.weight, after.model.model.norm.weight)


def test_the_gguf_is_hashed_once_per_size_and_modification_time(tiny_gguf, monkeypatch):
    hashed, real = [], gguf_cache.sha256_of
    monkeypatch.setattr(gguf_cache, "sha256_of", lambda path: hashed.append(Path(path).name) or real(path))
    gguf_cache.dequantised(tiny_gguf)
    assert hashed.count(tiny_gguf.name) == 2  # to look it up, then in full before writing the entry
    hashed.clear()
    gguf_cache.dequantised(tiny_gguf)
    assert tiny_gguf.name not in hashed and "model.safetensors" in hashed  # the entry itself is always checked


def test_the_cache_lives_in_the_checkout_unless_told_otherwise(monkeypatch, tmp_path):
    monkeypatch.delenv("PACZERO_CACHE_DIR", raising=False)
    assert gguf_cache.cache_root() == Path(__file__).resolve().parents[1] / ".cache" / "paczero"
    monkeypatch.setenv("PACZERO_CACHE_DIR", str(tmp_path / "elsewhere"))
    assert gguf_cache.cache_root() == tmp_path / "elsewhere"


def test_an_unwritable_cache_is_a_clear_error(tiny_gguf, tmp_path, monkeypatch):
    from paczero.errors import PaczeroError

    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("PACZERO_CACHE_DIR", str(blocker / "cache"))
    with pytest.raises(PaczeroError, match="cannot cache tiny.gguf de-quantised under .*PACZERO_CACHE_DIR"):
        load_model(_config(tiny_gguf), seed=0)


@pytest.mark.slow
def test_packaged_smollm2_loads_from_the_cache_as_from_its_gguf(tmp_path, monkeypatch):
    monkeypatch.setenv("PACZERO_CACHE_DIR", str(tmp_path / "cache"))
    load_model(ModelConfig(name="smollm2", device="cpu"), seed=0)  # builds the entry
    start = time.perf_counter()
    cached = load_model(ModelConfig(name="smollm2", device="cpu"), seed=0)
    print(f"cached load of SmolLM2-135M: {time.perf_counter() - start:.2f} s")
    folder, gguf = packaged_smollm2()
    _assert_same(cached, *_direct(Path(folder), gguf, torch.float32))
