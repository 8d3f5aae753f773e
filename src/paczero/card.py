"""The model card of an exported run: a Hugging Face ``README.md`` built with ``huggingface_hub``'s
:class:`~huggingface_hub.ModelCard` (YAML metadata that ``ModelCard.load`` parses strictly, then Markdown).

It says first, in plain words, what the run promises and what it does not — correct for each family of mechanism —
then how to use the model (the prompt, the label words, a scoring snippet in plain transformers), the results, the
settings and how anyone verifies the folder. It is built from the run's public record only (the settings and
``metrics.json``), so two runs differing only in the secret give the same card, and ``paczero verify`` regenerates
it byte for byte.
"""

from __future__ import annotations

import re
from importlib import metadata as package_metadata
from pathlib import Path
from typing import Any

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from paczero.config import DataConfig
from paczero.mechanisms.registry import spec
from paczero.data.squad import PROMPT as SQUAD_PROMPT
from paczero.metrics import scalar_metrics
from paczero.privacy.statement import Family, PrivacyStatement

HUB_DATASETS = {"sst2": "stanfordnlp/sst2", "squad": "rajpurkar/squad"}
DATASET_NAMES = {"sst2": "SST-2 (GLUE validation)", "squad": "SQuAD v1.1 (validation)"}
TASKS = {"classification": ("text-classification", "accuracy"), "generation": ("question-answering", "f1")}
BASE_NAMES = {"smollm2": "HuggingFaceTB/SmolLM2-135M-Instruct"}
"""Packaged base models and the hub id they are a copy of."""
BASE_LICENSES = {"smollm2": "apache-2.0"}
"""The licence of each packaged base model (a hub model's is not known offline: ``model.license`` says it)."""
PAPER = "https://arxiv.org/abs/2605.06505"


def base_model_name(model: dict[str, Any]) -> str:
    """The base model's hub name where there is one (the packaged SmolLM2 is a quantised SmolLM2-135M-Instruct)."""
    return BASE_NAMES.get(model["name"], model["name"])


def base_model_label(model: dict[str, Any]) -> str:
    """How the card names the base model: its hub id, or a local folder by its own name (never its path)."""
    return hub_base_model(model) or (model["name"] if model["name"] == "tiny" else
                                     f"a local model ({Path(model['name']).name})")


def hub_base_model(model: dict[str, Any]) -> str | None:
    """The base model's hub id, or None for a local folder or the tiny test model (never a local path)."""
    name = base_model_name(model)
    if name in BASE_NAMES.values():
        return name
    looks_like_hub_id = re.fullmatch(r"[A-Za-z0-9][\w.-]*/[\w.-]+", name) is not None
    return name if looks_like_hub_id and not Path(name).expanduser().exists() else None


def hub_dataset(data: dict[str, Any]) -> str | None:
    """The hub id of the data set the model was trained on, where it is a public one."""
    if data["task"] in HUB_DATASETS:
        return HUB_DATASETS[data["task"]]
    dataset = data.get("dataset")
    if data["task"] == "hf" and dataset and not str(dataset).startswith("<withheld>") and \
            re.fullmatch(r"[\w.-]+(/[\w.-]+)?", str(dataset)) and not Path(str(dataset)).expanduser().exists():
        return str(dataset)
    return None


def license_of(model: dict[str, Any]) -> str:
    """``model.license``, else the packaged base model's, else ``other``."""
    return model.get("license") or BASE_LICENSES.get(model["name"], "other")


def repository() -> str | None:
    """Where paczero's source is, from the installed package's metadata (``[project.urls]``)."""
    try:
        urls = package_metadata.metadata("paczero").get_all("Project-URL") or []
    except package_metadata.PackageNotFoundError:
        return None
    found = dict(url.split(", ", 1) for url in urls if ", " in url)
    return found.get("Repository") or found.get("Homepage")


