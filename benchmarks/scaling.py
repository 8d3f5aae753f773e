"""Step time of one process against ``torchrun`` with G processes, on the same run config.

Runs ``paczero train`` for a few steps in each layout (dev/test evaluations cut to a minimum) and reads
the mean step time from each run's ``timings.json``. Prints JSON. Example (2 CPU cores)::

    python benchmarks/scaling.py --config configs/sst2-smollm2-zpl.yaml --steps 3 --procs 2

One process uses every core with torch's threads; G processes get cores/G threads each. Run it on an
otherwise idle machine: concurrent processes distort CPU timings severalfold.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path


def _run(cmd: list[str], cwd: Path, env: dict[str, str]) -> dict:
    subprocess.run(cmd, cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL)
    return json.loads((cwd / "runs" / "r" / "timings.json").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/sst2-smollm2-zpl.yaml")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--procs", type=int, default=2)
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    config = str(Path(args.config).resolve())
    common = ["train", "--config", config, f"train.steps={args.steps}", f"train.eval_every={args.steps}",
              "train.eval_before=false", "data.n_dev=8", "data.n_test=8", "run.name=r", "run.progress=false",
              *args.overrides]
    env = {**os.environ}
    results = {"config": args.config, "steps": args.steps, "cpu_count": os.cpu_count()}
    with tempfile.TemporaryDirectory() as one, tempfile.TemporaryDirectory() as many:
        t1 = _run([sys.executable, "-m", "paczero", *common], Path(one), env)
        tg = _run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node",
                   str(args.procs), "-m", "paczero", *common], Path(many), env)
    results.update(step_s_1_process=t1["step_s_mean"], **{f"step_s_{args.procs}_processes": tg["step_s_mean"]},
                   speedup=t1["step_s_mean"] / tg["step_s_mean"])
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
