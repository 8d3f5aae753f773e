"""The transcript attack against an independent brute-force Bayes computation on small M."""

from __future__ import annotations

import math

import numpy as np
import pytest

from paczero.audit.metrics import roc_auc
from paczero.audit.transcript import NotApplicable, bayes_success, membership_posterior, subset_log_posterior
from paczero.subsets import membership_matrix


def _sign_string(signs) -> str:
    return "".join("+" if s > 0 else "-" for s in signs)


def _brute_subset_posterior(records, m: int) -> list[float]:
    """Bayes' rule with explicit products of Gaussian densities, one subset at a time, in float64."""
    weights = [1.0 / m] * m
    for record in records:
        for d in record["directions"]:
            if d["kind"] != "noisy":
                continue  # a public release: the same probability under every subset
            y, sigma = d["y"], d["sigma"]
            for j in range(m):
                s = 1.0 if d["signs"][j] == "+" else -1.0
                weights[j] *= math.exp(-((y - s) ** 2) / (2 * sigma**2)) / math.sqrt(2 * math.pi * sigma**2)
            total = sum(weights)
            weights = [w / total for w in weights]
    return weights


def _brute_membership_posterior(records, membership) -> list[float]:
    n, m = membership.shape
    weights = _brute_subset_posterior(records, m)
    return [sum(weights[j] for j in range(m) if membership[i, j]) for i in range(n)]


def _synthetic_ledger(rng, *, m: int, steps: int, k: int, j_true: int, sigma_range=(0.4, 3.0)):
    """A ledger mixing noisy, free, unanimous and coin releases, consistent with the release rules."""
    records = []
    for step in range(steps):
        directions = []
        for _ in range(k):
            kind = rng.choice(["noisy", "noisy", "free", "unanimous", "coin"])
            signs = rng.choice([-1, 1], size=m)
            d = {"seed": int(rng.integers(1 << 30)), "kind": kind}
            if kind == "noisy":
                sigma = float(rng.uniform(*sigma_range))
                y = float(signs[j_true] + sigma * rng.normal())
                d.update(value=1.0 if y >= 0 else -1.0, y=y, sigma=sigma)
            elif kind == "free":
                # The common sign of the posterior's support: the most probable subset's sign.
                best = int(np.argmax(_brute_subset_posterior(records + [{"step": step, "directions": directions}], m)))
                d["value"] = float(signs[best])
            elif kind == "unanimous":
                signs[:] = signs[0]
                d["value"] = float(signs[0])
            else:
                d["value"] = float(rng.choice([-1.0, 1.0]))
            d["signs"] = _sign_string(signs)
            d["unanimous"] = kind in ("free", "unanimous")
            directions.append(d)
        records.append({"step": step, "lr": 1e-3, "directions": directions})
    return records


@pytest.mark.parametrize("m", [4, 6])
@pytest.mark.parametrize("seed", range(5))
def test_membership_posterior_equals_brute_force(m, seed):
    rng = np.random.default_rng(seed)
    membership = membership_matrix(n=15, m=m, seed=seed)
    records = _synthetic_ledger(rng, m=m, steps=6, k=int(rng.integers(1, 3)), j_true=int(rng.integers(m)))
    log_post = subset_log_posterior(records, n_subsets=m)
    np.testing.assert_allclose(np.exp(log_post), _brute_subset_posterior(records, m), rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(membership_posterior(log_post, membership),
                               _brute_membership_posterior(records, membership), rtol=1e-10, atol=1e-14)


def test_public_releases_leave_the_prior_unchanged():
    rng = np.random.default_rng(0)
    m = 8
    records = [r for r in _synthetic_ledger(rng, m=m, steps=30, k=2, j_true=3)
               if all(d["kind"] in ("unanimous", "coin") for d in r["directions"])]
    assert records
    membership = membership_matrix(n=40, m=m, seed=0)
    posterior = membership_posterior(subset_log_posterior(records, n_subsets=m), membership)
    np.testing.assert_allclose(posterior, 0.5, rtol=0, atol=1e-15)
    truth = membership[:, 3]
    success = bayes_success(posterior, truth)
    assert success.success == 0.5 and success.expected == pytest.approx(0.5)
    assert success.mean_posterior_on_truth == pytest.approx(0.5)


def test_leaky_noise_reveals_the_secret_subset():
    """Releases with σ = 0.1 carry almost the whole sign of S*: the attack identifies members."""
    rng = np.random.default_rng(1)
    m, j_true = 16, 5
    records = _synthetic_ledger(rng, m=m, steps=40, k=1, j_true=j_true, sigma_range=(0.1, 0.1))
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


@pytest.mark.parametrize("change, match", [
    ({"kind": "unanimous", "value": 1.0, "signs": "++-+"}, "unanimous"),
    ({"kind": "noisy", "value": 1.0, "y": -0.3, "sigma": 1.0, "signs": "++-+"}, "noisy"),
    ({"kind": "free", "value": -1.0, "signs": "++++"}, "free"),
    ({"kind": "coin", "value": 0.5, "signs": "++-+"}, "coin"),
    ({"kind": "coin", "value": 1.0, "signs": "++-"}, "3 subset signs"),
])
def test_inconsistent_ledgers_are_refused(change, match):
    records = [{"step": 0, "lr": 0.1, "directions": [{"seed": 1, **change}]}]
    with pytest.raises(ValueError, match=match):
        subset_log_posterior(records, n_subsets=4)


@pytest.mark.parametrize("direction, match", [
    ({"kind": "raw", "value": 0.3, "signs": "++-+"}, "kind 'raw'"),
    ({"kind": "coin", "value": 1.0}, "no subset signs"),
])
def test_ledgers_without_a_likelihood_model_are_not_applicable(direction, match):
    with pytest.raises(NotApplicable, match=match):
        subset_log_posterior([{"step": 0, "lr": 0.1, "directions": [{"seed": 1, **direction}]}], n_subsets=4)
