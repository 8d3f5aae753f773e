"""Custom JSONL tasks: both kinds, labels by index or word, a separate dev file, bad input."""

from __future__ import annotations

import json

import pytest

from paczero.config import load_config
from paczero.data import Example, GenerationExample, load_task
from paczero.data.jsonl import read_jsonl
from paczero.errors import PaczeroError


def _lines(path, rows) -> str:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return str(path)


def test_classification_labels_by_index_or_word(tmp_path):
    _lines(tmp_path / "a.jsonl", [{"text": "fine film", "label": 1}, "", {"text": "dull", "label": "bad", "id": 7}])
    assert read_jsonl(tmp_path / "a.jsonl", kind="classification", label_words=[" bad", " good"]) == [
        Example("fine film", 1), Example("dull", 0)]


def test_generation_records(tmp_path):
    _lines(tmp_path / "g.jsonl", [{"prompt": "Q: 2+2?\nA:", "answers": ["4", "four"]}])
    assert read_jsonl(tmp_path / "g.jsonl", kind="generation") == [GenerationExample("Q: 2+2?\nA:", ("4", "four"))]


@pytest.mark.parametrize("kind, row, match", [
    ("classification", {"text": "x"}, "missing key 'label'"),
    ("classification", {"label": 0}, "missing key 'text'"),
    ("classification", {"text": "x", "label": 2}, "field 'label' is outside the label words"),
    ("classification", {"text": "x", "label": "meh"}, "field 'label' is outside"),
    ("classification", {"text": "x", "label": True}, "outside"),
    ("classification", {"text": 5, "label": 0}, "'text' must be a string"),
    ("generation", {"prompt": "p"}, "missing key 'answers'"),
    ("generation", {"prompt": "p", "answers": []}, "non-empty list"),
    ("generation", {"prompt": "p", "answers": "x"}, "non-empty list"),
    ("generation", {"prompt": "", "answers": ["x"]}, "'prompt' must be a non-empty string"),
    ("generation", "[1, 2]", "expected a JSON object"),
    ("generation", "{not json", "not valid JSON"),
])
def test_bad_records_name_the_line(tmp_path, kind, row, match):
    good = {"text": "ok", "label": 0} if kind == "classification" else {"prompt": "ok", "answers": ["a"]}
    _lines(tmp_path / "bad.jsonl", [good, row])
    with pytest.raises(PaczeroError, match=match) as info:
        read_jsonl(tmp_path / "bad.jsonl", kind=kind, label_words=[" bad", " good"])
    assert "bad.jsonl:2:" in str(info.value)


def test_empty_and_undecodable_files(tmp_path):
    (tmp_path / "empty.jsonl").write_text("\n\n")
    with pytest.raises(PaczeroError, match="holds no records"):
        read_jsonl(tmp_path / "empty.jsonl", kind="generation")
    (tmp_path / "bin.jsonl").write_bytes(b'{"prompt": "\xfe", "answers": ["a"]}\n')
    with pytest.raises(PaczeroError, match="not valid UTF-8"):
        read_jsonl(tmp_path / "bin.jsonl", kind="generation")


def test_split_with_and_without_a_dev_file(tmp_path):
    train = _lines(tmp_path / "train.jsonl", [{"prompt": f"p{i}", "answers": [f"a{i}"]} for i in range(30)])
    dev = _lines(tmp_path / "dev.jsonl", [{"prompt": f"d{i}", "answers": ["x"]} for i in range(12)])
    test = _lines(tmp_path / "test.jsonl", [{"prompt": f"t{i}", "answers": ["y"]} for i in range(9)])
    base = ["data.task=jsonl", "data.kind=generation", f"data.train_file={train}", f"data.test_file={test}",
            "data.n_pool=20", "data.n_dev=10"]
    task, split = load_task(load_config(None, base).data, seed=0)
    assert task.kind == "generation" and len(split.test) == 9
    assert {r.prompt for r in split.pool + split.dev} <= {f"p{i}" for i in range(30)}
    assert len({r.prompt for r in split.pool + split.dev}) == 30
    _, split = load_task(load_config(None, [*base, f"data.dev_file={dev}", "data.n_pool=30"]).data, seed=0)
    assert len(split.pool) == 30 and {r.prompt for r in split.dev} <= {f"d{i}" for i in range(12)}
    with pytest.raises(PaczeroError, match="exceed"):
        load_task(load_config(None, [*base, f"data.dev_file={dev}", "data.n_dev=13"]).data, seed=0)


@pytest.mark.parametrize("overrides, key", [
    (["data.task=jsonl", "data.train_file=a", "data.test_file=b"], "data.kind"),
    (["data.task=jsonl", "data.kind=generation", "data.test_file=b"], "data.train_file"),
    (["data.task=jsonl", "data.kind=generation", "data.train_file=a"], "data.test_file"),
    (["data.task=sst2", "data.train_file=a"], "data.train_file"),
    (["data.task=squad", "data.kind=classification"], "data.kind"),
    (["data.task=squad", "train.select_on=accuracy"], "train.select_on"),
    (["data.task=sst2", "train.select_on=f1"], "train.select_on"),
])
def test_task_options_are_checked(overrides, key):
    with pytest.raises(PaczeroError, match=key.replace(".", r"\.")):
        load_config(None, overrides)


@pytest.mark.parametrize("line, match", [
    (b"[" * 100_000, r"bad\.jsonl:1: not valid JSON \(RecursionError"),
    (b'{"text": "x", "label": ' + b"1" * 5000 + b"}", r"bad\.jsonl:1: not valid JSON \(ValueError: Exceeds the limit"),
    (b'{"text": "x", "label": "' + b"z" * 10_000 + b'"}', r"bad\.jsonl:1: field 'label' is outside the label words"),
])
def test_lines_that_used_to_raise_tracebacks(tmp_path, line, match):
    (tmp_path / "bad.jsonl").write_bytes(line + b"\n")
    with pytest.raises(PaczeroError, match=match) as info:
        read_jsonl(tmp_path / "bad.jsonl", kind="classification", label_words=[" bad", " good"])
    assert len(str(info.value)) < 400


def test_line_separators_inside_strings_stay_in_the_record(tmp_path):
    """JSON Lines ends a record at ``\\n`` only: U+2028 and U+0085 in a string (``ensure_ascii=False``) are text."""
    row = {"prompt": "a\u2028b\x85c\x0cd", "answers": ["x"]}
    (tmp_path / "g.jsonl").write_text(json.dumps(row, ensure_ascii=False) + "\r\n", encoding="utf-8")
    assert read_jsonl(tmp_path / "g.jsonl", kind="generation") == [GenerationExample(row["prompt"], ("x",))]
