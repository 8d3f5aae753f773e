"""The ZO engine against a slow float64 oracle, and exactness of restore and update."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from oracles import classification_losses, perturbed_copy
from paczero.build import build
from paczero.objectives import model_forward
from paczero.trainer import Trainer
from paczero.zo import ZOEngine


@pytest.fixture
def prepared(tiny_config):
    trainer = build(tiny_config())
    return trainer


@pytest.mark.parametrize("tuning", ["full", "lora"])
def test_estimates_match_float64_loop(tiny_config, tuning):
    trainer = build(tiny_config(f"model.tuning={tuning}", "model.lora.target_modules=[q_proj,v_proj]"))
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
    plus = classification_losses(perturbed_copy(loaded.model, loaded.trainable, engine, direction, eps, exact=True), objective, enc, idx)
    minus = classification_losses(perturbed_copy(loaded.model, loaded.trainable, engine, direction, -eps, exact=True), objective, enc, idx)
    oracle = (plus - minus) / (2 * eps)
    assert np.abs(oracle).max() > 1e-2, "the oracle estimates are trivially zero"
    np.testing.assert_allclose(ours[:16], oracle, rtol=1e-3, atol=2e-3)


def test_multi_token_candidates_match_oracle(tiny_config):
    trainer = build(tiny_config("data.label_words=[' very bad',' very good']"))
    objective, enc = trainer.objective, trainer.encoded["dev"]
    assert not objective.single_token
    ours = objective.losses(lambda **kw: trainer.loaded.model(**kw).logits, enc).double().numpy()
    oracle = classification_losses(copy.deepcopy(trainer.loaded.model).double(), objective, enc, range(len(enc)))
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


def _peak_allocated_bytes(fn) -> int:
    """Peak bytes of tensor storage created while ``fn`` runs and still referenced (a dispatch-mode probe).

    Every new storage an operator returns (not one of its inputs': in-place operations and views allocate
    nothing) is counted until the tensor object that brought it dies; views that outlive their base are not
    followed, which only undercounts short-lived activations, never a buffer.
    """
    import weakref

    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_leaves

    class Probe(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.live: dict[int, int] = {}
            self.now = self.peak = 0

        def _free(self, key: int) -> None:
            self.now -= self.live.pop(key, 0)

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            inputs = {a.untyped_storage().data_ptr() for a in tree_leaves((args, kwargs))
                      if isinstance(a, torch.Tensor)}
            for t in tree_leaves(out):
                if isinstance(t, torch.Tensor):
                    key = t.untyped_storage().data_ptr()
                    if key and key not in self.live and key not in inputs:
                        self.live[key] = t.untyped_storage().nbytes()
                        self.now += self.live[key]
                        self.peak = max(self.peak, self.now)
                        weakref.finalize(t, self._free, key)
            return out

    with Probe() as probe:
        fn()
    return probe.peak


class _FullCopyEngine(ZOEngine):
    """The engine before staging: each evaluation through ``functional_call`` with a perturbed copy."""

    def _staged(self, objective, enc):
        return False


@pytest.mark.parametrize("task, directions", [("sst2", 16), ("squad", 2)])
@pytest.mark.parametrize("engine_class, allowed", [(ZOEngine, True), (_FullCopyEngine, False)],
                         ids=["staged", "full-copy"])
def test_no_parameter_sized_allocation_during_a_step(request, engine_class, allowed, task, directions):
    """A step of K two-point estimates, then one update, on a model of 8 thin layers, on 4 records: classification
    (K = 16) and greedy generation (K = 2, up to 8 new tokens, each decoding call rebuilding each layer's tensors).

    The staged engine holds one layer's perturbed tensors at a time (1/8 of the parameters, twice); the
    update one direction block of one tensor. What the step allocates beyond a plain evaluation of the same
    records (their activations, generation's KV cache) must stay below half the parameters. The probe must catch
    the full-copy engine.
    """
    config = request.getfixturevalue("tiny_config" if task == "sst2" else "tiny_squad_config")
    trainer = build(config("model.tiny.num_layers=8", "model.tiny.hidden_size=64", "model.tiny.intermediate_size=256",
                           "zo.eps=0.05"))
    loaded, objective = trainer.loaded, trainer.objective
    enc = trainer.encoded["pool"].subset(np.arange(4))
    engine = engine_class(loaded.model, loaded.trainable, eps=0.05)
    size = sum(p.numel() * p.element_size() for _, p in loaded.trainable)
    seeds = list(range(100, 100 + directions))

    def step():
        values = [1.0 if engine.estimates(objective, enc, direction=s)[0].mean() >= 0 else -1.0 for s in seeds]
        engine.update([(s, v / directions) for s, v in zip(seeds, values)], lr=1e-3)

    plain = _peak_allocated_bytes(lambda: objective.losses(model_forward(loaded.model), enc))
    peak = _peak_allocated_bytes(step)
    assert (peak - plain < size / 2) == allowed, (f"peak {peak} bytes ({plain} in plain inference) against {size} "
                                                  "bytes of trainable parameters")


@pytest.mark.parametrize("loss, tuning", [("f1", "full"), ("lm", "full"), ("f1", "lora")])
def test_generation_estimates_equal_the_copy_based_path(tiny_squad_config, loss, tuning):
    """−F1 of greedy answers and the teacher-forced LM loss, staged layer by layer vs a perturbed copy: bit for bit."""
    trainer = build(tiny_squad_config(f"data.objective={loss}", f"model.tuning={tuning}", "model.lora.r=4",
                                        "model.lora.target_modules=[q_proj,v_proj]"))
    loaded, objective, enc = trainer.loaded, trainer.objective, trainer.encoded["pool"]
    staged, reference = (cls(loaded.model, loaded.trainable, eps=0.05) for cls in (ZOEngine, _FullCopyEngine))
    g, losses = staged.estimates(objective, enc, direction=5)
    g_ref, losses_ref = reference.estimates(objective, enc, direction=5)
    assert np.any(g != 0), "no answer moved: the comparison is trivial"
    assert np.array_equal(g, g_ref) and np.array_equal(losses, losses_ref)
    dev = trainer.encoded["dev"]
    assert staged.evaluate(objective, dev) == reference.evaluate(objective, dev)


def test_perturbed_greedy_tokens_equal_those_of_a_perturbed_copy(tiny_squad_config, monkeypatch):
    from paczero.generation import greedy_generate
    from paczero.staged import StagedModel

    trainer = build(tiny_squad_config())
    loaded, objective, enc = trainer.loaded, trainer.objective, trainer.encoded["pool"]
    engine = ZOEngine(loaded.model, loaded.trainable, eps=0.05)
    seen, real = [], StagedModel.generate

    def spy(self, request, **kw):
        seen.append((request, real(self, request, **kw)))
        return seen[-1][1]

    monkeypatch.setattr(StagedModel, "generate", spy)
    engine.perturbed_losses(objective, enc, direction=9, scale=-0.05)
    # its weights set to θ − εz, rounded as the engine rounds them
    copy_forward = model_forward(perturbed_copy(loaded.model, loaded.trainable, engine, 9, -0.05))
    assert len(seen) == 2  # the pool's two micro-batches
    for request, tokens in seen:
        assert tokens == greedy_generate(copy_forward, request.prompts, stop_ids=request.stop_ids,
                                         pad_id=request.pad_id, max_new_tokens=request.max_new_tokens,
                                         device=request.device)
    assert len({len(t) for _, tokens in seen for t in tokens}) > 1, "the stop is not exercised"


@pytest.mark.parametrize("loss", ["f1", "lm"])
def test_cached_prefix_generation_equals_the_uncached_path(tiny_squad_config, monkeypatch, loss):
    """Top layer trained, bottom two cached: estimates and metrics equal the uncached engine's, the prompts never
    go through the frozen layers again, and those layers run only for the new tokens."""
    from paczero.staged import StagedModel

    trainer = build(tiny_squad_config(f"data.objective={loss}", "model.tiny.num_layers=3", "model.train_top_layers=1",
                                        "zo.cache_prefix=true", "zo.eps=0.05"))  # caches the pool, dev and test sets
    loaded, objective, enc, engine = trainer.loaded, trainer.objective, trainer.encoded["pool"], trainer.engine
    calls, real = [], StagedModel.layer
    monkeypatch.setattr(StagedModel, "layer", lambda self, index, hidden, kwargs, params: calls.append(
        (index, hidden.shape[1])) or real(self, index, hidden, kwargs, params))
    g, losses = engine.estimates(objective, enc, direction=3)
    metrics = engine.evaluate(objective, trainer.encoded["dev"])
    assert engine.cache_hits == 2
    assert all(width == 1 for index, width in calls if index < 2)
    assert any(width > 1 for index, width in calls if index == 2)  # the prompts' prefill, in the top layer only
    uncached = ZOEngine(loaded.model, loaded.trainable, eps=0.05)
    g_ref, losses_ref = uncached.estimates(objective, enc, direction=3)
    assert np.any(g != 0) and np.array_equal(g, g_ref) and np.array_equal(losses, losses_ref)
    assert metrics == uncached.evaluate(objective, trainer.encoded["dev"])


def test_k1_aggregation_equals_the_single_direction_algorithm(tiny_config):
    """A K = 1 MI run equals paczero-notes §3.10 written out for one direction (no β/K, no 1/K), bit for bit,
    with the release reduced to its bit: flipped iff the secret word falls below flip·2⁶⁴."""
    from safetensors.torch import load_file

    from paczero.privacy.bsc import bsc_mi, flip_for_mi
    from paczero.privacy.channel import binary_entropy
    from paczero.privacy.posterior import agreeing_sign, bit_update, q_plus, uniform_log_posterior
    from paczero.rng import direction_seed
    from paczero.secret import SecretState
    from paczero.step import learning_rate
    from paczero.subsets import clip_estimates, membership_matrix, subset_means, subset_signs

    cfg = tiny_config("run.name=k1", "privacy.mechanism=mi", "privacy.budget=0.3", "zo.directions=1",
                      "train.steps=4", "train.eval_every=4", "train.eval_before=false")
    secret = SecretState.fresh(cfg.privacy.n_subsets)
    run = Trainer(cfg, secret=secret)
    run.run()
    records = run.run_dir.read_transcript()

    ref = build(cfg)
    T, B = cfg.train.steps, cfg.privacy.budget
    membership = membership_matrix(n=cfg.data.n_pool, m=cfg.privacy.n_subsets, seed=cfg.run.seed)
    log_post, spent, kinds = uniform_log_posterior(cfg.privacy.n_subsets), 0.0, []
    for t in range(T):
        seed = direction_seed(cfg.run.seed, t, 0)
        g, _ = ref.engine.estimates(ref.objective, ref.encoded["pool"], direction=seed)
        signs = subset_signs(subset_means(membership, clip_estimates(g, cfg.zo.clip)[0]))
        q = q_plus(log_posterior=log_post, signs=signs)
        common = agreeing_sign(log_posterior=log_post, signs=signs, threshold=cfg.privacy.free_threshold)
        if common is not None:
            value, kind = float(common), "free"
        else:
            flip = flip_for_mi(q=q, beta=min((B - spent) / (T - t), 0.999 * binary_entropy(q)))
            true = int(signs[secret.j_star])
            value = float(-true if secret.stream("mi-flip", t, 0).word64() < flip * 2**64 else true)
            log_post = bit_update(log_posterior=log_post, signs=signs, bit=int(value), flip=flip)
            spent += bsc_mi(q=q, flip=flip)
            kind = "noisy"
        kinds.append(kind)
        assert records[t]["directions"][0]["value"] == value
        lr = learning_rate(step=t, steps=T, lr=cfg.train.lr, lr_end=cfg.train.lr_end, schedule=cfg.train.lr_schedule)
        with torch.no_grad():
            for i, (_, p) in enumerate(ref.loaded.trainable):
                p.add_(ref.engine.direction_block(seed, i), alpha=-lr * value)
    assert "noisy" in kinds
    final = load_file(str(run.run_dir.checkpoint("last") / "model.safetensors"))
    for name, p in ref.loaded.trainable:
        assert torch.equal(final[name], p.detach())


def test_an_objective_that_does_not_declare_static_calls_is_refused(tiny_config):
    """The engine's path depends on ``Objective.static_calls``: an objective without it is refused, not silently
    run on whole-model copies; one that declares ``False`` gets the copy-based path's (the oracle's) losses."""
    c = build(tiny_config())
    enc = c.encoded["pool"]

    class Undeclared:
        def __init__(self, inner):
            self.inner = inner

        def __getattr__(self, name):
            if name == "static_calls":
                raise AttributeError(name)
            return getattr(self.inner, name)

    with pytest.raises(TypeError, match="static_calls"):
        c.engine.estimates(Undeclared(c.objective), enc, direction=1)

    class Dynamic(Undeclared):
        static_calls = False

    g_dynamic, losses_dynamic = c.engine.estimates(Dynamic(c.objective), enc, direction=1)
    g, losses = c.engine.estimates(c.objective, enc, direction=1)
    np.testing.assert_allclose(losses_dynamic, losses, rtol=0, atol=1e-5)
    np.testing.assert_allclose(g_dynamic, g, rtol=0, atol=1e-2)
