"""Typed releases: every kind survives its private record, and only ``value`` ever reaches the public transcript."""

from __future__ import annotations

import json
from dataclasses import fields

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from paczero.ledger import transcript_step
from paczero.releases import (
    KINDS,
    Abstain,
    AblationValue,
    Coin,
    DPNoisy,
    Free,
    NoisyBit,
    Projected,
    Release,
    Unanimous,
    from_record,
)

FINITE = st.floats(allow_nan=False, allow_infinity=False, width=64)
SIGNS = st.text(alphabet="+-", min_size=2, max_size=16)
PROB = st.floats(0.0, 1.0)
SIGN = st.sampled_from([-1.0, 1.0])

RELEASES: dict[type[Release], st.SearchStrategy[Release]] = {
    Unanimous: st.builds(Unanimous, value=SIGN, signs=SIGNS),
    Coin: st.builds(Coin, value=SIGN, signs=st.none() | SIGNS),
    Abstain: st.builds(Abstain, value=st.just(0.0), signs=SIGNS),
    Free: st.builds(Free, value=SIGN, signs=SIGNS, q_plus=PROB),
    NoisyBit: st.builds(NoisyBit, value=SIGN, signs=SIGNS, q_plus=PROB, beta=PROB, flip=PROB,
                        sigma=st.floats(0.01, 100.0), mi=PROB, channel=st.sampled_from(["bsc", "awgn"])),
    DPNoisy: st.builds(DPNoisy, value=FINITE, batch=st.integers(0, 10**6)),
    Projected: st.builds(Projected, value=FINITE, batch=st.integers(1, 10**6)),
    AblationValue: st.builds(AblationValue, value=FINITE, variant=st.sampled_from(["mean_half", "random_sign"])),
}
ANY_RELEASE = st.one_of(*RELEASES.values())


def test_every_kind_has_a_strategy_here_and_a_distinct_name():
    assert set(RELEASES) == set(KINDS.values())
    assert all(name == cls.kind and name for name, cls in KINDS.items())


@settings(max_examples=200, deadline=None)
@given(release=ANY_RELEASE)
def test_a_release_round_trips_through_its_json_private_record(release):
    record = release.private_record()
    assert record["kind"] == release.kind
    assert set(record) == {"kind"} | {f.name for f in fields(release)}
    back = from_record(json.loads(json.dumps(record)))
    assert type(back) is type(release) and back == release


@settings(max_examples=100, deadline=None)
@given(a=ANY_RELEASE, b=ANY_RELEASE, seed=st.integers(0, 2**63 - 1), lr=FINITE)
def test_the_transcript_keeps_the_value_alone(a, b, seed, lr):
    """Two releases with the same value give the same transcript bytes, whatever their kind and private fields."""
    b = from_record({**b.private_record(), "value": a.value})
    line_a = transcript_step(step=3, lr=lr, seeds=[seed], releases=[a]).line()
    line_b = transcript_step(step=3, lr=lr, seeds=[seed], releases=[b]).line()
    assert line_a == line_b
    assert json.loads(line_a)["directions"] == [{"seed": seed, "value": a.value}]


@settings(max_examples=50, deadline=None)
@given(release=ANY_RELEASE)
def test_a_record_missing_a_field_is_refused_by_name(release):
    for name in (f.name for f in fields(release)):
        record = {k: v for k, v in release.private_record().items() if k != name}
        with pytest.raises(ValueError, match=f"a {release.kind} release lacks {name}"):
            from_record(record)


def test_an_unknown_kind_is_refused():
    with pytest.raises(ValueError, match=r"release kind 'secret' is unknown; expected one of unanimous, coin"):
        from_record({"kind": "secret", "value": 1.0})
    with pytest.raises(ValueError, match="release kind None is unknown"):
        from_record({"value": 1.0})


def test_only_the_subset_releases_count_as_agreed():
    assert {cls for cls in KINDS.values() if cls.agreed} == {Unanimous, Free}