def card_data(metrics: dict[str, Any], *, kind: str, adapter: bool) -> ModelCardData:
    """The card's metadata: base model, licence, library, tags, data set and the test metrics (model-index)."""
    cfg, privacy = metrics["config"], PrivacyStatement.from_dict(metrics["privacy"])
    task_type, headline = TASKS[kind]
    dataset = hub_dataset(cfg["data"])
    results = [EvalResult(task_type=task_type, dataset_type=dataset or "private",
                          dataset_name=DATASET_NAMES.get(cfg["data"]["task"], "the owner's test records"),
                          dataset_split="test", metric_type=name, metric_name=f"test {name}", metric_value=value)
               for name, value in sorted(scalar_metrics(metrics["test"]).items())]
    return ModelCardData(
        base_model=hub_base_model(cfg["model"]), license=license_of(cfg["model"]),
        library_name="peft" if adapter else "transformers", pipeline_tag="text-generation",
        tags=["paczero", "first-order" if spec(cfg["privacy"]["mechanism"]).first_order else "zeroth-order",
              f"privacy-{privacy.family}", cfg["privacy"]["mechanism"]],
        datasets=[dataset] if dataset else None, metrics=[headline], model_name=f"paczero-{cfg['privacy']['mechanism']}",
        eval_results=results)


def promise(metrics: dict[str, Any]) -> list[str]:
    """What the run promises and what it does not, in plain words (the card's first section)."""
    cfg, privacy, data = metrics["config"], PrivacyStatement.from_dict(metrics["privacy"]), metrics["data"]
    family, bound = privacy.family, privacy.mia_posterior_bound
    n, m = data["n_pool"], cfg["privacy"]["n_subsets"]
    dev = data.get("dev_set") or {}
    if family == Family.PAC:
        mi = privacy.mi_bound_nats
        chance = "exactly 1/2 — a coin flip" if mi == 0 else (
            f"at most **{bound:.4g}** (a coin flip is 0.5; ε = {privacy.dp_epsilon_equivalent:.3g} differential "
            "privacy gives the same bound)")
        lines = [
            f"**What this promises.** The model was trained on one of M = {m} candidate halves of a pool of N = {n} "
            "private records, chosen in secret. Someone who knows every record of the pool, the M halves, the base "
            "model and everything published here (the weights and the transcript) still cannot tell which half was "
            f"used: for any record, their chance of guessing whether it was used is {chance}. "
            f"In numbers: I(S*; transcript) {'=' if mi == 0 else '≤'} {mi:.6g} nats, protecting the "
            f"{privacy.protects}.",
            "",
            "**What it does not promise.**",
            "",
            "- The records' contents are not hidden from anyone who holds the pool: the guarantee is about *which* "
            "records were used, and its attacker is assumed to know the whole pool already.",
            "- It is not record-level ε-differential privacy, which bounds what anyone can learn about any one "
            "record's contribution against every neighbouring data set; this bounds what an attacker learns about "
            "the secret choice of subset from a pool they know.",
        ]
    elif family == Family.DP:
        lines = [
            f"**What this promises.** ({privacy.dp_epsilon:.4g}, {privacy.dp_delta:g})-differential privacy "
            f"under {privacy.neighbouring_relation}: replacing any one of the N = {n} training records by any other "
            "record changes the probability of anything published here by at most a factor e^ε (plus δ). An attacker "
            "who knows every other record guesses whether a given record was used with probability at most "
            f"**{bound:.4g}** (a coin flip is 0.5). This protects each record, its contents included.",
            "",
            "**What it does not promise.**",
            "",
        ]
    else:
        lines = [
            "**No privacy guarantee.** This is a baseline that releases functions of the training records without "
            "noise: what the records say can be learned from the weights. Do not present it as private.",
            "",
            "**Not protected.**",
            "",
        ]
    if family != Family.NONE:
        lines += [f"- {item[0].upper()}{item[1:]}." for item in privacy.not_protected]
    if dev.get("source") == "none":
        lines.append("- No dev set selected the checkpoint: these are the weights after the last step.")
    elif dev:
        lines.append(f"- {dev['description'][0].upper()}{dev['description'][1:]}.")
    return lines


def _fields(template: str) -> list[str]:
    return list(dict.fromkeys(re.findall(r"\{([^{}]+)\}", template)))


