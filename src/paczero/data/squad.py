"""SQuAD v1.1 from local JSON files (``$PACZERO_DATA_DIR/squad``) or, failing that, the HF hub.

Local layout (that of ``../shared/data/squad``, see its README): ``train.json`` is the train split;
``validation.json`` and ``validation_rest.json`` together form the dev set (their ``data`` lists
concatenated, in that order: 10,570 questions). Files use the official SQuAD JSON layout
``{"data": [{"title", "paragraphs": [{"context", "qas": [{"question", "answers": [{"text"}]}]}]}]}``.

One record per question: the prompt (paczero-notes §7, MeZO's ``SQuADv2Template``)
``"Title: {title}\\nContext: {context}\\nQuestion: {question}\\nAnswer:"`` and every gold answer text.
The paper's split (``data/tasks.py``): pool and dev (500) are disjoint draws from train, the test set
is 1000 questions of the dev set drawn by the public seed.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Iterable

from paczero.data.files import load_hub_dataset, parse_json, read_text, resolve_data_dir
from paczero.data.prompts import fill_template
from paczero.data.tasks import GenerationExample
from paczero.errors import PaczeroError

log = logging.getLogger("paczero")

HUB_NAME = "rajpurkar/squad"
PROMPT = "Title: {title}\nContext: {context}\nQuestion: {question}\nAnswer:"
"""MeZO's template, the default (``data.prompt`` unset)."""
FIELDS = ("title", "context", "question")
"""The fields a SQuAD template (``data.prompt``) may name."""
DEV_FILES = ("validation.json", "validation_rest.json")


def render_prompt(*, title: str, context: str, question: str, template: str = PROMPT) -> str:
    """The SQuAD prompt of one question (filled in one pass, so braces in the text are harmless)."""
    return fill_template(template, {"title": title, "context": context, "question": question})


def _field(obj: Any, key: str, kind: type, where: str, path: Path) -> Any:
    if not isinstance(obj, dict) or key not in obj:
        raise PaczeroError(f"{path}: {where} lacks the key {key!r} (expected the SQuAD v1.1 layout)")
    value = obj[key]
    if not isinstance(value, kind):
        raise PaczeroError(f"{path}: {where}.{key} is a {type(value).__name__}, expected a {kind.__name__}")
    return value


def read_squad_json(path: Path, *, template: str = PROMPT) -> list[GenerationExample]:
    """Every question of one SQuAD v1.1 JSON file, in file order."""
    doc = parse_json(read_text(path, what="SQuAD file"), where=str(path))
    records = []
    for a, article in enumerate(_field(doc, "data", list, "the top level", path)):
        where = f"data[{a}]"
        title = _field(article, "title", str, where, path)
        for p, paragraph in enumerate(_field(article, "paragraphs", list, where, path)):
            where = f"data[{a}].paragraphs[{p}]"
            context = _field(paragraph, "context", str, where, path)
            for q, qa in enumerate(_field(paragraph, "qas", list, where, path)):
                where = f"data[{a}].paragraphs[{p}].qas[{q}]"
                question = _field(qa, "question", str, where, path)
                answers = tuple(_field(ans, "text", str, f"{where}.answers[{i}]", path)
                                for i, ans in enumerate(_field(qa, "answers", list, where, path)))
                if not answers:
                    raise PaczeroError(f"{path}: {where} has no answers (SQuAD v1.1 questions all have one; "
                                       "unanswerable v2.0 questions are not supported)")
                records.append(GenerationExample(render_prompt(title=title, context=context, question=question,
                                                               template=template), answers))
    if not records:
        raise PaczeroError(f"{path} holds no questions")
    return records


def _from_rows(rows: Iterable[dict], template: str) -> list[GenerationExample]:
    return [GenerationExample(render_prompt(title=r["title"], context=r["context"], question=r["question"],
                                            template=template), tuple(r["answers"]["text"])) for r in rows]


def load_squad(data_dir: str | None = None, *, template: str = PROMPT,
               ) -> tuple[list[GenerationExample], list[GenerationExample]]:
    """SQuAD v1.1 ``(train, dev)`` questions, each prompt filled from ``template``; local files first, then the
    hub."""
    root = resolve_data_dir(data_dir)
    if root is None:
        ds = load_hub_dataset(HUB_NAME)
        return _from_rows(ds["train"], template), _from_rows(ds["validation"], template)
    folder = root / "squad" if (root / "squad").is_dir() else root
    train = read_squad_json(folder / "train.json", template=template)
    dev = read_squad_json(folder / DEV_FILES[0], template=template)
    rest = folder / DEV_FILES[1]
    if rest.exists():
        dev += read_squad_json(rest, template=template)
    else:
        log.warning("%s not found: the dev set is %s alone (%d questions), so the seeded test draw differs from "
                    "the full dev set's", rest, DEV_FILES[0], len(dev))
    return train, dev
