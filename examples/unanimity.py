"""How often would the M candidate subsets agree? Measure it before choosing N and M.

Unanimity, the fraction of directions on which every subset mean has the same sign, decides how often ZPL
moves the model (every other release is a public coin) and how often MI pays from its budget. It grows with
the pool size N and falls with the number of subsets M. This script computes the clipped per-record two-point
estimates of D directions at the base model once (2·N·D forward passes), then the unanimity of every (N, M)
asked for, averaged over membership draws: the first N records of the pool stand for a pool of size N.

    PACZERO_DATA_DIR=../shared/data python examples/unanimity.py --config configs/sst2-smollm2-zpl.yaml \\
        --pool 64,256 --subsets 8,16,32,128 --directions 16

The estimates are computed from the pool's records: what this prints is not covered by any run's privacy
statement. Measure on public records of the same kind where you can (``data.n_pool`` records of a public
data set), and treat a choice made on the private pool as outside the guarantee.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from paczero.build import build
from paczero.settings import load_config
from paczero.errors import PaczeroError
from paczero.rng import direction_seed
from paczero.subsets import (
    clip_estimates,
    membership_matrix,
    subset_means,
    subset_signs,
)


def unanimity(estimates: np.ndarray, *, m: int, draws: int) -> float:
    """Mean over ``draws`` membership matrices of the fraction of columns (directions) with one subset sign."""
    n, directions = estimates.shape
    rates = []
    for draw in range(draws):
        membership = membership_matrix(n=n, m=m, seed=draw)
        signs = np.stack([subset_signs(subset_means(membership, estimates[:, d])) for d in range(directions)])
        rates.append(np.mean(np.all(signs == signs[:, :1], axis=1)))
    return float(np.mean(rates))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--config", required=True, help="run config (model, task, prompt, zo.eps, zo.clip)")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="dotted config overrides")
    parser.add_argument("--pool", default="64,256", help="comma-separated pool sizes N")
    parser.add_argument("--subsets", default="8,16,32,128", help="comma-separated numbers of subsets M (even)")
    parser.add_argument("--directions", type=int, default=16, help="directions D")
    parser.add_argument("--draws", type=int, default=50, help="membership matrices per (N, M)")
    parser.add_argument("--clips", help="comma-separated clips c to compare (default: the config's zo.clip)")
    args = parser.parse_args()
    pools = sorted(int(x) for x in args.pool.split(","))
    subsets = sorted(int(x) for x in args.subsets.split(","))

    cfg = load_config(args.config, [*args.overrides, f"data.n_pool={pools[-1]}"])
    c = build(cfg)
    clips = [float(x) for x in args.clips.split(",")] if args.clips else [cfg.zo.clip]
    engine = c.engine  # the run's engine: a cached prefix (zo.cache_prefix) is used
    raw = np.stack([engine.estimates(c.objective, c.encoded["pool"],
                                     direction=direction_seed(cfg.run.seed, 0, k))[0]
                    for k in range(args.directions)], axis=1)

    print(f"unanimity over {args.directions} directions at the base model, {args.draws} membership draws each")
    for clip in clips:
        estimates = clip_estimates(raw, clip)[0]
        print(f"\nclip c = {clip:g}\n")
        print("| N | " + " | ".join(f"M = {m}" for m in subsets) + " |")
        print("|---|" + "---|" * len(subsets))
        for n in pools:
            rates = [unanimity(estimates[:n], m=m, draws=args.draws) for m in subsets]
            print(f"| {n} | " + " | ".join(f"{r:.2f}" for r in rates) + " |")


if __name__ == "__main__":
    try:
        main()
    except PaczeroError as exc:
        sys.exit(f"unanimity.py: error: {exc}")
