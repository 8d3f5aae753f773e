"""Greedy generation: stopping, batched = one by one = transformers' own greedy ``generate``."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from paczero.config import ModelConfig
from paczero.generation import greedy_generate
from paczero.models import build_tiny_model, build_tiny_tokenizer
from paczero.objectives import model_forward

CPU = torch.device("cpu")


def _scripted(script: list[list[int]], vocab: int, calls: list):
    """A forward whose row r emits ``script[r][step]`` (then 0 forever), recording each call's input width."""

    def forward(*, input_ids, attention_mask, position_ids, return_output, past_key_values=None, **kw):
        assert return_output and kw["use_cache"]
        step = len(calls)
        calls.append(input_ids.shape[1])
        logits = torch.zeros((input_ids.shape[0], input_ids.shape[1], vocab))
        for row, tokens in enumerate(script):
            logits[row, -1, tokens[step] if step < len(tokens) else 0] = 1.0
        return SimpleNamespace(logits=logits, past_key_values=step)

    return forward


def test_each_sequence_stops_at_its_first_stop_token_and_the_batch_when_all_have():
    newline, eos = 7, 9
    script = [[1, 2, newline, 3, 4], [5, eos, 6], [1, 1, 1, 1, newline]]
    calls: list[int] = []
    out = greedy_generate(_scripted(script, 10, calls), [[1, 2, 3], [4], [5, 6]], stop_ids=[newline, eos], pad_id=0,
                          max_new_tokens=10, device=CPU)
    assert out == [[1, 2, newline], [5, eos], [1, 1, 1, 1, newline]]
    assert calls == [3, 1, 1, 1, 1]  # one prefill over the padded prompts, then one token per call


def test_max_new_tokens_caps_the_generation():
    calls: list[int] = []
    out = greedy_generate(_scripted([[1, 2, 3, 4, 5]], 10, calls), [[1]], stop_ids=[9], pad_id=0, max_new_tokens=3,
                          device=CPU)
    assert out == [[1, 2, 3]] and len(calls) == 3


@pytest.fixture(scope="module")
def tiny():
    texts = ["the river crossed the old city\nand the king ruled", "north south gold stone war year built named"]
    tokenizer = build_tiny_tokenizer(texts)
    model = build_tiny_model(ModelConfig(), tokenizer, seed=3).eval()
    prompts = [tokenizer(t).input_ids for t in ["the river crossed", "gold", "north south gold stone war", "the king",
                                                "stone stone year built named the old"]]
    return tokenizer, model, prompts


def _hf_greedy(model, prompt: list[int], stop: list[int], n: int, pad: int) -> list[int]:
    out = model.generate(torch.tensor([prompt]), attention_mask=torch.ones(1, len(prompt), dtype=torch.long),
                         max_new_tokens=n, do_sample=False, eos_token_id=stop, pad_token_id=pad)
    return out[0, len(prompt):].tolist()


def test_batched_greedy_equals_one_by_one_and_transformers_generate(tiny):
    tokenizer, model, prompts = tiny
    forward, pad, n = model_forward(model), tokenizer.pad_token_id, 12
    stop = [tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids("\n")]
    single = [greedy_generate(forward, [p], stop_ids=stop, pad_id=pad, max_new_tokens=n, device=CPU)[0]
              for p in prompts]
    assert len({len(s) for s in single}) > 1, "every sequence ran alike: the stop is not exercised"
    assert all(0 < len(s) <= n and not set(s[:-1]) & set(stop) for s in single)
    batched = greedy_generate(forward, prompts, stop_ids=stop, pad_id=pad, max_new_tokens=n, device=CPU)
    assert batched == single
    with torch.inference_mode():
        assert [_hf_greedy(model, p, stop, n, pad) for p in prompts] == single
