"""docs/results.md, "DP-SGD or PACZero?": every run of that section, by name, resumable.

    PACZERO_DATA_DIR=../shared/data .venv/bin/python docs/results/dpsgd.py            # every run: head, headnorm, eps6
    PACZERO_DATA_DIR=../shared/data .venv/bin/python docs/results/dpsgd.py SET ...    # the runs of some sets
    .venv/bin/python docs/results/dpsgd.py --summary [--runs DIR ...]                # mean ± sd per cell
    .venv/bin/python docs/results/dpsgd.py --sweeps                                  # every swept rate
    PACZERO_DATA_DIR=../shared/data .venv/bin/python docs/results/dpsgd.py --norms   # the dev gradient norms (C)

The set-up is ``scale.py``'s (its runner, its folder ``runs/scale`` and its head config): SST-2 with the review
prompt on the packaged SmolLM2-135M, N = 1000, M = 128, 500 public dev records (selection on dev loss), all 872
validation records as the test set, seeds 0, 1, 2. Two trainable sets: ``head`` (the two label words' LM-head rows,
1,152 numbers) and ``headnorm`` (those rows and the final norm, 1,728 numbers).

The bounds are matched on the membership-inference posterior: (ε, 10⁻⁵)-DP at ε ∈ {0.5, 1, 2, 6} against PACZero-MI
at the MI whose bound equals (ε, 0)-DP's (0.030, 0.111, 0.328, 0.676 nats, as ``paczero compare`` matches them).

Learning rates are chosen on dev accuracy (ties: dev loss) at seed 0, never on test: each set's runs start with a sweep of DP-SGD at ε = 1
and, on ``headnorm``, ZPL-skip, MI (at 0.111 nats) and the first-order reference; on ``head`` those three take the rates
``scale.py lr`` chose (``SCALE_RATES``), and its runs ``head-zplskip-s*``, ``head-fo-s*``, ``head-mi011-s*`` and
``head-mi033-s*`` are cited, not rerun (``--runs`` names the folders to read them from).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from pathlib import Path
from typing import Callable, Iterator

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scale import HEAD, OUT, SEEDS, train  # noqa: E402

EPSILONS = ("0.5", "1.0", "2.0", "6.0")
MATCHED_MI = {"0.5": "0.030", "1.0": "0.111", "2.0": "0.328", "6.0": "0.676"}
"""The MI budget (nats) whose MIA bound equals (ε, 0)-DP's, to three decimals (``scale.py``'s 0.111 and 0.328; the summary
prints each cell's own bound)."""
SETS = {"head": [], "headnorm": ["model.trainable.final_norm=true"]}
CLIP = "17"
"""DP-SGD's clip C: the median per-record gradient norm over the trainable set at θ_0 on the public dev records
(17.3 on both sets; 10 % – 90 %: 5.1 – 35.7; ``--norms`` prints them). C = 1 clipped every record to a unit vector,
which drops how wrong each record is: on the head set the dev accuracy fell from 0.78 to 0.62 within 100 steps at
ε = 6 (runs kept in ``runs/scale-clip1``)."""
DPSGD = ["privacy.mechanism=dpsgd", f"privacy.grad_clip={CLIP}", "privacy.sample_rate=0.064", "privacy.delta=1e-5",
         "train.steps=300", "train.eval_every=20"]
KINDS = {
    "dpsgd": DPSGD,
    "zplskip": ["privacy.zpl_disagreement=skip"],
    "mi": ["privacy.mechanism=mi"],
    "fo": ["privacy.mechanism=firstorder", "train.steps=300", "train.eval_every=20"],
}
SWEEPS = {"dpsgd": ("1e-4", "3e-4", "1e-3", "3e-3"), "zplskip": ("3e-3", "1e-2", "3e-2"),
          "mi": ("1e-3", "3e-3", "1e-2"), "fo": ("1e-3", "3e-3", "1e-2")}
SWEEP_AT = {"dpsgd": ["privacy.epsilon=1.0"], "mi": ["privacy.budget=0.111"]}
SCALE_RATES = {"zplskip": "1e-2", "mi": "3e-3", "fo": "3e-3"}
"""The rates ``docs/results/scale.py lr`` chose on the head set (lowest best-dev loss at seed 0; MI takes ZPL's)."""
CITED = {"head-zplskip": ("head-zplskip-lr1e-2", "head-zplskip-s1", "head-zplskip-s2"),
         "head-fo": ("head-fo-lr3e-3", "head-fo-s1", "head-fo-s2"),
         "head-mi0.111": ("head-mi011-s0", "head-mi011-s1", "head-mi011-s2"),
         "head-mi0.328": ("head-mi033-s0", "head-mi033-s1", "head-mi033-s2")}
