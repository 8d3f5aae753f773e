"""Per-record losses: batched scoring equals the plain forward; out-of-memory retries; truncation."""

from __future__ import annotations

import torch

from paczero.objectives import model_forward
from paczero.trainer import Trainer


def test_out_of_memory_halves_the_micro_batch(tiny_config):
    trainer = Trainer(tiny_config("zo.micro_batch=32"))
    trainer.prepare()
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
    assert objective.micro_batch <= 5 and max(calls[-3:]) <= 5


def test_long_prompts_are_truncated_on_the_left_and_counted(tiny_config):
    trainer = Trainer(tiny_config("data.max_length=6"))
    trainer.prepare()
    enc = trainer.encoded["pool"]
    assert enc.truncated > 0
    assert max(len(p) for p in enc.prompts) <= 6
    # the end of the prompt (the answer position) is kept
    text = trainer.task.render(trainer.split.pool[0])
    full = trainer.loaded.tokenizer(text).input_ids
    assert enc.prompts[0] == full[-len(enc.prompts[0]):]
