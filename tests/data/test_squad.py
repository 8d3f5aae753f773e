"""SQuAD v1.1 files: the prompt, the dev set from both validation files, the paper's split, bad input."""

from __future__ import annotations

import json

import pytest

from conftest import write_squad
from paczero.settings import load_config
from paczero.data import GenerationExample, load_task
from paczero.data.squad import load_squad, read_squad_json
from paczero.errors import PaczeroError

ARTICLE = {"title": "Super_Bowl_50", "paragraphs": [{"context": "Denver {beat} Carolina.", "qas": [
    {"question": "Who won?", "id": "a", "answers": [{"answer_start": 0, "text": "Denver"},
                                                     {"answer_start": 0, "text": "Denver Broncos"}]},
    {"question": "Who lost?", "id": "b", "answers": [{"answer_start": 14, "text": "Carolina"}]}]}]}


def _write(path, doc) -> None:
    path.write_text(json.dumps(doc))


def test_one_record_per_question_with_the_paper_prompt(tmp_path):
    _write(tmp_path / "a.json", {"data": [ARTICLE], "version": "1.1"})
    records = read_squad_json(tmp_path / "a.json")
    assert records == [
        GenerationExample("Title: Super_Bowl_50\nContext: Denver {beat} Carolina.\nQuestion: Who won?\nAnswer:",
                          ("Denver", "Denver Broncos")),
        GenerationExample("Title: Super_Bowl_50\nContext: Denver {beat} Carolina.\nQuestion: Who lost?\nAnswer:",
                          ("Carolina",)),
    ]


def test_dev_set_is_both_validation_files_in_order(tmp_path):
    write_squad(tmp_path)
    train, dev = load_squad(str(tmp_path))
    first = read_squad_json(tmp_path / "squad" / "validation.json")
    rest = read_squad_json(tmp_path / "squad" / "validation_rest.json")
    assert dev == first + rest and first and rest
    assert train == read_squad_json(tmp_path / "squad" / "train.json")


def test_split_follows_the_paper_protocol(data_dir):
    cfg = load_config(None, ["data.task=squad", f"data.data_dir={data_dir}", "data.n_pool=50", "data.n_dev=30",
                             "data.n_test=25"])
    task, split = load_task(cfg.data, seed=7)
    train, dev = load_squad(str(data_dir))
    assert task.kind == "generation"
    assert len(split.pool) == 50 and len(split.dev) == 30 and len(split.test) == 25
    pool_ids = {id(r) for r in split.pool}
    assert all(r in train for r in split.pool + split.dev) and not pool_ids & {id(r) for r in split.dev}
    assert all(r in dev for r in split.test)  # the test set is drawn from the dev (validation) set
    assert split == load_task(cfg.data, seed=7)[1]
    assert split.test != load_task(cfg.data, seed=8)[1].test


@pytest.mark.parametrize("doc, match", [
    ({"version": "1.1"}, "'data'"),
    ({"data": [{"paragraphs": []}]}, "data\\[0\\] lacks the key 'title'"),
    ({"data": [{"title": "t", "paragraphs": [{"qas": []}]}]}, "'context'"),
    ({"data": [{"title": "t", "paragraphs": [{"context": "c", "qas": [{"question": "q"}]}]}]}, "'answers'"),
    ({"data": [{"title": "t", "paragraphs": [{"context": "c", "qas": [{"question": "q", "answers": []}]}]}]},
     "no answers"),
    ({"data": [{"title": "t", "paragraphs": [{"context": 3, "qas": []}]}]}, "context is a int"),
    ({"data": []}, "no questions"),
])
def test_malformed_files_are_refused(tmp_path, doc, match):
    _write(tmp_path / "bad.json", doc)
    with pytest.raises(PaczeroError, match=match):
        read_squad_json(tmp_path / "bad.json")


@pytest.mark.parametrize("content, match", [
    (b'{"data": [', r"bad\.json: not valid JSON \(Expecting value at column 11\)"),
    (b'{"data": \n[', r"not valid JSON \(Expecting value at line 2, column 2\)"),
    (b'{"data": "\xff"}', r"bad\.json is not valid UTF-8 \(line 1, byte 10\)"),
    (b'\xef\xbb\xbf{"data": \n"\xff"}', r"not valid UTF-8 \(line 2, byte 14\)"),  # the BOM counts as bytes
    (b'{"data": ' + b"[" * 100_000, r"not valid JSON \(RecursionError"),  # used to raise a traceback
    (b'{"data": ' + b"7" * 5_000 + b"}", r"not valid JSON \(ValueError: Exceeds the limit"),  # so did this
])
def test_unparseable_files_are_refused(tmp_path, content, match):
    (tmp_path / "bad.json").write_bytes(content)
    with pytest.raises(PaczeroError, match=match):
        read_squad_json(tmp_path / "bad.json")


def test_missing_files_are_named(tmp_path):
    write_squad(tmp_path)
    (tmp_path / "squad" / "validation.json").unlink()
    with pytest.raises(PaczeroError, match="validation.json"):
        load_squad(str(tmp_path))


def test_a_prompt_of_its_own_fills_every_question_and_keeps_the_split(data_dir):
    """``data.prompt`` for SQuAD: each record's prompt is the template filled from its own title, context and
    question (checked against the JSON file read independently here); the draw of the split is unchanged."""
    template = "Context: {context}\nQuestion: {question}\nAnswer briefly ({title}):"
    base = ["data.task=squad", f"data.data_dir={data_dir}", "data.n_pool=12", "data.n_dev=6", "data.n_test=5"]
    default = load_task(load_config(None, base).data, seed=3)[1]
    custom = load_task(load_config(None, [*base, f"data.prompt={template}"]).data, seed=3)[1]
    doc = json.loads((data_dir / "squad" / "train.json").read_text())
    filled = {}
    for article in doc["data"]:
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                mezo = (f"Title: {article['title']}\nContext: {paragraph['context']}\n"
                        f"Question: {qa['question']}\nAnswer:")
                filled[mezo] = (f"Context: {paragraph['context']}\nQuestion: {qa['question']}\n"
                                f"Answer briefly ({article['title']}):")
    for old, new in zip(default.pool + default.dev, custom.pool + custom.dev):
        assert new.prompt == filled[old.prompt] and new.answers == old.answers
    assert [r.answers for r in default.test] == [r.answers for r in custom.test]


@pytest.mark.parametrize("prompt", ["Q: {question}", "{sentence} {context} {question}", "no fields"])
def test_a_squad_prompt_must_name_its_context_and_question(prompt):
    with pytest.raises(PaczeroError, match="data.prompt"):
        load_config(None, ["data.task=squad", f"data.prompt={prompt}"])
