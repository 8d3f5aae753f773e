"""The task registry: each task's name, its kind and how its records are read, and what follows from the data
options (the task's kind, where the dev and test sets come from, what a run is named after).

Every part of the package that needs the list of tasks reads it here (:data:`TASKS`); adding a task is one entry.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional

from paczero.config import Config, DataConfig
from paczero.data.hf import load_hf
from paczero.data.jsonl import load_jsonl
from paczero.data.squad import PROMPT as SQUAD_PROMPT
from paczero.data.squad import load_squad
from paczero.data.sst2 import load_sst2
from paczero.data.tasks import FILLED, ClassificationTask, GenerationTask, Split, Task, hold_out, make_split
from paczero.errors import PaczeroError

if TYPE_CHECKING:
    from paczero.data.memory import InMemory

Loaded = tuple[list, Optional[list], Optional[list]]
"""A task's train records, its dev records where it has a separate dev set, and its test records."""


@dataclass(frozen=True)
class TaskSpec:
    """One task: its name, its kind (fixed for a built-in task; ``None``: ``data.kind`` says), whether it reads the
    user's files or data sets by name, and its loader."""
    name: str
    kind: Optional[str]
    user_data: bool
    load: Callable[[DataConfig, "InMemory | None"], Loaded]


def _sst2(data: DataConfig, memory: "InMemory | None") -> Loaded:
    train, validation = load_sst2(data.data_dir)
    return train, None, validation


def _squad(data: DataConfig, memory: "InMemory | None") -> Loaded:
    train, validation = load_squad(data.data_dir, template=squad_template(data))
    return train, None, validation


TASKS: dict[str, TaskSpec] = {spec.name: spec for spec in [
    TaskSpec("sst2", "classification", user_data=False, load=_sst2),
    TaskSpec("squad", "generation", user_data=False, load=_squad),
    TaskSpec("jsonl", None, user_data=True, load=lambda data, memory: load_jsonl(data)),
    TaskSpec("hf", None, user_data=True, load=lambda data, memory: load_hf(data, memory if data.in_memory else None)),
]}
SELECT_ON = {"classification": ("loss", "accuracy"), "generation": ("loss", "f1", "em")}
"""The dev metrics a task kind's best checkpoint may be chosen on."""


def task_spec(name: str) -> TaskSpec:
    """The registry entry of task ``name``; an unknown name is one line naming the valid ones."""
    if name not in TASKS:
        raise PaczeroError(f"config: data.task={name!r} is invalid; expected one of {', '.join(TASKS)}")
    return TASKS[name]


def task_kind(data: DataConfig) -> str:
    """``classification`` or ``generation``: fixed by a built-in task, ``data.kind`` for the user's data."""
    return task_spec(data.task).kind or str(data.kind)


def squad_template(data: DataConfig) -> str:
    """``data.task=squad``: the template of its prompts, ``data.prompt`` when set, MeZO's while at its default."""
    return SQUAD_PROMPT if data.prompt == DataConfig().prompt else data.prompt


def selection_metric(cfg: Config) -> str:
    """The dev metric that picks the best checkpoint: ``train.select_on``, else the task kind's default."""
    return cfg.train.select_on or ("loss" if task_kind(cfg.data) == "classification" else "f1")


def dev_source(data: DataConfig) -> str:
    """Where the dev set comes from: ``data.dev_source``, else ``train`` for the built-in (public) data sets,
    ``separate`` when a dev file or split is given, and ``none`` for a user's own records."""
    if data.dev_source is not None:
        return data.dev_source
    if not task_spec(data.task).user_data:
        return "train"
    return "separate" if data.dev_file or data.dev_split else "none"


def test_set(data: DataConfig) -> dict[str, Any]:
    """Where the test set comes from (for ``metrics.json``): the built-in task's validation split, a test file or
    split, the records passed in memory, or ``data.test_fraction`` of the train records."""
    if data.test_fraction is not None:
        return {"source": "test_fraction", "fraction": data.test_fraction}
    if data.in_memory:
        return {"source": "in memory"}
    if task_spec(data.task).user_data and data.dataset is None:
        return {"source": "test_file"}
    return {"source": "split", "split": data.test_split if data.task == "hf" else "validation"}


_NAME_CHARS = re.compile(r"[^A-Za-z0-9._-]+")


def data_name(cfg: Config) -> str | None:
    """What a run on a user's data is named after: the train file's stem or the data set's name (``None`` for the
    built-in tasks and records in memory)."""
    data = cfg.data
    if not task_spec(data.task).user_data or data.in_memory:
        return None
    raw = Path(data.train_file).stem if data.train_file else str(data.dataset).rstrip("/").rsplit("/", 1)[-1]
    parts = [_NAME_CHARS.sub("_", part).strip("._") for part in (raw, data.subset or "")]
    return "-".join(filter(None, parts)) or None


def load_task(data: DataConfig, *, seed: int, memory: "InMemory | None" = None) -> tuple[Task, Split]:
    """The task named by ``data.task`` and its pool/dev/test split (labels checked against the label words);
    ``memory`` holds the records of ``data.in_memory``."""
    if data.in_memory and memory is None:
        raise PaczeroError("this run's records were passed in memory (data.in_memory=true) and are not stored: only "
                           "paczero.train(..., data=...) given the same objects can read them again")
    spec = task_spec(data.task)
    train, dev, validation = spec.load(data, memory)
    if data.test_fraction is not None:
        train, validation = hold_out(train, data.test_fraction, seed=seed)
    if validation is None:
        raise PaczeroError("no test records: give data.test_file (or the test records) or data.test_fraction")
    task: Task = GenerationTask(chat_template=data.chat_template)
    if task_kind(data) == "classification":
        task = ClassificationTask(prompt=FILLED if spec.user_data else data.prompt,
                                  label_words=tuple(data.label_words), chat_template=data.chat_template,
                                  label_names=tuple(data.label_names) if data.label_names else None)
        for records, name in [(train, "train"), (dev or [], "dev"), (validation, "validation")]:
            task.check_labels(records, where=f"{data.task} {name}")
    split = make_split(train, validation, n_pool=data.n_pool, n_dev=data.n_dev, n_test=data.n_test, seed=seed,
                       dev=dev, dev_source=dev_source(data))
    return task, split