def usage(metrics: dict[str, Any], *, kind: str, fmt: str) -> list[str]:
    """How to use the model in plain transformers: the prompt, and a snippet that scores the label words the way
    paczero does (classification) or generates the answer greedily (generation)."""
    cfg = metrics["config"]
    data = cfg["data"]
    template = data["prompt"] if not (kind == "generation" and data["task"] in ("jsonl", "hf") and
                                      data.get("prompt_field")) else "{" + data["prompt_field"] + "}"
    if data["task"] == "squad" and template == DataConfig().prompt:  # left at its default: MeZO's template
        template = SQUAD_PROMPT
    if data["task"] == "jsonl" and kind == "generation":
        template = "{prompt}"
    fields = _fields(template) or ["sentence"]
    load = {"adapter": ['from peft import PeftModel',
                        'base = AutoModelForCausalLM.from_pretrained(model_dir + "/base")  # or the base model\'s hub id',
                        'model = PeftModel.from_pretrained(base, model_dir).eval()'],
            }.get(fmt, ['model = AutoModelForCausalLM.from_pretrained(model_dir).eval()'])
    encode = ('text = tok.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False, '
              'add_generation_prompt=True)\nids = tok(text, add_special_tokens=False).input_ids'
              if data.get("chat_template") else "ids = tok(prompt).input_ids")
    code = ["import torch", "from transformers import AutoModelForCausalLM, AutoTokenizer", "",
            'model_dir = "."  # this folder, or the id it is published under', "tok = AutoTokenizer.from_pretrained(model_dir)",
            *load, f"template = {template!r}",
            "record = {" + ", ".join(f'"{f}": "..."' for f in fields) + "}  # the fields the prompt names",
            "prompt = template",
            "for name, value in record.items():",
            '    prompt = prompt.replace("{" + name + "}", value)',
            *encode.split("\n")]
    if kind == "classification":
        words = list(data["label_words"])
        lines = [f"Prompt: `{template!r}`; label words (class 0, 1, …): {', '.join(f'`{w!r}`' for w in words)}. "
                 "The prediction is the label word with the highest mean log-probability of its tokens after the "
                 "prompt: score the label words as below. Greedy generation after the prompt may produce other "
                 "words.", ""]
        code += [f"words = {words!r}", "",
                 "def score(word):  # the mean log-probability of the word's tokens after the prompt",
                 "    w = tok(word, add_special_tokens=False).input_ids",
                 "    with torch.no_grad():",
                 "        logp = model(torch.tensor([ids + w])).logits[0, len(ids) - 1:-1].log_softmax(-1)",
                 "    return logp[range(len(w)), w].mean().item()", "",
                 "print(max(words, key=score))"]
    else:
        lines = [f"Prompt: `{template!r}`. The answer is the greedy continuation of the prompt, at most "
                 f"{data['max_new_tokens']} tokens, cut at the first newline.", ""]
        code += ["with torch.no_grad():",
                 f"    out = model.generate(torch.tensor([ids]), max_new_tokens={data['max_new_tokens']}, "
                 "do_sample=False)",
                 'print(tok.decode(out[0, len(ids):], skip_special_tokens=True).split("\\n")[0].strip())']
    return lines + ["```python", *code, "```"]


def _results(metrics: dict[str, Any], headline: str) -> list[str]:
    zero = (metrics.get("zero_shot_test") or {}).get(headline)
    best = metrics["best_dev"]
    rows = [f"| split | {headline} |", "|---|---|"]
    if zero is not None:
        rows.append(f"| test, base model | {zero:.4f} |")
    rows.append(f"| test, this model | {metrics['test'][headline]:.4f} |")
    if headline in best:
        rows.append(f"| dev, this checkpoint (selected on dev {best['selected_on']}, step {best['step']}) | "
                    f"{best[headline]:.4f} |")
    return rows


