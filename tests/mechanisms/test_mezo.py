"""MeZO: public shuffled minibatches and the scalar projected gradient."""

from __future__ import annotations

import numpy as np
import pytest

from paczero.mechanisms.mezo import MeZO


@pytest.mark.parametrize("n, batch", [(64, 16), (50, 16), (10, 32)])
def test_every_record_is_used_once_per_epoch(n, batch):
    mech = MeZO(seed=3, batch_size=batch)
    per_epoch = -(-n // batch)
    for epoch in range(3):
        seen = np.concatenate([mech.sample(step=epoch * per_epoch + i, n=n) for i in range(per_epoch)])
        assert sorted(seen.tolist()) == list(range(n))
        assert all(len(mech.sample(step=epoch * per_epoch + i, n=n)) <= batch for i in range(per_epoch))
    # Epochs are reshuffled.
    assert not np.array_equal(mech.sample(step=0, n=n), mech.sample(step=per_epoch, n=n)) or n <= batch


def test_release_is_the_batch_mean_projected_gradient():
    rng = np.random.default_rng(0)
    plus, minus, eps = rng.normal(size=16), rng.normal(size=16), 1e-3
    per_record = (plus - minus) / (2 * eps)
    r = MeZO(seed=0, batch_size=16).release_step(per_record[:, None], step=0)[0]
    # (L(θ+εz; B) − L(θ−εz; B))/(2ε) with batch-mean losses.
    assert r.value == pytest.approx((plus.mean() - minus.mean()) / (2 * eps), rel=1e-12)
    assert r.kind == "projected"
