"""No traceback from any file a user can hand us: every reader on generated malformed files.

Each reader (SST-2 TSV, SQuAD JSON, JSONL, and ``data.task=hf`` on CSV, JSON, JSON Lines and Parquet) gets
valid files, the same files truncated, with bytes inserted or overwritten, re-encoded (Latin-1, UTF-16, a BOM,
halves in two encodings), with fields, lines or nesting of pathological size, JSON values of the wrong type,
and plain binary. Each file either reads into records of the right type, or raises :class:`PaczeroError` with
one short line that names the file. A fixed seed and a bounded number of examples keep each reader to a few
seconds.
"""

from __future__ import annotations

import io
import itertools
import json
from pathlib import Path
from typing import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from paczero.config import DataConfig
from paczero.settings import load_config
from paczero.data import Example, GenerationExample
from paczero.data.jsonl import read_jsonl
from paczero.data.squad import read_squad_json
from paczero.data.sst2 import read_sst2_tsv
from paczero.errors import PaczeroError

FUZZ = settings(derandomize=True, max_examples=120, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.data_too_large])
_names = itertools.count()

words = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=12)
json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | words,
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(words, inner, max_size=3),
                           max_leaves=8)
big = st.sampled_from([b"x" * 200_000, b"\t" * 5_000, b"\n" * 20_000, b"," * 5_000, b"[" * 20_000,
                       b"1" * 5_000, b"\x00" * 1_000, "\u2028\u0085\r".encode() * 100])