"""Cells of the head set that ``scale.py`` ran (its run names, seeds 0, 1, 2): cited, not rerun."""


def _sweep_name(s: str, kind: str, lr: str) -> str:
    return f"{s}-{kind}-sweep-lr{lr}"


def chosen_lr(s: str, kind: str) -> str:
    """The swept rate of ``kind`` on set ``s`` whose selected checkpoint had the highest dev accuracy (ties: the lower
    dev loss). Not ``scale.py``'s rule (the lowest dev loss): on the head set that rule picks DP-SGD's 3e-2 by a dev
    loss 0.001 below 1e-2's, at a dev accuracy of 0.792 against 0.854 (every rate's figures are in the results)."""
    if s == "head" and kind != "dpsgd":
        return SCALE_RATES[kind]
    best = None
    for lr in SWEEPS[kind]:
        path = OUT / _sweep_name(s, kind, lr) / "metrics.json"
        if not path.is_file():
            raise SystemExit(f"dpsgd: the learning-rate sweep has not finished ({path} missing)")
        dev = json.loads(path.read_text())["best_dev"]
        key = (-dev["accuracy"], dev["loss"])
        if best is None or key < best[0]:
            best = (key, lr)
    return best[1]


def cells(s: str) -> list[tuple[str, str, list[str]]]:
    """(cell, kind, settings) of set ``s``: DP-SGD and MI at each matched bound, ZPL-skip, the first-order reference."""
    out = [(f"{s}-dpsgd-eps{e}", "dpsgd", [f"privacy.epsilon={e}"]) for e in EPSILONS]
    out += [(f"{s}-mi{MATCHED_MI[e]}", "mi", [f"privacy.budget={MATCHED_MI[e]}"]) for e in EPSILONS]
    out += [(f"{s}-zplskip", "zplskip", []), (f"{s}-fo", "fo", [])]
    return [(cell, kind, extra) for cell, kind, extra in out if not (s == "head" and cell in CITED)]


def _run(s: str, cell: str, kind: str, extra: list[str], seed: int) -> tuple[str, list[str]]:
    """A run of ``cell`` at its chosen rate; at seed 0 on the sweep's own settings, the sweep's run itself."""
    lr = chosen_lr(s, kind)
    base = [*SETS[s], *KINDS[kind], *extra, f"train.lr={lr}"]
    if seed == 0 and extra == SWEEP_AT.get(kind, []) and not (s == "head" and kind != "dpsgd"):
        return _sweep_name(s, kind, lr), base
    return f"{cell}-s{seed}", [*base, f"run.seed={seed}"]


def chunks(s: str) -> list[Callable[[], Iterator[tuple[str, list[str]]]]]:
    """The runs of set ``s`` in set-ups: seed 0's sweep, then each seed's cells (their rates resolved when the chunk
    starts, after the sweep). Every chunk shares one data, model and seed, so it is set up once (the cached
    features of 2,372 records)."""
    sweep = [(_sweep_name(s, k, lr), [*SETS[s], *KINDS[k], *SWEEP_AT.get(k, []), f"train.lr={lr}"])
             for k, lrs in SWEEPS.items() if s == "headnorm" or k == "dpsgd" for lr in lrs]
    def at(seed: int):  # a generator: the rates are chosen when its first cell is reached, after the sweep
        yield from sweep if seed == SEEDS[0] else []
        yield from (_run(s, cell, kind, extra, seed) for cell, kind, extra in cells(s))

    return [lambda seed=seed: at(seed) for seed in SEEDS]


EPS6_RATES = ("1e-3", "3e-3", "1e-2")
"""Group ``eps6``: DP-SGD on the head set at ε = 6, seed 0, at larger rates than the one chosen at ε = 1."""


def eps6() -> list[tuple[str, list[str]]]:
    return [(f"head-dpsgd-eps6.0-lr{lr}-s0", [*DPSGD, "privacy.epsilon=6.0", f"train.lr={lr}"]) for lr in EPS6_RATES]


