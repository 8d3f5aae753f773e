"""``data.task=hf``: local CSV, JSON, JSONL and Parquet files and a data set folder, both kinds, multi-field prompts,
string labels, and every bad field, empty split and unmapped label refused with one line naming the data."""

from __future__ import annotations

import csv
import json

import pytest

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

from paczero.settings import load_config  # noqa: E402
from paczero.data import Example, GenerationExample, load_task  # noqa: E402
from paczero.errors import PaczeroError  # noqa: E402

NLI = [("A man sleeps.", "A person rests.", "entailment"), ("A dog runs, fast.", "A cat {sleeps}.", "contradiction"),
       ("NA", "None", "entailment"), ("Kids play.", "Children are outside.", "contradiction"),
       ("It rains.", "The ground is wet.", "entailment"), ("Two men talk.", "Nobody speaks.", "contradiction")]
PROMPT = "{premise} Question: {hypothesis} Yes or no?"
CLASSIFY = ["data.task=hf", "data.kind=classification", f"data.prompt={PROMPT}", 'data.label_words=[" yes"," no"]',
            "data.label_names=[entailment,contradiction]", "data.n_pool=3", "data.n_dev=2"]
DRAWN = "data.dev_source=train"
"""The dev set drawn from the train records (a user's own data has none unless asked)."""


def _csv(path, header, rows) -> str:
    """A CSV file written by the standard library (quoting where a field needs it)."""
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    return str(path)


def _bytes(path, content: bytes) -> str:
    path.write_bytes(content)
    return str(path)


def _parquet(path, columns: dict) -> str:
    pq.write_table(pa.table(columns), path)
    return str(path)


def _nli_expected(rows) -> list[Example]:
    """The oracle: ``str.format`` fills the template (inserted text is never re-read), the label is its name's index."""
    return [Example(PROMPT.format(premise=p, hypothesis=h), ["entailment", "contradiction"].index(label))
            for p, h, label in rows]


def _load(*overrides):
    return load_task(load_config(None, list(overrides)).data, seed=0)


def _all(split) -> list:
    return sorted(split.pool + split.dev, key=repr)


def test_csv_with_two_text_fields_and_string_labels(tmp_path):
    train = _csv(tmp_path / "train.csv", ["premise", "hypothesis", "label"], NLI)
    test = _csv(tmp_path / "test.csv", ["premise", "hypothesis", "label"], NLI[:2])
    task, split = _load(*CLASSIFY, f"data.train_file={train}", f"data.test_file={test}", "data.n_pool=4", DRAWN)
    assert task.kind == "classification" and task.label_words == (" yes", " no")
    # Pool and dev hold every train record once; the test set keeps the file's order; "NA" and "None" stay text.
    assert _all(split) == sorted(_nli_expected(NLI), key=repr)
    assert Example("NA Question: None Yes or no?", 0) in split.pool + split.dev
    assert split.test == _nli_expected(NLI[:2])
    assert split.test[1].text == "A dog runs, fast. Question: A cat {sleeps}. Yes or no?"
    assert [task.render(r) for r in split.test] == [r.text for r in split.test]  # records carry the whole prompt


def test_labels_by_index_digits_or_stripped_label_word(tmp_path):
    rows = [("fine film", 1), ("dull", "0"), ("moving", " great "), ("flat", "terrible")]
    path = _csv(tmp_path / "a.csv", ["review", "label"], rows)
    _, split = _load("data.task=hf", "data.kind=classification", "data.text_field=review", f"data.train_file={path}",
                     f"data.test_file={path}", "data.n_pool=2", "data.n_dev=1")
    assert split.test == [Example("fine film It was", 1), Example("dull It was", 0), Example("moving It was", 1),
                          Example("flat It was", 0)]


def test_parquet_classification_with_integer_labels(tmp_path):
    path = _parquet(tmp_path / "t.parquet", {"sentence": ["good", "bad", "fine"], "label": [1, 0, 1],
                                             "extra": [0.5, 1.5, 2.5]})
    _, split = _load("data.task=hf", "data.kind=classification", f"data.train_file={path}", f"data.test_file={path}",
                     "data.n_pool=2", "data.n_dev=1", "data.prompt=Review: {sentence}\nSentiment:")
    assert split.test == [Example("Review: good\nSentiment:", 1), Example("Review: bad\nSentiment:", 0),
                          Example("Review: fine\nSentiment:", 1)]


