"""The Python API on a user's own objects: a config as a dict, a CSV read into a ``datasets.Dataset`` (3 classes, string
labels), a model already loaded; the run is recorded by config and fingerprints, and a resume needs the same objects."""

from __future__ import annotations

import copy
import csv
import json
import stat
from pathlib import Path

import numpy as np
import pytest

datasets = pytest.importorskip("datasets")
pd = pytest.importorskip("pandas")

import paczero  # noqa: E402
from paczero.cli import main  # noqa: E402
from paczero.config import ModelConfig  # noqa: E402
from paczero.settings import load_config  # noqa: E402
from paczero.data.memory import InMemory, records_digest  # noqa: E402
from paczero.errors import PaczeroError  # noqa: E402
from paczero.models import build_tiny_model, build_tiny_tokenizer, model_fingerprint  # noqa: E402
from paczero.rundir import RunDir  # noqa: E402
from paczero.trainer import Trainer  # noqa: E402

TOPICS = {"billing": ["invoice", "charge", "refund"], "bug": ["crash", "error", "freeze"],
          "account": ["password", "login", "email"]}
FILL = ["my", "the", "is", "please", "help", "today", "again", "app", "still", "not"]


def _tickets(path: Path, n: int = 120, seed: int = 0) -> Path:
    """A CSV of made-up support tickets: a text column and a string label of three classes."""
    rng = np.random.default_rng(seed)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["text", "label"])
        for _ in range(n):
            label = str(rng.choice(list(TOPICS)))
            words = list(rng.choice(FILL, size=4)) + [str(rng.choice(TOPICS[label]))]
            writer.writerow([" ".join(words), label])
    return path


def _config(tmp_path: Path, **data) -> dict:
    return {"run": {"output_dir": str(tmp_path / "runs"), "progress": False},
            "model": {"name": "tiny", "device": "cpu"},
            "data": {"kind": "classification", "prompt": "{text} Topic:", "max_length": 64,
                     "label_words": [" billing", " bug", " account"], "n_pool": 64, "test_fraction": 0.25, **data},
            "privacy": {"n_subsets": 8}, "train": {"steps": 4, "lr": 1e-3, "eval_every": 2}}


@pytest.fixture
def tickets(tmp_path):
    return datasets.Dataset.from_pandas(pd.read_csv(_tickets(tmp_path / "tickets.csv")))


def test_a_csv_of_three_string_labels_trains_from_an_in_memory_dataset(tmp_path, tickets):
    result = paczero.train(_config(tmp_path), data=tickets)
    run = RunDir(result.run_dir)
    assert result.run_dir.is_dir() and run.finished and result.run_dir.name.startswith("memory-zpl-s0-")
    assert result.metrics == json.loads(run.metrics_path.read_text())
    assert result.statement.summary == result.metrics["privacy"]["summary"] == "I = 0 nats, MIA posterior <= 0.5, " \
                                                                             "no dev set"
    # 25 % of the 120 records are the test set (drawn by the public seed), the pool 64 of the other 90.
    assert result.metrics["data"]["n_test"] == 30 and result.metrics["data"]["n_pool"] == 64
    assert result.test["confusion_matrix"]["labels"] == ["billing", "bug", "account"]
    assert sum(map(sum, result.test["confusion_matrix"]["counts"])) == 30
    # The config is the record: in memory, read like data.task=hf, no record's text in any public file.
    cfg = load_config(run.config_path)
    assert cfg.data.in_memory and cfg.data.task == "hf" and cfg.data.train_file is None
    texts = set(tickets["text"])
    for rel in run.public_files():
        data = (run.path / rel).read_bytes()
        assert not any(t.encode() in data for t in texts), rel
    # The records' digest is private (it would let anyone test a guess of the data).
    assert json.loads(run.records_path.read_text()) == {"train": records_digest(tickets)}
    assert stat.S_IMODE(run.records_path.stat().st_mode) == 0o600


def test_a_config_as_a_config_a_dict_or_a_yaml_file_is_the_same_run(tmp_path):
    as_dict = {"train": {"steps": 7}, "data": {"n_pool": 32}}
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  steps: 7\ndata:\n  n_pool: 32\n")
    configs = [load_config(as_dict), load_config(path), load_config(load_config(as_dict)),
               load_config(None, ["train.steps=7", "data.n_pool=32"])]
    assert len({c.fingerprint() for c in configs}) == 1 and configs[0].train.steps == 7
    with pytest.raises(PaczeroError, match=r"config: train\.stepz: Key 'stepz' not in 'TrainConfig'"):
        load_config({"train": {"stepz": 7}})
    with pytest.raises(PaczeroError, match="expected a Config, a dict or a YAML file path, not a list"):
        load_config([1])


def test_a_model_passed_in_memory_is_recorded_by_fingerprint_and_trained_in_place(tmp_path, tickets):
    from safetensors.torch import load_file

    tokenizer = build_tiny_tokenizer([f"{t} Topic:" for t in tickets["text"]] + [" billing", " bug", " account"])
    model = build_tiny_model(ModelConfig(), tokenizer, seed=3)
    start = copy.deepcopy(model)
    config = _config(tmp_path)
    del config["model"]["name"]
    result = paczero.train(config, data=tickets, model=model, tokenizer=tokenizer)
    assert result.config.model.name == "in-memory"
    assert result.config.model.fingerprint == model_fingerprint(start, tokenizer, dtype="float32")
    assert result.config.model.fingerprint != model_fingerprint(model, tokenizer, dtype="float32")
    best = load_file(str(result.run_dir / "checkpoints" / "best" / "model.safetensors"))
    assert all(np.array_equal(best[name].numpy(), p.detach().numpy()) for name, p in model.named_parameters())
    with pytest.raises(PaczeroError, match="model= needs its tokenizer"):
        paczero.train(config, data=tickets, model=model)


