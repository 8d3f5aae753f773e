"""The ``paczero`` command: ``train`` (and ``--resume``), ``eval``, ``replay``, ``audit``, ``report``,
``privacy`` and ``compare``.

A problem the user can fix (bad config, missing data, a model that cannot be loaded, an impossible
budget) is printed as one line without a traceback and exits with code 2.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
import warnings
from pathlib import Path
from typing import Any, Sequence

from paczero.errors import PRIVATE_TAG, PaczeroError
from paczero.layout import CHECKPOINTS_DIR

EXIT_USAGE = 2


def _dump(obj: dict[str, Any]) -> str:
    clean = {k: (None if isinstance(v, float) and math.isinf(v) else v) for k, v in obj.items()}
    return json.dumps(clean, indent=2, sort_keys=True)


def _print_result(obj: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(_dump(obj))
    else:
        for key, value in obj.items():
            print(f"{key}: {value}")


# ------------------------------------------------------------------------ train / eval
def _cmd_train(args: argparse.Namespace) -> int:
    from paczero.settings import load_config, load_run_config
    from paczero.trainer import Trainer

    if args.forget_secret is not None:
        return _forget_secret(Path(args.forget_secret))
    from paczero import distributed

    if args.resume is not None:
        if args.config:
            given = load_config(args.config, args.overrides)
        else:
            given = load_run_config(args.resume, args.overrides) if args.overrides else None
        cfg = given or load_run_config(args.resume)
    else:
        cfg = load_config(args.config, args.overrides)
    # Under torchrun (WORLD_SIZE > 1) join the process group; alone this is a no-op.
    dist = distributed.from_environment(device=cfg.model.device, timeout_s=cfg.run.dist_timeout_s)
    try:
        if args.resume is not None:
            trainer = Trainer.resume(Path(args.resume), config=given, dist=dist)
            metrics = trainer.train()
        else:
            trainer = Trainer(cfg, config_name=Path(args.config).stem if args.config else None, dist=dist)
            metrics = trainer.run()
        # Leave together: a rank that tears down its gloo group while a peer still works aborted now and
        # then ("terminate called without an active exception") after a finished run.
        dist.barrier()
    finally:
        distributed.shutdown()
    if not dist.main:
        return _leave(0, dist)
    run, zero, metric = trainer.run_dir.path, metrics["zero_shot_test"], trainer.c.objective.metric
    best = metrics["best_dev"]
    selected = (f"the last checkpoint, step {best['step']}: no dev set" if best["selected_on"] == "last"
                else f"checkpoint of step {best['step']}, selected on dev {best['selected_on']}")
    print(f"run directory: {run}")
    if zero is not None:
        print(f"test {metric} before training: {zero[metric]:.4f}")
    print(f"test {metric} after training:  {metrics['test'][metric]:.4f} ({selected})")
    if "macro_f1" in metrics["test"]:
        print(f"test macro-F1 after training: {metrics['test']['macro_f1']:.4f} (per class and the confusion matrix: "
              f"{trainer.run_dir.metrics_path})")
    print(f"privacy: {metrics['privacy']['summary']}")
    figures = trainer.private_figures
    if trainer.c.membership is not None:
        print(f"{PRIVATE_TAG} unanimity rate {figures['unanimity_rate']:.3f}, MI charged "
              f"{figures['achieved_mi_nats']:.4g} nats (computed on the pool; in {trainer.run_dir.privacy_path})")
    print(f"next: paczero privacy {run}  |  paczero export {run} --out <folder>  |  paczero audit {run}")
    return _leave(0, dist)


def _leave(code: int, dist: "distributed.Dist") -> int:
    """A finished process of a torchrun job exits at once, its output flushed and every file closed: under load,
    gloo's threads now and then aborted the interpreter's own teardown after a finished run ("terminate called
    without an active exception", exit -6), which made torchrun report a complete run as failed."""
    if dist.world <= 1:
        return code
    sys.stdout.flush()
    sys.stderr.flush()
    logging.shutdown()
    os._exit(code)


def _forget_secret(run: Path) -> int:
    from paczero.settings import load_run_config
    from paczero.mechanisms.registry import spec
    from paczero.privacy.statement import Family
    from paczero.rundir import RunDir

    run_dir = RunDir.open(run)
    if not run_dir.finished:
        raise PaczeroError(f"{run} has not finished (no metrics.json); forgetting its secret would make it "
                           "impossible to resume")
    family = spec(load_run_config(run).privacy.mechanism).family
    removed = run_dir.forget_secret(keep_diagnostics=family != Family.DP)
    for path in removed:
        print(f"removed {path}")
    print(f"forgot the secret of {run}: {len(removed)} private files overwritten and removed; the run can no longer "
          "be resumed or audited")
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    from paczero.build import build
    from paczero.checkpoint import load_weights
    from paczero.settings import load_config, load_run_config

    checkpoint = Path(args.checkpoint) if args.checkpoint else None
    if args.run is not None:
        cfg = load_run_config(Path(args.run), args.overrides)
        checkpoint = checkpoint or Path(args.run) / CHECKPOINTS_DIR / "best"
    else:
        cfg = load_config(args.config, args.overrides)
    if checkpoint is not None and not checkpoint.is_dir():
        raise PaczeroError(f"checkpoint folder not found: {checkpoint}")
    if "pool" in args.splits and not args.private:
        raise PaczeroError("--splits pool: the pool's loss and accuracy are private figures; add --private to print "
                           "them (never publish them)")
    c = build(cfg)
    if checkpoint is not None:
        load_weights(c.loaded, checkpoint)
    result = {split: c.evaluate(split) for split in args.splits}
    print(json.dumps(result, indent=2, sort_keys=True))
    return 0


def _cmd_replay(args: argparse.Namespace) -> int:
    from paczero.settings import load_run_config
    from paczero.replay import replay_run

    run, out = Path(args.run), Path(args.out)
    cfg = load_run_config(run)
    if out.exists():
        raise PaczeroError(f"--out {out} already exists; give a new folder")
    replay_run(run, out, config=cfg)
    print(f"replayed {run} into {out}")
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    from paczero.compare import compare, load_compare_config, tables

    def numbers(text: str, kind: type, flag: str) -> list:
        try:
            return [kind(x) for x in text.split(",") if x.strip()]
        except ValueError:
            what = "integers" if kind is int else "numbers"
            raise PaczeroError(f"{flag} {text!r} is not a comma-separated list of {what}") from None

    cfg = load_compare_config(args.config,
                              epsilons=numbers(args.epsilons, float, "--epsilons") if args.epsilons else None,
                              mechanisms=args.mechanisms.split(",") if args.mechanisms else None, out=args.out,
                              seeds=numbers(args.seeds, int, "--seeds") if args.seeds else None)
    rows = compare(cfg, args.overrides, finished_only=args.finished_only)
    print(tables(rows)[1], end="")
    print(f"table written to {Path(cfg.out) / 'compare.csv'} and compare.md")
    if len(cfg.seeds) > 1:
        print(f"mean and spread over seeds: {Path(cfg.out) / 'compare-summary.csv'} and compare-summary.md")
    return 0


# ------------------------------------------------------------------------ audit / report
def _interval(values: list[float]) -> str:
    return f"[{values[0]:.3f}, {values[1]:.3f}]"


def _cmd_audit(args: argparse.Namespace) -> int:
    from paczero.audit import audit_run

    summary = audit_run(Path(args.run), checkpoint=args.checkpoint, overrides=args.overrides)
    if args.json:  # machine-readable private figures carry no tag: they need the explicit opt-in
        print(json.dumps(summary if args.private else {"private_summary": str(Path(summary["folder"]) /
                                                                               "summary.json")},
                         indent=2, sort_keys=True))
        return 0
    lines = [f"audit of {args.run} ({args.checkpoint} checkpoint): members = {summary['members']}",
             f"{summary['n_members']} members, {summary['n_nonmembers']} non-members; {summary['note']}"]
    for name, a in summary["attacks"].items():
        if not a.get("applicable", True):
            lines.append(f"{name} attack: not applicable ({a['reason']})")
            continue
        lines.append(f"{name} attack: AUC {a['auc']:.3f} {_interval(a['auc_interval'])}, "
                     f"TPR at 1% FPR {a['tpr_at_1pct_fpr']:.3f}, at 0.1% FPR {a['tpr_at_0.1pct_fpr']:.3f}, "
                     f"balanced accuracy {a['balanced_accuracy']:.3f} {_interval(a['balanced_accuracy_interval'])}")
        if "bayes_success" in a:
            lines.append(f"  Bayes-optimal success {a['bayes_success']:.3f} {_interval(a['bayes_success_interval'])} "
                         f"vs theoretical bound {a['theoretical_bound']:.4f}")
    lines.append(f"written (mode 0600): {summary['folder']} (summary.json, scores.csv, roc.png)")
    for line in lines:
        print(f"{PRIVATE_TAG} {line}")
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from paczero.report import FIGURES, write_report

    written = write_report(args.runs, Path(args.out), private=args.private)
    public = [p.name for name, p in written.items() if name in FIGURES or name == "report"]
    print(f"wrote {', '.join(public)} to {args.out} (public files only)")
    if args.private:
        print(f"{PRIVATE_TAG} wrote the owner's figures computed on the pool to {Path(args.out) / 'private'} "
              "(mode 0600): do not publish them")
    return 0


# ------------------------------------------------------------------------ export / verify
def _cmd_export(args: argparse.Namespace) -> int:
    from paczero.export import export_run, push_to_hub

    written = export_run(Path(args.run), Path(args.out), checkpoint=args.checkpoint, merge_lora=args.merge_lora,
                         data_dir=args.data_dir, paths=args.paths)
    how = {"full": "AutoModelForCausalLM.from_pretrained", "merged": "AutoModelForCausalLM.from_pretrained",
           "adapter": "PeftModel.from_pretrained"}[written["format"]]
    record = "public record (no transcript: a first-order run)" if written["first_order"] else "public transcript"
    print(f"exported the {written['checkpoint']} checkpoint (step {written['step']}) of {args.run} to "
          f"{written['folder']}: {written['format']} weights ({how}), README.md model card, {record} in "
          f"{written['folder'] / 'paczero'}; check it with: paczero verify {written['folder']}")
    if args.push_to_hub:
        url = push_to_hub(written["folder"], args.push_to_hub, private=args.hub_private)
        print(f"pushed {written['folder']} to {url}")
    return 0


def _cmd_verify(args: argparse.Namespace) -> int:
    from paczero.verify import verify

    lines = verify(Path(args.target), data_dir=args.data_dir, paths=args.paths)
    print(f"verified {args.target}: {lines[0]}")
    for line in lines[1:]:
        print(f"  {line}")
    return 0


# ------------------------------------------------------------------------ privacy
def _cmd_privacy(args: argparse.Namespace) -> int:
    from paczero.privacy import (
        channel_mi,
        dp_epsilon_for_mi,
        dp_posterior_bound,
        mi_for_dp_epsilon,
        mia_posterior_bound,
        sigma_for_mi,
    )
    from paczero.privacy.bsc import bsc_mi, flip_for_mi, sigma_of_flip

    chosen = [args.run is not None, args.dp_epsilon is not None, args.mi is not None, args.channel, args.dp_noise]
    if sum(chosen) != 1:
        raise PaczeroError("paczero privacy: give exactly one of RUN_DIR, --dp-epsilon, --mi, --channel, --dp-noise")
    try:
        if args.dp_noise:
            result = _dp_noise(args)
        elif args.dp_epsilon is not None:
            if args.dp_epsilon < 0:
                raise PaczeroError(f"--dp-epsilon {args.dp_epsilon} is invalid; expected >= 0")
            result = {"dp_epsilon": args.dp_epsilon, "mi_nats": mi_for_dp_epsilon(args.dp_epsilon),
                      "mia_posterior_bound": dp_posterior_bound(args.dp_epsilon)}
        elif args.mi is not None:
            result = {"mi_nats": args.mi, "mia_posterior_bound": mia_posterior_bound(args.mi),
                      "dp_epsilon_equivalent": dp_epsilon_for_mi(args.mi)}
        elif args.channel:
            if args.q is None or args.beta is None:
                raise PaczeroError("paczero privacy --channel needs --q and --beta")
            flip = flip_for_mi(q=args.q, beta=args.beta)
            sigma = sigma_for_mi(q=args.q, beta=args.beta)
            result = {"q": args.q, "beta": args.beta, "bsc_flip": flip, "bsc_sigma": sigma_of_flip(flip),
                      "bsc_mi": bsc_mi(q=args.q, flip=flip), "bsc_true_sign_probability": 1.0 - flip,
                      "awgn_sigma": sigma, "awgn_mi": channel_mi(q=args.q, sigma=sigma)}
        else:
            result = run_statement(Path(args.run))
    except ValueError as exc:
        raise PaczeroError(str(exc)) from None
    if args.run is not None and args.private and args.json:  # the opt-in: the owner's figures in the JSON itself
        result = {**result, "private_figures": _private_figures(Path(args.run))}
    _print_result(result, args.json)
    if args.run is not None and args.private and not args.json:
        for key, value in _private_figures(Path(args.run)).items():
            print(f"{PRIVATE_TAG} {key}: {value}")
    return 0


def _private_figures(run: Path) -> dict[str, Any]:
    from paczero.rundir import RunDir

    run_dir = RunDir.open(run)
    if not run_dir.privacy_path.is_file():
        raise PaczeroError(f"{run_dir.privacy_path} not found (the run has not finished, or its private folder was "
                           "removed)")
    return json.loads(run_dir.privacy_path.read_text())


def _dp_noise(args: argparse.Namespace) -> dict[str, Any]:
    from paczero.privacy.accounting import RELATION, dp_epsilon, noise_multiplier

    missing = [flag for flag, value in (("--epsilon", args.epsilon), ("--steps", args.steps),
                                        ("--sample-rate", args.sample_rate)) if value is None]
    if missing:
        raise PaczeroError(f"paczero privacy --dp-noise needs {', '.join(missing)}")
    common = {"delta": args.delta, "sample_rate": args.sample_rate, "steps": args.steps}
    sigma = noise_multiplier(epsilon=args.epsilon, **common)
    return {"noise_multiplier": sigma, "neighbouring_relation": RELATION, "target_epsilon": args.epsilon, **common,
            "epsilon": dp_epsilon(noise_multiplier=sigma, **common)}


def run_statement(run: Path) -> dict[str, Any]:
    """The privacy statement of a run or an export, recomputed from its public files (settings and transcript)."""
    from paczero.settings import load_run_config
    from paczero.ledger import parse_transcript
    from paczero.mechanisms.registry import run_statement as statement, spec
    from paczero.publication import EXPORT_DIR
    from paczero.rundir import RunDir

    if (run / EXPORT_DIR).is_dir():  # an export: its public record, read as verify reads it
        from paczero.verify import read_published

        record = read_published(run).record
        return statement(record.cfg, steps=len(record.steps),
                         releases=sum(len(s.directions) for s in record.steps)).to_dict()
    run_dir = RunDir.open(run)
    cfg = load_run_config(run)
    if spec(cfg.privacy.mechanism).first_order:  # released nothing per step: no transcript, the steps it has run
        progress = run_dir.read_progress()
        return statement(cfg, steps=progress["step"] if progress else 0, releases=0).to_dict()
    try:
        steps = parse_transcript(run_dir.read_transcript())
    except ValueError as exc:
        raise PaczeroError(f"{run_dir.transcript_path} is not a paczero transcript: {exc}") from None
    return statement(cfg, steps=len(steps), releases=sum(len(s.directions) for s in steps)).to_dict()


# ------------------------------------------------------------------------ parser
def build_parser() -> argparse.ArgumentParser:
    """The ``paczero`` argument parser: one sub-command per job (documented in docs/commands.md)."""
    from paczero.about import __version__

    parser = argparse.ArgumentParser(prog="paczero", description="PAC-private zeroth-order fine-tuning (PACZero).")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--version", action="version", version=f"paczero {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="fine-tune a model with a private mechanism")
    p.add_argument("--config", help="YAML file under configs/")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="dotted overrides, e.g. train.steps=50")
    p.add_argument("--data-dir", help="folder with sst2/train.tsv etc. (default: $PACZERO_DATA_DIR, else the hub)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue a killed or interrupted run from its checkpoint")
    p.add_argument("--forget-secret", metavar="RUN_DIR",
                   help="overwrite and delete every private file of a finished run that depends on its secret")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("eval", help="evaluate a model, a checkpoint or a run")
    p.add_argument("run", nargs="?", help="run directory (evaluates its best checkpoint)")
    p.add_argument("--config", help="YAML file (instead of a run directory)")
    p.add_argument("--checkpoint", help="checkpoint folder to load into the model")
    p.add_argument("--splits", nargs="+", default=["test"], choices=["pool", "dev", "test"])
    p.add_argument("--private", action="store_true", help="allow --splits pool (private figures; never publish them)")
    p.add_argument("--data-dir", help="folder with sst2/train.tsv etc. (default: $PACZERO_DATA_DIR, else the hub)")
    p.add_argument("--set", dest="overrides", nargs="*", default=[], metavar="key=value", help="dotted overrides")
    p.set_defaults(func=_cmd_eval)

    p = sub.add_parser("replay", help="rebuild a run's final weights from the base model and its transcript")
    p.add_argument("run", help="run directory")
    p.add_argument("--out", required=True, help="new folder for the rebuilt weights")
    p.set_defaults(func=_cmd_replay)

    p = sub.add_parser("audit", help="membership-inference audit of a finished run (reads its secret)")
    p.add_argument("run", help="run directory (runs on a secret subset need their secret.json)")
    p.add_argument("--checkpoint", default="best", choices=["best", "last"], help="model to attack (default: "
                   "best, the released one)")
    p.add_argument("--data-dir", help="folder with sst2/train.tsv etc. (default: the run's, $PACZERO_DATA_DIR)")
    p.add_argument("--json", action="store_true",
                   help="print JSON: where the private summary is, or with --private the summary itself")
    p.add_argument("--private", action="store_true",
                   help="with --json: print the summary (it depends on the secret subset; never publish it)")
    p.set_defaults(func=_cmd_audit, overrides=[])

    p = sub.add_parser("report", help="plots and a Markdown summary of one or more runs")
    p.add_argument("runs", nargs="+", metavar="RUN", help="run directories")
    p.add_argument("--out", required=True, help="folder for the PNGs and report.md")
    p.add_argument("--private", action="store_true",
                   help="also the owner's figures computed on the pool (pool loss, unanimity, MI), in OUT/private")
    p.set_defaults(func=_cmd_report)

    p = sub.add_parser("export", help="a finished run as a Hugging Face model folder with its privacy card")
    p.add_argument("run", help="run directory (its public files only are read)")
    p.add_argument("--out", required=True, help="new folder for the model, the card and the public transcript")
    p.add_argument("--checkpoint", default="best", choices=["best", "last"], help="which weights (default: best)")
    p.add_argument("--merge-lora", action="store_true", help="LoRA runs: merge the adapters into full weights")
    p.add_argument("--data-dir", help="model.name=tiny only: the data its vocabulary is built from")
    p.add_argument("--set", dest="paths", nargs="*", default=[], metavar="data.KEY=PATH",
                   help="model.name=tiny only: a data file the published settings withhold")
    p.add_argument("--push-to-hub", metavar="REPO", help="then upload the folder to the hub as model repository REPO")
    p.add_argument("--hub-private", action="store_true", help="with --push-to-hub: create REPO as a private repository")
    p.set_defaults(func=_cmd_export, overrides=[])

    p = sub.add_parser("verify", help="rebuild published weights from the public transcript (and check the rules)")
    p.add_argument("target", metavar="DIR_OR_RUN", help="an exported folder or a finished run directory")
    p.add_argument("--data-dir", help="the pool's data: also check every release against the mechanism's rules")
    p.add_argument("--set", dest="paths", nargs="*", default=[], metavar="data.KEY=PATH",
                   help="a data file the published settings withhold (e.g. data.train_file=PATH)")
    p.set_defaults(func=_cmd_verify, overrides=[])

    p = sub.add_parser("privacy", help="privacy calculator and a run's privacy statement")
    p.add_argument("run", nargs="?", help="run directory or exported model folder: its statement computed from its "
                   "public files")
    p.add_argument("--dp-epsilon", type=float, help="ε-DP → matched MI and MIA posterior bound")
    p.add_argument("--mi", type=float, help="MI (nats) → MIA posterior bound and equivalent ε")
    p.add_argument("--channel", action="store_true", help="σ for a budget β at prior q (with --q, --beta)")
    p.add_argument("--q", type=float, help="input prior P(S=+1) of the binary channel")
    p.add_argument("--beta", type=float, help="MI budget of one release, nats")
    p.add_argument("--dp-noise", action="store_true",
                   help="noise multiplier σ of a DP baseline for --epsilon, --delta, --steps, --sample-rate")
    p.add_argument("--epsilon", type=float, help="target DP ε (with --dp-noise)")
    p.add_argument("--delta", type=float, default=1e-5, help="DP δ (with --dp-noise; default 1e-5)")
    p.add_argument("--steps", type=int, help="number of steps (with --dp-noise)")
    p.add_argument("--sample-rate", type=float, help="Poisson sampling rate q (with --dp-noise)")
    p.add_argument("--private", action="store_true",
                   help="with RUN_DIR: also print the owner's figures computed on the pool (tagged [private]; with "
                        "--json under private_figures); never publish them")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_cmd_privacy)

    p = sub.add_parser("compare", help="DPZero/DP-AggZO at each ε, PACZero-MI at the matched MI, ZPL and MeZO")
    p.add_argument("--config", help="compare YAML (base run config, ε list, per-mechanism overrides)")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="dotted overrides applied to every run")
    p.add_argument("--epsilons", help="comma-separated DP ε list, e.g. 0.5,1,2,6")
    p.add_argument("--mechanisms", help="comma-separated subset of mezo,zpl,mi,dpzero,dpaggzo,dpsgd,firstorder")
    p.add_argument("--out", help="folder for the runs and compare.{csv,md}")
    p.add_argument("--seeds", help="comma-separated public seeds, e.g. 0,1,2 (runs end in -s<seed>; adds a summary)")
    p.add_argument("--finished-only", action="store_true",
                   help="train nothing: write the tables from the runs that have finished")
    p.add_argument("--data-dir", help="folder with sst2/train.tsv etc. (default: $PACZERO_DATA_DIR, else the hub)")
    p.set_defaults(func=_cmd_compare)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (2 for an error the user can fix)."""
    args = build_parser().parse_args(argv)
    if getattr(args, "data_dir", None):
        args.overrides = [*args.overrides, f"data.data_dir={args.data_dir}"]
    if args.command == "eval" and args.run is None and args.config is None:
        print("paczero eval: error: give a run directory or --config", file=sys.stderr)
        return EXIT_USAGE
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(message)s",
                        stream=sys.stderr)
    for noisy in ("transformers", "peft", "httpx", "urllib3", "huggingface_hub"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    # Harmless library notices that would bury the run's own output: peft saving an adapter for a GGUF model
    # (no config.json beside it), and a transformers deprecation triggered inside peft.
    warnings.filterwarnings("ignore", message="Could not find a config file")
    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
    try:
        return args.func(args)
    except PaczeroError as exc:
        print(f"paczero: error: {exc}", file=sys.stderr)
        if exc.private:
            print(f"{PRIVATE_TAG} {exc.private}", file=sys.stderr)
        return getattr(exc, "exit_code", EXIT_USAGE)
    except KeyboardInterrupt:
        print("paczero: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader of stdout went away (e.g. `| head`): nothing more to say
        sys.stderr.close()
        return 0
