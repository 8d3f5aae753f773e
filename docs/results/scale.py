"""docs/results.md, "The paper's scale on a CPU": every run of that section, by name, resumable.

    PACZERO_DATA_DIR=../shared/data .venv/bin/python docs/results/scale.py            # every run, in order
    PACZERO_DATA_DIR=../shared/data .venv/bin/python docs/results/scale.py GROUP ...  # the runs of some groups
    .venv/bin/python docs/results/scale.py --table [GROUP ...]                       # the table of finished runs

Runs go to ``runs/scale/<name>``; a finished run is skipped, an interrupted one resumed. Consecutive runs with the
same data, model and seed share one set-up (the model, the records and the cached features, as ``paczero compare``
does), put back to θ_0 before each run. Every run: SST-2 with the review prompt on the packaged SmolLM2-135M, 500
public dev records for checkpoint selection (on dev loss), all 872 validation records as the test set.

Learning rates: group ``lr`` sweeps each mechanism at seed 0 (head set, N = 1000, M = 128); every later run of that
mechanism takes the rate whose best checkpoint had the lowest dev loss (``lr=<sweep>`` below), so nothing is chosen
on the test set. Seed 0 of a cell at the chosen rate is the sweep's own run.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from pathlib import Path

HEAD = "configs/results/sst2-smollm2-head-zpl.yaml"  # the label words' head rows, N = 1000, M = 128, T = 2000
OUT = Path("runs/scale")
SEEDS = (0, 1, 2)
DP = ["zo.clip=25", "privacy.sample_rate=0.064", "privacy.delta=1e-5"]
KINDS = {  # mechanism (and its fixed settings) of each sweep
    "zpl": ["privacy.mechanism=zpl"],
    "zplskip": ["privacy.zpl_disagreement=skip"],
    "fo": ["privacy.mechanism=firstorder", "train.steps=300", "train.eval_every=20"],
    "mezo": ["privacy.mechanism=mezo", "train.batch_size=16"],
    "dpzero": ["privacy.mechanism=dpzero", *DP],
    "dpaggzo": ["privacy.mechanism=dpaggzo", "zo.directions=64", "train.steps=250", "train.eval_every=25", *DP],
}
SWEEPS = {"zpl": ("3e-4", "1e-3", "2e-3", "3e-3"), "zplskip": ("1e-3", "3e-3", "1e-2", "3e-2"),
          "fo": ("1e-3", "3e-3", "1e-2", "3e-2"), "mezo": ("3e-5", "1e-4", "3e-4"),
          "dpzero": ("1e-5", "3e-5", "1e-4", "3e-4"), "dpaggzo": ("3e-5", "1e-4", "3e-4", "1e-3")}
SWEEP_EXTRA = {"dpzero": ["privacy.epsilon=1.0"], "dpaggzo": ["privacy.epsilon=1.0"]}
"""The DP baselines' rates are swept at ε = 1 and kept at ε = 2."""
SETS = {  # larger trainable sets (``model.trainable`` on top of the head config, head rows off)
    "norms": ["model.trainable.head_rows=false", "model.trainable.norms=2", "model.trainable.final_norm=true"],
    "lora2": ["model.trainable.head_rows=false", "model.trainable.lora_layers=2", "model.lora.r=4",
              "model.lora.alpha=8"],
}


def _sweep_name(kind: str, lr: str) -> str:
    return f"head-{kind}{'-eps1' if kind in SWEEP_EXTRA else ''}-lr{lr}"


def chosen_lr(kind: str) -> str:
    """The swept rate of ``kind`` whose best checkpoint had the lowest dev loss (every sweep run must have finished)."""
    best = None
    for lr in SWEEPS[kind]:
        path = OUT / _sweep_name(kind, lr) / "metrics.json"
        if not path.is_file():
            raise SystemExit(f"scale: the learning-rate sweep has not finished ({path} missing); run group lr first")
        loss = json.loads(path.read_text())["best_dev"]["loss"]
        if best is None or loss < best[0]:
            best = (loss, lr)
    return best[1]


