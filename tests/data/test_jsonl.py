"""Custom JSONL tasks: both kinds, labels by index or word, a separate dev file, bad input."""

from __future__ import annotations

import json

import pytest

from paczero.config import DataConfig
from paczero.settings import load_config
from paczero.data import Example, GenerationExample, load_task
from paczero.data.jsonl import read_jsonl
from paczero.errors import PaczeroError

WORDS = [" bad", " good"]


def _data(kind: str = "classification", **options) -> DataConfig:
    """Options of a JSONL task whose prompt is the text alone (so a record's prompt is its text)."""
    return DataConfig(task="jsonl", kind=kind, label_words=WORDS, prompt=options.pop("prompt", "{sentence}"),
                      **options)


def _lines(path, rows) -> str:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return str(path)


def test_classification_labels_by_index_or_word(tmp_path):
    _lines(tmp_path / "a.jsonl", [{"text": "fine film", "label": 1}, "", {"text": "dull", "label": "bad", "id": 7}])
    assert read_jsonl(tmp_path / "a.jsonl", _data()) == [Example("fine film", 1), Example("dull", 0)]


@pytest.mark.parametrize("prompt", ["{sentence} It was", "{text} It was"])
def test_sentence_and_text_name_the_same_field_as_for_hf(tmp_path, prompt):
    """One rule for JSONL keys and hf columns: {text} is the key text, and {sentence} falls back to it."""
    _lines(tmp_path / "a.jsonl", [{"text": "fine film", "label": 1}])
    assert read_jsonl(tmp_path / "a.jsonl", _data(prompt=prompt)) == [Example("fine film It was", 1)]


def test_any_key_fills_the_prompt_and_label_options_apply(tmp_path):
    _lines(tmp_path / "n.jsonl", [{"premise": "A cat sleeps.", "hypothesis": "An animal rests.", "gold": "yes"}])
    data = _data(prompt="{premise} Q: {hypothesis}", label_field="gold", label_names=["no", "yes"])
    assert read_jsonl(tmp_path / "n.jsonl", data) == [Example("A cat sleeps. Q: An animal rests.", 1)]


def test_an_old_jsonl_config_reads_the_same_prompts(tmp_path):
    """A record {"text", "label"} under the default prompt gives the prompt the template rendered before."""
    rows = [{"text": "fine film", "label": 1}, {"text": "dull {x}", "label": " terrible"}]
    train = _lines(tmp_path / "train.jsonl", rows * 4)
    cfg = load_config(None, ["data.task=jsonl", "data.kind=classification", f"data.train_file={train}",
                             f"data.test_file={train}", "data.n_pool=4", "data.n_dev=2", "data.dev_source=train"])
    task, split = load_task(cfg.data, seed=0)
    assert sorted({task.render(r) for r in split.test}) == ["dull {x} It was", "fine film It was"]


def test_generation_records(tmp_path):
    _lines(tmp_path / "g.jsonl", [{"prompt": "Q: 2+2?\nA:", "answers": ["4", "four"]}])
    assert read_jsonl(tmp_path / "g.jsonl", _data("generation")) == [GenerationExample("Q: 2+2?\nA:", ("4", "four"))]


@pytest.mark.parametrize("kind, row, match", [
    ("classification", {"text": "x"}, "missing key 'label'"),
    ("classification", {"label": 0}, "missing key 'sentence'"),
    ("classification", {"text": "x", "label": 2}, "maps to no label word"),
    ("classification", {"text": "x", "label": "meh"}, "maps to no label word"),
    ("classification", {"text": "x", "label": True}, "maps to no label word"),
    ("classification", {"text": 5, "label": 0}, "column 'text' holds a int; expected text"),
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
        read_jsonl(tmp_path / "bad.jsonl", _data(kind))
    assert "bad.jsonl:2:" in str(info.value) and "meh" not in str(info.value)


def test_empty_and_undecodable_files(tmp_path):
    (tmp_path / "empty.jsonl").write_text("\n\n")
    with pytest.raises(PaczeroError, match="holds no records"):
        read_jsonl(tmp_path / "empty.jsonl", _data("generation"))
    (tmp_path / "bin.jsonl").write_bytes(b'{"prompt": "\xfe", "answers": ["a"]}\n')
    with pytest.raises(PaczeroError, match="not valid UTF-8"):
        read_jsonl(tmp_path / "bin.jsonl", _data("generation"))


def test_split_with_and_without_a_dev_file(tmp_path):
    train = _lines(tmp_path / "train.jsonl", [{"prompt": f"p{i}", "answers": [f"a{i}"]} for i in range(30)])
    dev = _lines(tmp_path / "dev.jsonl", [{"prompt": f"d{i}", "answers": ["x"]} for i in range(12)])
    test = _lines(tmp_path / "test.jsonl", [{"prompt": f"t{i}", "answers": ["y"]} for i in range(9)])
    base = ["data.task=jsonl", "data.kind=generation", f"data.train_file={train}", f"data.test_file={test}",
            "data.n_pool=20", "data.n_dev=10"]
    task, split = load_task(load_config(None, [*base, "data.dev_source=train"]).data, seed=0)
    assert task.kind == "generation" and len(split.test) == 9
    assert {r.prompt for r in split.pool + split.dev} <= {f"p{i}" for i in range(30)}
    assert len({r.prompt for r in split.pool + split.dev}) == 30
    _, split = load_task(load_config(None, base).data, seed=0)  # a user's file: no dev set unless asked
    assert len(split.pool) == 20 and split.dev == []
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
    (b'{"text": "x", "label": "' + b"z" * 10_000 + b'"}', r"bad\.jsonl:1: the label \(column 'label'\) maps to no"),
])
def test_lines_that_used_to_raise_tracebacks(tmp_path, line, match):
    (tmp_path / "bad.jsonl").write_bytes(line + b"\n")
    with pytest.raises(PaczeroError, match=match) as info:
        read_jsonl(tmp_path / "bad.jsonl", _data())
    assert len(str(info.value)) < 400


def test_line_separators_inside_strings_stay_in_the_record(tmp_path):
    """JSON Lines ends a record at ``\\n`` only: U+2028 and U+0085 in a string (``ensure_ascii=False``) are text."""
    row = {"prompt": "a\u2028b\x85c\x0cd", "answers": ["x"]}
    (tmp_path / "g.jsonl").write_text(json.dumps(row, ensure_ascii=False) + "\r\n", encoding="utf-8")
    assert read_jsonl(tmp_path / "g.jsonl", _data("generation")) == [GenerationExample(row["prompt"], ("x",))]
