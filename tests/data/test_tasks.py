"""Tasks and the split: a test set held out of the train records by the public seed (``data.test_fraction``), a dev
set that is the user's choice (drawn from train, a separate set, or none), the pool/dev/test sizes and disjointness
of a loaded task, and the label checks."""

from __future__ import annotations

import math

import pytest

from paczero.data.tasks import (
    ClassificationTask,
    Example,
    GenerationExample,
    GenerationTask,
    hold_out,
    make_split,
)
from paczero.data.registry import load_task
from paczero.errors import PaczeroError

RECORDS = [f"r{i}" for i in range(50)]


@pytest.mark.parametrize("fraction", [0.01, 0.2, 0.5, 0.97])
def test_a_held_out_test_set_is_a_seeded_ceiling_fraction_in_file_order(fraction):
    rest, held = hold_out(RECORDS, fraction, seed=0)
    assert len(held) == math.ceil(fraction * len(RECORDS)) and len(rest) + len(held) == len(RECORDS)
    assert set(rest).isdisjoint(held) and set(rest) | set(held) == set(RECORDS)
    assert rest == [r for r in RECORDS if r in set(rest)] and held == [r for r in RECORDS if r in set(held)]
    assert hold_out(RECORDS, fraction, seed=0) == (rest, held)


def test_other_seeds_hold_out_other_records():
    draws = {tuple(hold_out(RECORDS, 0.2, seed=s)[1]) for s in range(5)}
    assert len(draws) == 5


def test_nothing_left_for_the_pool_is_refused():
    with pytest.raises(PaczeroError, match=r"data\.test_fraction=0\.99 of 50 training records leaves none"):
        hold_out(RECORDS, 0.99, seed=0)


def test_the_pool_dev_and_test_sets_never_share_a_record():
    rest, held = hold_out(RECORDS, 0.3, seed=1)
    split = make_split(rest, held, n_pool=20, n_dev=10, n_test=None, seed=1)
    assert len(split.pool) == 20 and len(split.dev) == 10 and split.test == held
    assert not (set(split.pool) & set(split.dev)) and not ((set(split.pool) | set(split.dev)) & set(split.test))


def test_without_a_dev_set_the_pool_is_the_same_draw():
    with_dev = make_split(RECORDS, ["t"], n_pool=20, n_dev=10, n_test=None, seed=2)
    without = make_split(RECORDS, ["t"], n_pool=20, n_dev=10, n_test=None, seed=2, dev_source="none")
    assert without.pool == with_dev.pool and without.dev == []
    assert make_split(RECORDS, ["t"], n_pool=50, n_dev=10, n_test=None, seed=2, dev_source="none").dev == []
    with pytest.raises(PaczeroError, match="data.n_pool=51 exceeds the 50 training records"):
        make_split(RECORDS, ["t"], n_pool=51, n_dev=1, n_test=None, seed=2, dev_source="none")


def test_a_test_subset_is_seeded_sized_and_in_file_order():
    validation = [f"v{i}" for i in range(30)]
    split = make_split(RECORDS, validation, n_pool=10, n_dev=5, n_test=12, seed=3)
    assert len(split.test) == 12 and len(set(split.test)) == 12 and set(split.test) <= set(validation)
    assert split.test == [v for v in validation if v in set(split.test)]
    assert make_split(RECORDS, validation, n_pool=10, n_dev=5, n_test=12, seed=3) == split
    assert make_split(RECORDS, validation, n_pool=10, n_dev=5, n_test=12, seed=4).test != split.test
    assert make_split(RECORDS, validation, n_pool=10, n_dev=5, n_test=30, seed=3).test == validation


def test_a_separate_dev_set_is_drawn_from_the_dev_records():
    dev = [f"d{i}" for i in range(8)]
    split = make_split(RECORDS, ["t"], n_pool=50, n_dev=5, n_test=None, seed=0, dev=dev, dev_source="separate")
    assert sorted(split.pool) == sorted(RECORDS) and len(split.dev) == 5 and set(split.dev) <= set(dev)
    with pytest.raises(PaczeroError, match="data.n_pool=50 and data.n_dev=9 exceed the 50 training and 8 dev"):
        make_split(RECORDS, ["t"], n_pool=50, n_dev=9, n_test=None, seed=0, dev=dev, dev_source="separate")
    with pytest.raises(PaczeroError, match=r"data.n_pool=45 \+ data.n_dev=6 exceeds the 50 training records"):
        make_split(RECORDS, ["t"], n_pool=45, n_dev=6, n_test=None, seed=0)


def test_a_loaded_task_has_the_configured_sizes_and_disjoint_parts(tiny_config):
    cfg = tiny_config()
    task, split = load_task(cfg.data, seed=cfg.run.seed)
    assert (len(split.pool), len(split.dev), len(split.test)) == (cfg.data.n_pool, cfg.data.n_dev, cfg.data.n_test)
    ids = [{id(r) for r in part} for part in (split.pool, split.dev, split.test)]
    assert [len(i) for i in ids] == [cfg.data.n_pool, cfg.data.n_dev, cfg.data.n_test]
    assert not (ids[0] & ids[1]) and not (ids[0] & ids[2]) and not (ids[1] & ids[2])
    assert isinstance(task, ClassificationTask) and task.label_words == tuple(cfg.data.label_words)
    assert all(0 <= r.label < len(task.label_words) for part in (split.pool, split.dev, split.test) for r in part)
    again = load_task(cfg.data, seed=cfg.run.seed)[1]
    assert again == split
    assert load_task(tiny_config("run.seed=1").data, seed=1)[1].pool != split.pool


def test_a_label_outside_the_label_words_is_refused_with_the_value_kept_private():
    task = ClassificationTask(prompt="{sentence} It was", label_words=(" bad", " good"))
    task.check_labels([Example("a", 0), Example("b", 1)], where="sst2 train")
    with pytest.raises(PaczeroError) as exc:
        task.check_labels([Example("a", 0), Example("b", 7)], where="sst2 train")
    assert str(exc.value) == ("sst2 train: record 1 has a label outside the 2 label words [' bad', ' good'] "
                              "(labels must be 0..1)")
    assert exc.value.private == "its label: 7" and "7" not in str(exc.value)


def test_a_prompt_and_the_texts_the_model_sees():
    task = ClassificationTask(prompt="Review: {sentence} It was", label_words=(" bad", " good"))
    assert task.render(Example("fine film", 1)) == "Review: fine film It was"
    assert task.texts([Example("x", 0)]) == ["Review: x It was", " bad", " good"]
    assert task.class_names == ("bad", "good")
    assert ClassificationTask(prompt="{sentence}", label_words=(" a", "a")).class_names == (" a", "a")
    assert ClassificationTask(prompt="{sentence}", label_words=(" a", " b"), label_names=("neg", "pos")).class_names \
        == ("neg", "pos")
    gen = GenerationTask()
    example = GenerationExample(prompt="Q: where? A:", answers=("north", "the north"))
    assert gen.render(example) == "Q: where? A:" and gen.target(example) == " north\n"
    assert gen.texts([example]) == ["Q: where? A:", " north\n", " the north\n"]
