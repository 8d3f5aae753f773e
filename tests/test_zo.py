"""The ZO engine against a slow float64 oracle, and exactness of restore and update."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from paczero.trainer import Trainer
from paczero.zo import ZOEngine


@pytest.fixture
def prepared(tiny_config):
    trainer = Trainer(tiny_config())
    trainer.prepare()
    return trainer


def _oracle_losses(model, objective, enc, indices) -> np.ndarray:
    """Records one by one, no padding, full-vocabulary float64 logits at every position."""
    out = []
    for i in indices:
        prompt = enc.prompts[i]
        scores = []
        for cand in objective.candidates:
            ids = torch.tensor([prompt + cand])
            logp = torch.log_softmax(model(input_ids=ids).logits[0].double(), dim=-1)
            positions = range(len(prompt) - 1, len(prompt) - 1 + len(cand))
            scores.append(np.mean([logp[p, t].item() for p, t in zip(positions, cand)]))
        scores = np.array(scores)
        out.append(np.logaddexp.reduce(scores) - scores[enc.labels[i]])
    return np.array(out)


def _perturbed_copy(loaded, engine, direction, scale):
    model = copy.deepcopy(loaded.model).double()
    params = dict(model.named_parameters())
    with torch.no_grad():
        for i, (name, _) in enumerate(loaded.trainable):
            params[name].add_(engine.direction_block(direction, i).double(), alpha=scale)
    return model


@pytest.mark.parametrize("tuning", ["full", "lora"])
def test_estimates_match_float64_loop(tiny_config, tuning):
    trainer = Trainer(tiny_config(f"model.tuning={tuning}", "model.lora.target_modules=[q_proj,v_proj]"))
    trainer.prepare()
    if tuning == "lora":  # LoRA B starts at zero; give the adapters weight so the estimate is not trivial
        with torch.no_grad():
            for _, p in trainer.loaded.trainable:
                p.normal_(0, 0.3, generator=torch.Generator().manual_seed(1))
    loaded, objective, enc = trainer.loaded, trainer.objective, trainer.encoded["pool"]
    eps = 1e-2  # larger ε keeps float32 rounding of L± small relative to the difference
    engine = ZOEngine(loaded.model, loaded.trainable, eps=eps)
    direction = 12345
    ours, _ = engine.estimates(objective, enc, direction=direction)
    idx = range(16)  # the batched pass covers the whole pool; the slow oracle checks a slice of it
    plus = _oracle_losses(_perturbed_copy(loaded, engine, direction, eps), objective, enc, idx)
    minus = _oracle_losses(_perturbed_copy(loaded, engine, direction, -eps), objective, enc, idx)
    oracle = (plus - minus) / (2 * eps)
    assert np.abs(oracle).max() > 1e-2, "the oracle estimates are trivially zero"
    np.testing.assert_allclose(ours[:16], oracle, rtol=1e-3, atol=2e-3)


def test_multi_token_candidates_match_oracle(tiny_config):
    trainer = Trainer(tiny_config("data.label_words=[' very bad',' very good']"))
    trainer.prepare()
    objective, enc = trainer.objective, trainer.encoded["dev"]
    assert not objective.single_token
    ours = objective.losses(lambda **kw: trainer.loaded.model(**kw).logits, enc).double().numpy()
    oracle = _oracle_losses(copy.deepcopy(trainer.loaded.model).double(), objective, enc, range(len(enc)))
    np.testing.assert_allclose(ours, oracle, rtol=1e-4, atol=1e-5)


def test_estimates_leave_weights_untouched(prepared):
    loaded = prepared.loaded
    before = [p.detach().clone() for _, p in loaded.trainable]
    ZOEngine(loaded.model, loaded.trainable, eps=1e-3).estimates(prepared.objective, prepared.encoded["pool"],
                                                                 direction=7)
    assert all(torch.equal(b, p) for b, (_, p) in zip(before, loaded.trainable))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_zero_update_is_bit_identical(prepared, dtype):
    loaded = prepared.loaded
    loaded.model.to(dtype)
    engine = ZOEngine(loaded.model, loaded.trainable, eps=1e-3)
    with torch.no_grad():
        loaded.trainable[0][1][0, 0] = -0.0  # a negative zero would turn into +0.0 under `x + 0*z`
    before = [p.detach().clone() for _, p in loaded.trainable]
    engine.estimates(prepared.objective, prepared.encoded["pool"], direction=3)
    engine.update([(3, 0.0), (4, 0.0)], lr=1e-3)
    for b, (_, p) in zip(before, loaded.trainable):
        assert p.dtype == dtype
        assert torch.equal(b.view(torch.int16 if dtype == torch.bfloat16 else torch.int32),
                           p.detach().view(torch.int16 if dtype == torch.bfloat16 else torch.int32))


def test_update_applies_mean_of_directions(prepared):
    loaded = prepared.loaded
    engine = ZOEngine(loaded.model, loaded.trainable, eps=1e-3)
    before = [p.detach().clone().double() for _, p in loaded.trainable]
    lr, coefs = 0.01, [(11, 0.5), (12, -0.5)]
    engine.update(coefs, lr=lr)
    for i, (b, (_, p)) in enumerate(zip(before, loaded.trainable)):
        expected = b - lr * sum(c * engine.direction_block(d, i).double() for d, c in coefs)
        torch.testing.assert_close(p.detach().double(), expected, rtol=0, atol=1e-6)


def test_weight_decay_skips_biases_and_norms(prepared):
    loaded = prepared.loaded
    engine = ZOEngine(loaded.model, loaded.trainable, eps=1e-3)
    before = {n: p.detach().clone() for n, p in loaded.trainable}
    engine.update([(1, 0.0)], lr=0.1, weight_decay=0.5)
    for name, p in loaded.trainable:
        if "norm" in name:
            assert torch.equal(p, before[name])
        else:
            torch.testing.assert_close(p.detach(), before[name] * 0.95)


def test_directions_are_deterministic_and_standard_normal(prepared):
    loaded = prepared.loaded
    engine = ZOEngine(loaded.model, loaded.trainable, eps=1e-3)
    z = torch.cat([engine.direction_block(99, i).flatten() for i in range(len(loaded.trainable))])
    again = torch.cat([engine.direction_block(99, i).flatten() for i in range(len(loaded.trainable))])
    other = torch.cat([engine.direction_block(100, i).flatten() for i in range(len(loaded.trainable))])
    assert torch.equal(z, again)
    assert z.numel() > 10_000
    assert abs(z.mean().item()) < 0.05 and abs(z.std().item() - 1) < 0.05
    assert abs(torch.corrcoef(torch.stack([z, other]))[0, 1].item()) < 0.05
