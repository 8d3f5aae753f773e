"""The layer-major (staged) forward: equal to the plain forward, to an explicitly perturbed model, on Llama and OPT."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from oracles import classification_losses, perturbed_copy

from paczero.models import contiguous_head_input
from paczero.objectives import model_forward
from paczero.build import build
from paczero.zo import ZOEngine


def _prepared(tiny_config, *overrides):
    trainer = build(tiny_config(*overrides))
    return trainer


@pytest.mark.parametrize("overrides", [
    (),
    ("data.label_words=[' very bad',' very good']",),
    ("model.tuning=lora", "model.lora.target_modules=[q_proj,v_proj]"),
], ids=["single-token", "multi-token", "lora"])
def test_staged_losses_equal_the_plain_forward_bit_for_bit(tiny_config, overrides):
    trainer = _prepared(tiny_config, *overrides)
    objective, enc, engine = trainer.objective, trainer.encoded["dev"], trainer.engine
    plain = objective.losses(model_forward(trainer.loaded.model), enc)
    staged = engine.perturbed_losses(objective, enc, direction=5, scale=0.0)
    assert torch.equal(plain, staged)
    assert engine.evaluate(objective, enc) == objective.evaluate(model_forward(trainer.loaded.model), enc)


@pytest.mark.parametrize("overrides", [(), ("data.label_words=[' very bad',' very good']",)],
                         ids=["single-token", "multi-token"])
def test_staged_losses_match_the_unbatched_float64_oracle(tiny_config, overrides):
    """Tolerance: float32 batched vs float64 record by record, rtol 1e-4, atol 1e-5 (losses are O(1))."""
    trainer = _prepared(tiny_config, *overrides)
    objective, enc = trainer.objective, trainer.encoded["dev"]
    staged = trainer.engine.perturbed_losses(objective, enc, direction=5, scale=0.0).double().numpy()
    oracle = classification_losses(copy.deepcopy(trainer.loaded.model).double(), objective, enc, range(len(enc)))
    np.testing.assert_allclose(staged, oracle, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("tuning", ["full", "lora"])
def test_perturbed_losses_equal_a_model_set_to_theta_plus_eps_z(tiny_config, tuning):
    """An independent oracle: no substitution at all, the weights themselves set to θ ± εz.

    Exact equality also shows that every read of a trainable tensor (the tied embedding in the prefix
    and in the LM head included) sees the perturbed value.
    """
    trainer = _prepared(tiny_config, f"model.tuning={tuning}", "model.lora.target_modules=[q_proj,v_proj]")
    loaded, objective, enc, engine = trainer.loaded, trainer.objective, trainer.encoded["pool"], trainer.engine
    if tuning == "lora":  # LoRA B starts at zero; give the adapters weight so the perturbation matters
        with torch.no_grad():
            for _, p in loaded.trainable:
                p.normal_(0, 0.3, generator=torch.Generator().manual_seed(1))
    for scale in (0.05, -0.05):
        ours = engine.perturbed_losses(objective, enc, direction=77, scale=scale)
        oracle = objective.losses(model_forward(
            perturbed_copy(loaded.model, loaded.trainable, engine, 77, scale)), enc)
        unperturbed = objective.losses(model_forward(loaded.model), enc)
        assert not torch.equal(oracle, unperturbed)
        assert torch.equal(ours, oracle)


def test_discovers_which_stage_reads_each_tensor(tiny_config):
    trainer = _prepared(tiny_config)
    staged = trainer.engine.staged
    names = [n for n, _ in trainer.loaded.trainable]
    staged.ensure_discovered(trainer.objective._batch([[4, 5, 6]]))
    assert [names[i] for i in staged.prefix_params] == ["model.embed_tokens.weight"]  # tied with the LM head
    assert [names[i] for i in staged.suffix_params] == ["model.embed_tokens.weight", "model.norm.weight"]
    assert all(names[i].startswith(f"model.layers.{k}.") for k, layer in enumerate(staged.layer_params)
               for i, _ in layer)


def test_opt_architecture_estimates_match_an_explicitly_perturbed_model(tiny_config):
    """OPT (learned positions, final layer norm, biases): the generic stages must find all of it."""
    from transformers import OPTConfig, OPTForCausalLM

    trainer = _prepared(tiny_config)
    tok = trainer.loaded.tokenizer
    config = OPTConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=2, ffn_dim=64, num_attention_heads=4,
                       max_position_embeddings=128, word_embed_proj_dim=32, pad_token_id=tok.pad_token_id,
                       bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    torch.manual_seed(0)
    model = OPTForCausalLM(config).eval()
    contiguous_head_input(model)
    trainable = list(model.named_parameters())
    engine = ZOEngine(model, trainable, eps=0.05)
    objective, enc = trainer.objective, trainer.encoded["pool"]
    g, _ = engine.estimates(objective, enc, direction=9)
    plus = objective.losses(model_forward(perturbed_copy(model, trainable, engine, 9, 0.05)), enc)
    minus = objective.losses(model_forward(perturbed_copy(model, trainable, engine, 9, -0.05)), enc)
    np.testing.assert_array_equal(g, ((plus.double() - minus.double()) / 0.1).numpy())
    names = [n for n, _ in trainable]
    assert {names[i] for i in engine.staged.prefix_params} == {"model.decoder.embed_tokens.weight",
                                                               "model.decoder.embed_positions.weight"}


@pytest.mark.parametrize("architecture", ["llama", "opt"])
def test_stage_by_stage_generation_equals_greedy_generate(tiny_squad_config, architecture):
    """Unperturbed, from scratch and from a prompt state after layer 1: the tokens of plain greedy decoding."""
    from transformers import OPTConfig, OPTForCausalLM

    from paczero.generation import GenerationRequest, greedy_generate
    from paczero.staged import StagedModel

    trainer = _prepared(tiny_squad_config, "model.tiny.num_layers=3", "run.seed=3")  # answers of several lengths
    objective, enc, model = trainer.objective, trainer.encoded["dev"], trainer.loaded.model
    if architecture == "opt":
        tok = trainer.loaded.tokenizer
        torch.manual_seed(4)  # a model whose greedy answers stop at different lengths
        model = OPTForCausalLM(OPTConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=3, ffn_dim=64,
                                         num_attention_heads=4, max_position_embeddings=128, word_embed_proj_dim=32,
                                         pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id,
                                         eos_token_id=tok.eos_token_id, init_std=0.2)).eval()
        contiguous_head_input(model)
    staged = StagedModel(model, list(model.named_parameters()))
    request = GenerationRequest(prompts=tuple(tuple(enc.prompts[i]) for i in enc.order[:6]),
                                stop_ids=tuple(objective.stop_ids), pad_id=objective.pad_id, max_new_tokens=8,
                                device=torch.device("cpu"))
    with torch.inference_mode():
        plain = greedy_generate(model_forward(model), request.prompts, stop_ids=request.stop_ids,
                                pad_id=request.pad_id, max_new_tokens=8, device=request.device)
        assert len({len(t) for t in plain}) > 1, "every sequence ran alike: the stop is not exercised"
        staged.ensure_discovered({"input_ids": torch.tensor([[4, 5]])})
        fresh = staged.generate(request, outer={}, layer_params=lambda layer: {})
        state = staged.prompt_state(request, 1)
        resumed = staged.generate(request, outer={}, layer_params=lambda layer: {}, prompt=state)
        again = staged.generate(request, outer={}, layer_params=lambda layer: {}, prompt=state)
    assert fresh == resumed == again == plain  # the prompt state is not consumed by a generation
