"""Records passed in memory (``paczero.train(data=..., pool=..., dev=..., test=...)``): ``datasets`` objects read
like ``data.task=hf``, never stored.

The config records only that the records came from memory (``data.in_memory``). Each split's SHA-256 digest (of
its rows as canonical JSON) is kept in the run's private folder, not in ``config.yaml``: a digest of the private
records would let anyone holding a candidate data set test whether it is the one used. Resuming compares the
digests of the objects given again with the stored ones.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Iterator

from paczero.errors import PaczeroError

SPLITS = ("train", "dev", "test")


def _is_dataset(obj: Any) -> bool:
    try:
        import datasets
    except ImportError:
        return False
    return isinstance(obj, datasets.Dataset)


@dataclass(frozen=True)
class InMemory:
    """The records of a run given as ``datasets.Dataset`` objects: ``train`` (the pool and, with
    ``data.dev_source=train``, the dev set are drawn from it), an optional ``dev`` and ``test``."""

    train: Any
    dev: Any = None
    test: Any = None

    def __post_init__(self) -> None:
        for name in SPLITS:
            value = getattr(self, name)
            if value is not None and not _is_dataset(value):
                raise PaczeroError(f"the {name} records must be a datasets.Dataset, not a {type(value).__name__}")
        if self.train is None:
            raise PaczeroError("records in memory need the train records (paczero.train(data=...) or pool=...)")

    def splits(self) -> dict[str, Any]:
        """The splits given, by name (``train``, ``dev``, ``test``)."""
        return {name: getattr(self, name) for name in SPLITS if getattr(self, name) is not None}

    def digests(self) -> dict[str, str]:
        """SHA-256 of each given split's rows (private: see the module's docstring)."""
        return {name: records_digest(ds) for name, ds in self.splits().items()}

    def rows(self, name: str) -> Iterator[dict]:
        """The rows of split ``name``."""
        return iter(getattr(self, name))


def records_digest(rows: Any) -> str:
    """SHA-256 of a sequence of records (dicts), each as JSON with sorted keys on its own line: independent of how
    ``datasets`` stores them, dependent on every value, column name and the order of the rows."""
    h = hashlib.sha256()
    for row in rows:
        h.update(json.dumps(row, sort_keys=True, ensure_ascii=False, default=repr).encode())
        h.update(b"\n")
    return h.hexdigest()
