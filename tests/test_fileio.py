"""Atomic writes: a failure mid-write leaves the old file (and no temporary) behind; modes as asked; JSON and
JSON lines round-trip with stable bytes."""

from __future__ import annotations

import json
import os
import stat

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from paczero import fileio
from paczero.fileio import (
    append_bytes,
    append_jsonl,
    atomic_write,
    jsonl_line,
    read_json,
    read_jsonl,
    write_json,
    write_text,
)

JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-2**53, 2**53) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12)


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_a_write_that_fails_midway_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "metrics.json"
    write_text(target, "old\n")

    def half_then_crash(tmp):
        tmp.write_text("new but cut sh")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(target, half_then_crash)
    assert target.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json"]


def test_a_failed_rename_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    target = tmp_path / "a.json"
    write_json(target, {"v": 1})

    def fail(src, dst):
        raise OSError("rename failed")

    monkeypatch.setattr(fileio.os, "replace", fail)
    with pytest.raises(OSError, match="rename failed"):
        write_json(target, {"v": 2})
    assert read_json(target) == {"v": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]


def test_a_new_file_replaces_the_old_and_creates_missing_folders(tmp_path):
    target = tmp_path / "deep" / "er" / "x.txt"
    write_text(target, "one")
    write_text(target, "two ✓")
    assert target.read_bytes() == "two ✓".encode("utf-8")
    assert sorted(p.name for p in target.parent.iterdir()) == ["x.txt"]


@pytest.mark.parametrize("mode", [0o600, 0o644])
def test_files_get_the_mode_asked_for_whatever_the_umask(tmp_path, mode):
    old = os.umask(0o077 if mode == 0o644 else 0o000)
    try:
        write_text(tmp_path / "w.txt", "x", mode=mode)
        write_json(tmp_path / "j.json", {}, mode=mode)
    finally:
        os.umask(old)
    assert _mode(tmp_path / "w.txt") == mode and _mode(tmp_path / "j.json") == mode


def test_a_rewrite_with_another_mode_takes_the_new_mode(tmp_path):
    write_text(tmp_path / "s.json", "public")
    write_text(tmp_path / "s.json", "private", mode=0o600)
    assert _mode(tmp_path / "s.json") == 0o600


def test_appended_files_are_created_with_the_mode_and_only_grow(tmp_path):
    log = tmp_path / "releases.jsonl"
    append_jsonl(log, {"step": 0}, mode=0o600)
    append_bytes(log, b'{"step":1}\n', mode=0o644)
    assert _mode(log) == 0o600  # the mode of the file's creation is kept
    assert log.read_bytes() == b'{"step":0}\n{"step":1}\n'


@settings(max_examples=25, deadline=None)
@given(objs=st.lists(JSON, min_size=1, max_size=5))
def test_json_lines_round_trip_one_line_each(tmp_path_factory, objs):
    log = tmp_path_factory.mktemp("jsonl") / "log.jsonl"
    for obj in objs:
        line = jsonl_line(obj)
        assert b"\n" not in line and b"\r" not in line
        append_jsonl(log, obj)
    assert read_jsonl(log) == objs
    assert log.read_bytes().count(b"\n") == len(objs)


@settings(max_examples=25, deadline=None)
@given(obj=st.dictionaries(st.text(max_size=8), JSON, max_size=6))
def test_json_round_trips_with_bytes_independent_of_key_order(tmp_path_factory, obj):
    folder = tmp_path_factory.mktemp("json")
    write_json(folder / "a.json", obj)
    write_json(folder / "b.json", dict(reversed(list(obj.items()))))
    assert read_json(folder / "a.json") == obj
    assert (folder / "a.json").read_bytes() == (folder / "b.json").read_bytes()
    assert jsonl_line(obj) == jsonl_line(dict(reversed(list(obj.items()))))
    assert json.loads(jsonl_line(obj)) == obj
