"""DP-SGD (``privacy.mechanism=dpsgd``): its accounting against dp-accounting and Opacus, its clipping and noise
against float64 loops on a tiny model, and a likelihood-ratio attacker on one step with a canary record."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
import torch
from scipy import stats

from paczero.build import build
from paczero.firstorder import DPSGD
from paczero.mechanisms.dp import GRID_BITS, poisson_sample
from paczero.mechanisms.dpsgd import grid_sum, noisy_gradient, sensitivity
from paczero.mechanisms.registry import dp_noise_multiplier
from paczero.privacy.accounting import dp_epsilon, noise_multiplier
from paczero.privacy.discrete_gaussian import discrete_gaussian
from paczero.secret import SecretState
from oracles import HeadNormOracle

SCALE = 2**GRID_BITS
HEAD = ["model.tuning=set", "model.trainable.head_rows=true", "model.trainable.final_norm=true", "zo.cache_prefix=true",
        "privacy.mechanism=dpsgd", "privacy.epsilon=2", "privacy.sample_rate=0.5", "train.eval_before=false",
        "data.n_pool=24"]


def _secret(salt: int = 0) -> SecretState:
    return SecretState(key=salt.to_bytes(32, "big"), j_star=0)


# ---------------------------------------------------------------- accounting
def _pld_epsilon(sigma: float, q: float, steps: int, delta: float, relation: str) -> float:
    """ε of ``steps`` Poisson-subsampled Gaussian steps by dp-accounting's PLD, written out independently."""
    import dp_accounting
    from dp_accounting.pld.pld_privacy_accountant import PLDAccountant

    rel = dp_accounting.NeighboringRelation
    accountant = PLDAccountant(rel.REPLACE_ONE if relation == "replace_one" else rel.ADD_OR_REMOVE_ONE)
    event = dp_accounting.SelfComposedDpEvent(
        dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(sigma)), steps)
    return accountant.compose(event).get_epsilon(delta)


@pytest.mark.slow
@pytest.mark.parametrize("epsilon, q, steps", [(1.0, 0.064, 300), (6.0, 0.25, 50)])
def test_the_noise_multiplier_of_a_dpsgd_run_is_dp_accountings_for_its_target(tiny_config, epsilon, q, steps):
    cfg = tiny_config(*HEAD, f"privacy.epsilon={epsilon}", f"privacy.sample_rate={q}", f"train.steps={steps}")
    c = build(cfg, secret=_secret())
    assert isinstance(c.optimizer, DPSGD)
    sigma = c.optimizer.noise_multiplier
    assert sigma == dp_noise_multiplier(cfg)
    spent = _pld_epsilon(sigma, q, steps, 1e-5, "replace_one")
    assert spent <= epsilon  # on the safe side of the target
    # and the smallest such σ to 1e-3: a little less noise already overspends
    assert _pld_epsilon(sigma * (1 - 1e-3), q, steps, 1e-5, "replace_one") > epsilon


def test_add_remove_accounting_agrees_with_opacus():
    """Under add/remove-one (Opacus' relation) our accountant and Opacus' PRV accountant compute ε of the same
    Poisson-subsampled Gaussian: both are numerical upper bounds of the same quantity, PRV's within its eps_error
    (0.01) and ours by pessimistic PLD discretisation (1e-4 of a nat per step at the default interval), so they
    agree to 2 %; Opacus' RDP accountant is a looser upper bound (the RDP → (ε, δ) conversion), never below."""
    from opacus.accountants import PRVAccountant, RDPAccountant

    sigma, q, steps, delta = 1.1, 0.064, 300, 1e-5
    ours = dp_epsilon(noise_multiplier=sigma, sample_rate=q, steps=steps, delta=delta, relation="add_remove")
    prv, rdp = PRVAccountant(), RDPAccountant()
    for accountant in (prv, rdp):
        accountant.history = [(sigma, q, steps)]
    assert ours == pytest.approx(prv.get_epsilon(delta=delta, eps_error=0.01), rel=0.02)
    assert rdp.get_epsilon(delta=delta) >= ours
    # replace-one (a public N) costs more than add/remove at the same σ: a replacement is a removal and an addition
    assert dp_epsilon(noise_multiplier=sigma, sample_rate=q, steps=steps, delta=delta) > ours


# ---------------------------------------------------------------- clipping and noise
def _float64_gradients(c, indices: np.ndarray) -> np.ndarray:
    """Each record's gradient of its cross-entropy over the label words' full-vocabulary log-probabilities, through
    the whole model in float64, one record at a time (the final norm's weight, then the head rows, flattened)."""
    oracle = HeadNormOracle(c)
    pool = c.encoded["pool"]
    out = []
    for i in indices:
        grads = torch.autograd.grad(oracle.loss(pool.prompts[i], pool.labels[i]), oracle.params)
        out.append(torch.cat([g.reshape(-1) for g in grads]).numpy())
    return np.array(out)


