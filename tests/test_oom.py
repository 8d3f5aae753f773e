"""The out-of-memory policy: halve for good, restart the whole (outermost) pass, refuse at one record, log privately."""

from __future__ import annotations

import logging

import pytest
import torch

from paczero.errors import PaczeroError
from paczero.oom import MicroBatching


def _failing_above(limit: int, calls: list[int]):
    def pass_(size: int) -> int:
        calls.append(size)
        if size > limit:
            raise torch.OutOfMemoryError("simulated")
        return size

    return pass_


def test_halves_for_good_and_restarts_the_pass():
    batching, calls = MicroBatching(32), []
    assert batching.run(_failing_above(5, calls), what="scoring") == 4
    assert calls == [32, 16, 8, 4] and batching.size == 4
    assert batching.run(_failing_above(5, calls), what="scoring") == 4 and calls[4:] == [4]  # stays halved


def test_memory_error_counts_too_and_other_errors_pass_through():
    batching = MicroBatching(4)

    def host_oom(size: int) -> int:
        if size > 2:
            raise MemoryError
        return size

    assert batching.run(host_oom, what="scoring") == 2
    with pytest.raises(ValueError):
        batching.run(lambda size: (_ for _ in ()).throw(ValueError("not memory")), what="scoring")
    assert batching.size == 2


def test_an_inner_pass_restarts_the_outermost_one():
    """The outer pass runs two inner passes; the second runs out of memory: both inner passes rerun at the new size."""
    batching, inner = MicroBatching(8), []

    def outer(size: int) -> list[int]:
        first = batching.run(lambda s: inner.append(s) or s, what="scoring")
        second = batching.run(_failing_above(4, inner), what="scoring")
        return [size, first, second]

    assert batching.run(outer, what="evaluating") == [4, 4, 4]
    assert inner == [8, 8, 4, 4]  # never a pass mixing 8 and 4


def test_one_record_that_does_not_fit_is_the_users_to_fix():
    batching = MicroBatching(2)
    with pytest.raises(PaczeroError, match="out of memory scoring a single record; lower data.max_length"):
        batching.run(_failing_above(0, []), what="scoring")


def test_private_passes_log_only_the_new_size(caplog):
    with caplog.at_level(logging.WARNING, logger="paczero"):
        MicroBatching(16).run(_failing_above(8, []), what="generating for", private=True)
        MicroBatching(16).run(_failing_above(8, []), what="generating for", private=False)
    private, public = (r.getMessage() for r in caplog.records)
    assert private == "[private] out of memory: micro-batches now 8 records"
    assert public == "out of memory generating for micro-batches: now 8 records"


def test_a_non_positive_size_is_refused():
    with pytest.raises(PaczeroError, match="zo.micro_batch=0"):
        MicroBatching(0)
