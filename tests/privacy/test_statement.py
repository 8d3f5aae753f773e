"""The statement says what the dev set is and when it promises nothing (an MIA bound of 0.999 or more)."""

from __future__ import annotations

import pytest

from paczero.settings import load_config
from paczero.mechanisms.registry import run_statement
from paczero.privacy.bounds import vacuous_dp_epsilon
from paczero.privacy.statement import DevSet, PrivacyStatement, dp_statement, no_statement, pac_statement

DEV = DevSet(source="train", n=32, from_private_file=False)


@pytest.mark.parametrize("budget, vacuous", [(0.0, False), (0.33, False), (0.68, False), (0.686, True), (2.0, True)])
def test_a_pac_statement_is_vacuous_from_an_mia_bound_of_0999(budget, vacuous):
    s = pac_statement(mechanism="mi", mi_bound=budget, steps=3, releases=3, n_subsets=8, dev=DEV)
    assert s.vacuous == vacuous == (s.mia_posterior_bound >= 0.999)
    assert s.summary.startswith("promises nothing: ") == vacuous


def test_a_dp_statement_with_a_large_epsilon_says_it_promises_nothing():
    from paczero.privacy.accounting import RELATION

    common = dict(sample_rate=0.1, delta=1e-5, steps=20)
    statements = [dp_statement(mechanism="dpzero", noise_multiplier=sigma, releases=20, relation=RELATION, dev=DEV,
                               **common) for sigma in (2.0, 0.6)]  # ε about 1.8 and 11.7: a bound and none
    assert [s.vacuous for s in statements] == [False, True]
    for s in statements:
        assert s.vacuous == (s.mia_posterior_bound >= 0.999) == (s.dp_epsilon >= vacuous_dp_epsilon(1e-5))
        assert s.summary.startswith("promises nothing: ") == s.vacuous


def test_no_guarantee_is_vacuous_and_an_old_statement_reads_as_before():
    s = no_statement(mechanism="mezo", steps=1, releases=1, dev=DEV)
    assert s.vacuous and not s.private
    old = s.to_dict()
    del old["vacuous"], old["dev_set"]
    assert PrivacyStatement.from_dict(old).vacuous  # metrics.json written before the field existed
    assert PrivacyStatement.from_dict(s.to_dict()) == s


@pytest.mark.parametrize("overrides, summary, public", [
    ([], "dev set public", "32 records drawn from the public data set's train split"),
    (["data.task=jsonl", "data.kind=generation", "data.train_file=a", "data.test_file=b"], "no dev set",
     "no dev set: no checkpoint selection, the last checkpoint is released"),
    (["data.task=jsonl", "data.kind=generation", "data.train_file=a", "data.test_file=b", "data.dev_source=train"],
     "32 records of the private file public as dev set", "32 records drawn from the private train file"),
    (["data.task=jsonl", "data.kind=generation", "data.train_file=a", "data.test_file=b", "data.dev_file=c"],
     "dev set public", "32 records of a separate dev file or split"),
])
def test_the_statement_says_what_the_dev_set_is(overrides, summary, public):
    cfg = load_config(None, ["data.n_dev=32", *overrides])
    s = run_statement(cfg, steps=1, releases=1)
    assert s.summary == f"I = 0 nats, MIA posterior <= 0.5, {summary}"
    assert public in s.dev_set and s.dev_set in s.public
    assert ("the records of the dev set" in s.not_protected) == (summary != "no dev set")
