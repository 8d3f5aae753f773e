"""Prompt templates (one pass, any field) and the chat template: HF's own tokenised chat as the oracle, one BOS."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from tokenizers import processors

from paczero.settings import load_config
from paczero.data import ClassificationTask, Example, GenerationExample, GenerationTask
from paczero.data.prompts import fill_template, prompt_ids, template_fields
from paczero.errors import PaczeroError
from paczero.models import build_tiny_tokenizer
from paczero.objectives import build_objective

CHAT = ("{{ bos_token }}{% for m in messages %}<{{ m['role'] }}> {{ m['content'] }} </{{ m['role'] }}>{% endfor %}"
        "{% if add_generation_prompt %} <assistant>{% endif %}")


def _tokenizer(*, bos: bool, chat: str | None = CHAT):
    """The tiny word-level tokenizer; ``bos``: it prepends [BOS] as Llama's does; ``chat``: its chat template."""
    tok = build_tiny_tokenizer(["A man sleeps . Question: A person rests ? yes no <user> </user> <assistant>"])
    if bos:
        tok.backend_tokenizer.post_processor = processors.TemplateProcessing(
            single="[BOS] $A", special_tokens=[("[BOS]", tok.bos_token_id)])
    tok.chat_template = chat
    return tok


def test_fields_are_filled_in_one_pass():
    assert template_fields("{premise} Q: {hypothesis}? {premise}") == ["premise", "hypothesis"]
    values = {"premise": "{hypothesis}", "hypothesis": "x"}
    assert fill_template("{premise} Q: {hypothesis}?", values) == "{hypothesis} Q: x?"
    assert fill_template("{a} {b} {not a field", {"a": "1"}) == "1 {b} {not a field"


@settings(derandomize=True, max_examples=200, deadline=None)
@given(values=st.fixed_dictionaries({name: st.text(max_size=20) for name in ("a", "b", "sentence")}),
       parts=st.lists(st.sampled_from(["{a}", "{b}", "{sentence}", " ", "text", "?", ":", "\n"]), max_size=8))
def test_filling_agrees_with_str_format(values, parts):
    """The oracle: ``str.format_map``, which never re-reads inserted text either (values hold any braces)."""
    template = "".join(parts)
    assert fill_template(template, values) == template.format_map(values)


def test_chat_ids_match_the_tokenizers_own_and_hold_one_bos():
    tok = _tokenizer(bos=True)
    prompt = "A man sleeps . Question: A person rests ?"
    assert tok(prompt).input_ids[0] == tok.bos_token_id  # the plain prompt gets the tokenizer's BOS
    ids = prompt_ids(tok, prompt, chat=True)
    oracle = tok.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True, tokenize=True)
    assert ids == oracle["input_ids"]
    assert ids.count(tok.bos_token_id) == 1 and ids[0] == tok.bos_token_id
    assert len(ids) == len(tok(prompt).input_ids) + 3  # <user>, </user>, <assistant> around the same words
    assert prompt_ids(tok, prompt, chat=False) == tok(prompt).input_ids


@pytest.mark.parametrize("chat, match", [
    (None, r"data\.chat_template=true but the model's tokenizer has no chat template"),
    ("{{ raise_exception('system messages only') }}", "the tokenizer's chat template fails on a prompt: system"),
])
def test_a_missing_or_failing_chat_template_is_refused(chat, match):
    with pytest.raises(PaczeroError, match=match):
        prompt_ids(_tokenizer(bos=False, chat=chat), "A man sleeps", chat=True)


@pytest.mark.parametrize("kind", ["classification", "generation"])
def test_objectives_encode_the_chat_prompt(kind):
    tok = _tokenizer(bos=True)
    if kind == "classification":
        task = ClassificationTask(prompt="{sentence} Question:", label_words=(" yes", " no"), chat_template=True)
        records = [Example("A man sleeps .", 0), Example("A person rests ?", 1)]
    else:
        task = GenerationTask(chat_template=True)
        records = [GenerationExample("A man sleeps . Question:", ("yes",))]
    data = load_config(None, ["data.max_length=64", "data.max_new_tokens=2"]).data
    objective = build_objective(task, tok, data=data, micro_batch=4, device=torch.device("cpu"), context_length=None)
    encoded = objective.encode(records)
    assert encoded.prompts == [prompt_ids(tok, task.render(r), chat=True) for r in records]
    assert all(p.count(tok.bos_token_id) == 1 for p in encoded.prompts)


def test_the_chat_template_option_reaches_the_task(tmp_path):
    from paczero.data import load_task

    path = tmp_path / "a.jsonl"
    path.write_text('{"text": "A man sleeps", "label": 0}\n' * 3)
    base = ["data.task=jsonl", "data.kind=classification", f"data.train_file={path}", f"data.test_file={path}",
            "data.n_pool=2", "data.n_dev=1"]
    assert not load_task(load_config(None, base).data, seed=0)[0].chat_template
    assert load_task(load_config(None, [*base, "data.chat_template=true"]).data, seed=0)[0].chat_template
