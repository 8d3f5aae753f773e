"""SST-2 from local TSV files (``$PACZERO_DATA_DIR/sst2``) or, failing that, the HF hub."""

from __future__ import annotations

import re
from pathlib import Path

from paczero.data.files import load_hub_dataset, preview, read_text, resolve_data_dir, split_lines
from paczero.data.tasks import Example
from paczero.errors import PaczeroError

HUB_NAME = "stanfordnlp/sst2"
_TEXT_COLUMNS = ("sentence", "content", "text")
_LABEL = re.compile(r"-?[0-9]{1,18}")


def _rows(text: str) -> list[list[str]]:
    """Tab-separated fields of each line, no quoting (``\\r\\n``, ``\\r`` and ``\\n`` end a line): the rows
    ``csv.reader(..., delimiter="\\t", quoting=csv.QUOTE_NONE)`` gives, without its limit on a field's size."""
    return [line.split("\t") for line in split_lines(text)] if text else []


def read_sst2_tsv(path: Path) -> list[Example]:
    """Read one SST-2 TSV file: a header naming ``label`` and a text column, in either order."""
    text = read_text(path, what="SST-2 file")
    rows = _rows(text)
    if not rows:
        raise PaczeroError(f"{path} is empty; expected a header line 'label<TAB>sentence'")
    header = [h.strip().lower() for h in rows[0]]
    text_col = next((header.index(c) for c in _TEXT_COLUMNS if c in header), None)
    if "label" not in header or text_col is None:
        raise PaczeroError(f"{path}:1: the header line lacks a 'label' column and a text column (one of "
                           f"{', '.join(_TEXT_COLUMNS)})", private=f"line 1: {preview(rows[0])}")
    label_col = header.index("label")
    examples = []
    for line_no, row in enumerate(rows[1:], start=2):
        if all(not c.strip() for c in row):
            continue
        if len(row) <= max(label_col, text_col):
            raise PaczeroError(f"{path}:{line_no}: expected {len(header)} tab-separated columns, got {len(row)}")
        label = row[label_col].strip()
        if not _LABEL.fullmatch(label):
            raise PaczeroError(f"{path}:{line_no}: the label column is not an integer label index",
                               private=f"its value: {preview(label)}")
        examples.append(Example(text=row[text_col].strip(), label=int(label)))
    if not examples:
        raise PaczeroError(f"{path} holds no records (only a header)")
    return examples


def _load_from_hub() -> tuple[list[Example], list[Example]]:
    ds = load_hub_dataset(HUB_NAME)
    convert = lambda split: [Example(text=r["sentence"].strip(), label=int(r["label"])) for r in ds[split]]  # noqa: E731
    return convert("train"), convert("validation")


def load_sst2(data_dir: str | None = None) -> tuple[list[Example], list[Example]]:
    """Return SST-2 ``(train, validation)``; local files first, then the hub."""
    root = resolve_data_dir(data_dir)
    if root is None:
        return _load_from_hub()
    folder = root / "sst2" if (root / "sst2").is_dir() else root
    return read_sst2_tsv(folder / "train.tsv"), read_sst2_tsv(folder / "validation.tsv")
