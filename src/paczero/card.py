"""The model card of an exported run: a Hugging Face ``README.md`` (YAML metadata, then Markdown) that states the
privacy guarantee in plain words and numbers, built from the run's public files only (its settings and
``metrics.json``), so that two runs differing only in the secret give the same card.
"""

from __future__ import annotations

from typing import Any

import yaml

from paczero.metrics import scalar_metrics

HUB_DATASETS = {"sst2": "stanfordnlp/sst2", "squad": "rajpurkar/squad"}
TASKS = {"classification": ("text-classification", "accuracy"), "generation": ("question-answering", "f1")}
BASE_NAMES = {"smollm2": "HuggingFaceTB/SmolLM2-135M-Instruct"}


def base_model_name(model: dict[str, Any]) -> str:
    """The base model's hub name where there is one (the packaged SmolLM2 is a quantised SmolLM2-135M-Instruct)."""
    return BASE_NAMES.get(model["name"], model["name"])


def metadata(metrics: dict[str, Any], *, kind: str, adapter: bool) -> dict[str, Any]:
    """The card's YAML metadata: base model, library, tags, datasets and the test metrics (model-index)."""
    cfg = metrics["config"]
    privacy = metrics["privacy"]
    task_type, headline = TASKS[kind]
    tags = ["paczero", "zeroth-order", f"privacy-{privacy['family']}", cfg["privacy"]["mechanism"]]
    meta: dict[str, Any] = {"base_model": base_model_name(cfg["model"]), "library_name": "peft" if adapter else
                            "transformers", "tags": tags, "pipeline_tag": "text-generation"}
    dataset = {"name": cfg["data"]["task"]}
    if cfg["data"]["task"] in HUB_DATASETS:
        meta["datasets"] = [HUB_DATASETS[cfg["data"]["task"]]]
        dataset["type"] = HUB_DATASETS[cfg["data"]["task"]]
    test = scalar_metrics(metrics["test"])
    results = [{"type": k, "value": v, "name": f"test {k}"} for k, v in sorted(test.items())]
    meta["model-index"] = [{"name": f"paczero-{cfg['privacy']['mechanism']}", "results": [
        {"task": {"type": task_type}, "dataset": dataset, "metrics": results}]}]
    meta["metrics"] = [headline]
    return meta


def _guarantee(privacy: dict[str, Any]) -> list[str]:
    family = privacy["family"]
    bound = privacy["mia_posterior_bound"]
    if family == "pac":
        mi = privacy["mi_bound_nats"]
        relation = "=" if mi == 0 else "≤"
        lines = [f"**PAC privacy: I(S*; transcript) {relation} {mi:.6g} nats.** Any membership-inference attacker — one who "
                 "knows the training pool, the candidate subsets, the base model and everything published here — "
                 f"guesses whether a record was in the secret training subset S* correctly with probability at most "
                 f"**{bound:.4g}** (a coin flip is 0.5)."]
        if mi > 0:
            lines.append(f"That is the bound of ε = {privacy['dp_epsilon_equivalent']:.3g} differential privacy "
                         "at the same prior.")
    elif family == "dp":
        lines = [f"**({privacy['dp_epsilon']:.4g}, {privacy['dp_delta']:g})-differential privacy** under "
                 f"{privacy['neighbouring_relation']}: any membership-inference attacker at prior 1/2 succeeds with "
                 f"probability at most **{bound:.4g}**."]
    else:
        lines = ["**No privacy guarantee**: this baseline releases functions of the training records without noise."]
    return lines + ["", f"How it follows: {privacy['derivation']}"]


def card(metrics: dict[str, Any], *, kind: str, adapter: bool, checkpoint: str, step: int,
         verify_command: str) -> str:
    """The whole ``README.md``: YAML metadata between ``---`` lines, then the card's text."""
    cfg, privacy = metrics["config"], metrics["privacy"]
    meta = yaml.safe_dump(metadata(metrics, kind=kind, adapter=adapter), sort_keys=False, allow_unicode=True)
    headline = TASKS[kind][1]
    zero = (metrics.get("zero_shot_test") or {}).get(headline)
    best = metrics["best_dev"]
    settings = [("mechanism", cfg["privacy"]["mechanism"]), ("base model", base_model_name(cfg["model"])),
                ("tuning", cfg["model"]["tuning"] + (f", top {cfg['model']['train_top_layers']} layers"
                                                     if cfg["model"].get("train_top_layers") else "")),
                ("pool size N", metrics["data"]["n_pool"]), ("candidate subsets M", cfg["privacy"]["n_subsets"]),
                ("steps T", metrics["steps_run"]), ("directions per step K", cfg["zo"]["directions"]),
                ("learning rate", f"{cfg['train']['lr']:g} ({cfg['train']['lr_schedule']})"),
                ("clip", cfg["zo"]["clip"]), ("public seed", cfg["run"]["seed"])]
    if privacy["family"] == "pac" and cfg["privacy"]["mechanism"] == "mi":
        settings.append(("MI budget B (nats)", cfg["privacy"]["budget"]))
    if privacy["family"] == "dp":
        settings += [("target ε", cfg["privacy"]["epsilon"]), ("δ", cfg["privacy"]["delta"]),
                     ("Poisson rate q", cfg["privacy"]["sample_rate"])]
    lines = [
        "---", meta.rstrip(), "---", "",
        f"# {base_model_name(cfg['model'])} fine-tuned with paczero ({cfg['privacy']['mechanism']})", "",
        f"Fine-tuned on {cfg['data']['task']} with zeroth-order (forward-only) optimisation by "
        f"[paczero](https://arxiv.org/abs/2605.06505) {metrics['versions']['paczero']}.", "",
        "## Privacy", "", *_guarantee(privacy), "",
        f"**What is protected**: {privacy.get('protects') or 'nothing'}.", "",
        "**What is not**: " + "; ".join(privacy["not_protected"]) + ". The dev set that selected the checkpoint "
        "is public.", "",
        "**What is public** (and travels with this folder under `paczero/`): " + "; ".join(privacy["public"]) + ".",
        "",
        "## Results", "",
        f"| split | {headline} |", "|---|---|",
        *([f"| test, base model | {zero:.4f} |"] if zero is not None else []),
        f"| test, this model | {metrics['test'][headline]:.4f} |",
        f"| dev, this checkpoint (selected on dev {best['selected_on']}, step {best['step']}) | "
        f"{best[headline]:.4f} |", "",
        "## Settings", "", "| setting | value |", "|---|---|", *[f"| {k} | {v} |" for k, v in settings], "",
        f"These weights are the `{checkpoint}` checkpoint, after {step} of the transcript's {privacy['steps']} steps.",
        "", "## Verify", "",
        "The weights are a deterministic function of the base model and the public transcript in `paczero/`. "
        "Anyone can rebuild them and compare, bit for bit, on the device type the run used:", "",
        "```bash", f"{verify_command}    # with paczero installed", "```", "",
        "Whoever holds the training pool (no secret needed) can also check every release against the mechanism's "
        "rules with `--data-dir`.", "",
    ]
    return "\n".join(lines)
