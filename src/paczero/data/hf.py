"""Any data set without code (``data.task=hf``), read by the ``datasets`` library.

The records come from ``data.dataset`` (a hub name, or a local folder ``datasets.load_dataset``
reads; ``data.subset`` names its configuration), split ``data.train_split`` for the pool and dev set
(or ``data.dev_split`` for the dev set) and ``data.test_split`` for the test set; or from local files
``data.train_file``, ``data.dev_file`` (optional) and ``data.test_file`` in CSV, JSON, JSON Lines or
Parquet, streamed (nothing is cached: every run reads the files as they are now).

A record's prompt is ``data.prompt`` with each ``{name}`` replaced by the record's column ``name``
(``{sentence}`` by the column ``data.text_field``), filled in when the data is read:

- ``data.kind=classification``: the label is ``data.label_field``: an integer (or a string of digits)
  is the index of a label word; another string is mapped by ``data.label_names`` (name i → word i),
  or else must be a label word, surrounding spaces ignored.
- ``data.kind=generation``: the prompt is the column ``data.prompt_field`` as is when that is set; the
  gold answers are ``data.answers_field``: one string, a list of strings, or SQuAD's
  ``{"text": [...], "answer_start": [...]}``.

Errors name the file (or ``dataset[split]``) and the row (1 = the first record).
"""

from __future__ import annotations

import dataclasses
import logging
import re
import tempfile
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator

from paczero.data.files import check_regular, data_folder, locate, preview, reason
from paczero.data.prompts import fill_template, template_fields
from paczero.data.tasks import Example, GenerationExample, Record
from paczero.errors import PaczeroError

if TYPE_CHECKING:
    from paczero.config import DataConfig

BUILDERS = {".csv": "csv", ".json": "json", ".jsonl": "json", ".parquet": "parquet"}
"""The ``datasets`` builder of a local file, by its extension."""
_OPTIONS: dict[str, dict[str, Any]] = {
    "csv": {"keep_default_na": False},  # cells as written: pandas would read "NA", "null" or "None" as missing
    "parquet": {"batch_size": 1000},  # the default, a row group's size, fails on a file with no rows
}
_INDEX = re.compile(r"[0-9]{1,9}")


@contextmanager
def _quiet() -> Iterator[None]:
    """No progress bars, log lines or warnings from ``datasets`` and its parsers while the data is read: a failure
    becomes one :class:`PaczeroError` line, and stderr is the run's own."""
    from datasets.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars

    logger = logging.getLogger("datasets")
    level, bars_off = logger.level, are_progress_bars_disabled()
    logger.setLevel(logging.CRITICAL)
    disable_progress_bars()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)
        if not bars_off:
            enable_progress_bars()


@contextmanager
def _uncounted() -> Iterator[None]:
    """No download count sent to the hub: ``datasets`` counts each load by a request to the network, even of a
    local file (offline, it takes up to 3 s to fail)."""
    import datasets

    counts = datasets.config.HF_UPDATE_DOWNLOAD_COUNTS
    datasets.config.HF_UPDATE_DOWNLOAD_COUNTS = False
    try:
        yield
    finally:
        datasets.config.HF_UPDATE_DOWNLOAD_COUNTS = counts


def _rows(dataset: Iterable[dict], source: str) -> Iterator[dict]:
    """The rows of a loaded (or streamed) split; a failure to read one is a user error naming ``source``."""
    rows = iter(dataset)
    while True:
        try:
            row = next(rows)
        except StopIteration:
            return
        except Exception as exc:  # any parser's failure on the user's bytes (pyarrow, pandas, json)
            raise PaczeroError(f"{source} cannot be read ({type(exc).__name__}; the parser's words, which may "
                               "quote the file, follow tagged)", private=reason(exc)) from None
        yield row


def _file_rows(path: Path, cache: str) -> tuple[Iterator[dict], str]:
    """The rows of one local data file, and its path for error messages (``cache``: the builder's lock files)."""
    import datasets

    builder = BUILDERS.get(path.suffix.lower())
    if builder is None:
        raise PaczeroError(f"{path}: data.task=hf reads files ending in {', '.join(BUILDERS)}, not {path.suffix!r}")
    if not check_regular(path, what="data file"):
        raise PaczeroError(f"{path} is empty")
    try:
        stream = datasets.load_dataset(builder, data_files=str(path.resolve()), split="train", streaming=True,
                                       cache_dir=cache, **_OPTIONS.get(builder, {}))
    except Exception as exc:  # the builder refusing the file
        raise PaczeroError(f"{path} cannot be read as {builder} ({type(exc).__name__}; the reader's words, which may "
                           "quote the file, follow tagged)", private=reason(exc)) from None
    return _rows(stream, str(path)), str(path)


def _dataset_splits(data: "DataConfig", cache: str | None) -> list[tuple[Iterator[dict], str] | None]:
    """The rows of ``data.dataset``'s train, dev (``None`` without ``data.dev_split``) and test splits (``cache``: a
    scratch folder for a local data set, read into memory, so that no copy of it outlives the run's reading)."""
    import datasets

    name = data.dataset if data.subset is None else f"{data.dataset} ({data.subset})"
    local = {"cache_dir": cache, "keep_in_memory": True} if cache is not None else {}
    try:
        loaded = datasets.load_dataset(data.dataset, data.subset, **local)
    except Exception as exc:  # network, auth, layout, a missing subset: all the user's to fix
        raise PaczeroError(f"cannot load data.dataset={name} ({type(exc).__name__}; the reader's words follow "
                           "tagged)", private=reason(exc)) from None
    out: list[tuple[Iterator[dict], str] | None] = []
    for key in ("train_split", "dev_split", "test_split"):
        split = getattr(data, key)
        if split is None:
            out.append(None)
            continue
        if split not in loaded:
            raise PaczeroError(f"config: data.{key}={split!r} is not a split of {name} (it has: "
                               f"{', '.join(loaded)})")
        source = f"{data.dataset}[{split}]"
        out.append((_rows(loaded[split], source), source))
    return out


