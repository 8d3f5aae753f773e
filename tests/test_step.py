"""One training step: the learning-rate schedule against its formula, and the update
θ ← θ − η_t((1/K) Σ_k value_k z_k + λθ) against a float64 computation written here, with z drawn from the
documented seeds (one standard-normal torch stream per tensor and direction)."""

from __future__ import annotations

import signal

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from paczero.build import build
from paczero.releases import Abstain
from paczero.rng import direction_seed, tensor_seed
from paczero.secret import SecretState
from paczero.step import StepResult, apply_update, learning_rate, release, zo_step


@settings(max_examples=200, deadline=None)
@given(steps=st.integers(1, 10_000), lr=st.floats(1e-8, 1.0), lr_end=st.floats(0.0, 1e-3), data=st.data())
def test_the_linear_schedule_decays_from_lr_to_lr_end(steps, lr, lr_end, data):
    t = data.draw(st.integers(0, steps))
    got = learning_rate(step=t, steps=steps, lr=lr, lr_end=lr_end, schedule="linear")
    assert got == pytest.approx(lr * (steps - t) / steps + lr_end * t / steps, rel=1e-12, abs=1e-300)
    assert learning_rate(step=0, steps=steps, lr=lr, lr_end=lr_end, schedule="linear") == pytest.approx(lr)
    assert learning_rate(step=steps, steps=steps, lr=lr, lr_end=lr_end, schedule="linear") == pytest.approx(lr_end)
    if t < steps:
        later = learning_rate(step=t + 1, steps=steps, lr=lr, lr_end=lr_end, schedule="linear")
        assert (later <= got) == (lr_end <= lr)


@given(steps=st.integers(1, 1000), lr=st.floats(1e-8, 1.0), data=st.data())
def test_the_constant_schedule_is_constant(steps, lr, data):
    t = data.draw(st.integers(0, steps))
    assert learning_rate(step=t, steps=steps, lr=lr, lr_end=0.0, schedule="constant") == lr


def _z(direction: int, index: int, shape) -> torch.Tensor:
    """The direction's block for tensor ``index``: a standard normal stream seeded by its tensor seed (float64)."""
    gen = torch.Generator().manual_seed(tensor_seed(direction, index))
    return torch.empty(shape).normal_(generator=gen).double()


def _decays(name: str) -> bool:
    return not any(tag in name.lower() for tag in ("bias", "norm"))


def _components(tiny_config, *overrides):
    cfg = tiny_config("data.n_pool=16", "zo.directions=2", "train.lr=0.05", "train.lr_end=0.001", "train.weight_decay=0.2", *overrides)
    return build(cfg, secret=SecretState.fresh(cfg.privacy.n_subsets))


def _weights(c) -> list[torch.Tensor]:
    return [p.detach().clone() for _, p in c.loaded.trainable]


def test_a_step_updates_by_the_released_values_and_weight_decay(tiny_config):
    c = _components(tiny_config)
    assert max(p.numel() for _, p in c.loaded.trainable) < 1 << 18  # one piece per block
    theta0 = _weights(c)
    t, T, K = 4, c.cfg.train.steps, c.cfg.zo.directions
    lr = 0.05 * (T - t) / T + 0.001 * t / T
    result = zo_step(c.step_input(), step=t, lr=lr)
    assert result.step == t and result.lr == pytest.approx(lr, rel=1e-12)
    assert result.seeds == tuple(direction_seed(c.cfg.run.seed, t, k) for k in range(K))
    assert len(result.releases) == K and result.losses.shape == (c.cfg.data.n_pool, K)
    values = result.values
    assert set(values) <= {-1.0, 1.0}
    for i, ((name, p), p0) in enumerate(zip(c.loaded.trainable, theta0)):
        theta = p0.double()
        step = sum(v * _z(s, i, p.shape) for s, v in zip(result.seeds, values)) / K
        expected = theta - result.lr * (step + (0.2 * theta if _decays(name) else 0.0))
        assert torch.allclose(p.detach().double(), expected, rtol=1e-6, atol=1e-7), name
        assert not torch.equal(p.detach(), p0), name


def test_the_release_leaves_the_weights_and_a_zero_update_changes_no_bit(tiny_config):
    c = _components(tiny_config, "train.weight_decay=0")
    theta0 = _weights(c)
    inp = c.step_input()
    result = release(inp, step=0, lr=0.05)
    assert all(torch.equal(p, p0) for (_, p), p0 in zip(c.loaded.trainable, theta0))
    zero = StepResult(step=0, lr=0.05, seeds=result.seeds, releases=tuple(Abstain(value=0.0, signs="++") for _ in
                                                                         result.seeds), losses=None, nonfinite=0)
    assert apply_update(inp, zero, stop_signal=signal.SIGTERM) == signal.SIGTERM
    assert all(torch.equal(p, p0) for (_, p), p0 in zip(c.loaded.trainable, theta0))
    assert apply_update(inp, result) is None
    assert all(not torch.equal(p, p0) for (_, p), p0 in zip(c.loaded.trainable, theta0))