def _cell(name: str, kind: str, extra: list[str], seed: int) -> tuple[str, list[str]]:
    """A run of ``kind`` at its chosen rate; at seed 0 on the sweep's own cell, the sweep's run itself."""
    lr = chosen_lr(kind)
    if seed == 0 and extra == SWEEP_EXTRA.get(kind, []):
        return _sweep_name(kind, lr), [*KINDS[kind], *extra, f"train.lr={lr}"]
    return f"{name}-s{seed}", [*KINDS[kind], *extra, f"train.lr={lr}", f"run.seed={seed}"]


def head_cells() -> list[tuple[str, list[tuple[str, list[str]]]]]:
    """Every mechanism at matched bounds on the head set (N = 1000, M = 128), three seeds: (cell, its runs)."""
    cells = [("head-zpl", "zpl", []), ("head-zplskip", "zplskip", []), ("head-fo", "fo", []),
             ("head-mezo", "mezo", []),
             ("head-mi011", "zpl", ["privacy.mechanism=mi", "privacy.budget=0.111"]),
             ("head-mi033", "zpl", ["privacy.mechanism=mi", "privacy.budget=0.328"]),
             ("head-dpzero-eps1", "dpzero", ["privacy.epsilon=1.0"]),
             ("head-dpzero-eps2", "dpzero", ["privacy.epsilon=2.0"]),
             ("head-dpaggzo-eps1", "dpaggzo", ["privacy.epsilon=1.0"]),
             ("head-dpaggzo-eps2", "dpaggzo", ["privacy.epsilon=2.0"])]
    by_seed = [[(cell, _cell(cell, kind, extra, seed)) for cell, kind, extra in cells] for seed in SEEDS]
    return [(cell, [runs[i][1] for runs in by_seed]) for i, (cell, _, _) in enumerate(cells)]


def group(name: str) -> list[tuple[str, list[str]]]:
    """(run name, overrides of the head config) of the runs of group ``name``, in order."""
    if name == "lr":
        return [(_sweep_name(k, lr), [*KINDS[k], *SWEEP_EXTRA.get(k, []), f"train.lr={lr}"])
                for k, lrs in SWEEPS.items() for lr in lrs]
    if name == "head":  # every mechanism at matched bounds, three seeds (N = 1000, M = 128)
        cells = head_cells()
        return [runs[s] for s in range(len(SEEDS)) for _, runs in cells]  # seed by seed: one set-up per seed
    if name == "ladder":  # ZPL (coin, skip) over N, M and T at seed 0; the first-order reference at N = 256
        out = []
        for n in (256, 1000):
            for m in (16, 128):
                for t in (1000, 5000):
                    for kind in ("zpl", "zplskip"):
                        extra = [f"data.n_pool={n}", f"privacy.n_subsets={m}", f"train.steps={t}",
                                 f"train.eval_every={t // 20}"]
                        out.append(_cell(f"head-{kind}-n{n}-m{m}-t{t}", kind, extra, 0))
            if n == 256:
                out.append(_cell("head-fo-n256", "fo", ["data.n_pool=256"], 0))
        return out
    if name == "sets":  # larger sets at N = 256, M = 16, seed 0: ZPL (coin, skip), MeZO, the first-order reference
        out = []
        for s, parts in SETS.items():
            small = ["data.n_pool=256", "privacy.n_subsets=16", *parts]
            out += [(f"{s}-zpl", [*small, "train.steps=500", "train.eval_every=50", "train.lr=1e-3"]),
                    (f"{s}-zplskip", [*small, *KINDS["zplskip"], "train.steps=500", "train.eval_every=50",
                                      "train.lr=3e-3"]),
                    (f"{s}-mezo", [*small, *KINDS["mezo"], "train.lr=1e-4"]),
                    (f"{s}-fo", [*small, "privacy.mechanism=firstorder", "train.steps=100", "train.eval_every=10",
                                 "train.lr=3e-3"])]
        return out
    raise KeyError(name)


