"""The two logs' formats: a transcript line round-trips and anything the trainer cannot have written is refused;
the private release log round-trips and its summary counts what it holds."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from paczero.ledger import (
    Direction,
    TranscriptStep,
    parse_releases,
    parse_transcript,
    private_summary,
    release_record,
)
from paczero.releases import Coin, DPNoisy, Free, NoisyBit, Unanimous

FINITE = st.floats(allow_nan=False, allow_infinity=False, width=64)
DIRECTION = st.builds(Direction, seed=st.integers(0, 2**63 - 1), value=FINITE)
STEP = st.builds(TranscriptStep, step=st.integers(0, 10**6), lr=FINITE,
                 directions=st.lists(DIRECTION, min_size=1, max_size=6).map(tuple))


def _line(step: int = 0, **change) -> dict:
    return {"step": step, "lr": 1e-3, "directions": [{"seed": 11, "value": 1.0}, {"seed": 12, "value": -1.0}],
            **change}


@settings(max_examples=200, deadline=None)
@given(step=STEP)
def test_a_transcript_line_round_trips_through_its_bytes(step):
    line = step.line()
    assert b"\n" not in line
    assert TranscriptStep.from_dict(json.loads(line)) == step
    assert TranscriptStep.from_dict(json.loads(line)).line() == line


def test_integer_values_parse_as_the_same_float():
    parsed = TranscriptStep.from_dict(_line(lr=1, directions=[{"seed": 5, "value": -1}]))
    assert parsed.lr == 1.0 and parsed.directions == (Direction(seed=5, value=-1.0),)
    assert isinstance(parsed.directions[0].value, float)


@pytest.mark.parametrize("bad", [
    [1, 2],
    {"step": 0, "lr": 1e-3},
    _line(extra=1),
    _line(step=-1),
    _line(step=True),
    _line(step=1.0),
    _line(lr=math.nan),
    _line(lr=math.inf),
    _line(lr="0.001"),
    _line(lr=False),
    _line(directions=[]),
    _line(directions={"seed": 1, "value": 1.0}),
    _line(directions=[{"seed": 1}]),
    _line(directions=[{"seed": 1, "value": 1.0, "sign": "+"}]),
    _line(directions=[{"seed": -1, "value": 1.0}]),
    _line(directions=[{"seed": True, "value": 1.0}]),
    _line(directions=[{"seed": "7", "value": 1.0}]),
    _line(directions=[{"seed": 1, "value": math.inf}]),
    _line(directions=[{"seed": 1, "value": True}]),
    _line(directions=[{"seed": 1, "value": None}]),
])
def test_a_line_the_trainer_cannot_have_written_is_refused(bad):
    with pytest.raises(ValueError):
        TranscriptStep.from_dict(bad)


def test_a_transcript_must_be_contiguous_from_step_0():
    assert [s.step for s in parse_transcript([_line(0), _line(1), _line(2)])] == [0, 1, 2]
    with pytest.raises(ValueError, match="line 1 holds step 1; expected step 0"):
        parse_transcript([_line(1), _line(2)])
    with pytest.raises(ValueError, match="line 2 holds step 2; expected step 1"):
        parse_transcript([_line(0), _line(2)])
    with pytest.raises(ValueError, match="line 2 holds step 0; expected step 1"):
        parse_transcript([_line(0), _line(0)])
    with pytest.raises(ValueError, match="line 2 holds step 2; expected step 1"):
        parse_transcript([_line(0), _line(2), _line(1)])
    assert parse_transcript([]) == []


STEPS = [
    [Unanimous(value=1.0, signs="++++"), Coin(value=-1.0, signs="+-+-")],
    [Free(value=-1.0, signs="--+-", q_plus=0.1),
     NoisyBit(value=1.0, signs="+-+-", q_plus=0.5, beta=0.02, flip=0.4, sigma=3.9, mi=0.015, channel="bsc")],
    [NoisyBit(value=-1.0, signs="-+-+", q_plus=0.4, beta=0.02, flip=0.41, sigma=4.4, mi=0.011, channel="bsc"),
     Coin(value=1.0)],
]


def test_the_release_log_round_trips_through_json():
    records = [json.loads(json.dumps(release_record(step=t, releases=rs))) for t, rs in enumerate(STEPS)]
    assert [r["step"] for r in records] == [0, 1, 2]
    assert parse_releases(records) == STEPS


def test_the_private_summary_counts_kinds_free_releases_and_the_mi_charged():
    summary = private_summary(STEPS)
    assert summary["release_kinds"] == {"coin": 2, "free": 1, "noisy": 2, "unanimous": 1}
    assert summary["releases"] == 6 and summary["noisy_releases"] == 2
    assert summary["unanimity_rate"] == pytest.approx(2 / 6)
    assert summary["achieved_mi_nats"] == pytest.approx(0.015 + 0.011)
    dp = private_summary([[DPNoisy(value=0.3, batch=7)]])
    assert dp["achieved_mi_nats"] == 0 and dp["unanimity_rate"] == 0 and dp["release_kinds"] == {"dp": 1}
    assert math.isnan(private_summary([])["unanimity_rate"])