def _settings(metrics: dict[str, Any]) -> list[tuple[str, Any]]:
    cfg, privacy = metrics["config"], PrivacyStatement.from_dict(metrics["privacy"])
    top = cfg["model"].get("train_top_layers")
    first_order = spec(cfg["privacy"]["mechanism"]).first_order
    trainable = [k for k, v in (cfg["model"].get("trainable") or {}).items() if v]
    settings = [("mechanism", cfg["privacy"]["mechanism"]), ("base model", base_model_label(cfg["model"])),
                ("licence", license_of(cfg["model"])),
                ("tuning", cfg["model"]["tuning"] + (f", top {top} layers" if top else "") +
                 (f" ({', '.join(trainable)})" if trainable else "")),
                ("pool size N", metrics["data"]["n_pool"])]
    if first_order:
        settings += [("steps T", metrics["steps_run"]),
                     ("learning rate", f"{cfg['train']['lr']:g} ({cfg['train']['lr_schedule']}, "
                                       f"{'SGD' if privacy.family == Family.DP else 'Adam'})")]
        if privacy.family == Family.DP:
            settings.append(("per-record gradient clip C (L2)", cfg["privacy"]["grad_clip"]))
        settings.append(("public seed", cfg["run"]["seed"]))
    else:
        settings += [("candidate subsets M", cfg["privacy"]["n_subsets"]),
                     ("steps T", metrics["steps_run"]), ("directions per step K", cfg["zo"]["directions"]),
                     ("learning rate", f"{cfg['train']['lr']:g} ({cfg['train']['lr_schedule']})"),
                     ("clip", cfg["zo"]["clip"]), ("public seed", cfg["run"]["seed"])]
    if privacy.family == Family.PAC and cfg["privacy"]["mechanism"] == "mi":
        settings.append(("MI budget B (nats)", cfg["privacy"]["budget"]))
    if privacy.family == Family.DP:
        settings += [("target ε", cfg["privacy"]["epsilon"]), ("δ", cfg["privacy"]["delta"]),
                     ("Poisson rate q", cfg["privacy"]["sample_rate"])]
    return settings


def card(metrics: dict[str, Any], *, kind: str, adapter: bool, checkpoint: str, step: int,
         verify_command: str) -> str:
    """The whole ``README.md`` of an export: metadata, then the card's text."""
    cfg, privacy = metrics["config"], PrivacyStatement.from_dict(metrics["privacy"])
    headline = TASKS[kind][1]
    base = base_model_label(cfg["model"])
    fmt = "adapter" if adapter else "full"
    source = repository()
    install = f"pip install git+{source}" if source else "pip install paczero"
    licence = license_of(cfg["model"])
    first_order = spec(cfg["privacy"]["mechanism"]).first_order
    how = ("first-order optimisation (autograd; DP-SGD's clipped, noised per-record gradients)" if first_order
           else "zeroth-order (forward-only) optimisation")
    if first_order:
        where = f"after {step} of its {privacy.steps} steps"
        check = [
            "There is no public transcript: this method publishes no per-step value (no gradient, batch, norm or "
            "timing), so nobody — its owner included — can rebuild these weights from public inputs, and the "
            "guarantee above rests on the training code. What can be checked is: the statement, recomputed from the "
            "settings; and that every file here is what the settings, the base model and the trained tensors in "
            "`paczero/trainable.safetensors` give (every other weight is the base model's), byte for byte:", ""]
    else:
        where = f"after {step} of the transcript's {privacy.steps} steps"
        check = [
            "Every file here is a deterministic function of the base model and the public transcript in `paczero/`. "
            "Anyone can regenerate them and compare, byte for byte, on the device type the run used:", ""]
    body = [
        f"# {base} fine-tuned with paczero ({cfg['privacy']['mechanism']})", "",
        f"Fine-tuned on {DATASET_NAMES.get(cfg['data']['task'], 'private records')} with {how} by "
        f"[paczero]({source or PAPER}) {metrics['versions']['paczero']} "
        f"([PACZero]({PAPER})). Privacy in one line: {privacy.summary}.", "",
        "## Privacy: what this model promises, and what it does not", "", *promise(metrics), "",
        f"How the bound follows: {privacy.derivation}", "",
        "**Public** (it travels with this folder under `paczero/`): " + "; ".join(privacy.public) + ".", "",
        "## How to use it", "", *usage(metrics, kind=kind, fmt=fmt), "",
        "## Results", "", *_results(metrics, headline), "",
        "## Settings", "", "| setting | value |", "|---|---|", *[f"| {k} | {v} |" for k, v in _settings(metrics)], "",
        f"These weights are the `{checkpoint}` checkpoint, {where}.",
        *([] if licence != "other" else ["", "Licence: the base model's licence applies (the run did not name it: "
                                             "set `model.license`)."]),
        "", "## Verify", "", *check,
        "```bash", f"{install}", f"{verify_command}", "```", "",
        "Whoever holds the data (no secret needed) can also recompute the dev and test figures " +
        ("of these weights with `--data-dir`." if first_order else
         "and check every release against the mechanism's rules with `--data-dir`."), "",
    ]
    return str(ModelCard("---\n" + card_data(metrics, kind=kind, adapter=adapter).to_yaml() + "\n---\n\n"
                         + "\n".join(body)))
