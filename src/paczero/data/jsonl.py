"""Custom tasks from JSON Lines files, so a user can bring their own data without writing Python.

One JSON object per line (blank lines are skipped):

- ``data.kind=classification``: ``{"text": "...", "label": 1}``, read by the same rule as ``data.task=hf``'s
  columns (:mod:`paczero.data.hf`): the prompt is ``data.prompt`` with each ``{name}`` replaced by the record's
  key ``name``, ``{sentence}`` by ``data.text_field`` (left at ``sentence``, a record without that key uses
  ``text``); the label, key ``data.label_field``, is the index of a word in ``data.label_words``, that word itself
  (surrounding spaces ignored) or, with ``data.label_names``, one of those names.
- ``data.kind=generation``: ``{"prompt": "...", "answers": ["...", ...]}``; the prompt is used as is,
  the model's greedy continuation is scored by F1/EM against the answers (the first one is the
  target of ``data.objective=lm``).

``data.train_file`` gives the pool and, unless ``data.dev_file`` is set, the dev set (disjoint draws
by the public seed); ``data.test_file`` gives the test set. Other keys of a record are ignored.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from paczero.data.files import data_folder, locate, parse_json, preview, read_text, split_lines
from paczero.data.hf import classification_record, field_of
from paczero.data.prompts import template_fields
from paczero.data.tasks import GenerationExample, Record
from paczero.errors import PaczeroError

if TYPE_CHECKING:
    from paczero.config import DataConfig


def _generation(obj: dict[str, Any], where: str) -> GenerationExample:
    prompt, answers = obj["prompt"], obj["answers"]
    if not isinstance(prompt, str) or not prompt:
        raise PaczeroError(f"{where}: 'prompt' must be a non-empty string")
    if not isinstance(answers, list) or not answers or not all(isinstance(a, str) for a in answers):
        raise PaczeroError(f"{where}: field 'answers' must be a non-empty list of strings, not a "
                           f"{type(answers).__name__}", private=f"its value: {preview(answers)}")
    return GenerationExample(prompt=prompt, answers=tuple(answers))


def _keys(obj: dict[str, Any], data: "DataConfig") -> list[str]:
    """The keys a record of ``data.kind`` needs."""
    if data.kind == "generation":
        return ["prompt", "answers"]
    return [*(field_of(name, obj, data) for name in template_fields(data.prompt)), data.label_field]


def read_jsonl(path: Path, data: "DataConfig") -> list[Record]:
    """The records of one JSONL file of ``data.kind`` ``classification`` (prompts filled in) or ``generation``."""
    records: list[Record] = []
    for line_no, line in enumerate(split_lines(read_text(path, what="data file")), start=1):
        if not line.strip():
            continue
        where = f"{path}:{line_no}"
        obj = parse_json(line, where=where)
        if not isinstance(obj, dict):
            raise PaczeroError(f"{where}: expected a JSON object (a {data.kind} record)")
        keys = _keys(obj, data)
        missing = [k for k in keys if k not in obj]
        if missing:
            raise PaczeroError(f"{where}: missing key {', '.join(map(repr, missing))} (a {data.kind} record needs "
                               f"{', '.join(keys)})")
        records.append(classification_record(obj, data, source=where, where=where) if data.kind == "classification"
                       else _generation(obj, where))
    if not records:
        raise PaczeroError(f"{path} holds no records")
    return records


def load_jsonl(data: "DataConfig") -> tuple[list[Record], list[Record] | None, list[Record] | None]:
    """``(train, dev or None, test or None)`` records of a custom task (``data.task=jsonl``; no test records with
    ``data.test_fraction``: the split draws them from train)."""
    def read(key: str) -> list[Record] | None:
        name = getattr(data, key)
        return read_jsonl(locate(name, folder=data_folder(data.data_dir), key=f"data.{key}"), data) if name else None

    return read("train_file"), read("dev_file"), read("test_file")
