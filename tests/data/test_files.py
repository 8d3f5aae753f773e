"""Reading data files: anything but a regular file is refused before a byte is read, every error is one line
naming the file, the text comes back exactly (BOM dropped, line endings kept) and values in messages are cut."""

from __future__ import annotations

import json
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from paczero.data import files
from paczero.data.files import (
    PREVIEW_CHARS,
    check_regular,
    locate,
    parse_json,
    preview,
    read_text,
    reason,
    resolve_data_dir,
    split_lines,
)
from paczero.errors import PaczeroError


def _one_line(exc_info) -> str:
    message = str(exc_info.value)
    assert "\n" not in message and message
    return message


def test_a_link_to_a_device_is_refused_before_reading(tmp_path, monkeypatch):
    link = tmp_path / "train.jsonl"
    link.symlink_to("/dev/zero")

    def never(*args, **kwargs):
        raise AssertionError("opened a device")

    monkeypatch.setattr("builtins.open", never)
    with pytest.raises(PaczeroError) as exc:
        read_text(link, what="data.train_file")
    assert _one_line(exc) == f"cannot read {link}: it is a device, pipe or socket, not a regular file"


def test_a_pipe_and_a_folder_are_refused(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(PaczeroError, match="it is a device, pipe or socket") as exc:
        check_regular(fifo, what="data.train_file")
    _one_line(exc)
    with pytest.raises(PaczeroError) as exc:
        read_text(tmp_path, what="data.train_file")
    assert _one_line(exc) == f"cannot read {tmp_path}: it is a folder, not a regular file"


def test_a_missing_file_is_named_with_its_setting(tmp_path):
    with pytest.raises(PaczeroError) as exc:
        read_text(tmp_path / "nope.jsonl", what="data.train_file")
    assert _one_line(exc) == f"data.train_file not found: {tmp_path / 'nope.jsonl'}"


def test_a_file_over_the_limit_is_refused_by_its_size(tmp_path, monkeypatch):
    big = tmp_path / "big.jsonl"
    big.write_bytes(b"x" * 101)
    monkeypatch.setattr(files, "MAX_FILE_BYTES", 100)
    with pytest.raises(PaczeroError) as exc:
        read_text(big, what="data.train_file")
    assert _one_line(exc) == f"{big} holds 101 bytes, more than the 100 a data file may hold"


@settings(max_examples=60, deadline=None)
@given(text=st.text(), bom=st.booleans())
def test_the_text_comes_back_exactly_without_its_byte_order_mark(tmp_path_factory, text, bom):
    path = tmp_path_factory.mktemp("t") / "f.txt"
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8"))
    assert read_text(path, what="file") == text


def test_invalid_utf8_names_the_line_and_the_byte(tmp_path):
    path = tmp_path / "f.tsv"
    path.write_bytes(b"\xef\xbb\xbfa\nb\nc\xff\n")
    with pytest.raises(PaczeroError) as exc:
        read_text(path, what="file")
    assert _one_line(exc) == f"{path} is not valid UTF-8 (line 3, byte 8): invalid start byte"


@settings(max_examples=50, deadline=None)
@given(lines=st.lists(st.text(alphabet=st.characters(blacklist_characters="\r\n")), min_size=1),
       end=st.sampled_from(["\n", "\r\n", "\r"]))
def test_lines_split_at_the_three_line_ends_only(lines, end):
    assert split_lines(end.join(lines)) == lines
    assert split_lines("a\rb\r\nc\nd\n\re") == ["a", "b", "c", "d", "", "e"]


def test_separators_a_sentence_may_hold_do_not_split_a_line():
    assert split_lines('{"t": "a\u2028b\u0085c\x0cd"}\nx') == ['{"t": "a\u2028b\u0085c\x0cd"}', "x"]


@pytest.mark.parametrize("text", ['{"a": 1', "[1, 2,]", "{'a': 1}", "[" * 100_000 + "]" * 100_000, "1" * 5000,
                                  "nul"])
def test_bad_json_is_one_line_naming_where(text):
    with pytest.raises(PaczeroError) as exc:
        parse_json(text, where="data.jsonl line 4")
    assert _one_line(exc).startswith("data.jsonl line 4: not valid JSON (")


def test_good_json_parses_as_json_does():
    text = '{"a": [1, 2.5, null, "\u2028"], "b": {"c": true}}'
    assert parse_json(text, where="x") == json.loads(text)


@given(value=st.text() | st.binary() | st.integers())
def test_a_preview_is_the_repr_cut_to_the_limit(value):
    text = preview(value)
    assert len(text) <= PREVIEW_CHARS
    assert text == repr(value) if len(repr(value)) <= PREVIEW_CHARS else text == repr(value)[:PREVIEW_CHARS - 1] + "…"


def test_the_reason_is_the_innermost_cause_on_one_line():
    try:
        try:
            raise ValueError("no split 'train'\nmore detail")
        except ValueError as inner:
            raise RuntimeError("loading failed") from inner
    except RuntimeError as outer:
        assert reason(outer) == "ValueError: no split 'train'"
    assert reason(ValueError()) == "ValueError"
    assert len(reason(ValueError("x" * 1000))) == 200


def test_the_data_folder_comes_from_the_setting_then_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("PACZERO_DATA_DIR", str(tmp_path))
    assert resolve_data_dir(None) == tmp_path
    monkeypatch.delenv("PACZERO_DATA_DIR")
    assert resolve_data_dir(None) is None
    with pytest.raises(PaczeroError, match="data directory not found: .*nowhere"):
        resolve_data_dir(str(tmp_path / "nowhere"))


def test_a_published_name_is_found_in_the_data_folder_and_a_withheld_one_is_refused(tmp_path, monkeypatch):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "train.jsonl").write_text("{}\n")
    monkeypatch.chdir(tmp_path / "mine")
    assert locate("mine/train.jsonl", folder=tmp_path, key="data.train_file") == tmp_path / "mine" / "train.jsonl"
    with pytest.raises(PaczeroError, match="data.train_file was withheld") as exc:
        locate("<withheld>", folder=tmp_path, key="data.train_file")
    _one_line(exc)
