"""The matched comparison: every mechanism on the MIA-posterior axis, resumable, one table."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import yaml

from conftest import TINY_CONFIG
from paczero.cli import main
from paczero.compare import compare, load_compare_config, plan
from paczero.errors import PaczeroError
from paczero.privacy.bounds import dp_posterior_bound, mi_for_dp_epsilon, mia_posterior_bound
from paczero.report import compare_figure


def _write(tmp_path, data_dir):
    path = tmp_path / "cmp.yaml"
    path.write_text(f"""
base: {TINY_CONFIG}
epsilons: [1.0]
overrides:
  common: [train.steps=4, train.eval_every=2, train.eval_before=false, data.data_dir={data_dir}]
  mezo: [train.batch_size=8]
  dpzero: [privacy.sample_rate=0.25]
  dpaggzo: [privacy.sample_rate=0.25, zo.directions=2]
""")
    return path


@pytest.mark.slow  # trains many tiny runs
def test_compare_runs_every_mechanism_and_writes_one_table(tmp_path, data_dir, capsys):
    out = tmp_path / "out"
    assert main(["compare", "--config", str(_write(tmp_path, data_dir)), "--out", str(out)]) == 0
    rows = list(csv.DictReader((out / "compare.csv").open()))
    assert sorted(r["run"] for r in rows) == ["dpaggzo-eps1", "dpzero-eps1", "mezo", "mi-eps1", "zpl"]
    by_run = {r["run"]: r for r in rows}
    assert float(by_run["zpl"]["mia_posterior_bound"]) == 0.5
    assert float(by_run["mezo"]["mia_posterior_bound"]) == 1.0
    # The MI run's budget is the matched MI, so its bound is the ε-DP bound (δ aside). The DP runs sit just below
    # ε = 1 (the calibration's tolerance).
    assert float(by_run["mi-eps1"]["mi_bound_nats"]) == mi_for_dp_epsilon(1.0)
    assert float(by_run["mi-eps1"]["mia_posterior_bound"]) == pytest.approx(dp_posterior_bound(1.0), rel=1e-9)
    for name in ("dpzero-eps1", "dpaggzo-eps1"):
        assert dp_posterior_bound(0.999) <= float(by_run[name]["mia_posterior_bound"]) <= dp_posterior_bound(1.0, 1e-5)
    bounds = [float(r["mia_posterior_bound"]) for r in rows]
    assert bounds == sorted(bounds)  # the table reads along the privacy axis
    assert (out / "compare.md").read_text().count("\n") == len(rows) + 2
    # A second invocation reuses the finished runs instead of training again.
    stamps = {p: p.stat().st_mtime_ns for p in out.glob("*/metrics.json")}
    assert main(["compare", "--config", str(_write(tmp_path, data_dir)), "--out", str(out)]) == 0
    assert {p: p.stat().st_mtime_ns for p in out.glob("*/metrics.json")} == stamps


def test_plan_matches_mi_budgets_to_each_epsilon(tmp_path, data_dir):
    cfg = load_compare_config(_write(tmp_path, data_dir), epsilons=[0.5, 2.0], mechanisms=["mi", "dpzero"])
    runs = dict(plan(cfg))
    assert sorted(runs) == ["dpzero-eps0.5", "dpzero-eps2", "mi-eps0.5", "mi-eps2"]
    for eps in (0.5, 2.0):
        budget = runs[f"mi-eps{eps:g}"].privacy.budget
        assert mia_posterior_bound(budget) == pytest.approx(dp_posterior_bound(eps), rel=1e-12)
        assert runs[f"dpzero-eps{eps:g}"].privacy.epsilon == eps


def test_dpsgd_runs_when_named_at_each_epsilon_beside_the_matched_mi(tmp_path, data_dir):
    """DP-SGD needs a trainable set: not a default cell; named, at each ε with MI at the matched bound, on the set the
    base config (here overrides) gives; without a set every run config is refused up front, naming the key."""
    assert "dpsgd" not in {c.privacy.mechanism for _, c in plan(load_compare_config(_write(tmp_path, data_dir)))}
    cfg = load_compare_config(_write(tmp_path, data_dir), epsilons=[0.5, 2.0], mechanisms=["dpsgd", "mi"])
    with pytest.raises(PaczeroError, match="model.tuning='full' is invalid; dpsgd computes per-record gradients"):
        plan(cfg)
    cfg.overrides.common += ["model.tuning=set", "model.trainable.head_rows=true"]
    runs = dict(plan(cfg))
    assert sorted(runs) == ["dpsgd-eps0.5", "dpsgd-eps2", "mi-eps0.5", "mi-eps2"]
    for eps in (0.5, 2.0):
        assert runs[f"dpsgd-eps{eps:g}"].privacy.epsilon == eps
        assert mia_posterior_bound(runs[f"mi-eps{eps:g}"].privacy.budget) == pytest.approx(dp_posterior_bound(eps),
                                                                                           rel=1e-12)


@pytest.mark.parametrize("kwargs, match", [({"epsilons": [0.0]}, "epsilons"), ({"mechanisms": ["dpftrl"]}, "dpftrl")])
def test_bad_compare_settings_are_refused(tmp_path, data_dir, kwargs, match):
    with pytest.raises(PaczeroError, match=match):
        load_compare_config(_write(tmp_path, data_dir), **kwargs)


@pytest.mark.slow  # trains many tiny runs
def test_seeds_repeat_every_cell_and_summarise_it(tmp_path, data_dir, capsys):
    out = tmp_path / "out"
    assert main(["compare", "--config", str(_write(tmp_path, data_dir)), "--out", str(out), "--seeds", "3,5",
                 "--mechanisms", "zpl,mi"]) == 0
    rows = list(csv.DictReader((out / "compare.csv").open()))
    assert sorted(r["run"] for r in rows) == ["mi-eps1-s3", "mi-eps1-s5", "zpl-s3", "zpl-s5"]
    for r in rows:
        assert r["run"].endswith(f"-s{r['seed']}")
        stored = yaml.safe_load((out / r["run"] / "config.yaml").read_text())
        assert stored["run"]["seed"] == int(r["seed"])
    # The public seed draws the membership matrix and the directions: the two seeds' runs differ in both.
    s3, s5 = (out / "zpl-s3", out / "zpl-s5")
    assert not np.array_equal(np.load(s3 / "membership.npy"), np.load(s5 / "membership.npy"))
    first = [json.loads((d / "transcript.jsonl").read_text().splitlines()[0])["directions"][0]["seed"] for d in (s3, s5)]
    assert first[0] != first[1]
    summary = {r["mechanism"]: r for r in csv.DictReader((out / "compare-summary.csv").open())}
    assert sorted(summary) == ["mi", "zpl"]
    assert summary["mi"]["cell"] == "mi-eps1" and summary["zpl"]["cell"] == "zpl"
    for mechanism, cell in summary.items():
        acc = [float(r["test_accuracy"]) for r in rows if r["mechanism"] == mechanism]
        assert int(cell["seeds"]) == 2
        assert float(cell["test_accuracy_mean"]) == pytest.approx(sum(acc) / 2)
        assert float(cell["test_accuracy_sd"]) == pytest.approx(abs(acc[0] - acc[1]) / 2 ** 0.5)
        assert float(cell["test_accuracy_min"]) == min(acc) and float(cell["test_accuracy_max"]) == max(acc)
        bounds = [float(r["mia_posterior_bound"]) for r in rows if r["mechanism"] == mechanism]
        assert float(cell["mia_posterior_bound_max"]) == max(bounds)
    assert "compare-summary" in capsys.readouterr().out
    assert (out / "compare.png").stat().st_size > 0

    # --finished-only trains nothing: with one run's metrics gone, the tables hold the three others.
    (out / "mi-eps1-s5" / "metrics.json").unlink()
    before = sorted(p.name for p in out.iterdir())
    assert main(["compare", "--config", str(_write(tmp_path, data_dir)), "--out", str(out), "--seeds", "3,5",
                 "--mechanisms", "zpl,mi", "--finished-only"]) == 0
    assert sorted(r["run"] for r in csv.DictReader((out / "compare.csv").open())) == ["mi-eps1-s3", "zpl-s3",
                                                                                       "zpl-s5"]
    assert not (out / "mi-eps1-s5" / "metrics.json").exists() and sorted(p.name for p in out.iterdir()) == before
    summary = {r["cell"]: r for r in csv.DictReader((out / "compare-summary.csv").open())}
    assert summary["mi-eps1"]["seeds"] == "1" and summary["mi-eps1"]["test_accuracy_sd"] == ""


def test_compare_figure_draws_each_cell_at_its_mean_and_spread():
    rows = [{"cell": "zpl", "mechanism": "zpl", "mia_posterior_bound": 0.5, "test_accuracy": a,
             "zero_shot_accuracy": 0.5} for a in (0.6, 0.7, 0.8)]
    rows += [{"cell": "mi-eps1", "mechanism": "mi", "mia_posterior_bound": b, "test_accuracy": a,
              "zero_shot_accuracy": 0.5} for a, b in ((0.65, 0.7), (0.75, 0.72))]
    (ax,) = compare_figure(rows).axes
    bars = {c.get_label(): c for c in ax.containers}
    assert sorted(bars) == ["mi", "zpl"]
    for label, xs, ys in (("zpl", [0.5] * 3, [0.6, 0.7, 0.8]), ("mi", [0.7, 0.72], [0.65, 0.75])):
        line, _, (ycol,) = bars[label].lines  # the marker, the caps, the y error segments
        assert line.get_xdata()[0] == pytest.approx(np.mean(xs)) and line.get_ydata()[0] == pytest.approx(np.mean(ys))
        (seg,) = ycol.get_segments()
        assert seg[1][1] - seg[0][1] == pytest.approx(2 * np.std(ys, ddof=1))
    assert [ln.get_ydata()[0] for ln in ax.lines if ln.get_linestyle() == "--"] == [0.5]


@pytest.mark.parametrize("seeds", [[], [1, 1]])
def test_bad_seed_lists_are_refused(tmp_path, data_dir, seeds):
    with pytest.raises(PaczeroError, match="seeds"):
        load_compare_config(_write(tmp_path, data_dir), seeds=seeds)


def test_finished_only_without_finished_runs_is_refused(tmp_path, data_dir):
    with pytest.raises(PaczeroError, match="no run"):
        compare(load_compare_config(_write(tmp_path, data_dir), out=str(tmp_path / "empty")), finished_only=True)
    assert not (tmp_path / "empty").exists()


@pytest.mark.slow  # trains many tiny runs
def test_shared_set_up_equals_separate_runs_bit_for_bit(tmp_path, data_dir, monkeypatch):
    """compare builds each seed's model, records and engine once and lends them, reset to θ_0, to every cell: each
    run's public files equal those of the same run made alone with its own set-up and the same secret; an
    interrupted cell resumes on the shared set-up to the same files too."""
    from paczero import build as build_module
    from paczero.rundir import RunDir
    from paczero.trainer import Trainer

    builds = []
    real = build_module.build
    monkeypatch.setattr(build_module, "build", lambda cfg, **kw: builds.append(kw.get("base") is None) or real(cfg,
                                                                                                            **kw))
    cfg = load_compare_config(_write(tmp_path, data_dir), out=str(tmp_path / "shared"), seeds=[3, 5])
    runs = plan(cfg)
    interrupted = Trainer(runs[1][1])  # a cell started before: the comparison resumes it on the shared set-up
    interrupted.setup()
    builds.clear()
    compare(cfg)
    assert sum(builds) == 2  # one fresh build per seed, every other run on the shared components
    monkeypatch.setattr(build_module, "build", real)
    for name, run_cfg in runs:
        shared = RunDir(tmp_path / "shared" / name)
        run_cfg.run.output_dir = str(tmp_path / "alone")
        Trainer(run_cfg, secret=shared.load_secret()).run()
        alone = RunDir(tmp_path / "alone" / name)
        for p in shared.public_files():
            if p.name not in ("config.yaml", "metrics.json"):  # they name the output folder
                assert (shared.path / p).read_bytes() == (alone.path / p).read_bytes(), (name, p)
        a, b = shared.read_metrics(), alone.read_metrics()
        for m in (a, b):
            m["config"]["run"].pop("output_dir")
        assert a == b
