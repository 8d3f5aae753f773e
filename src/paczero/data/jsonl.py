"""Custom tasks from JSON Lines files, so a user can bring their own data without writing Python.

One JSON object per line (blank lines are skipped):

- ``data.kind=classification``: ``{"text": "...", "label": 1}``; the label is the index of a word in
  ``data.label_words`` or that word itself (surrounding spaces ignored). The prompt is
  ``data.prompt`` with ``{sentence}`` replaced by the text.
- ``data.kind=generation``: ``{"prompt": "...", "answers": ["...", ...]}``; the prompt is used as is,
  the model's greedy continuation is scored by F1/EM against the answers (the first one is the
  target of ``data.objective=lm``).

``data.train_file`` gives the pool and, unless ``data.dev_file`` is set, the dev set (disjoint draws
by the public seed); ``data.test_file`` gives the test set. Other keys of a record are ignored.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

from paczero.data.files import data_folder, locate, parse_json, preview, read_text, split_lines
from paczero.data.tasks import Example, GenerationExample, Record
from paczero.errors import PaczeroError

if TYPE_CHECKING:
    from paczero.config import DataConfig


def _classification(obj: dict[str, Any], where: str, label_words: Sequence[str]) -> Example:
    text, label = obj["text"], obj["label"]
    if not isinstance(text, str):
        raise PaczeroError(f"{where}: 'text' must be a string, got {type(text).__name__}")
    words = [w.strip() for w in label_words]
    if isinstance(label, str) and label.strip() in words:
        label = words.index(label.strip())
    if isinstance(label, bool) or not isinstance(label, int) or not 0 <= label < len(words):
        raise PaczeroError(f"{where}: field 'label' is outside the label words {list(label_words)} (give an index "
                           f"0..{len(words) - 1} or one of the words)", private=f"its value: {preview(obj['label'])}")
    return Example(text=text, label=label)


def _generation(obj: dict[str, Any], where: str) -> GenerationExample:
    prompt, answers = obj["prompt"], obj["answers"]
    if not isinstance(prompt, str) or not prompt:
        raise PaczeroError(f"{where}: 'prompt' must be a non-empty string")
    if not isinstance(answers, list) or not answers or not all(isinstance(a, str) for a in answers):
        raise PaczeroError(f"{where}: field 'answers' must be a non-empty list of strings, not a "
                           f"{type(answers).__name__}", private=f"its value: {preview(answers)}")
    return GenerationExample(prompt=prompt, answers=tuple(answers))


def read_jsonl(path: Path, *, kind: str, label_words: Sequence[str] = ()) -> list[Record]:
    """The records of one JSONL file of ``kind`` ``classification`` or ``generation``."""
    keys = ("text", "label") if kind == "classification" else ("prompt", "answers")
    records: list[Record] = []
    for line_no, line in enumerate(split_lines(read_text(path, what="data file")), start=1):
        if not line.strip():
            continue
        where = f"{path}:{line_no}"
        obj = parse_json(line, where=where)
        if not isinstance(obj, dict):
            raise PaczeroError(f"{where}: expected a JSON object with keys {', '.join(keys)}")
        missing = [k for k in keys if k not in obj]
        if missing:
            raise PaczeroError(f"{where}: missing key {', '.join(map(repr, missing))} (a {kind} record needs "
                               f"{', '.join(keys)})")
        records.append(_classification(obj, where, label_words) if kind == "classification"
                       else _generation(obj, where))
    if not records:
        raise PaczeroError(f"{path} holds no records")
    return records


def load_jsonl(data: "DataConfig") -> tuple[list[Record], list[Record] | None, list[Record]]:
    """``(train, dev or None, test)`` records of a custom task (``data.task=jsonl``)."""
    def read(key: str) -> list[Record]:
        path = locate(getattr(data, key), folder=data_folder(data.data_dir), key=f"data.{key}")
        return read_jsonl(path, kind=data.kind, label_words=data.label_words)

    return read("train_file"), read("dev_file") if data.dev_file else None, read("test_file")
