"""PACZero-MI: calibration, accounting, posterior, and an empirical check of the MIA bound."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from paczero.mechanisms.mi import ENTROPY_CAP, PacMI, step_budget
from paczero.mechanisms.zpl import ZPL
from paczero.privacy.bounds import mia_posterior_bound
from paczero.privacy.channel import binary_entropy, channel_mi
from paczero.secret import SecretState
from paczero.subsets import membership_matrix


def _secret(j: int, salt: int = 0) -> SecretState:
    return SecretState(key=salt.to_bytes(32, "big"), j_star=j)


def _signs(a: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Independent per-subset sign: a loop over subsets, ties to +1."""
    return np.array([1 if np.mean(g[a[:, m]]) >= 0 else -1 for m in range(a.shape[1])])


def _mixed_estimates(a: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Per-record estimates whose subset signs disagree (so the release is noisy)."""
    while True:
        g = rng.normal(size=a.shape[0])
        s = _signs(a, g)
        if 0 < (s > 0).sum() < len(s):
            return g


def test_step_budget_rules():
    assert step_budget(budget=1.0, spent=0.25, step=5, steps=10, schedule="adaptive") == pytest.approx(0.15)
    assert step_budget(budget=1.0, spent=0.25, step=9, steps=10, schedule="adaptive") == pytest.approx(0.75)
    assert step_budget(budget=1.0, spent=0.25, step=5, steps=10, schedule="uniform") == pytest.approx(0.1)
    assert step_budget(budget=1.0, spent=0.95, step=5, steps=10, schedule="uniform") == pytest.approx(0.05)
    assert step_budget(budget=1.0, spent=1.5, step=5, steps=10, schedule="adaptive") == 0.0


def test_free_release_when_all_agree_costs_nothing():
    a = membership_matrix(n=20, m=8, seed=0)
    mech = PacMI(a, _secret(3), budget=0.3, steps=10)
    mech.begin_step(0)
    r = mech.release(np.full(20, -2.0), step=0, k=0)
    assert (r.value, r.kind, mech.spent) == (-1.0, "free", 0.0)


def test_noisy_release_is_calibrated_and_charged():
    rng = np.random.default_rng(0)
    a = membership_matrix(n=30, m=8, seed=1)
    mech = PacMI(a, _secret(2), budget=0.3, steps=10)
    mech.begin_step(0)
    g = _mixed_estimates(a, rng)
    q = (_signs(a, g) > 0).mean()
    r = mech.release(g, step=0, k=0)
    assert r.kind == "noisy" and r.public["q_plus"] == pytest.approx(q)
    assert r.public["beta"] == pytest.approx(min(0.03, ENTROPY_CAP * binary_entropy(q)))
    assert r.public["mi"] == pytest.approx(channel_mi(q=q, sigma=r.public["sigma"]), rel=1e-12)
    assert r.public["beta"] * (1 - 1e-6) <= r.public["mi"] <= r.public["beta"]
    assert mech.spent == r.public["mi"]
    assert r.value == (1.0 if r.public["y"] >= 0 else -1.0)


def test_noise_is_gaussian_with_the_calibrated_sigma():
    a = membership_matrix(n=30, m=8, seed=2)
    g = _mixed_estimates(a, np.random.default_rng(2))
    j = 5
    s_j = _signs(a, g)[j]
    z = []
    for step in range(1500):
        mech = PacMI(a, _secret(j, salt=9), budget=0.05, steps=10)
        mech.begin_step(0)
        r = mech.release(g, step=step, k=0)
        z.append((r.public["y"] - s_j) / r.public["sigma"])
    assert stats.kstest(z, "norm").pvalue > 1e-3


def test_posterior_matches_independent_bayes_and_total_stays_within_budget():
    rng = np.random.default_rng(3)
    a = membership_matrix(n=40, m=8, seed=3)
    budget, steps = 0.33, 25
    mech = PacMI(a, _secret(6, salt=1), budget=budget, steps=steps)
    log_lik = np.zeros(8)
    for step in range(steps):
        mech.begin_step(step)
        g = _mixed_estimates(a, rng)
        r = mech.release(g, step=step, k=0)
        if r.kind == "noisy":
            log_lik += stats.norm.logpdf(r.public["y"], loc=_signs(a, g), scale=r.public["sigma"])
    expected = np.exp(log_lik - log_lik.max())
    expected /= expected.sum()
    np.testing.assert_allclose(np.exp(mech.log_posterior), expected, rtol=1e-9, atol=1e-12)
    assert budget * 0.99 <= mech.spent <= budget


def test_uniform_schedule_exhausts_and_stops():
    rng = np.random.default_rng(4)
    a = membership_matrix(n=30, m=8, seed=4)
    mech = PacMI(a, _secret(1), budget=0.02, steps=4, schedule="uniform")
    for step in range(4):
        mech.begin_step(step)
        mech.release(_mixed_estimates(a, rng), step=step, k=0)
    assert mech.exhausted and mech.spent <= 0.02


def test_k_directions_share_the_step_budget():
    rng = np.random.default_rng(5)
    a = membership_matrix(n=30, m=8, seed=5)
    mech = PacMI(a, _secret(1), budget=0.08, steps=2, directions=4)
    mech.begin_step(0)
    betas = [mech.release(_mixed_estimates(a, rng), step=0, k=k).public["beta"] for k in range(4)]
    assert betas == pytest.approx([0.01] * 4)


# ---------------------------------------------------------------- the empirical check of the bound
N, M, T = 24, 8, 12


def _attack_success(make_release, trials: int, seed: int) -> int:
    """Bayes-optimal membership attacker that knows A, the estimates and the transcript.

    Per trial: fresh subsets, J* uniform, a random target record; the attacker computes the posterior
    over the M subsets from the transcript (independently of the mechanism's own bookkeeping), then
    P(target ∈ S*) = Σ_m p_m A_im, and guesses "member" above 1/2, "non-member" below, a coin at 1/2.
    """
    rng = np.random.default_rng(seed)
    wins = 0
    for trial in range(trials):
        a = membership_matrix(n=N, m=M, seed=seed * 100_000 + trial)
        j = int(rng.integers(M))
        mech = make_release(a, j, trial)
        log_post = np.zeros(M)
        for step in range(T):
            g = rng.normal(loc=0.2, size=N)
            mech.begin_step(step)
            r = mech.release(g, step=step, k=0)
            if r.kind == "noisy":
                log_post += stats.norm.logpdf(r.public["y"], loc=_signs(a, g), scale=r.public["sigma"])
        post = np.exp(log_post - log_post.max())
        post /= post.sum()
        target = int(rng.integers(N))
        p_member = float(post @ a[target])
        guess = p_member > 0.5 if abs(p_member - 0.5) > 1e-12 else bool(rng.integers(2))
        wins += guess == bool(a[target, j])
    return wins


def _clopper_pearson(k: int, n: int, level: float = 0.99) -> tuple[float, float]:
    alpha = 1 - level
    lo = stats.beta.ppf(alpha / 2, k, n - k + 1) if k > 0 else 0.0
    hi = stats.beta.ppf(1 - alpha / 2, k + 1, n - k) if k < n else 1.0
    return lo, hi


@pytest.mark.slow
@pytest.mark.parametrize("budget", [0.03, 0.33])
def test_attacker_success_stays_below_the_bound(budget):
    trials = 2000
    wins = _attack_success(lambda a, j, t: PacMI(a, _secret(j, salt=t), budget=budget, steps=T), trials, seed=1)
    _, upper = _clopper_pearson(wins, trials)
    assert upper <= mia_posterior_bound(budget), (wins / trials, upper, mia_posterior_bound(budget))


@pytest.mark.slow
def test_attacker_is_at_chance_against_zpl():
    trials = 2000
    wins = _attack_success(lambda a, j, t: ZPL(a, seed=t), trials, seed=2)
    lo, hi = _clopper_pearson(wins, trials)
    assert lo <= 0.5 <= hi


def test_the_attack_detects_a_leaky_mechanism():
    """Control: with the noise scaled down 20× (the budget overspent ~400×) the same attacker beats
    the 0.03-nat bound, so the check above can fail."""

    class Leaky(PacMI):
        def release(self, estimates, *, step, k):
            r = super().release(estimates, step=step, k=k)
            if r.kind == "noisy":
                sigma = r.public["sigma"] / 20
                s_j = _signs(self.membership, estimates)[self._secret.j_star]
                y = s_j + sigma * self._secret.gaussian(step=step, k=k)
                r = type(r)(value=r.value, kind=r.kind, public={**r.public, "y": y, "sigma": sigma})
            return r

    trials = 200
    wins = _attack_success(lambda a, j, t: Leaky(a, _secret(j, salt=t), budget=0.03, steps=T), trials, seed=3)
    lo, _ = _clopper_pearson(wins, trials)
    assert lo > mia_posterior_bound(0.03)