def test_per_record_gradients_follow_a_float64_loop(tiny_config):
    c = build(tiny_config(*HEAD), secret=_secret())
    assert [name for name, _ in c.loaded.trainable] == ["model.norm.weight", "lm_head.rows"]
    pool = c.encoded["pool"]
    grads, losses = c.engine.per_record_gradients(c.objective, pool)
    oracle = _float64_gradients(c, np.arange(len(pool)))
    assert grads.dtype == torch.float64 and grads.shape == oracle.shape
    assert np.abs(oracle).max() > 1e-3  # the gradients are not all zero
    np.testing.assert_allclose(grads.numpy(), oracle, rtol=1e-4, atol=1e-5 * np.abs(oracle).max())
    np.testing.assert_allclose(losses.numpy(), c.engine.differentiable_losses(c.objective, pool).detach().double(),
                               rtol=1e-5)


def test_one_dpsgd_step_is_sgd_on_the_clipped_mean_of_its_poisson_batch(tiny_config):
    """σ ≈ 1e-12 (noise of about one grid unit): the gradient the optimiser is given is
    Σ_{i in the batch} clip_C(g_i)/(qN), g_i from the float64 loop (records on both sides of C); the SGD step then
    moves the weights by lr·ĝ."""
    clip, q, lr = 2.5, 0.5, 0.01
    c = build(tiny_config(*HEAD, f"privacy.grad_clip={clip}", f"privacy.sample_rate={q}"), secret=_secret(4))
    c.optimizer.noise_multiplier = 1e-12
    pool = c.encoded["pool"]
    batch = poisson_sample(_secret(4), step=0, n=len(pool), rate=q)
    g = _float64_gradients(c, batch)
    norms = np.linalg.norm(g, axis=1)
    assert 0 < len(batch) < len(pool) and (norms > clip).any() and (norms < clip).any()  # both sides of the clip
    clipped = np.array([gi * min(1.0, clip / ni) for gi, ni in zip(g, norms)])
    expected = clipped.sum(axis=0) / (q * len(pool))
    given = []
    apply = c.optimizer.apply

    def seen(**kw):
        given.append(torch.cat([p.grad.reshape(-1) for _, p in c.loaded.trainable]).double().numpy())
        apply(**kw)

    c.optimizer.apply = seen
    before = torch.cat([p.detach().reshape(-1) for _, p in c.loaded.trainable]).double().numpy()
    c.optimizer.train_step(c.engine, c.objective, pool, step=0, lr=lr)
    after = torch.cat([p.detach().reshape(-1) for _, p in c.loaded.trainable]).double().numpy()
    np.testing.assert_allclose(given[0], expected, rtol=1e-4, atol=1e-6 * np.abs(expected).max())
    ulp = np.finfo(np.float32).eps * np.abs(before).max()  # the float32 weights' rounding
    np.testing.assert_allclose(before - after, lr * expected, rtol=1e-3, atol=2 * ulp)
    assert np.abs(lr * expected).max() > 100 * ulp  # the step is far above the rounding


def test_the_grid_sum_is_the_clipped_sum_and_bounded_by_the_sensitivity():
    rng = np.random.default_rng(0)
    g = rng.normal(scale=2.0, size=(40, 7))
    clip = 1.5
    loop = np.zeros(7)
    for row in g:
        loop += row * min(1.0, clip / math.sqrt(sum(x * x for x in row)))
    totals = grid_sum(g, clip=clip)
    assert all(isinstance(t, int) for t in totals)
    np.testing.assert_allclose(np.array(totals, dtype=np.float64) * clip / SCALE, loop, rtol=0, atol=40 * clip / SCALE)
    for row in g:  # one record's rounded contribution never exceeds Δ in L2 (grid units)
        k = np.array(grid_sum(row[None, :], clip=clip), dtype=np.float64)
        assert np.linalg.norm(k) <= sensitivity(7)


def test_a_non_finite_gradient_contributes_nothing():
    g = np.array([[1.0, 2.0], [np.nan, 0.5], [np.inf, -np.inf], [0.25, -0.5]])
    assert grid_sum(g, clip=10.0) == grid_sum(g[[0, 3]], clip=10.0)


@pytest.mark.slow
def test_a_dpsgd_run_resumes_bit_for_bit(tiny_config, tmp_path, monkeypatch):
    """Killed after its third checkpoint and resumed, a run's files equal an uninterrupted run's with the same
    secret: the batches and the noise are keyed by the step, and SGD carries no state."""
    from paczero.cli import main
    from paczero.trainer import Trainer
    from test_resume import _crash_at_third_checkpoint, _hashes

    for where in ("a", "b"):
        (tmp_path / where).mkdir()
    cfg = tiny_config(*HEAD, "train.steps=12", "train.eval_every=4", "train.checkpoint_every=3", "train.lr=0.05",
                      "run.name=r", "run.output_dir=runs")
    monkeypatch.chdir(tmp_path / "a")
    crashed = _crash_at_third_checkpoint(cfg, monkeypatch)
    secret = crashed.run_dir.load_secret()
    assert main(["train", "--resume", str(crashed.run_dir.path)]) == 0
    monkeypatch.chdir(tmp_path / "b")
    Trainer(cfg, secret=secret).run()
    assert _hashes(tmp_path / "a" / "runs" / "r") == _hashes(tmp_path / "b" / "runs" / "r")