@st.composite
def malformed(draw, valid: st.SearchStrategy[bytes]) -> bytes:
    """A valid file, then maybe truncated, patched, re-encoded or blown up; or binary."""
    kind = draw(st.sampled_from(["valid", "truncated", "patched", "encoding", "huge", "binary", "empty"]))
    if kind == "binary":
        return draw(st.binary(max_size=2_000))
    if kind == "empty":
        return draw(st.sampled_from([b"", b"\n", b"\xef\xbb\xbf", b" \r\n\t"]))
    content = draw(valid)
    if kind == "truncated":
        return content[:draw(st.integers(0, len(content)))]
    if kind == "patched":
        for _ in range(draw(st.integers(1, 4))):
            at = draw(st.integers(0, len(content)))
            patch = draw(st.binary(min_size=1, max_size=6))
            cut = at + draw(st.integers(0, len(patch)))  # overwrite some bytes, or insert
            content = content[:at] + patch + content[cut:]
        return content
    if kind == "encoding":
        text = content.decode("utf-8", errors="replace")  # a Parquet file is no text: mangled all the same
        codec = draw(st.sampled_from(["latin-1", "utf-16", "utf-16-le", "cp1252", "bom", "half"]))
        if codec == "bom":
            return b"\xef\xbb\xbf" + content
        if codec == "half":
            return content[:len(content) // 2] + text[len(text) // 2:].encode("latin-1", errors="replace")
        return text.encode(codec, errors="replace")
    if kind == "huge":
        at = draw(st.integers(0, len(content)))
        return content[:at] + draw(big) + content[at:]
    return content


def _tsv_rows() -> st.SearchStrategy[bytes]:
    header = st.sampled_from(["label\tsentence", "sentence\tlabel", "label\tcontent", "Label\ttext\textra"])
    cell = st.text(st.characters(codec="utf-8", exclude_characters="\t\r\n", exclude_categories=["Cs"]), max_size=30)
    label = st.sampled_from(["0", "1", " 1 ", "-1", "2", "x", "", "1.0", "--1", "\u00b2"])
    return st.builds(lambda h, rows: (h + "\n" + "\n".join(rows) + "\n").encode(), header,
                     st.lists(st.builds(lambda lab, c, sep: f"{lab}{sep}{c}", label, cell,
                                        st.sampled_from(["\t", "\t\t", ""])), max_size=6))


def _jsonl_rows(kind: str) -> st.SearchStrategy[bytes]:
    if kind == "classification":
        good = st.fixed_dictionaries({"text": words, "label": st.sampled_from([0, 1, " great", "terrible"])})
    else:
        good = st.fixed_dictionaries({"prompt": words.filter(bool), "answers": st.lists(words, min_size=1, max_size=3)})
    record = st.one_of(good, json_values, st.builds(lambda g, k, v: {**g, k: v}, good,
                                                    st.sampled_from(["text", "label", "prompt", "answers"]),
                                                    json_values))
    return st.builds(lambda rs: "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rs).encode(),
                     st.lists(record, max_size=5))


def _squad_doc() -> st.SearchStrategy[bytes]:
    qa = st.fixed_dictionaries({"question": words, "answers": st.lists(st.fixed_dictionaries({"text": words}),
                                                                      max_size=2)})
    paragraph = st.fixed_dictionaries({"context": words, "qas": st.lists(qa | json_values, max_size=2)})
    article = st.fixed_dictionaries({"title": words, "paragraphs": st.lists(paragraph | json_values, max_size=2)})
    doc = st.one_of(st.fixed_dictionaries({"data": st.lists(article, max_size=2)}), json_values,
                    st.fixed_dictionaries({"data": json_values}))
    return st.builds(lambda d: json.dumps(d, ensure_ascii=False).encode(), doc)


def _check(read: Callable[[Path], list], path: Path, content: bytes, record_type: type) -> None:
    """Reads into records of ``record_type``, or one :class:`PaczeroError` line naming ``path``."""
    path.write_bytes(content)
    try:
        records = read(path)
    except PaczeroError as exc:
        message = str(exc)
        assert "\n" not in message and str(path) in message and len(message) < 600, message
        return
    assert records and all(isinstance(r, record_type) for r in records)


def _path(tmp_path: Path, suffix: str) -> Path:
    return tmp_path / f"f{next(_names)}{suffix}"


@FUZZ
@given(content=malformed(_tsv_rows()))
def test_sst2_tsv(tmp_path, content):
    _check(read_sst2_tsv, _path(tmp_path, ".tsv"), content, Example)


@FUZZ
@given(content=malformed(_squad_doc()))
def test_squad_json(tmp_path, content):
    _check(read_squad_json, _path(tmp_path, ".json"), content, GenerationExample)


@FUZZ
@given(kind=st.sampled_from(["classification", "generation"]), data=st.data())
def test_jsonl(tmp_path, kind, data):
    content = data.draw(malformed(_jsonl_rows(kind)))
    record = Example if kind == "classification" else GenerationExample
    data = DataConfig(task="jsonl", kind=kind, label_words=[" terrible", " great"])
    _check(lambda p: read_jsonl(p, data), _path(tmp_path, ".jsonl"), content, record)


def _csv_rows() -> st.SearchStrategy[bytes]:
    cell = st.one_of(words, st.integers(-3, 3).map(str), st.sampled_from(["NA", "null", "", '"', '"a,b"']))
    header = st.sampled_from(["sentence,label", "label,sentence,extra", "sentence", "a,b"])
    return st.builds(lambda h, rows: (h + "\n" + "".join(",".join(r) + "\n" for r in rows)).encode(), header,
                     st.lists(st.lists(cell, min_size=1, max_size=3), max_size=5))


def _json_rows(lines: bool) -> st.SearchStrategy[bytes]:
    record = st.one_of(st.fixed_dictionaries({"sentence": words | json_values,
                                              "label": st.sampled_from([0, 1, "great", 2]) | json_values}),
                       json_values)
    if lines:
        return st.builds(lambda rs: "".join(json.dumps(r) + "\n" for r in rs).encode(), st.lists(record, max_size=5))
    return st.builds(lambda rs: json.dumps(rs).encode(), st.lists(record, max_size=5) | json_values)


def _parquet_rows() -> st.SearchStrategy[bytes]:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    column = st.one_of(st.lists(words, min_size=3, max_size=3), st.lists(st.integers(-2, 3), min_size=3, max_size=3),
                       st.lists(st.floats(allow_nan=True), min_size=3, max_size=3),
                       st.lists(st.none() | words, min_size=3, max_size=3),
                       st.lists(st.lists(words, max_size=2), min_size=3, max_size=3))

    def table(columns: dict) -> bytes:
        buffer = io.BytesIO()
        pq.write_table(pa.table(columns), buffer)
        return buffer.getvalue()

    return st.builds(table, st.dictionaries(st.sampled_from(["sentence", "label", "other"]), column, min_size=1))


def _hf_reader() -> Callable[[Path], list]:
    from paczero.data.hf import load_hf

    def read(path: Path) -> list:
        data = load_config(None, ["data.task=hf", "data.kind=classification", f"data.train_file={path}",
                                  f"data.test_file={path}", 'data.label_words=[" terrible"," great"]']).data
        train, dev, test = load_hf(data)
        assert dev is None and test == train
        return train

    return read


@pytest.mark.parametrize("suffix, valid", [(".csv", _csv_rows()), (".json", _json_rows(lines=False)),
                                           (".jsonl", _json_rows(lines=True)), (".parquet", _parquet_rows())])
def test_datasets_files(tmp_path, suffix, valid):
    pytest.importorskip("datasets")
    read = _hf_reader()

    @settings(FUZZ, max_examples=50)
    @given(content=malformed(valid))
    def check(content):
        _check(read, _path(tmp_path, suffix), content, Example)

    check()
