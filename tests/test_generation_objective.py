"""The generation objective: −F1 estimates and the tie rule, perturbed generation, LM loss, truncation."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from paczero.errors import PaczeroError
from paczero.mechanisms.zpl import ZPL
from paczero.metrics import f1_score
from paczero.objectives import GenerationObjective, model_forward
from paczero.subsets import membership_matrix, subset_means, subset_signs
from oracles import perturbed_copy
from paczero.build import build
from paczero.zo import ZOEngine


@pytest.fixture
def prepared(tiny_squad_config):
    trainer = build(tiny_squad_config())
    return trainer


def test_minus_f1_estimates_are_exactly_zero_where_both_perturbations_tie(prepared):
    loaded, objective, enc = prepared.loaded, prepared.objective, prepared.encoded["pool"]
    eps = 0.05  # large enough that some greedy answers change between θ+εz and θ−εz
    engine = ZOEngine(loaded.model, loaded.trainable, eps=eps)
    plus = engine.perturbed_losses(objective, enc, direction=5, scale=eps).numpy()
    minus = engine.perturbed_losses(objective, enc, direction=5, scale=-eps).numpy()
    g, _ = engine.estimates(objective, enc, direction=5)
    tie = plus == minus
    assert tie.any() and (~tie).any(), "need both tied and untied records for the test to mean something"
    assert np.all(g[tie] == 0.0)
    np.testing.assert_allclose(g[~tie], (plus[~tie] - minus[~tie]) / (2 * eps), rtol=1e-12)
    assert np.all(g[~tie] != 0.0)
    # A subset made only of tied records has mean exactly 0, which maps to +1 (§3.6).
    only_ties = np.zeros((len(g), 2), dtype=bool)
    only_ties[np.flatnonzero(tie), 0] = True
    only_ties[np.flatnonzero(~tie), 1] = True
    means = subset_means(only_ties, g)
    assert means[0] == 0.0 and subset_signs(means)[0] == 1


def test_unchanged_answers_give_a_unanimous_plus_one(prepared):
    # With a small ε (1e-4) the tiny model's greedy answers do not move: every estimate is exactly 0, every
    # subset mean is 0, and ZPL releases the "unanimous" +1 (the spurious steps of paczero-notes §10.2).
    loaded, objective, enc = prepared.loaded, prepared.objective, prepared.encoded["pool"]
    g, _ = ZOEngine(loaded.model, loaded.trainable, eps=1e-4).estimates(objective, enc, direction=5)
    assert np.all(g == 0.0)
    mechanism = ZPL(membership_matrix(n=len(g), m=8, seed=0), seed=0)
    release = mechanism.release_step(g[:, None], step=0)[0]
    assert (release.value, release.kind) == (1.0, "unanimous")


def test_perturbed_generation_equals_a_perturbed_copy(prepared):
    loaded, objective, enc = prepared.loaded, prepared.objective, prepared.encoded["dev"]
    engine = ZOEngine(loaded.model, loaded.trainable, eps=0.05)
    ours = engine.perturbed_losses(objective, enc, direction=9, scale=0.05)
    answers = objective.generate(model_forward(perturbed_copy(loaded.model, loaded.trainable, engine, 9, 0.05)), enc)
    assert ours.tolist() == [-f1_score(a, gold) for a, gold in zip(answers, enc.answers)]
    assert answers != objective.generate(model_forward(loaded.model), enc), "the perturbation changed nothing"


def test_lm_losses_match_a_one_by_one_float64_oracle(tiny_squad_config):
    trainer = build(tiny_squad_config("data.objective=lm"))
    objective, enc = trainer.objective, trainer.encoded["dev"]
    model = copy.deepcopy(trainer.loaded.model).double()
    oracle = []
    for prompt, target in zip(enc.prompts, enc.targets):
        with torch.no_grad():
            logp = torch.log_softmax(model(input_ids=torch.tensor([prompt + target])).logits[0], dim=-1)
        oracle.append(-np.mean([logp[len(prompt) - 1 + j, t].item() for j, t in enumerate(target)]))
    ours = objective.lm_losses(model_forward(trainer.loaded.model), enc).double().numpy()
    np.testing.assert_allclose(ours, oracle, rtol=1e-4)
    assert len({len(t) for t in enc.targets}) > 1  # targets of several lengths share a batch
    metrics = objective.evaluate(model_forward(trainer.loaded.model), enc)
    assert set(metrics) == {"loss", "f1", "em"} and metrics["loss"] == pytest.approx(np.mean(oracle), rel=1e-4)


def test_f1_objective_evaluates_loss_as_minus_f1(prepared):
    metrics = prepared.evaluate("dev")
    assert set(metrics) == {"loss", "f1", "em"} and metrics["loss"] == -metrics["f1"]
    assert 0.0 <= metrics["em"] <= metrics["f1"] <= 1.0


def test_answers_are_cut_at_the_first_newline(prepared):
    tok, objective = prepared.loaded.tokenizer, prepared.objective
    assert objective._text(tok("river city\nking").input_ids + [tok.eos_token_id]) == "river city"
    assert tok.convert_tokens_to_ids("\n") in objective.stop_ids and tok.eos_token_id in objective.stop_ids


def test_prompts_beyond_the_context_are_cut_on_the_left_or_refused(prepared):
    tok, task, records = prepared.loaded.tokenizer, prepared.task, prepared.split.pool
    kw = dict(objective="f1", max_length=256, max_new_tokens=8, micro_batch=4, device=torch.device("cpu"))
    objective = GenerationObjective(tok, task, context_length=20, **kw)  # room for 20 − 8 = 12 prompt tokens
    enc = objective.encode(records)
    full = [tok(r.prompt).input_ids for r in records]
    assert enc.truncated == sum(len(f) > 12 for f in full) > 0
    assert all(p == f[-len(p):] and len(p) == min(len(f), 12) for p, f in zip(enc.prompts, full))
    with pytest.raises(PaczeroError, match="record 0's prompt is longer than the 12 tokens that fit") as info:
        GenerationObjective(tok, task, context_length=20, overlong="refuse", **kw).encode(records, where="pool")
    assert info.value.private == f"it has {len(full[0])} prompt tokens"


def test_out_of_memory_halves_the_generation_batch(prepared):
    objective, enc, model = prepared.objective, prepared.encoded["pool"], prepared.loaded.model
    expected = objective.generate(model_forward(model), enc)

    def small_memory(*, return_output=False, **kw):
        if kw["input_ids"].shape[0] > 5:
            raise torch.OutOfMemoryError("simulated")
        out = model(**kw)
        return out if return_output else out.logits

    assert objective.generate(small_memory, enc) == expected
    assert objective.micro_batch == 4