def test_parquet_generation_from_a_template_with_squad_answers(tmp_path):
    answers = [{"text": ["Denver", "Denver Broncos"], "answer_start": [0, 0]}, {"text": ["Carolina"],
                                                                               "answer_start": [5]}]
    path = _parquet(tmp_path / "squad.parquet", {"title": ["SB", "SB"], "context": ["Denver beat Carolina."] * 2,
                                                 "question": ["Who won?", "Who lost?"], "answers": answers})
    _, split = _load("data.task=hf", "data.kind=generation", f"data.train_file={path}", f"data.test_file={path}",
                     "data.n_pool=1", "data.n_dev=1",
                     "data.prompt=Title: {title}\nContext: {context}\nQuestion: {question}\nAnswer:")
    assert split.test == [
        GenerationExample("Title: SB\nContext: Denver beat Carolina.\nQuestion: Who won?\nAnswer:",
                          ("Denver", "Denver Broncos")),
        GenerationExample("Title: SB\nContext: Denver beat Carolina.\nQuestion: Who lost?\nAnswer:", ("Carolina",))]


def test_csv_generation_with_a_prompt_field(tmp_path):
    path = _csv(tmp_path / "g.csv", ["q", "a"], [("2+2=", "4"), ("Capital of France:", "Paris")])
    _, split = _load("data.task=hf", "data.kind=generation", "data.prompt_field=q", "data.answers_field=a",
                     f"data.train_file={path}", f"data.test_file={path}", "data.n_pool=1", "data.n_dev=1")
    assert split.test == [GenerationExample("2+2=", ("4",)), GenerationExample("Capital of France:", ("Paris",))]


@pytest.mark.parametrize("suffix", [".json", ".jsonl"])
def test_json_lines_and_json_files(tmp_path, suffix):
    rows = [{"prompt": f"Say {w}:", "answers": [w, w.upper()]} for w in ("a", "b", "c")]
    path = tmp_path / f"g{suffix}"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) if suffix == ".jsonl" else json.dumps(rows))
    _, split = _load("data.task=hf", "data.kind=generation", "data.prompt_field=prompt", f"data.train_file={path}",
                     f"data.test_file={path}", "data.n_pool=1", "data.n_dev=1")
    assert split.test == [GenerationExample(r["prompt"], tuple(r["answers"])) for r in rows]


def test_dev_file_gives_the_dev_set(tmp_path):
    header = ["premise", "hypothesis", "label"]
    train, dev, test = (_csv(tmp_path / f"{n}.csv", header, rows) for n, rows in
                        [("train", NLI[:3]), ("dev", NLI[3:]), ("test", NLI[:1])])
    _, split = _load(*CLASSIFY, f"data.train_file={train}", f"data.dev_file={dev}", f"data.test_file={test}",
                     "data.n_pool=3", "data.n_dev=3")
    assert set(split.pool) == set(_nli_expected(NLI[:3])) and set(split.dev) == set(_nli_expected(NLI[3:]))


def test_a_data_set_folder_and_its_named_splits(tmp_path, monkeypatch):
    import datasets

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "cache"))
    folder = tmp_path / "nli"
    folder.mkdir()
    header = ["premise", "hypothesis", "label"]
    nli = [r for r in NLI if r[0] != "NA"]  # datasets' own CSV reading takes "NA" for a missing value
    for name, rows in [("train", nli[:3]), ("validation", nli[3:]), ("test", nli[:2])]:
        _csv(folder / f"{name}.csv", header, [(p, h, ["entailment", "contradiction"].index(label))
                                              for p, h, label in rows])
    base = [*CLASSIFY, f"data.dataset={folder}"]
    _, split = _load(*base, "data.n_pool=2", "data.n_dev=1", DRAWN)
    assert split.test == _nli_expected(nli[3:]) and set(split.pool + split.dev) == set(_nli_expected(nli[:3]))
    _, split = _load(*base, "data.dev_split=validation", "data.test_split=test", "data.n_pool=3", "data.n_dev=2")
    assert set(split.dev) == set(_nli_expected(nli[3:])) and split.test == _nli_expected(nli[:2])
    with pytest.raises(PaczeroError, match=r"data\.test_split='tset' is not a split of .*nli \(it has: train, "):
        _load(*base, "data.test_split=tset")
    with pytest.raises(PaczeroError, match="cannot load data.dataset="):
        _load(*CLASSIFY, f"data.dataset={tmp_path / 'nowhere'}")
    # The owner's local records leave no copy in the global datasets cache (--forget-secret could not find it).
    cached = [p for p in (tmp_path / "cache").rglob("*") if p.is_file()] if (tmp_path / "cache").exists() else []
    assert not any(b"Kids play" in p.read_bytes() or p.suffix == ".arrow" for p in cached), cached


