"""Per-record losses: batched scoring equals the plain forward; out-of-memory retries; truncation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from paczero.objectives import model_forward
from paczero.build import build


def test_out_of_memory_halves_the_micro_batch(tiny_config):
    trainer = build(tiny_config("zo.micro_batch=32"))
    objective, enc, model = trainer.objective, trainer.encoded["pool"], trainer.loaded.model
    expected = objective.scores(model_forward(model), enc)
    calls = []

    def small_memory(**kw):
        calls.append(kw["input_ids"].shape[0])
        if kw["input_ids"].shape[0] > 5:
            raise torch.OutOfMemoryError("simulated")
        return model(**kw).logits

    got = objective.scores(small_memory, enc)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
    assert objective.micro_batch == 4
    assert calls[:3] == [32, 16, 8] and set(calls[3:]) == {4}  # each retry restarts the whole pass


@pytest.mark.parametrize("staged", [True, False], ids=["staged", "full-copy"])
def test_both_evaluations_of_an_estimate_use_one_batching(tiny_config, staged, caplog):
    """Out of memory in the −ε evaluation restarts both evaluations at half the size: the estimate equals one
    computed at that size from the start, bit for bit. The pool is private: the warning says only the size."""
    from paczero.zo import ZOEngine

    class Engine(ZOEngine):
        def _staged(self, objective, enc):
            return staged and super()._staged(objective, enc)

    trainer = build(tiny_config("zo.micro_batch=32"))
    objective, enc, loaded = trainer.objective, trainer.encoded["pool"], trainer.loaded
    sizes, real = [], objective.losses

    def failing_once(forward, enc, **kwargs):
        sizes.append(objective.micro_batch)
        if len(sizes) == (3 if staged else 2):  # the −ε evaluation (the staged pass first records the calls)
            raise torch.OutOfMemoryError("simulated")
        return real(forward, enc, **kwargs)

    objective.losses = failing_once
    g, losses = Engine(loaded.model, loaded.trainable, eps=1e-3).estimates(objective, enc, direction=1)
    assert [r.getMessage() for r in caplog.records] == ["[private] out of memory: micro-batches now 16 records"]
    assert sizes == ([32, 32, 32, 16, 16, 16] if staged else [32, 32, 16, 16])
    fresh = build(tiny_config("zo.micro_batch=16"))
    g16, losses16 = Engine(loaded.model, loaded.trainable, eps=1e-3).estimates(fresh.objective, enc, direction=1)
    assert np.array_equal(g, g16) and np.array_equal(losses, losses16)


def test_long_prompts_are_truncated_on_the_left_and_counted(tiny_config):
    trainer = build(tiny_config("data.max_length=6"))
    enc = trainer.encoded["pool"]
    assert enc.truncated > 0
    assert max(len(p) for p in enc.prompts) <= 6
    # the end of the prompt (the answer position) is kept
    text = trainer.task.render(trainer.split.pool[0])
    full = trainer.loaded.tokenizer(text).input_ids
    assert enc.prompts[0] == full[-len(enc.prompts[0]):]


def test_a_huge_record_costs_memory_in_proportion_to_max_length_not_to_its_size(tiny_config, monkeypatch):
    """A 4-million-character record is cut to its last ``CHARS_PER_TOKEN · limit`` characters before it reaches the
    tokenizer; it is counted as truncated, and its kept tokens are the end of the whole record's."""
    from paczero.data.tasks import Example
    from paczero.objectives import CHARS_PER_TOKEN

    c = build(tiny_config())
    tokenizer, seen = c.loaded.tokenizer, []
    real = type(tokenizer).__call__

    def spy(self, text, *args, **kwargs):
        seen.append(len(text))
        return real(self, text, *args, **kwargs)

    monkeypatch.setattr(type(tokenizer), "__call__", spy)
    words = c.task.render(c.split.pool[0]).split()
    huge = Example(text=" ".join(words * (4_000_000 // (len(" ".join(words)) + 1))), label=1)
    enc = c.objective.encode([huge, c.split.pool[1]], where="t")
    limit = c.objective.limit
    assert max(seen) <= CHARS_PER_TOKEN * limit < 10_000
    assert enc.truncated == 1 and len(enc.prompts[0]) <= limit
    monkeypatch.setattr(type(tokenizer), "__call__", real)
    tail = tokenizer(c.task.render(Example(text=huge.text[-20 * limit * 8:], label=1))).input_ids
    assert enc.prompts[0][1:] == tail[-(len(enc.prompts[0]) - 1):]


def test_an_evaluation_reports_per_class_figures_that_agree_with_its_accuracy(tiny_config):
    c = build(tiny_config("data.label_words=[\" terrible\",\" great\"]"))
    metrics = c.evaluate("test")
    counts = np.array(metrics["confusion_matrix"]["counts"])
    assert metrics["confusion_matrix"]["labels"] == ["terrible", "great"]
    assert counts.sum() == len(c.split.test) and np.trace(counts) / counts.sum() == pytest.approx(metrics["accuracy"])
    assert [metrics["per_class"][n]["support"] for n in ("terrible", "great")] == list(counts.sum(axis=1))
    assert list(counts.sum(axis=1)) == list(np.bincount([r.label for r in c.split.test], minlength=2))
