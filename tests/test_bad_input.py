"""Every kind of bad input the issue lists: exit code 2, one line naming the problem, no run directory.

Each case runs ``paczero train`` on a tiny config with its own broken data folder, file or option.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Callable

import pytest

from conftest import TINY_CONFIG, TINY_SQUAD_CONFIG, write_squad, write_sst2
from paczero.cli import main
from paczero.errors import PRIVATE_TAG


def _sst2(tmp: Path, edit: Callable[[Path], None] = lambda folder: None) -> list[str]:
    edit(write_sst2(tmp / "data", n_train=200, n_val=40) / "sst2")
    return [f"data.data_dir={tmp / 'data'}"]


def _squad(tmp: Path, edit: Callable[[Path], None]) -> list[str]:
    edit(write_squad(tmp / "data") / "squad")
    return [f"data.data_dir={tmp / 'data'}"]


def _jsonl(tmp: Path, train: bytes, kind: str = "classification") -> list[str]:
    good = {"classification": b'{"text": "fine film", "label": 1}\n',
            "generation": b'{"prompt": "Q?", "answers": ["a"]}\n'}[kind]
    (tmp / "train.jsonl").write_bytes(train)
    (tmp / "test.jsonl").write_bytes(good * 4)
    return ["data.task=jsonl", f"data.kind={kind}", f"data.train_file={tmp / 'train.jsonl'}",
            f"data.test_file={tmp / 'test.jsonl'}", "data.n_pool=2", "data.n_dev=1"]


def _hf(tmp: Path, train: str, *extra: str) -> list[str]:
    """``data.task=hf`` on CSV files, the prompt naming two columns (an override YAML cannot parse)."""
    (tmp / "train.csv").write_text(train)
    (tmp / "test.csv").write_text("premise,hypothesis,label\nfine,film,1\n" * 4)
    return ["data.task=hf", "data.kind=classification", f"data.train_file={tmp / 'train.csv'}",
            f"data.test_file={tmp / 'test.csv'}", "data.n_pool=2", "data.n_dev=1",
            "data.prompt={premise} then {hypothesis}", *extra]


def _drop_first_answers(folder: Path) -> None:
    doc = json.loads((folder / "train.json").read_text())
    del doc["data"][0]["paragraphs"][0]["qas"][0]["answers"]
    (folder / "train.json").write_text(json.dumps(doc))


def _replace(name: str, content: bytes) -> Callable[[Path], None]:
    return lambda folder: (folder / name).write_bytes(content)


def _make_dir(name: str) -> Callable[[Path], None]:
    def edit(folder: Path) -> None:
        (folder / name).unlink()
        (folder / name).mkdir()
    return edit


SET = ["model.tuning=set"]
CASES = {
    # missing or unreadable data files
    "sst2 file missing": (TINY_CONFIG, lambda t: _sst2(t, lambda f: (f / "validation.tsv").unlink()),
                          "validation.tsv"),
    "squad dev file missing": (TINY_SQUAD_CONFIG, lambda t: _squad(t, lambda f: (f / "validation.json").unlink()),
                               "SQuAD file not found"),
    "jsonl file missing": (TINY_CONFIG, lambda t: [*_jsonl(t, b'{"text": "ok", "label": 0}\n' * 4),
                                                   f"data.test_file={t / 'nope.jsonl'}"],
                           "nope.jsonl"),
    "data dir missing": (TINY_CONFIG, lambda t: [f"data.data_dir={t / 'nowhere'}"], "data directory not found"),
    "data file unreadable": (TINY_SQUAD_CONFIG, lambda t: _squad(t, _make_dir("train.json")),
                             "cannot read .*train.json"),
    # missing columns or keys
    "sst2 column missing": (TINY_CONFIG, lambda t: _sst2(t, _replace("train.tsv", b"sentence\nfine\n")),
                            "lacks a 'label' column"),
    "squad key missing": (TINY_SQUAD_CONFIG, lambda t: _squad(t, _drop_first_answers), "lacks the key 'answers'"),
    "jsonl key missing": (TINY_CONFIG, lambda t: _jsonl(t, b'{"text": "x"}\n'), "missing key 'label'"),
    "hf column missing": (TINY_CONFIG, lambda t: _hf(t, "premise,hypotesis,label\na,b,1\n"),
                          "train.csv: data.prompt names the column 'hypothesis', which is not there"),
    "hf label column missing": (TINY_CONFIG, lambda t: _hf(t, "premise,hypothesis,label\na,b,1\n",
                                                           "data.label_field=gold"),
                                "data.label_field names the column 'gold'"),
    "hf file unreadable": (TINY_CONFIG, lambda t: _hf(t, 'premise,hypothesis,label\n"a,b,1\n'),
                           r"train.csv cannot be read \(ParserError"),
    "hf no data": (TINY_CONFIG, lambda t: ["data.task=hf", "data.kind=classification"],
                   "data.train_file=None is invalid; expected a .csv"),
    # labels outside the label words
    "sst2 label outside": (TINY_CONFIG, lambda t: _sst2(t, _replace("validation.tsv", b"label\tsentence\n2\tok\n")),
                           "record 0 has a label outside the 2 label words"),
    "jsonl label outside": (TINY_CONFIG, lambda t: _jsonl(t, b'{"text": "x", "label": "meh"}\n'),
                            r"train\.jsonl:1: the label \(column 'label'\) maps to no label word"),
    "hf label unmapped": (TINY_CONFIG, lambda t: _hf(t, "premise,hypothesis,label\na,b,1\nc,d,neutral\n"),
                          r"train.csv: row 2: the label \(column 'label'\) maps to no label word"),
    # empty pool, pool smaller than requested
    "hf empty split": (TINY_CONFIG, lambda t: _hf(t, "premise,hypothesis,label\n"), "train.csv holds no records"),
    "empty pool option": (TINY_CONFIG, lambda t: ["data.n_pool=0"], "data.n_pool=0 is invalid"),
    "empty train file": (TINY_CONFIG, lambda t: _jsonl(t, b"\n"), "train.jsonl holds no records"),
    "header-only sst2": (TINY_CONFIG, lambda t: _sst2(t, _replace("train.tsv", b"label\tsentence\n")),
                         "holds no records"),
    "pool too small": (TINY_SQUAD_CONFIG, lambda t: ["data.n_pool=5000"], "data.n_pool=5000 .* exceeds the"),
    # records longer than the model's context, refused by option
    "overlong refused": (TINY_SQUAD_CONFIG, lambda t: ["data.max_length=12", "data.overlong=refuse"],
                         "longer than the 4 tokens that fit .*data.overlong=truncate"),
    "overlong jsonl refused": (TINY_CONFIG, lambda t: [*_jsonl(t, b'{"prompt": "a b c d e", "answers": ["a"]}\n' * 4,
                                                               "generation"), "data.max_length=3",
                                                        "data.max_new_tokens=1", "data.overlong=refuse"],
                               "jsonl pool: record 0's prompt is longer than the 2 tokens that fit"),
    # invalid UTF-8
    "sst2 not utf-8": (TINY_CONFIG, lambda t: _sst2(t, _replace("train.tsv", b"label\tsentence\n1\tgo\xffod\n")),
                       "not valid UTF-8"),
    "squad not utf-8": (TINY_SQUAD_CONFIG, lambda t: _squad(t, _replace("validation_rest.json", b'{"data": "\xc3"}')),
                        "validation_rest.json is not valid UTF-8"),
    "jsonl not utf-8": (TINY_CONFIG, lambda t: _jsonl(t, b'{"text": "\xe9t\xe9", "label": 0}\n'),
                        "not valid UTF-8"),
    # the number of subsets, steps, learning rate, ε, clip, MI budget
    "M odd": (TINY_CONFIG, lambda t: ["privacy.n_subsets=7"], "privacy.n_subsets=7 is invalid; expected an even"),
    "M below 2": (TINY_CONFIG, lambda t: ["privacy.n_subsets=0"], "privacy.n_subsets=0 is invalid"),
    "steps zero": (TINY_CONFIG, lambda t: ["train.steps=0"], "train.steps=0 is invalid; expected a positive"),
    "lr negative": (TINY_CONFIG, lambda t: ["train.lr=-0.1"], "train.lr=-0.1 is invalid"),
    "eps zero": (TINY_CONFIG, lambda t: ["zo.eps=0"], "zo.eps=0.0 is invalid"),
    "clip negative": (TINY_CONFIG, lambda t: ["zo.clip=-1"], "zo.clip=-1.0 is invalid"),
    "MI budget zero": (TINY_CONFIG, lambda t: ["privacy.mechanism=mi", "privacy.budget=0"],
                       "privacy.budget=0.0 is invalid; expected a positive MI budget"),
    "MI budget negative": (TINY_CONFIG, lambda t: ["privacy.mechanism=mi", "privacy.budget=-0.3"], "privacy.budget"),
    "override YAML cannot parse": (TINY_CONFIG, lambda t: ["train.steps={x"], "config: train.steps: Value '{x'"),
    "no chat template": (TINY_CONFIG, lambda t: ["data.chat_template=true"],
                         "data.chat_template=true but the model's tokenizer has no chat template"),
    # models
    "model path missing": (TINY_CONFIG, lambda t: [f"model.name={t / 'no-model'}"], "model path not found"),
    "model folder empty": (TINY_CONFIG, lambda t: [f"model.name={t}"], "cannot be loaded: the folder has no config"),
    "lora target matches nothing": (TINY_CONFIG, lambda t: ["model.tuning=lora", "model.lora.target_modules=[nope]"],
                                    r"model.lora.target_modules=\['nope'\] match no module"),
    # trainable sets (model.tuning=set)
    "set pattern matches nothing": (TINY_CONFIG, lambda t: [*SET, "model.trainable.pattern=nope"],
                                    r"model.trainable.pattern='nope' selects no tensor .*named like model\."),
    "set pattern invalid": (TINY_CONFIG, lambda t: [*SET, "model.trainable.pattern=(x"],
                            r"model.trainable.pattern='\(x' is not a regular expression"),
    "set unknown part": (TINY_CONFIG, lambda t: [*SET, "model.trainable.heads=true"], "model.trainable.heads"),
    "set biases on a model without": (TINY_CONFIG, lambda t: [*SET, "model.trainable.biases=1"],
                                      "model.trainable.biases=1 selects no tensor"),
    "set tied embedding": (TINY_CONFIG, lambda t: [*SET, "model.trainable.pattern=embed"],
                           "selects model.embed_tokens.weight, the input embedding tied to the LM head; .*head_rows"),
    "set head rows for generation": (TINY_SQUAD_CONFIG, lambda t: [*SET, "model.trainable.head_rows=true"],
                                     "model.trainable.head_rows=True is invalid; .*classification tasks only"),
    "set head rows of a multi-token word": (TINY_CONFIG, lambda t: [*SET, "model.trainable.head_rows=true",
                                                                    "data.label_words=[' very bad',' great']"],
                                            "needs single-token label words; a label word encodes to 2 tokens"),
    "set more layers than the model": (TINY_CONFIG, lambda t: [*SET, "model.trainable.norms=3"],
                                       "model.trainable.norms=3 exceeds the model's 2 decoder layers"),
    "set empty": (TINY_CONFIG, lambda t: SET, "model.tuning=set tunes the parts of model.trainable"),
    "set parts without set": (TINY_CONFIG, lambda t: ["model.trainable.final_norm=true"],
                              "model.trainable.*final_norm=True.* applies with model.tuning=set"),
    "set nothing to cache": (TINY_CONFIG, lambda t: [*SET, "model.trainable.layers=2", "zo.cache_prefix=true"],
                             "zo.cache_prefix: nothing to cache"),
    "first order without a gradient": (TINY_SQUAD_CONFIG, lambda t: ["privacy.mechanism=firstorder"],
                                       "data.objective='f1' is invalid; .*expected lm"),
    "dpsgd without a trainable set": (TINY_CONFIG, lambda t: ["privacy.mechanism=dpsgd", "privacy.epsilon=1"],
                                      "model.tuning='full' is invalid; dpsgd computes per-record gradients over a "
                                      "trainable set"),
    "dpsgd with a vacuous epsilon": (TINY_CONFIG, lambda t: [*SET, "model.trainable.head_rows=true",
                                                             "privacy.mechanism=dpsgd", "privacy.epsilon=8"],
                                     r"privacy.epsilon=8.0 is invalid; at delta=1e-05 an epsilon of .* or more bounds "
                                     "membership inference only by"),
    "dpsgd without epsilon": (TINY_CONFIG, lambda t: [*SET, "model.trainable.head_rows=true",
                                                      "privacy.mechanism=dpsgd"],
                              "privacy.epsilon=None is invalid; expected a finite DP epsilon > 0 for "
                              "privacy.mechanism=dpsgd"),
    "dpsgd with an infinite clip": (TINY_CONFIG, lambda t: [*SET, "model.trainable.head_rows=true",
                                                            "privacy.mechanism=dpsgd", "privacy.epsilon=1",
                                                            "privacy.grad_clip=inf"],
                                    "privacy.grad_clip=inf is invalid; dpsgd bounds each record's gradient"),
}


@pytest.mark.parametrize("config, setup, match", CASES.values(), ids=CASES.keys())
def test_bad_input_exits_2_names_the_problem_and_writes_no_run(data_dir, tmp_path, capsys, config, setup, match):
    case = tmp_path / "case"
    case.mkdir()
    runs = tmp_path / "runs"
    # Good data unless the case brings its own (the last value of a key wins).
    argv = ["train", "--config", str(config), f"data.data_dir={data_dir}", *setup(case), f"run.output_dir={runs}"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    public = [line for line in err.splitlines() if not line.startswith(PRIVATE_TAG)]
    assert public == err.splitlines()[:1] and len(err.splitlines()) <= 2 and "Traceback" not in err
    assert public[0].startswith("paczero: error:") and re.search(match, public[0]), err
    assert not runs.exists() or not any(runs.iterdir())
