"""SST-2 files: both column orders, CRLF, and clear errors on bad input."""

from __future__ import annotations

import re

import pytest

from paczero.data import ClassificationTask, Example, make_split
from paczero.data.sst2 import load_sst2, read_sst2_tsv
from paczero.errors import PaczeroError


def test_reads_both_layouts_and_crlf(tmp_path):
    (tmp_path / "a.tsv").write_bytes(b"label\tsentence\r\n1\tgood film \r\n0\tbad\r\n")
    (tmp_path / "b.tsv").write_text("sentence\tlabel\ngood film\t1\nbad\t0\n")
    expected = [Example("good film", 1), Example("bad", 0)]
    assert read_sst2_tsv(tmp_path / "a.tsv") == expected
    assert read_sst2_tsv(tmp_path / "b.tsv") == expected


@pytest.mark.parametrize("content, match", [
    (b"", "empty"),
    (b"foo\tbar\n1\tx\n", "label"),
    (b"label\tsentence\nx\tgood\n", "not an integer"),
    (b"label\tsentence\n1\n", "columns"),
    (b"label\tsentence\n1\tbad \xff byte\n", "UTF-8"),
])
def test_bad_files_are_refused(tmp_path, content, match):
    (tmp_path / "bad.tsv").write_bytes(content)
    with pytest.raises(PaczeroError, match=match):
        read_sst2_tsv(tmp_path / "bad.tsv")


def test_missing_files_are_named(tmp_path):
    with pytest.raises(PaczeroError, match="train.tsv"):
        load_sst2(str(tmp_path))
    with pytest.raises(PaczeroError, match="not found"):
        load_sst2(str(tmp_path / "nowhere"))


def test_split_is_disjoint_seeded_and_sized():
    train = [Example(f"t{i}", i % 2) for i in range(100)]
    val = [Example(f"v{i}", i % 2) for i in range(30)]
    s = make_split(train, val, n_pool=40, n_dev=20, n_test=None, seed=3)
    assert len(s.pool) == 40 and len(s.dev) == 20 and s.test == val
    assert not {e.text for e in s.pool} & {e.text for e in s.dev}
    assert s == make_split(train, val, n_pool=40, n_dev=20, n_test=None, seed=3)
    assert s.pool != make_split(train, val, n_pool=40, n_dev=20, n_test=None, seed=4).pool
    assert len(make_split(train, val, n_pool=40, n_dev=20, n_test=10, seed=3).test) == 10
    with pytest.raises(PaczeroError, match="exceeds"):
        make_split(train, val, n_pool=90, n_dev=20, n_test=None, seed=0)


def test_labels_outside_label_words_are_refused():
    task = ClassificationTask(prompt="{sentence} It was", label_words=(" bad", " good"))
    with pytest.raises(PaczeroError, match="train: record 1 has a label outside") as info:
        task.check_labels([Example("x", 0), Example("y", 2)], where="train")
    assert info.value.private == "its label: 2"


@pytest.mark.parametrize("content, match, private", [
    (b"label\tsentence\n--1\tgood\n", r"bad\.tsv:2: the label column is not an integer", r"'--1'"),
    ("label\tsentence\n\u00b2\tgood\n".encode(), r"bad\.tsv:2: the label column is not an integer", r"'\u00b2'"),
    (b"label\tsentence\n" + b"1" * 5000 + b"\tgood\n", r"label column is not an integer", r"'1+…"),
    (b"label\t" + b"x" * 100_000 + b"\n", r"bad\.tsv:1: the header line lacks a 'label' column and a text column",
     r"\['label', 'x+…"),
])
def test_labels_and_headers_that_used_to_raise_tracebacks(tmp_path, content, match, private):
    """``int('--1')``, ``int('²')`` and a 5000-digit ``int()`` raised ValueError; a long header filled the screen.
    The message names the line; the value (a record's, when the file has no header) is shown only as private."""
    (tmp_path / "bad.tsv").write_bytes(content)
    with pytest.raises(PaczeroError, match=match) as info:
        read_sst2_tsv(tmp_path / "bad.tsv")
    assert len(str(info.value)) < 300 and "x" * 10 not in str(info.value) and "1" * 10 not in str(info.value)
    assert re.search(private, info.value.private) and len(info.value.private) < 100


def test_a_field_over_the_csv_module_limit_reads(tmp_path):
    """The file that used to end in ``_csv.Error: field larger than field limit (131072)``."""
    (tmp_path / "long.tsv").write_bytes(b"label\tsentence\n1\t" + b"very " * 40_000 + b"\n0\tshort\n")
    assert read_sst2_tsv(tmp_path / "long.tsv") == [Example("very " * 39_999 + "very", 1), Example("short", 0)]


def test_rows_match_the_csv_module(tmp_path):
    """The oracle: ``csv.reader`` with tabs and no quoting (its field limit lifted), on NUL bytes, lone ``\\r``,
    CRLF, blank lines, quotes, a byte-order mark and Unicode line separators inside a sentence."""
    import csv
    import io
    import sys

    text = ("label\tsentence\r\n1\tgo\x00od\r0\t\"quoted\" bad\n\n1\ta\u2028b\x85c\r\n\t\n0\t" + "y" * 200_000 + "\n")
    (tmp_path / "a.tsv").write_bytes(b"\xef\xbb\xbf" + text.encode())
    limit = csv.field_size_limit(sys.maxsize)
    try:
        rows = list(csv.reader(io.StringIO(text, newline=""), delimiter="\t", quoting=csv.QUOTE_NONE))
    finally:
        csv.field_size_limit(limit)
    expected = [Example(r[1].strip(), int(r[0])) for r in rows[1:] if r and any(c.strip() for c in r)]
    assert read_sst2_tsv(tmp_path / "a.tsv") == expected and len(expected) == 4


@pytest.mark.parametrize("make, match", [
    (lambda p: p.symlink_to("/dev/zero"), "it is a device, pipe or socket, not a regular file"),
    (lambda p: p.mkdir(), "it is a folder, not a regular file"),
], ids=["link to /dev/zero", "folder"])
def test_a_file_that_is_not_a_regular_file_is_refused_before_reading(tmp_path, make, match):
    make(tmp_path / "train.tsv")
    with pytest.raises(PaczeroError, match=match):
        read_sst2_tsv(tmp_path / "train.tsv")


def test_an_oversized_file_is_refused_before_reading(tmp_path, monkeypatch):
    from paczero.data import files

    (tmp_path / "train.tsv").write_bytes(b"label\tsentence\n" + b"1\tgood\n" * 100)
    monkeypatch.setattr(files, "MAX_FILE_BYTES", 500)
    with pytest.raises(PaczeroError, match=r"holds 715 bytes, more than the 500 a data file may hold"):
        read_sst2_tsv(tmp_path / "train.tsv")
