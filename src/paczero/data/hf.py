"""Any data set without code (``data.task=hf``), read by the ``datasets`` library.

The records come from ``data.dataset`` (a hub name, or a local folder ``datasets.load_dataset``
reads; ``data.subset`` names its configuration), split ``data.train_split`` for the pool and dev set
(or ``data.dev_split`` for the dev set) and ``data.test_split`` for the test set; or from local files
``data.train_file``, ``data.dev_file`` (optional) and ``data.test_file`` in CSV, JSON, JSON Lines or
Parquet, streamed (nothing is cached: every run reads the files as they are now).

A record's prompt is ``data.prompt`` with each ``{name}`` replaced by the record's column ``name``
(``{sentence}`` by the column ``data.text_field``; left at its default ``sentence``, a record without that column
uses its column ``text``), filled in when the data is read (JSON Lines classification records follow the same
rule, :mod:`paczero.data.jsonl`):

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
    from paczero.data.memory import InMemory

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

    from paczero.hub import cache_only, hub_reachable

    name = data.dataset if data.subset is None else f"{data.dataset} ({data.subset})"
    local = Path(data.dataset).expanduser().is_dir()
    online = local or hub_reachable()
    options = {"cache_dir": cache, "keep_in_memory": True} if cache is not None else {}
    try:
        with cache_only(not online):
            loaded = datasets.load_dataset(data.dataset, data.subset, **options)
    except Exception as exc:  # network, auth, layout, a missing subset: all the user's to fix
        if not online:
            raise PaczeroError(f"cannot load data.dataset={name}: it is not a local folder, the hub is unreachable "
                               "and it is not in the Hugging Face cache") from None
        raise PaczeroError(f"cannot load data.dataset={name} ({type(exc).__name__}; the reader's words follow "
                           "tagged)", private=reason(exc)) from None
    out: list[tuple[Iterator[dict], str] | None] = []
    for key in ("train_split", "dev_split", "test_split"):
        split = getattr(data, key)
        if split is None or (key == "test_split" and data.test_fraction is not None):
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


def _text(row: dict, column: str, *, source: str, where: str, key: str) -> str:
    value = _column(row, column, source=source, key=key)
    if not isinstance(value, str):
        raise PaczeroError(f"{where}: column {column!r} holds a {type(value).__name__}; expected text",
                           private=f"its value: {preview(value)}")
    return value


def field_of(name: str, row: dict, data: "DataConfig") -> str:
    """The column that ``{name}`` of ``data.prompt`` stands for in ``row``."""
    if name != "sentence":
        return name
    default = type(data)().text_field
    if data.text_field == default and default not in row and "text" in row:
        return "text"
    return data.text_field


def _prompt(row: dict, data: "DataConfig", *, source: str, where: str) -> str:
    """``data.prompt`` filled from ``row`` (``{sentence}`` from ``data.text_field``, or ``text``)."""
    values = {name: _text(row, field_of(name, row, data), source=source, where=where,
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


def classification_record(row: dict, data: "DataConfig", *, source: str, where: str) -> Example:
    """One classification record: ``data.prompt`` filled from ``row``, the label mapped to a label word's index.
    Errors name ``source`` (a missing column) or ``where`` (the row), never a value."""
    words = list(data.label_words)
    names = {name.strip(): i for i, name in enumerate(data.label_names or [w.strip() for w in words])}
    prompt = _prompt(row, data, source=source, where=where)
    value = _column(row, data.label_field, source=source, key="data.label_field")
    label = _label_index(value, names, len(words))
    if label is None:
        named = "data.label_names" if data.label_names else "the label words"
        raise PaczeroError(f"{where}: the label (column {data.label_field!r}) maps to no label word (expected an "
                           f"index 0..{len(words) - 1} or one of {named} {list(names)})",
                           private=f"its value: {preview(value)}")
    return Example(text=prompt, label=label)


def _classification(rows: Iterator[dict], data: "DataConfig", source: str) -> list[Example]:
    return [classification_record(row, data, source=source, where=f"{source}: row {n}")
            for n, row in enumerate(rows, start=1)]


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
        where = f"{source}: row {n}"
        if data.prompt_field is None:
            prompt = _prompt(row, data, source=source, where=where)
        else:
            prompt = _text(row, data.prompt_field, source=source, where=where, key="data.prompt_field")
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


def _read(splits: list[tuple[Iterator[dict], str] | None], data: "DataConfig",
          ) -> tuple[list, list | None, list | None]:
    train, dev, test = splits
    assert train is not None  # config validation requires it
    return _records(train, data), *(None if s is None else _records(s, data) for s in (dev, test))


def _memory_splits(memory: "InMemory") -> list[tuple[Iterator[dict], str] | None]:
    """The rows of the train, dev and test records passed in memory (``None`` for one not given)."""
    given = memory.splits()
    return [(_rows(given[name], f"{name} records (in memory)"), f"{name} records (in memory)") if name in given
            else None for name in ("train", "dev", "test")]


def load_hf(data: "DataConfig", memory: "InMemory | None" = None,
            ) -> tuple[list[Record], list[Record] | None, list[Record] | None]:
    """``(train, dev or None, test or None)`` records of ``data.task=hf``, prompts filled in (no test records
    with ``data.test_fraction``: the split draws them from train)."""
    folder = data_folder(data.data_dir)
    with _quiet(), _uncounted(), tempfile.TemporaryDirectory(prefix="paczero-datasets-") as cache:
        if memory is not None:
            return _read(_memory_splits(memory), data)
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
