"""The cached paths of a trainable set against the uncached engine and an independent float64 oracle.

* A set in the top layers (norms, biases, LoRA, whole layers, a pattern) caches the bottom's hidden states: its
  estimates and evaluations equal the uncached engine's bit for bit (the same kernels run on the same inputs).
* The head set (the label words' rows, the final norm) caches each record's final hidden state and computes the C
  label logits alone: equal to the uncached engine's losses to float rounding, because the full head's log-softmax
  normaliser, which cancels in the candidates' cross-entropy, is not computed (held to 1e-5 here), and equal to a
  float64 loop that scores every record alone over the whole vocabulary with an untied head written out here.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from paczero.build import build
from paczero.staged import StagedModel

SET = ["model.tuning=set", "model.tiny.num_layers=3", "zo.eps=1e-2"]
HEAD_SETS = {
    "head-rows": ["model.trainable.head_rows=true"],
    "final-norm": ["model.trainable.final_norm=true"],
    "head-rows+final-norm": ["model.trainable.head_rows=true", "model.trainable.final_norm=true"],
}
LAYER_SETS = {
    "norms": ["model.trainable.norms=1", "model.trainable.head_rows=true"],
    "biases": ["model.trainable.biases=1", "model.tiny.bias=true"],
    "lora": ["model.trainable.lora_layers=2", "model.trainable.final_norm=true"],
    "layers": ["model.trainable.layers=1"],
    "pattern": ["model.trainable.pattern=layers\\.[12]\\.self_attn\\.o_proj"],
}
SUBSET = np.array([7, 3, 40, 1, 22])


def _pair(tiny_config, parts):
    return {cached: build(tiny_config(*SET, *parts, f"zo.cache_prefix={cached}")) for cached in (False, True)}


def _outputs(c) -> dict:
    pool = c.encoded["pool"]
    g, losses = c.engine.estimates(c.objective, pool, direction=4242)
    sub_g, _ = c.engine.estimates(c.objective, pool.subset(SUBSET), direction=4242)
    return {"g": g, "losses": losses, "subset": sub_g, "test": c.engine.evaluate(c.objective, c.encoded["test"])}


@pytest.mark.parametrize("name", LAYER_SETS)
def test_a_set_in_the_top_layers_gives_the_uncached_results_bit_for_bit(tiny_config, name):
    runs = _pair(tiny_config, LAYER_SETS[name])
    assert runs[True].engine._head is None  # the generic cache: hidden states entering the lowest trainable layer
    plain, cached = _outputs(runs[False]), _outputs(runs[True])
    assert runs[True].engine.cache_hits > 0 and runs[False].engine.cache_hits == 0
    assert np.abs(plain["g"]).max() > 1e-3
    for key in ("g", "losses", "subset"):
        assert np.array_equal(plain[key], cached[key]), key
    assert plain["test"] == cached["test"]


@pytest.mark.parametrize("name", HEAD_SETS)
def test_the_head_set_from_cached_final_states_equals_the_uncached_engine(tiny_config, monkeypatch, name):
    runs = _pair(tiny_config, HEAD_SETS[name])
    assert runs[True].engine._head is not None

    def no_layers(*args, **kwargs):
        raise AssertionError("a decoder layer ran after the final states were cached")

    plain = _outputs(runs[False])
    monkeypatch.setattr(StagedModel, "layer", no_layers)
    cached = _outputs(runs[True])
    assert np.abs(plain["g"]).max() > 1e-2
    # losses agree to float32 rounding (~1e-7 relative); an estimate divides their difference by 2ε = 0.02
    np.testing.assert_allclose(cached["losses"], plain["losses"], rtol=0, atol=1e-5)
    np.testing.assert_allclose(cached["g"], plain["g"], rtol=0, atol=1e-4)
    np.testing.assert_allclose(cached["subset"], plain["subset"], rtol=0, atol=1e-4)
    assert cached["test"]["accuracy"] == plain["test"]["accuracy"]
    assert cached["test"]["loss"] == pytest.approx(plain["test"]["loss"], abs=1e-6)


def _oracle_losses(c, values: dict[str, torch.Tensor], indices) -> np.ndarray:
    """float64, one record at a time, no padding: a copy of the model whose head is untied (a plain matrix of the
    whole vocabulary with the label rows replaced) and whose final norm holds ``values``; the label words scored by
    the log-softmax over the whole vocabulary at the last position."""
    model = copy.deepcopy(c.loaded.model).double()
    labels = [ids[0] for ids in c.objective.candidates]
    head = model.get_output_embeddings()
    weight = head.weight.detach().clone()
    if "lm_head.rows" in values:
        weight[labels] = values["lm_head.rows"].double()
    norm = model.get_decoder().norm
    with torch.no_grad():
        if "model.norm.weight" in values:
            norm.weight.copy_(values["model.norm.weight"].double())
        out = []
        for i in indices:
            final = model.get_decoder()(input_ids=torch.tensor([c.encoded["pool"].prompts[i]])).last_hidden_state
            logp = torch.log_softmax(final[0, -1] @ weight.T, dim=-1)[labels]
            out.append((torch.logsumexp(logp, 0) - logp[c.encoded["pool"].labels[i]]).item())
    return np.array(out)


@pytest.mark.parametrize("name", HEAD_SETS)
def test_the_head_set_estimates_match_a_float64_oracle(tiny_config, name):
    c = build(tiny_config(*SET, *HEAD_SETS[name], "zo.cache_prefix=true"))
    with torch.no_grad():  # move away from θ_0, where the rows are the embedding's, so the oracle's untying matters
        for _, p in c.loaded.trainable:
            p.mul_(1.5)
    eps, direction, indices = c.engine.eps, 99, range(12)
    g, _ = c.engine.estimates(c.objective, c.encoded["pool"], direction=direction)
    at = {scale: {n: p.detach().double() + scale * c.engine.direction_block(direction, i).double()
                  for i, (n, p) in enumerate(c.loaded.trainable)} for scale in (eps, -eps)}
    oracle = (_oracle_losses(c, at[eps], indices) - _oracle_losses(c, at[-eps], indices)) / (2 * eps)
    assert np.abs(oracle).max() > 1e-2
    np.testing.assert_allclose(g[:12], oracle, rtol=1e-3, atol=2e-3)


def test_first_order_gradients_from_cached_final_states_equal_the_whole_models(tiny_config):
    grads = {}
    for cached in (False, True):
        c = build(tiny_config(*SET, *HEAD_SETS["head-rows+final-norm"], f"zo.cache_prefix={cached}"))
        c.engine.differentiable_losses(c.objective, c.encoded["pool"]).mean().backward()
        grads[cached] = [p.grad.clone() for _, p in c.loaded.trainable]
    assert all(g.abs().max() > 1e-4 for g in grads[False])
    for a, b in zip(grads[False], grads[True]):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-6)
