"""Per-record losses: batched scoring equals the plain forward; out-of-memory retries; truncation."""

from __future__ import annotations

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


def test_both_evaluations_of_an_estimate_use_one_batching(tiny_config):
    from paczero.zo import ZOEngine

    trainer = build(tiny_config("zo.micro_batch=32"))
    objective = trainer.objective
    sizes, real = [], objective.losses

    def shrinking_losses(forward, enc):
        sizes.append(objective.micro_batch)
        out = real(forward, enc)
        if len(sizes) == 2:  # an out-of-memory retry during the −ε pass
            objective.micro_batch = 16
        return out

    objective.losses = shrinking_losses
    ZOEngine(trainer.loaded.model, trainer.loaded.trainable, eps=1e-3).estimates(
        objective, trainer.encoded["pool"], direction=1)
    assert sizes == [32, 32, 16, 16]


def test_long_prompts_are_truncated_on_the_left_and_counted(tiny_config):
    trainer = build(tiny_config("data.max_length=6"))
    enc = trainer.encoded["pool"]
    assert enc.truncated > 0
    assert max(len(p) for p in enc.prompts) <= 6
    # the end of the prompt (the answer position) is kept
    text = trainer.task.render(trainer.split.pool[0])
    full = trainer.loaded.tokenizer(text).input_ids
    assert enc.prompts[0] == full[-len(enc.prompts[0]):]