def test_the_noise_is_a_discrete_gaussian_of_std_sigma_delta_from_the_key_stream():
    """No record sampled: the step's value is the noise alone; per coordinate its integer is N_Z(0, (σΔ)²), drawn in
    turn from the keyed stream ("dp-noise", step)."""
    d, sigma, clip, q, n = 3000, 0.7, 2.0, 0.1, 50
    values = noisy_gradient(np.zeros((0, d)), secret=_secret(1), step=3, clip=clip, noise_multiplier=sigma,
                            sample_rate=q, n=n)
    integers = values * q * n / clip * SCALE / (sigma * sensitivity(d))
    # the sample sd of 3000 normal draws is within 6 % of σ with probability 1 − 1e-6
    assert abs(integers.std() - 1.0) < 0.06 and abs(integers.mean()) < 5 / math.sqrt(d)
    assert stats.kstest(integers, "norm").pvalue > 1e-4
    stream = _secret(1).stream("dp-noise", 3)
    variance = Fraction(sigma) ** 2 * sensitivity(d) ** 2
    first = [discrete_gaussian(variance, stream) for _ in range(5)]
    assert list(values[:5]) == [clip * (x / SCALE) / (q * n) for x in first]
    again = noisy_gradient(np.zeros((0, d)), secret=_secret(1), step=3, clip=clip, noise_multiplier=sigma,
                           sample_rate=q, n=n)
    other = noisy_gradient(np.zeros((0, d)), secret=_secret(2), step=3, clip=clip, noise_multiplier=sigma,
                           sample_rate=q, n=n)
    assert np.array_equal(values, again) and not np.array_equal(values, other)


# ---------------------------------------------------------------- an attacker on one step
D, N_REC, Q1, CLIP, EPS, DELTA = 3, 6, 1.0, 1.0, 1.0, 1e-5
OTHERS = np.array([[0.3, -0.2, 0.1], [0.0, 0.5, -0.5], [0.9, 0.1, 0.0], [-0.4, -0.4, 0.4], [0.2, 0.2, 0.2]])
CANARY = np.array([CLIP, 0.0, 0.0])  # a canary record whose gradient is C·e_1, replaced by −C·e_1: replace-one


def _clopper_pearson(k: int, n: int, level: float = 0.99) -> tuple[float, float]:
    alpha = 1 - level
    lo = stats.beta.ppf(alpha / 2, k, n - k + 1) if k > 0 else 0.0
    hi = stats.beta.ppf(1 - alpha / 2, k + 1, n - k) if k < n else 1.0
    return lo, hi


def _attack(sigma: float, trials: int) -> list[tuple[float, float]]:
    """The Neyman–Pearson test of "the canary is C·e_1" against "−C·e_1" from one step's noisy gradient ĝ (what the
    optimiser sees; the published weights are a function of it): its first coordinate's integer, whose Gaussian
    log-likelihood ratio is monotone in it. Upper Clopper–Pearson limits of (FPR, FNR) at 25 thresholds."""
    scores = {0: [], 1: []}
    for h in (0, 1):
        grads = np.vstack([CANARY if h == 0 else -CANARY, OTHERS])
        for trial in range(trials):
            g = noisy_gradient(grads, secret=_secret(2 * trial + h), step=0, clip=CLIP, noise_multiplier=sigma,
                               sample_rate=Q1, n=N_REC)
            scores[h].append(round(g[0] * Q1 * N_REC / CLIP * SCALE))
    out = []
    for tau in np.quantile(scores[0] + scores[1], np.linspace(0.02, 0.98, 25)):
        fp = sum(x > tau for x in scores[1])
        fn = sum(x <= tau for x in scores[0])
        out.append((_clopper_pearson(fp, trials)[1], _clopper_pearson(fn, trials)[1]))
    return out


def _inside(fpr: float, fnr: float) -> bool:
    """(ε, δ)-DP: every test has FPR + e^ε·FNR ≥ 1 − δ and FNR + e^ε·FPR ≥ 1 − δ."""
    return fpr + math.exp(EPS) * fnr >= 1 - DELTA and fnr + math.exp(EPS) * fpr >= 1 - DELTA


@pytest.mark.slow
def test_a_likelihood_ratio_attacker_on_one_step_stays_in_the_dp_region():
    sigma = noise_multiplier(epsilon=EPS, delta=DELTA, sample_rate=Q1, steps=1)
    assert all(_inside(fp, fn) for fp, fn in _attack(sigma, trials=2000))


def test_the_attacker_breaks_twenty_times_less_noise():
    sigma = noise_multiplier(epsilon=EPS, delta=DELTA, sample_rate=Q1, steps=1) / 20
    assert not all(_inside(fp, fn) for fp, fn in _attack(sigma, trials=300))