def _nli_file(tmp_path, rows, header=("premise", "hypothesis", "label")) -> str:
    return _csv(tmp_path / "bad.csv", list(header), rows)


@pytest.mark.parametrize("setup, overrides, match", [
    (lambda t: _nli_file(t, NLI), ["data.prompt={premise} vs {hypotesis}"],
     r"bad\.csv: data\.prompt names the column 'hypotesis', which is not there \(3 columns"),
    (lambda t: _nli_file(t, NLI), ["data.label_field=gold"], r"data\.label_field names the column 'gold'"),
    (lambda t: _nli_file(t, NLI), ["data.prompt={sentence}", "data.text_field=text"],
     r"data\.text_field names the column 'text'"),
    (lambda t: _nli_file(t, NLI[:2] + [("a", "b", "neutral")]), [],
     r"bad\.csv: row 3: the label \(column 'label'\) maps to no label word \(expected an index 0\.\.1 or one of "
     r"data\.label_names \['entailment', 'contradiction'\]\)"),
    (lambda t: _nli_file(t, [("a", "b", 2)]), ["data.label_names=null"],
     r"row 1: the label \(column 'label'\) maps to"),
    (lambda t: _nli_file(t, [("a", "b", "")]), [], r"row 1: the label \(column 'label'\) maps to"),
    (lambda t: _nli_file(t, []), [], r"bad\.csv holds no records"),
    (lambda t: _bytes(t / "bad.csv", b""), [], r"bad\.csv is empty"),
    (lambda t: _parquet(t / "bad.parquet", {"premise": pa.array([], pa.string()), "hypothesis": pa.array(
        [], pa.string()), "label": pa.array([], pa.int64())}), [], r"bad\.parquet holds no records"),
    (lambda t: _parquet(t / "bad.parquet", {"premise": [1], "hypothesis": ["b"], "label": [0]}), [],
     r"bad\.parquet: row 1: column 'premise' holds a int; expected text"),
    (lambda t: _parquet(t / "bad.parquet", {"premise": [None], "hypothesis": ["b"], "label": [0]}), [],
     "column 'premise' holds a NoneType"),
    (lambda t: _bytes(t / "bad.txt", b"x"), [],
     r"reads files ending in \.csv, \.json, \.jsonl, \.parquet, not '\.txt'"),
    (lambda t: str(t / "missing.csv"), [], r"data file not found: .*missing\.csv"),
    (lambda t: _bytes(t / "bad.parquet", b"PAR1 not parquet"), [],
     r"bad\.parquet cannot be read as parquet \(ArrowInvalid"),
    (lambda t: _bytes(t / "bad.csv", b'premise,label\n"open quote\n'), [],
     r"bad\.csv cannot be read \(ParserError"),
])
def test_bad_classification_data_is_refused_with_one_line(tmp_path, setup, overrides, match):
    path = setup(tmp_path)
    good = _csv(tmp_path / "good.csv", ["premise", "hypothesis", "label"], NLI)
    with pytest.raises(PaczeroError, match=match) as info:
        _load(*CLASSIFY, f"data.train_file={path}", f"data.test_file={good}", *overrides)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("answers, match", [
    ([[]], r"row 1: column 'answers' is not a string, a non-empty list of strings or SQuAD's"),
    ([{"text": [], "answer_start": []}], r"column 'answers' is not"),
    ([[1, 2]], r"column 'answers' is not"),
])
def test_bad_answers_are_refused(tmp_path, answers, match):
    path = _parquet(tmp_path / "g.parquet", {"q": ["Q?"], "answers": answers})
    with pytest.raises(PaczeroError, match=match):
        _load("data.task=hf", "data.kind=generation", "data.prompt_field=q", f"data.train_file={path}",
              f"data.test_file={path}")


def test_a_bad_label_is_named_not_quoted_and_shown_only_as_private(tmp_path):
    path = _csv(tmp_path / "long.csv", ["sentence", "label"], [("x", "y" * 100_000)])
    with pytest.raises(PaczeroError) as info:
        _load("data.task=hf", "data.kind=classification", f"data.train_file={path}", f"data.test_file={path}")
    assert len(str(info.value)) < 400 and "yy" not in str(info.value) and "row 1" in str(info.value)
    assert len(info.value.private) < 100 and "yyy" in info.value.private and "…" in info.value.private