def _column(row: dict, column: str, *, source: str, key: str) -> Any:
    if column not in row:
        names = [str(name) if len(str(name)) <= 40 else f"{str(name)[:39]}…" for name in row]
        shown = ", ".join(names[:12]) + (f", … ({len(names)} in all)" if len(names) > 12 else "")
        # A file without a header line makes its first record the column names: they are shown tagged.
        raise PaczeroError(f"{source}: {key} names the column {column!r}, which is not there ({len(names)} "
                           "columns, named on the next line)", private=f"columns: {shown}")
    return row[column]


def _text(row: dict, column: str, *, source: str, n: int, key: str) -> str:
    value = _column(row, column, source=source, key=key)
    if not isinstance(value, str):
        raise PaczeroError(f"{source}: row {n}: column {column!r} is a {type(value).__name__}; expected text",
                           private=f"its value: {preview(value)}")
    return value


def _prompt(row: dict, data: "DataConfig", *, source: str, n: int) -> str:
    """``data.prompt`` filled from ``row`` (``{sentence}`` from ``data.text_field``)."""
    values = {name: _text(row, data.text_field if name == "sentence" else name, source=source, n=n,
                          key="data.text_field" if name == "sentence" else "data.prompt")
              for name in template_fields(data.prompt)}
    return fill_template(data.prompt, values)


def _label_index(value: Any, names: dict[str, int], n_labels: int) -> int | None:
    """The label word index of a label value, or ``None`` when it maps to none."""
    if isinstance(value, str):
        text = value.strip()
        if text in names:
            return names[text]
        value = int(text) if _INDEX.fullmatch(text) else None
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < n_labels:
        return value
    return None


def _classification(rows: Iterator[dict], data: "DataConfig", source: str) -> list[Example]:
    words = list(data.label_words)
    names = {name.strip(): i for i, name in enumerate(data.label_names or [w.strip() for w in words])}
    records = []
    for n, row in enumerate(rows, start=1):
        prompt = _prompt(row, data, source=source, n=n)
        value = _column(row, data.label_field, source=source, key="data.label_field")
        label = _label_index(value, names, len(words))
        if label is None:
            named = "data.label_names" if data.label_names else "the label words"
            raise PaczeroError(f"{source}: row {n}: column {data.label_field!r} maps to no label word (expected "
                               f"an index 0..{len(words) - 1} or one of {named} {list(names)})",
                               private=f"its value: {preview(value)}")
        records.append(Example(text=prompt, label=label))
    return records


def _answers(value: Any) -> tuple[str, ...] | None:
    """Gold answers from one string, a list of strings or SQuAD's ``{"text": [...]}``; ``None`` if none of those."""
    if isinstance(value, dict):
        value = value.get("text")
    if isinstance(value, str):
        value = [value]
    if isinstance(value, list) and value and all(isinstance(a, str) for a in value):
        return tuple(value)
    return None


def _generation(rows: Iterator[dict], data: "DataConfig", source: str) -> list[GenerationExample]:
    records = []
    for n, row in enumerate(rows, start=1):
        if data.prompt_field is None:
            prompt = _prompt(row, data, source=source, n=n)
        else:
            prompt = _text(row, data.prompt_field, source=source, n=n, key="data.prompt_field")
        value = _column(row, data.answers_field, source=source, key="data.answers_field")
        answers = _answers(value)
        if answers is None:
            raise PaczeroError(f"{source}: row {n}: column {data.answers_field!r} is not a string, a non-empty list "
                               "of strings or SQuAD's {'text': [...]}", private=f"its value: {preview(value)}")
        records.append(GenerationExample(prompt=prompt, answers=answers))
    return records


def _records(rows: tuple[Iterator[dict], str], data: "DataConfig") -> list[Record]:
    stream, source = rows
    records: list[Record] = []
    if data.kind == "classification":
        records += _classification(stream, data, source)
    else:
        records += _generation(stream, data, source)
    if not records:
        raise PaczeroError(f"{source} holds no records")
    return records


def _read(splits: list[tuple[Iterator[dict], str] | None], data: "DataConfig") -> tuple[list, list | None, list]:
    train, dev, test = splits
    assert train is not None and test is not None  # config validation requires both
    return _records(train, data), None if dev is None else _records(dev, data), _records(test, data)


def load_hf(data: "DataConfig") -> tuple[list[Record], list[Record] | None, list[Record]]:
    """``(train, dev or None, test)`` records of ``data.task=hf``, prompts filled in."""
    folder = data_folder(data.data_dir)
    with _quiet(), _uncounted(), tempfile.TemporaryDirectory(prefix="paczero-datasets-") as cache:
        if data.dataset is not None:
            # A hub data set is public and cached where datasets caches; a local folder (the owner's records) is
            # prepared in the scratch folder and read into memory, so no copy is left in a global cache.
            local = locate(data.dataset, folder=folder, key="data.dataset")
            if local.exists():
                data = dataclasses.replace(data, dataset=str(local))
            return _read(_dataset_splits(data, cache if local.exists() else None), data)
        # Streamed files leave only the builders' lock files behind: in the scratch folder, removed afterwards.
        return _read([_file_rows(locate(getattr(data, key), folder=folder, key=f"data.{key}"), cache)
                      if getattr(data, key) else None for key in ("train_file", "dev_file", "test_file")], data)