GROUPS = (*SETS, "eps6")
def _metrics(run: str, folders: list[Path]) -> dict | None:
    for folder in folders:
        path = folder / run / "metrics.json"
        if path.is_file():
            return json.loads(path.read_text())
    return None


def summary(folders: list[Path]) -> None:
    """Mean ± sample sd over the seeds of every cell, with its MIA bound; the zero-shot accuracy of each set."""
    print("| set | cell | MIA posterior bound | test accuracy, mean ± sd | seeds | min – max |")
    print("|---|---|---|---|---|---|")
    for s in SETS:
        rows = [(cell, list(runs)) for cell, runs in CITED.items() if s == "head"]
        rows += [(cell, [_run(s, cell, kind, extra, seed)[0] for seed in SEEDS]) for cell, kind, extra in cells(s)]
        zero_shot = set()
        for cell, runs in sorted(rows):
            metrics = [m for m in (_metrics(run, folders) for run in runs) if m is not None]
            if not metrics:
                continue
            zero_shot |= {m["zero_shot_test"]["accuracy"] for m in metrics}
            acc = [m["test"]["accuracy"] for m in metrics]
            sd = statistics.stdev(acc) if len(acc) > 1 else math.nan
            print(f"| {s} | {cell} | {max(m['privacy']['mia_posterior_bound'] for m in metrics):.4f} | "
                  f"**{statistics.fmean(acc):.4f}** ± {sd:.4f} | {len(acc)} | {min(acc):.4f} – {max(acc):.4f} |")
        if zero_shot:
            print(f"| {s} | zero-shot | 0.5 | {', '.join(f'{a:.4f}' for a in sorted(zero_shot))} | | |")


def sweeps(folders: list[Path]) -> None:
    """Every swept rate at seed 0: the selected checkpoint's dev loss and accuracy, and its test accuracy; ``*`` marks
    the rate chosen (highest dev accuracy, ties on dev loss)."""
    print("| set | kind | lr | selected step | dev loss | dev accuracy | test accuracy |")
    print("|---|---|---|---|---|---|---|")
    for s in SETS:
        for kind, lrs in SWEEPS.items():
            for lr in lrs:
                m = _metrics(_sweep_name(s, kind, lr), folders)
                if m is None:
                    continue
                dev = m["best_dev"]
                chosen = " *" if chosen_lr(s, kind) == lr else ""
                print(f"| {s} | {kind} | {lr}{chosen} | {dev['step']} | {dev['loss']:.4f} | {dev['accuracy']:.3f} | "
                      f"{m['test']['accuracy']:.4f} |")


def norms() -> None:
    """Each set's per-record gradient norms at θ_0 on the public dev records (what ``CLIP`` is chosen from)."""
    import numpy as np

    from paczero.build import build
    from paczero.settings import load_config

    for s, extra in SETS.items():
        cfg = load_config(HEAD, [*extra, "run.progress=false"])
        c = build(cfg)
        g, _ = c.engine.per_record_gradients(c.objective, c.encoded["dev"])
        n = g.norm(dim=1).numpy()
        print(f"{s}: d = {g.shape[1]}, dev gradient L2 norms at θ_0, 10/25/50/75/90 %: "
              f"{', '.join(f'{x:.3f}' for x in np.quantile(n, [0.1, 0.25, 0.5, 0.75, 0.9]))}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("groups", nargs="*", help=f"some of the groups {', '.join(GROUPS)} (default: all, in order)")
    parser.add_argument("--summary", action="store_true", help="print mean ± sd per cell, train nothing")
    parser.add_argument("--sweeps", action="store_true", help="print every swept rate's dev and test figures")
    parser.add_argument("--norms", action="store_true", help="print the per-record gradient norms on the dev set")
    parser.add_argument("--runs", action="append", type=Path, default=[],
                        help=f"also read finished runs from this folder (after {OUT}); repeatable")
    args = parser.parse_args()
    unknown = set(args.groups) - set(GROUPS)
    if unknown:
        parser.error(f"unknown groups {sorted(unknown)}; expected some of {', '.join(GROUPS)}")
    if args.norms:
        norms()
        return 0
    if args.summary or args.sweeps:
        (summary if args.summary else sweeps)([OUT, *args.runs])
        return 0
    for name in args.groups or GROUPS:
        for chunk in (chunks(name) if name in SETS else [eps6]):
            train(chunk())
    return 0


if __name__ == "__main__":
    sys.exit(main())
