"""The data options' own checks (:func:`validate_data`): the task's kind, its files and the options that only
make sense for that kind, the dev and test sources, the prompt's fields. Called by :func:`paczero.settings.validate`.
"""

from __future__ import annotations

import importlib.util
from typing import Sequence

from paczero.config import Config, DataConfig, get, require
from paczero.data.prompts import template_fields
from paczero.data.registry import SELECT_ON, dev_source, squad_template, task_kind, task_spec
from paczero.data.squad import FIELDS as SQUAD_FIELDS
from paczero.errors import PaczeroError

_FILE_KEYS = ("train_file", "dev_file", "test_file")
_DEV_SOURCES = ("train", "separate", "none")
_DATASET_KEYS = ("subset", "train_split", "dev_split", "test_split")
_CLASSIFICATION_KEYS = ("label_field", "label_names")
_GENERATION_KEYS = ("prompt_field", "answers_field")


def _unused(data: DataConfig, names: Sequence[str], why: str) -> None:
    """Refuse a ``data.*`` key of ``names`` set away from its default."""
    default = DataConfig()
    for name in names:
        require(getattr(data, name) == getattr(default, name), f"data.{name}", getattr(data, name), why)


def _validate_label_names(data: DataConfig) -> None:
    names = data.label_names
    require(names is None or (len(names) == len(data.label_words) and len(set(names)) == len(names)),
             "data.label_names", names, f"expected {len(data.label_words)} distinct names, one per label word")


def _validate_hf(data: DataConfig, kind: str) -> None:
    """``data.task=hf``: one source (a data set, files or records in memory), the options of its kind, ``datasets``
    installed."""
    if data.in_memory:
        _unused(data, (*_FILE_KEYS, "dataset", "subset"),
                "the records were passed in memory (paczero.train): give no data files or data set")
    elif data.dataset is None:
        for key in ("train_file", "test_file") if data.test_fraction is None else ("train_file",):
            require(bool(getattr(data, key)), f"data.{key}", getattr(data, key),
                     "expected a .csv, .json, .jsonl or .parquet file (or data.dataset) for data.task=hf")
        _unused(data, _DATASET_KEYS, "it selects a split of data.dataset; with data files the files are the splits")
    else:
        _unused(data, _FILE_KEYS, "give data.dataset or data files, not both")
    if kind == "classification":
        _unused(data, _GENERATION_KEYS, "it is a generation option (data.kind=generation)")
        _validate_label_names(data)
    else:
        _unused(data, _CLASSIFICATION_KEYS, "it is a classification option (data.kind=classification)")
    if kind == "generation" and data.prompt_field is not None:
        _unused(data, ("prompt",), "data.prompt_field gives the whole prompt: leave data.prompt unset")
    if importlib.util.find_spec("datasets") is None:
        raise PaczeroError("config: data.task=hf needs the datasets package; pip install 'paczero[hub]'")


def validate_data(cfg: Config) -> None:
    """The task's kind, its files and the options that only make sense for that kind."""
    data = cfg.data
    builtin = task_spec(data.task).kind
    if builtin is None:
        require(data.kind in ("classification", "generation"), "data.kind", data.kind,
                 f"expected classification or generation for data.task={data.task}")
    else:
        require(data.kind in (None, builtin), "data.kind", data.kind,
                 f"data.task={data.task} is a {builtin} task: leave data.kind unset")
        _unused(data, _FILE_KEYS, "only data.task=jsonl and data.task=hf read data files by name")
    if data.task == "jsonl":
        for key in ("data.train_file", "data.test_file") if data.test_fraction is None else ("data.train_file",):
            require(bool(get(cfg, key)), key, get(cfg, key),
                     "expected the path of a JSONL file for data.task=jsonl")
    require(not data.in_memory or data.task == "hf", "data.in_memory", data.in_memory,
             "records passed in memory are read like data.task=hf")
    kind = task_kind(data)
    if data.task == "hf":
        _validate_hf(data, kind)
    elif data.task == "jsonl":
        _unused(data, ("dataset", *_DATASET_KEYS, *_GENERATION_KEYS), "only data.task=hf reads it")
        if kind == "generation":
            _unused(data, ("text_field", *_CLASSIFICATION_KEYS), "it is a classification option "
                    "(data.kind=classification); JSONL generation records hold 'prompt' and 'answers'")
        else:
            _validate_label_names(data)
    else:
        _unused(data, ("dataset", *_DATASET_KEYS, *_GENERATION_KEYS), "only data.task=hf reads it")
        _unused(data, ("text_field", *_CLASSIFICATION_KEYS, "test_fraction"),
                "only data.task=jsonl and data.task=hf read it")
    _validate_dev_and_test(data)
    if data.task == "squad":
        fields = template_fields(squad_template(data))
        require(bool(fields) and set(fields) <= set(SQUAD_FIELDS) and "context" in fields and "question" in fields,
                 "data.prompt", data.prompt,
                 "a SQuAD template names {context} and {question} (and may name {title}), nothing else")
    require(cfg.train.select_on in (None, *SELECT_ON[kind]), "train.select_on", cfg.train.select_on,
             f"expected one of {', '.join(SELECT_ON[kind])} for a {kind} task")
    if kind == "classification":
        require(len(data.label_words) >= 2, "data.label_words", list(data.label_words),
                 "expected at least two label words")
        require(len(set(data.label_words)) == len(data.label_words), "data.label_words",
                 list(data.label_words), "expected distinct label words")
        require(data.task in ("jsonl", "hf") or "{sentence}" in data.prompt, "data.prompt", data.prompt,
                 "expected a template containing {sentence}")
    if data.task in ("jsonl", "hf") and not (kind == "generation" and (data.task == "jsonl" or data.prompt_field)):
        require(bool(template_fields(data.prompt)), "data.prompt", data.prompt,
                 "expected a template naming at least one field, e.g. {sentence}, {text} or {premise}")


def _validate_dev_and_test(data: DataConfig) -> None:
    """``data.dev_source`` agrees with the dev file or split; ``data.test_fraction`` replaces the test file."""
    source = dev_source(data)
    require(source in _DEV_SOURCES, "data.dev_source", data.dev_source, f"expected one of {', '.join(_DEV_SOURCES)}")
    require(source != "separate" or task_spec(data.task).user_data, "data.dev_source", source,
             f"data.task={data.task} has no separate dev split: expected train or none")
    given = "data.dev_file" if data.dev_file else "data.dev_split" if data.dev_split else None
    if source == "separate":
        require(given is not None or data.in_memory, "data.dev_source", source,
                 "a separate dev set needs data.dev_file (or data.dev_split of data.dataset)")
    else:
        require(given is None, "data.dev_source", source, f"{given} is set: leave data.dev_source unset or separate")
    fraction = data.test_fraction
    if fraction is None:
        return
    require(0 < fraction < 1, "data.test_fraction", fraction, "expected a fraction 0 < f < 1 of the train records")
    require(not data.test_file, "data.test_file", data.test_file,
             "give data.test_file or data.test_fraction, not both")
    _unused(data, ("test_split",), "with data.test_fraction the test set is drawn from the train split")