@pytest.mark.parametrize("overrides, key, match", [
    (["data.kind=classification"], "data.train_file", "expected a .csv, .json, .jsonl or .parquet file"),
    (["data.train_file=a.csv", "data.test_file=b.csv"], "data.kind", "classification or generation"),
    (["data.kind=generation", "data.dataset=x", "data.train_file=a.csv"], "data.train_file", "not both"),
    (["data.kind=generation", "data.train_file=a.csv", "data.test_file=b.csv", "data.test_split=test"],
     "data.test_split", "with data files the files are the splits"),
    (["data.kind=generation", "data.dataset=x", "data.label_names=[a,b]"], "data.label_names",
     "a classification option"),
    (["data.kind=classification", "data.dataset=x", "data.prompt_field=q"], "data.prompt_field",
     "a generation option"),
    (["data.kind=classification", "data.dataset=x", "data.label_names=[a]"], "data.label_names",
     "expected 2 distinct names"),
    (["data.kind=classification", "data.dataset=x", "data.prompt=no fields"], "data.prompt",
     "naming at least one field"),
    (["data.kind=generation", "data.dataset=x", "data.prompt_field=q", "data.prompt=Q: {q}"], "data.prompt",
     "leave data.prompt unset"),
])
def test_hf_options_are_checked(overrides, key, match):
    with pytest.raises(PaczeroError, match=rf"config: {key.replace('.', '[.]')}=.* is invalid; .*{match}"):
        load_config(None, ["data.task=hf", *overrides])


@pytest.mark.parametrize("override, readers", [
    ("data.dataset=x", "data.task=hf reads it"), ("data.train_split=all", "data.task=hf reads it"),
    ("data.text_field=text", "data.task=jsonl and data.task=hf read it"),
    ("data.label_names=[a,b]", "data.task=jsonl and data.task=hf read it"),
])
def test_hf_options_are_refused_for_other_tasks(override, readers):
    with pytest.raises(PaczeroError, match=f"only {readers}"):
        load_config(None, [override])


@pytest.mark.parametrize("prompt", ["{sentence} It was", "{text} It was"])
def test_sentence_stands_for_a_text_column_too(tmp_path, prompt):
    """One field-name rule for hf columns and JSONL keys: {text} is the column text, {sentence} falls back to it."""
    path = _csv(tmp_path / "a.csv", ["text", "label"], [("fine film", 1)])
    _, split = _load("data.task=hf", "data.kind=classification", f"data.train_file={path}", f"data.test_file={path}",
                     "data.n_pool=1", f"data.prompt={prompt}")
    assert split.test == [Example("fine film It was", 1)]


def test_without_the_datasets_package_the_config_is_refused(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "datasets" else real(name, *a))
    with pytest.raises(PaczeroError, match=r"data\.task=hf needs the datasets package; pip install 'paczero\[hub\]'"):
        load_config(None, ["data.task=hf", "data.kind=generation", "data.dataset=x"])


def test_local_files_are_read_without_the_network_or_a_cache(tmp_path, monkeypatch):
    """``datasets`` would send the hub a download count for each local file (3 s to time out offline) and leave
    lock files in its cache; neither happens."""
    import socket

    import datasets

    hosts: list[str] = []
    monkeypatch.setattr(socket, "getaddrinfo", lambda host, *a, **k: hosts.append(host) or [])
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(datasets.config, "HF_UPDATE_DOWNLOAD_COUNTS", True)
    path = _csv(tmp_path / "a.csv", ["sentence", "label"], [("good", 1), ("bad", 0)])
    _, split = _load("data.task=hf", "data.kind=classification", f"data.train_file={path}", f"data.test_file={path}",
                     "data.n_pool=1", "data.n_dev=1")
    assert len(split.test) == 2 and hosts == [] and not (tmp_path / "cache").exists()
    assert datasets.config.HF_UPDATE_DOWNLOAD_COUNTS  # restored


def test_a_hub_data_set_fails_at_once_when_the_hub_is_unreachable(monkeypatch):
    """No network lookup and no retries: the cache only, then one line saying why."""
    import socket

    import paczero.hub
    from paczero.data.files import load_hub_dataset

    lookups: list[str] = []
    monkeypatch.setattr(paczero.hub, "hub_reachable", lambda: False)
    monkeypatch.setattr(socket, "getaddrinfo", lambda host, *a, **k: lookups.append(host) or [])
    with pytest.raises(PaczeroError, match=r"^cannot load nobody/nothing-here from the HF hub: the hub is unreachable "
                                           r"and the data set is not in the Hugging Face cache$"):
        load_hub_dataset("nobody/nothing-here")
    with pytest.raises(PaczeroError, match=r"^cannot load data\.dataset=nobody/nothing-here: it is not a local folder, "
                                           r"the hub is unreachable and it is not in the Hugging Face cache$"):
        _load("data.task=hf", "data.kind=generation", "data.dataset=nobody/nothing-here", "data.prompt_field=q")
    assert lookups == []
