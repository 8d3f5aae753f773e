"""The model card: a valid Hugging Face card (``ModelCard.load``, strict) for every mechanism and data source, that
says first what the run promises and what it does not, and whose usage snippet, run in plain transformers, predicts
what paczero predicts."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from huggingface_hub import ModelCard

from conftest import TINY_CONFIG
from paczero.cli import main
from paczero.settings import load_config
from paczero.trainer import Trainer

LABELS = ["billing", "bug", "praise"]
WORDS = {"billing": ["invoice", "charged", "refund", "price"], "bug": ["crash", "error", "broken", "freeze"],
         "praise": ["love", "great", "thanks", "wonderful"]}
FILLER = ["the", "app", "my", "account", "today", "again", "please", "help"]
COMMON = ["train.steps=6", "train.eval_every=3", "privacy.n_subsets=4"]
NO_PACZERO = """
import importlib.abc, runpy, sys
class NoPaczero(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "paczero":
            raise ImportError("paczero must not be needed to use an export")
sys.meta_path.insert(0, NoPaczero())
exec(sys.stdin.read())
"""


def _tickets(path: Path, n: int = 150) -> Path:
    """A made-up support-ticket CSV: three classes with string labels."""
    rng = np.random.default_rng(0)
    rows = []
    for i in range(n):
        label = LABELS[i % 3]
        words = list(rng.choice(FILLER, size=4)) + [str(rng.choice(WORDS[label]))]
        rng.shuffle(words)
        rows.append(f"{' '.join(words)},{label}")
    path.write_text("ticket,label\n" + "\n".join(rows) + "\n")
    return path


def _export(tmp_path: Path, *overrides: str, data_dir: Path | None = None) -> tuple[Path, Trainer]:
    cfg = load_config(TINY_CONFIG, [f"run.output_dir={tmp_path / 'runs'}", "run.name=r", *COMMON, *overrides])
    trainer = Trainer(cfg)
    trainer.run()
    out = tmp_path / "export"
    extra = ["--data-dir", str(data_dir)] if data_dir else []
    if cfg.data.test_file or cfg.data.train_file:
        extra += [f"--set", *(f"data.{k}={getattr(cfg.data, k)}" for k in ("train_file", "test_file")
                              if getattr(cfg.data, k))]
    assert main(["export", str(trainer.run_dir.path), "--out", str(out), *extra]) == 0
    return out, trainer


def _snippet(card: str) -> str:
    return re.search(r"```python\n(.*?)```", card, re.S).group(1)


@pytest.mark.slow
def test_own_csv_with_string_labels_to_a_card_the_hub_reads_and_a_snippet_that_predicts_as_paczero(tmp_path,
                                                                                                 capsys):
    csv = _tickets(tmp_path / "tickets.csv")
    out, trainer = _export(tmp_path, "data.task=hf", "data.kind=classification", f"data.train_file={csv}",
                           "data.prompt=Ticket: {ticket} Topic:", "data.label_field=label",
                           "data.label_words=[' billing',' bug',' praise']", "data.test_fraction=0.2",
                           "data.n_pool=64", "data.n_dev=16", "data.dev_source=train", "model.license=mit")
    card = ModelCard.load(out / "README.md")  # strict: no ignore_metadata_errors
    assert card.data.license == "mit" and card.data.base_model is None and card.data.datasets is None
    assert card.data.eval_results and card.data.eval_results[0].dataset_type == "private"
    assert "tickets" not in card.content  # the file's name is not published
    text = card.text
    promise = text.split("## Privacy", 1)[1].split("## How to use it")[0]
    assert "cannot tell which half was used" in promise and "exactly 1/2" in promise
    assert "not hidden from anyone who holds the pool" in promise and "not record-level" in promise
    assert "16 records drawn from the private train file" in promise  # the dev set's publicity, in words
    c = trainer.c
    from paczero.checkpoint import load_weights
    from paczero.objectives import model_forward

    load_weights(c.loaded, trainer.run_dir.checkpoint("best"))
    scores = c.objective.scores(model_forward(c.loaded.model), c.encoded["test"])
    predicted = [LABELS[int(i)] for i in scores.argmax(dim=1)]
    snippet = _snippet(text)
    for i, record in enumerate(c.split.test[:4]):
        ticket = record.text.split("Ticket: ", 1)[1].rsplit(" Topic:", 1)[0]
        code = re.sub(r"record = \{.*?\}", f"record = {{'ticket': {ticket!r}}}", snippet)
        run = subprocess.run([sys.executable, "-c", NO_PACZERO], input=code, cwd=out, capture_output=True, text=True)
        assert run.returncode == 0, run.stderr[-2000:]
        assert run.stdout == f" {predicted[i]}\n"
    capsys.readouterr()
    assert main(["privacy", str(out)]) == 0  # a third party's check of the card's statement, on the export alone
    assert f"summary: {trainer.run_dir.read_metrics()['privacy']['summary']}" in capsys.readouterr().out


@pytest.mark.parametrize("mechanism, extra, says", [
    ("zpl", [], "exactly 1/2 — a coin flip"),
    ("mi", ["privacy.budget=0.3"], "differential privacy gives the same bound"),
    ("dpzero", ["privacy.epsilon=2", "privacy.sample_rate=0.5"], "This protects each record, its contents included"),
    ("mezo", [], "No privacy guarantee"),
])
def test_every_mechanism_card_is_a_valid_hub_card_saying_what_it_promises(data_dir, tmp_path, mechanism, extra, says):
    out, _ = _export(tmp_path, f"data.data_dir={data_dir}", f"privacy.mechanism={mechanism}", *extra,
                     data_dir=data_dir)
    card = ModelCard.load(out / "README.md")
    assert card.data.datasets == ["stanfordnlp/sst2"] and card.data.base_model is None  # the tiny model: no hub id
    assert card.data.license == "other" and "set `model.license`" in card.text
    assert says in card.text.split("## How to use it")[0]
    assert main(["verify", str(out), "--data-dir", str(data_dir)]) == 0


def test_a_budget_that_promises_nothing_is_not_exported(data_dir, tmp_path, capsys):
    cfg = load_config(TINY_CONFIG, [f"data.data_dir={data_dir}", f"run.output_dir={tmp_path / 'runs'}", "run.name=v",
                                    *COMMON, "privacy.mechanism=mi", "privacy.budget=1.5",
                                    "privacy.allow_vacuous=true"])
    trainer = Trainer(cfg)
    trainer.run()
    capsys.readouterr()
    assert main(["export", str(trainer.run_dir.path), "--out", str(tmp_path / "x"), "--data-dir", str(data_dir)]) == 2
    err = capsys.readouterr().err
    assert "promises nothing" in err and err.count("\n") == 1 and not (tmp_path / "x").exists()


def test_push_to_hub_uploads_the_folder_and_fails_plainly_offline(data_dir, tmp_path, monkeypatch, capsys):
    """The hub is unreachable here: the upload is checked up to the network boundary (the calls it makes)."""
    import huggingface_hub

    import paczero.hub

    calls = []
    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", lambda self, repo_id, **kw: calls.append(
        ("create", repo_id, kw)) or f"https://huggingface.co/{repo_id}")
    monkeypatch.setattr(huggingface_hub.HfApi, "upload_folder", lambda self, **kw: calls.append(("upload", kw)))
    monkeypatch.setattr(paczero.hub, "hub_reachable", lambda timeout=3.0: True)
    cfg = load_config(TINY_CONFIG, [f"data.data_dir={data_dir}", f"run.output_dir={tmp_path / 'runs'}", "run.name=p",
                                    *COMMON])
    trainer = Trainer(cfg)
    trainer.run()
    out = tmp_path / "export"
    assert main(["export", str(trainer.run_dir.path), "--out", str(out), "--data-dir", str(data_dir),
                 "--push-to-hub", "alice/private-tickets", "--hub-private"]) == 0
    assert calls[0] == ("create", "alice/private-tickets", {"repo_type": "model", "private": True, "exist_ok": True})
    assert calls[1][1]["folder_path"] == str(out) and calls[1][1]["repo_id"] == "alice/private-tickets"
    assert "pushed" in capsys.readouterr().out
    monkeypatch.setattr(paczero.hub, "hub_reachable", lambda timeout=3.0: False)
    assert main(["export", str(trainer.run_dir.path), "--out", str(tmp_path / "again"), "--data-dir", str(data_dir),
                 "--push-to-hub", "alice/private-tickets"]) == 2
    assert "unreachable" in capsys.readouterr().err and (tmp_path / "again" / "README.md").is_file()


def test_the_card_names_where_paczero_comes_from():
    from paczero.card import repository

    assert repository() == "https://github.com/paczero/paczero"


@pytest.mark.parametrize("variant", ["squad", "hub data set", "jsonl generation", "local base model", "adapter",
                                     "hub base model", "chat template"])
def test_cards_of_every_task_and_data_source_load_strictly(data_dir, tmp_path, variant):
    """The card of each kind of run, built from a real run's metrics with the settings of that kind, is a valid hub
    card: the metadata parses strictly, the base model is a hub id or absent, never a path."""
    from paczero.card import card

    cfg = load_config(TINY_CONFIG, [f"data.data_dir={data_dir}", f"run.output_dir={tmp_path / 'runs'}",
                                    "run.name=r", *COMMON])
    trainer = Trainer(cfg)
    metrics = trainer.run()
    data, model = metrics["config"]["data"], metrics["config"]["model"]
    kind, adapter = "classification", False
    if variant in ("squad", "jsonl generation"):
        kind = "generation"
        data.update(task="squad") if variant == "squad" else data.update(task="jsonl", kind="generation",
                                                                           train_file="train.jsonl")
        for key in ("test", "best_dev", "final_dev", "zero_shot_test"):
            metrics[key] = {**{k: v for k, v in metrics[key].items() if k in ("step", "selected_on")},
                            "loss": -0.25, "f1": 0.25, "em": 0.125}
    elif variant == "hub data set":
        data.update(task="hf", kind="classification", dataset="nyu-mll/glue", prompt="{premise} {hypothesis}")
    elif variant == "local base model":
        model.update(name=str(tmp_path))
    elif variant == "hub base model":
        model.update(name="facebook/opt-1.3b")
    elif variant == "chat template":
        data.update(chat_template=True)
    else:
        adapter = True
    text = card(metrics, kind=kind, adapter=adapter, checkpoint="best", step=3, verify_command="paczero verify .")
    (tmp_path / "README.md").write_text(text)
    loaded = ModelCard.load(tmp_path / "README.md")
    expected_base = "facebook/opt-1.3b" if variant == "hub base model" else None
    assert loaded.data.base_model == expected_base and str(tmp_path) not in text
    assert loaded.data.eval_results and "## How to use it" in loaded.text
    if variant == "hub data set":
        assert loaded.data.datasets == ["nyu-mll/glue"]
    if variant == "adapter":
        assert loaded.data.library_name == "peft" and "PeftModel.from_pretrained" in loaded.text
    if kind == "generation":
        assert "model.generate(" in _snippet(loaded.text)
    if variant == "chat template":
        assert "apply_chat_template" in _snippet(loaded.text)


@pytest.mark.slow
def test_a_generation_cards_snippet_answers_as_paczero_does(tmp_path, data_dir):
    from conftest import TINY_SQUAD_CONFIG
    from paczero.checkpoint import load_weights
    from paczero.objectives import model_forward

    cfg = load_config(TINY_SQUAD_CONFIG, [f"data.data_dir={data_dir}", f"run.output_dir={tmp_path / 'runs'}",
                                          "run.name=q", "train.steps=2", "train.eval_every=1", "privacy.n_subsets=4"])
    trainer = Trainer(cfg)
    trainer.run()
    out = tmp_path / "export"
    assert main(["export", str(trainer.run_dir.path), "--out", str(out), "--data-dir", str(data_dir)]) == 0
    snippet = _snippet(ModelCard.load(out / "README.md").text)
    c = trainer.c
    load_weights(c.loaded, trainer.run_dir.checkpoint("best"))
    answers = c.objective.generate(model_forward(c.loaded.model), c.encoded["test"])
    for i, record in enumerate(c.split.test[:3]):
        fields = re.fullmatch(r"Title: (.*)\nContext: (.*)\nQuestion: (.*)\nAnswer:", record.prompt, re.S).groups()
        filled = dict(zip(("title", "context", "question"), fields))
        code = re.sub(r"record = \{.*?\}", f"record = {filled!r}", snippet)
        run = subprocess.run([sys.executable, "-c", NO_PACZERO], input=code, cwd=out, capture_output=True, text=True)
        assert run.returncode == 0, run.stderr[-2000:]
        assert run.stdout == answers[i] + "\n"