def test_the_fingerprint_changes_with_any_weight_and_the_tokenizer():
    tokenizer = build_tiny_tokenizer(["a b c"])
    model = build_tiny_model(ModelConfig(), tokenizer, seed=0)
    same = build_tiny_model(ModelConfig(), tokenizer, seed=0)
    base = model_fingerprint(model, tokenizer, dtype="float32")
    assert model_fingerprint(same, tokenizer, dtype="float32") == base
    with __import__("torch").no_grad():
        same.model.norm.weight[3] += 1e-6
    assert model_fingerprint(same, tokenizer, dtype="float32") != base
    assert model_fingerprint(model, build_tiny_tokenizer(["a b d"]), dtype="float32") != base
    assert model_fingerprint(model, tokenizer, dtype="bfloat16") != base


def test_a_resume_needs_the_same_records(tmp_path, tickets, capsys):
    cfg = load_config({**_config(tmp_path), "data": {**_config(tmp_path)["data"], "task": "hf", "in_memory": True}},
                      ["run.name=cut"])
    Trainer(cfg, memory=InMemory(train=tickets)).setup()  # the run is created, then stops before its first step
    run = tmp_path / "runs" / "cut"
    other = tickets.select(range(1, len(tickets)))
    with pytest.raises(PaczeroError, match=r"cannot resume .*cut with other records: the train records passed differ"):
        paczero.train(resume=run, data=other)
    with pytest.raises(PaczeroError, match="was trained on records passed in memory: resume it from Python"):
        paczero.train(resume=run)
    assert main(["train", "--resume", str(run)]) == 2
    assert capsys.readouterr().err.count("\n") == 1
    result = paczero.train(resume=run, data=tickets)
    assert result.run_dir == run and result.metrics["steps_run"] == 4


@pytest.mark.parametrize("kwargs, match", [
    ({"pool": "x"}, "the train records must be a datasets.Dataset, not a str"),
    ({"data": [1]}, "data= must be a datasets.Dataset or DatasetDict, not a list"),
    ({"test": None, "dev": "d"}, "dev= and test= records need the train records too"),
    ({"tokenizer": "t"}, "tokenizer= is used with model= only"),
])
def test_wrong_objects_are_refused_with_one_line(tmp_path, kwargs, match):
    with pytest.raises(PaczeroError, match=match):
        paczero.train(_config(tmp_path), **kwargs)
    assert not (tmp_path / "runs").exists()


def test_a_dataset_dict_gives_its_named_splits(tmp_path, tickets):
    parts = tickets.train_test_split(test_size=0.25, seed=0)
    both = datasets.DatasetDict({"train": parts["train"], "held": parts["test"]})
    with pytest.raises(PaczeroError, match=r"data\.test_split='validation' is not a split of the DatasetDict passed "
                                           r"\(it has: train, held\)"):
        paczero.train(_config(tmp_path, test_fraction=None), data=both)
    with pytest.raises(PaczeroError, match="both"):
        paczero.train(_config(tmp_path), data=tickets, pool=tickets)
    config = _config(tmp_path, test_fraction=None, dev_split="held", test_split="held", n_dev=10)
    result = paczero.train(config, data=both)
    assert result.metrics["data"]["dev_set"]["source"] == "separate" and result.metrics["data"]["n_dev"] == 10
    assert result.metrics["data"]["n_test"] == len(parts["test"])


def test_a_resume_needs_the_same_model(tmp_path, tickets, monkeypatch):
    import paczero.models

    monkeypatch.setattr(paczero.models, "hub_reachable", lambda: False)
    tokenizer = build_tiny_tokenizer([f"{t} Topic:" for t in tickets["text"]] + [" billing", " bug", " account"])
    model = build_tiny_model(ModelConfig(), tokenizer, seed=3)
    config = _config(tmp_path)
    config["model"] = {"name": "in-memory", "device": "cpu",
                       "fingerprint": model_fingerprint(model, tokenizer, dtype="float32")}
    config["data"].update(task="hf", in_memory=True)
    Trainer(load_config(config, ["run.name=cut"]), memory=InMemory(train=tickets),
            preloaded=paczero.models.Preloaded(model, tokenizer)).setup()
    run = tmp_path / "runs" / "cut"
    other = build_tiny_model(ModelConfig(), tokenizer, seed=4)
    with pytest.raises(PaczeroError, match=r"cannot resume .* with another config; differing keys: model\.fingerprint"):
        paczero.train(resume=run, data=tickets, model=other, tokenizer=tokenizer)
    with pytest.raises(PaczeroError, match=r"model\.name='in-memory' is not a local folder, .* \(it was passed in "
                                           r"memory: give the same model to paczero\.train\)"):
        paczero.train(resume=run, data=tickets)
    assert paczero.train(resume=run, data=tickets, model=model, tokenizer=tokenizer).metrics["steps_run"] == 4


def test_a_dataset_in_memory_trains_exactly_as_its_csv_file_does(tmp_path):
    """The same records through paczero.train(data=Dataset) and through data.task=hf on the file: the same
    transcript and the same test metrics (only the config's record of where the records came from differs)."""
    path = _tickets(tmp_path / "tickets.csv")
    config = _config(tmp_path)
    from_memory = paczero.train(config, ["run.name=memory"], data=datasets.Dataset.from_pandas(pd.read_csv(path)))
    from_file = paczero.train(config, ["run.name=file", "data.task=hf", f"data.train_file={path}"])
    transcripts = [(r.run_dir / "transcript.jsonl").read_bytes() for r in (from_memory, from_file)]
    assert transcripts[0] == transcripts[1]
    assert from_memory.test == from_file.test and from_memory.statement == from_file.statement
