"""docs/results.md, "The paper's scale on a CPU": every run of that section, by name, resumable.

    PACZERO_DATA_DIR=../shared/data .venv/bin/python docs/results/scale.py            # every run, in order
    PACZERO_DATA_DIR=../shared/data .venv/bin/python docs/results/scale.py GROUP ...  # the runs of some groups
    .venv/bin/python docs/results/scale.py --table [GROUP ...]                       # the table of finished runs

Runs go to ``runs/scale/<name>``; a finished run is skipped, an interrupted one resumed. Consecutive runs with the
same data, model and seed share one set-up (the model, the records and the cached features, as ``paczero compare``
does), put back to θ_0 before each run. Every run: SST-2 with the review prompt on the packaged SmolLM2-135M, 128
public dev records for checkpoint selection (on dev loss), all 872 validation records as the test set.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HEAD = "configs/results/sst2-smollm2-head-zpl.yaml"  # the label words' head rows, N = 1000, M = 128, T = 2000
OUT = Path("runs/scale")
NORMS = ["model.trainable.head_rows=false", "model.trainable.norms=2", "model.trainable.final_norm=true"]
LORA = ["model.trainable.head_rows=false", "model.trainable.lora_layers=2", "model.lora.r=4", "model.lora.alpha=8"]
DP = ["zo.clip=25", "privacy.sample_rate=0.064", "privacy.delta=1e-5"]


def _seeds(name: str, overrides: list[str], seeds=(0, 1, 2)) -> dict[str, list[str]]:
    return {f"{name}-s{s}": [*overrides, f"run.seed={s}"] for s in seeds}


GROUPS: dict[str, dict[str, list[str]]] = {
    # learning rates, chosen on dev loss at seed 0 (head set, N = 1000, M = 128, T = 2000)
    "lr": {
        **{f"head-zpl-lr{lr}": [f"train.lr={lr}"] for lr in ("3e-4", "1e-3", "3e-3")},
        **{f"head-fo-lr{lr}": ["privacy.mechanism=firstorder", "train.steps=300", "train.eval_every=20",
                                f"train.lr={lr}"] for lr in ("1e-3", "1e-2", "3e-2")},
        **{f"head-mezo-lr{lr}": ["privacy.mechanism=mezo", "train.batch_size=16", f"train.lr={lr}"]
           for lr in ("3e-5", "1e-4", "3e-4")},
        **{f"head-dpzero-eps1-lr{lr}": ["privacy.mechanism=dpzero", "privacy.epsilon=1.0", *DP, f"train.lr={lr}"]
           for lr in ("1e-4", "1e-3", "1e-2")},
    },
}


def runs(groups: list[str]) -> list[tuple[str, str, list[str]]]:
    """(name, config, overrides) of the runs of ``groups``, in order."""
    return [(name, HEAD, overrides) for g in groups for name, overrides in GROUPS[g].items()]


def train(selected: list[tuple[str, str, list[str]]]) -> None:
    from paczero.compare import SharedSetUp
    from paczero.config import load_config
    from paczero.rundir import RunDir
    from paczero.trainer import Trainer

    shared = SharedSetUp()
    for name, config, overrides in selected:
        cfg = load_config(config, [*overrides, f"run.output_dir={OUT}", f"run.name={name}", "run.progress=false"])
        path = OUT / name
        if RunDir(path).finished:
            print(f"scale: {name} finished", flush=True)
            continue
        base = shared.lend(cfg)
        trainer = Trainer.resume(path, config=cfg, base=base) if path.exists() else Trainer(cfg, base=base)
        if not path.exists():
            trainer.setup()
        metrics = trainer.train()
        print(f"scale: {name} {metrics['zero_shot_test']['accuracy']:.4f} -> {metrics['test']['accuracy']:.4f}",
              flush=True)


def table(selected: list[tuple[str, str, list[str]]]) -> None:
    print("| run | N | M | T | lr | seed | test accuracy, before -> after | best dev step (loss) | unanimity | steps/s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, _, _ in selected:
        path = OUT / name
        if not (path / "metrics.json").is_file():
            continue
        m = json.loads((path / "metrics.json").read_text())
        c, private = m["config"], path / "private"
        unanimity = json.loads((private / "privacy.json").read_text()).get("unanimity_rate")
        timing = json.loads((private / "timings.json").read_text())
        rate = timing["steps_timed"] / timing["train_s"] if timing.get("train_s") else float("nan")
        print(f"| `{name}` | {c['data']['n_pool']} | {c['privacy']['n_subsets']} | {c['train']['steps']} | "
              f"{c['train']['lr']:g} | {c['run']['seed']} | {m['zero_shot_test']['accuracy']:.4f} -> "
              f"**{m['test']['accuracy']:.4f}** | {m['best_dev']['step']} ({m['best_dev']['loss']:.4f}) | "
              f"{unanimity if unanimity is None else f'{unanimity:.3f}'} | {rate:.0f} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("groups", nargs="*", help=f"some of {', '.join(GROUPS)} (default: all, in that order)")
    parser.add_argument("--table", action="store_true", help="print the table of finished runs, train nothing")
    args = parser.parse_args()
    unknown = set(args.groups) - set(GROUPS)
    if unknown:
        parser.error(f"unknown groups {sorted(unknown)}; expected some of {', '.join(GROUPS)}")
    selected = runs(args.groups or list(GROUPS))
    table(selected) if args.table else train(selected)
    return 0


if __name__ == "__main__":
    sys.exit(main())
