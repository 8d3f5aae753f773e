"""The transcript attack against an independent brute-force Bayes computation on small M."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import norm

from paczero.audit.metrics import roc_auc
from paczero.audit.transcript import NotApplicable, bayes_success, membership_posterior, subset_log_posterior
from paczero.privacy.bsc import sigma_of_flip
from paczero.releases import AblationValue, Coin, DPNoisy, Free, NoisyBit, Unanimous
from paczero.subsets import membership_matrix


def _sign_string(signs) -> str:
    return "".join("+" if s > 0 else "-" for s in signs)


def _brute_subset_posterior(steps, m: int) -> list[float]:
    """Bayes' rule with explicit products of bit likelihoods Φ(y·s/σ), one subset at a time, in float64."""
    weights = [1.0 / m] * m
    for releases in steps:
        for r in releases:
            if r.kind != "noisy":
                continue  # a public release: the same probability under every subset
            for j in range(m):
                s = 1.0 if r.signs[j] == "+" else -1.0
                weights[j] *= float(norm.cdf(r.value * s / r.sigma))
            total = sum(weights)
            weights = [w / total for w in weights]
    return weights


def _brute_membership_posterior(records, membership) -> list[float]:
    n, m = membership.shape
    weights = _brute_subset_posterior(records, m)
    return [sum(weights[j] for j in range(m) if membership[i, j]) for i in range(n)]


def _synthetic_releases(rng, *, m: int, steps: int, k: int, j_true: int, flip_range=(0.05, 0.45)):
    """Release records mixing noisy bits, free, unanimous and coin releases, consistent with the release rules."""
    out: list[list] = []
    for _ in range(steps):
        releases = []
        for _ in range(k):
            kind = rng.choice(["noisy", "noisy", "free", "unanimous", "coin"])
            signs = rng.choice([-1, 1], size=m)
            if kind == "unanimous":
                signs[:] = signs[0]
            text = _sign_string(signs)
            if kind == "noisy":
                flip = float(rng.uniform(*flip_range))
                bit = -signs[j_true] if rng.random() < flip else signs[j_true]
                releases.append(NoisyBit(value=float(bit), signs=text, q_plus=0.5, beta=0.1, flip=flip,
                                         sigma=sigma_of_flip(flip), mi=0.01, channel="bsc"))
            elif kind == "free":
                # The common sign of the posterior's support: the most probable subset's sign.
                best = int(np.argmax(_brute_subset_posterior(out + [releases], m)))
                releases.append(Free(value=float(signs[best]), signs=text, q_plus=0.5))
            elif kind == "unanimous":
                releases.append(Unanimous(value=float(signs[0]), signs=text))
            else:
                releases.append(Coin(value=float(rng.choice([-1.0, 1.0])), signs=text))
        out.append(releases)
    return out


@pytest.mark.parametrize("m", [4, 6])
@pytest.mark.parametrize("seed", range(5))
def test_membership_posterior_equals_brute_force(m, seed):
    rng = np.random.default_rng(seed)
    membership = membership_matrix(n=15, m=m, seed=seed)
    records = _synthetic_releases(rng, m=m, steps=6, k=int(rng.integers(1, 3)), j_true=int(rng.integers(m)))
    log_post = subset_log_posterior(records, n_subsets=m)
    np.testing.assert_allclose(np.exp(log_post), _brute_subset_posterior(records, m), rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(membership_posterior(log_post, membership),
                               _brute_membership_posterior(records, membership), rtol=1e-10, atol=1e-14)


def test_public_releases_leave_the_prior_unchanged():
    rng = np.random.default_rng(0)
    m = 8
    records = [step for step in _synthetic_releases(rng, m=m, steps=30, k=2, j_true=3)
               if all(r.kind in ("unanimous", "coin") for r in step)]
    assert records
    membership = membership_matrix(n=40, m=m, seed=0)
    posterior = membership_posterior(subset_log_posterior(records, n_subsets=m), membership)
    np.testing.assert_allclose(posterior, 0.5, rtol=0, atol=1e-15)
    truth = membership[:, 3]
    success = bayes_success(posterior, truth)
    assert success.success == 0.5 and success.expected == pytest.approx(0.5)
    assert success.mean_posterior_on_truth == pytest.approx(0.5)


def test_leaky_noise_reveals_the_secret_subset():
    """Bits flipped with probability 0.01 carry almost the whole sign of S*: the attack identifies members."""
    rng = np.random.default_rng(1)
    m, j_true = 16, 5
    records = _synthetic_releases(rng, m=m, steps=40, k=1, j_true=j_true, flip_range=(0.01, 0.01))
    membership = membership_matrix(n=64, m=m, seed=1)
    posterior = membership_posterior(subset_log_posterior(records, n_subsets=m), membership)
    truth = membership[:, j_true]
    assert roc_auc(posterior, truth.astype(int)) > 0.95
    assert bayes_success(posterior, truth).success > 0.9


def test_bayes_success_counts_ties_as_half():
    posterior = np.array([0.9, 0.2, 0.5, 0.6, 0.5 + 1e-12])
    truth = np.array([True, True, False, False, True])
    # right, wrong, tie, wrong, tie → 1 + 0.5 + 0.5 out of 5
    result = bayes_success(posterior, truth)
    assert result.success == pytest.approx(2 / 5)
    assert result.expected == pytest.approx(np.mean([0.9, 0.8, 0.5, 0.6, 0.5]))
    assert result.mean_posterior_on_truth == pytest.approx(np.mean([0.9, 0.2, 0.5, 0.4, 0.5]))


@pytest.mark.parametrize("release, match", [
    (Unanimous(value=1.0, signs="++-+"), "unanimous"),
    (NoisyBit(value=0.3, signs="++-+", q_plus=0.5, beta=0.1, flip=0.2, sigma=1.0, mi=0.01, channel="bsc"),
     "noisy"),
    (Free(value=-1.0, signs="++++", q_plus=1.0), "free"),
    (Coin(value=0.5, signs="++-+"), "coin"),
    (Coin(value=1.0, signs="++-"), "3 subset signs"),
])
def test_inconsistent_logs_are_refused(release, match):
    with pytest.raises(ValueError, match=match):
        subset_log_posterior([[release]], n_subsets=4)


@pytest.mark.parametrize("release, match", [
    (AblationValue(value=0.3, variant="raw_half"), "no subset signs"),
    (DPNoisy(value=0.3, batch=4), "no subset signs"),
])
def test_logs_without_a_likelihood_model_are_not_applicable(release, match):
    with pytest.raises(NotApplicable, match=match):
        subset_log_posterior([[release]], n_subsets=4)