GROUPS = ("lr", "head", "ladder", "sets")


def train(selected: list[tuple[str, list[str]]]) -> None:
    from paczero.compare import SharedSetUp
    from paczero.settings import load_config
    from paczero.rundir import RunDir
    from paczero.trainer import Trainer

    shared = SharedSetUp()
    for name, overrides in selected:
        cfg = load_config(HEAD, [*overrides, f"run.output_dir={OUT}", f"run.name={name}", "run.progress=false"])
        path = OUT / name
        if RunDir(path).finished:
            print(f"scale: {name} finished", flush=True)
            continue
        base = shared.lend(cfg)
        metrics = (Trainer.resume(path, config=cfg, base=base).train() if path.exists()
                   else Trainer(cfg, base=base).run())
        print(f"scale: {name} {metrics['zero_shot_test']['accuracy']:.4f} -> {metrics['test']['accuracy']:.4f}",
              flush=True)


def table(selected: list[tuple[str, list[str]]]) -> None:
    print("| run | mechanism | N | M | T | lr | seed | test accuracy, before → after | best dev step (loss) | "
          "unanimity | steps/s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for name, _ in selected:
        path = OUT / name
        if not (path / "metrics.json").is_file():
            continue
        m = json.loads((path / "metrics.json").read_text())
        c, private, p = m["config"], path / "private", m["privacy"]
        owner = json.loads((private / "privacy.json").read_text())
        unanimity = owner["unanimity_rate"] if p["family"] == "pac" else math.nan
        timing = json.loads((private / "timings.json").read_text())
        mechanism = p["mechanism"] + (f" {p['mi_bound_nats']:g} nats" if p["family"] == "pac" and p["mi_bound_nats"]
                                      else f" ε = {p['dp_epsilon']:.3g}" if p["family"] == "dp" else "")
        print(f"| `{name}` | {mechanism} | {c['data']['n_pool']} | {c['privacy']['n_subsets']} | {c['train']['steps']} | "
              f"{c['train']['lr']:g} | {c['run']['seed']} | {m['zero_shot_test']['accuracy']:.4f} → "
              f"**{m['test']['accuracy']:.4f}** | {m['best_dev']['step']} ({m['best_dev']['loss']:.4f}) | "
              f"{'–' if math.isnan(unanimity) else f'{unanimity:.3f}'} | "
              f"{timing['steps_timed'] / timing['train_s']:.0f} |")


def summary() -> None:
    """Mean ± sample standard deviation over the seeds of every cell of group ``head``."""
    print("| cell | MIA posterior bound | test accuracy, mean ± sd | seeds | min – max |")
    print("|---|---|---|---|---|")
    for cell, runs in head_cells():
        metrics = [json.loads((OUT / run / "metrics.json").read_text()) for run, _ in runs
                   if (OUT / run / "metrics.json").is_file()]
        if not metrics:
            continue
        acc = [m["test"]["accuracy"] for m in metrics]
        sd = statistics.stdev(acc) if len(acc) > 1 else math.nan
        print(f"| {cell} | {max(m['privacy']['mia_posterior_bound'] for m in metrics):.4f} | "
              f"**{statistics.fmean(acc):.4f}** ± {sd:.4f} | {len(acc)} | {min(acc):.4f} – {max(acc):.4f} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("groups", nargs="*", help=f"some of {', '.join(GROUPS)} (default: all, in that order)")
    parser.add_argument("--table", action="store_true", help="print the table of finished runs, train nothing")
    parser.add_argument("--summary", action="store_true", help="print group head's mean ± sd per cell, train nothing")
    args = parser.parse_args()
    unknown = set(args.groups) - set(GROUPS)
    if unknown:
        parser.error(f"unknown groups {sorted(unknown)}; expected some of {', '.join(GROUPS)}")
    if args.summary:
        summary()
        return 0
    for name in args.groups or GROUPS:  # groups resolve their learning rates from the sweep when they start
        (table if args.table else train)(group(name))
    return 0


if __name__ == "__main__":
    sys.exit(main())
