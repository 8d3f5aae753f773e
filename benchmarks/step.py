"""One PACZero step against two plain forward passes and a MeZO-style reference step, in one process.

    python benchmarks/step.py --quick --json      # random-initialised SmolLM2 architecture, 8 layers, N = 512
    python benchmarks/step.py --json              # the packaged SmolLM2-135M (30 layers), N = 1000

On the same SST-2 records and the same model it measures:

- ``forward_s``: one plain batched forward pass over the pool computing the per-record losses
  (:class:`paczero.objectives.ClassificationObjective`: length-sorted micro-batches, left padding, the
  label-word logits at the last position only);
- ``step_s`` / ``step_lora_s``: one paczero ZPL step (both evaluations, the release, the update), full
  fine-tuning and LoRA (r = 8 on q_proj, v_proj);
- ``reference_step_s``: a faithful re-implementation of the official (MeZO-style) step — micro-batches of
  64 in data order padded to the longest, full-vocabulary logits at every position, per-tensor
  ``torch.manual_seed`` + ``torch.normal`` for +εz, −2εz, +εz and the update, and the extra forward pass
  that only logs the loss;
- ``peak_rss_*_mb``: the process's peak resident memory during each phase (the kernel's high-water mark
  ``VmHWM``, reset before each phase through ``/proc/self/clear_refs``; so it includes the interpreter,
  the libraries, the model and the data), or the GPU's peak allocated memory on a GPU;
- the ratios ``overhead = step_s / (2·forward_s)``, ``speedup_vs_reference = reference_step_s / step_s``,
  ``memory_ratio = peak_rss_step_mb / peak_rss_forward_mb``.

Each time is the best of ``--repeat`` runs after one warm-up pass; the forward pass and the step are timed in
alternation, so that a drift of the machine's speed between them does not bias their ratio. ``--model opt-1.3b`` builds a
random-initialised OPT-1.3B from its published configuration (no download; records tokenised with
SmolLM2's tokenizer) for the GPU figures, with tokens/s and the fraction of the GPU's peak FLOP/s.
``--n-values 32,64,128`` adds step and forward times for several pool sizes (``--plot`` draws them).
For SST-2 it also reports ``forward_gflops`` (the forward's achieved FLOP/s: 2·non-embedding parameters·padded
tokens, plus the LM head at one position) next to ``matmul_gflops``, a 2048² (GPU: 8192², bfloat16) matrix product
timed in the same process: the practical peak of the machine.

``--task squad`` measures the generation path instead: SQuAD records, the per-record loss −F1 of the
greedy answer (at most ``--max-new-tokens``), ``forward_s`` one plain generation pass over the pool, the
reference step the same in-place perturbations around greedy generation. ``--compile`` compiles the decoder
layers (``model.compile``) before the phases; ``warm_up_s`` (a pass over 8 records) then includes compiling.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from paczero.settings import load_config
from paczero.data.tasks import load_task
from paczero.mechanisms import build_mechanism
from paczero.models import compile_layers, contiguous_head_input, packaged_smollm2
from paczero.objectives import ClassificationObjective, Encoded, GenerationObjective, Objective, model_forward
from paczero.secret import SecretState
from paczero.step import StepInput, zo_step
from paczero.subsets import membership_matrix
from paczero.zo import ZOEngine

PROMPT = "Review: {sentence}\nSentiment:"
LABEL_WORDS = (" negative", " positive")
EPS, LR, CLIP, M = 1e-3, 1e-4, 25.0, 128
TARGETS = {"overhead": ("<=", 1.10), "speedup_vs_reference": (">=", 2.0), "memory_ratio": ("<=", 1.25)}
OPT_1_3B = dict(vocab_size=50272, hidden_size=2048, num_hidden_layers=24, ffn_dim=8192, num_attention_heads=32,
                max_position_embeddings=2048, word_embed_proj_dim=2048, do_layer_norm_before=True,
                enable_bias=True, pad_token_id=1, bos_token_id=2, eos_token_id=2)
"""facebook/opt-1.3b's config.json (the values that shape the network)."""
GPU_PEAK_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0}
"""Dense bf16 tensor-core peak of the SXM parts (NVIDIA data sheets)."""


# ---------------------------------------------------------------------- memory
def _rss_mb(field: str) -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def _release_memory() -> None:
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)  # hand freed heap pages back, so that RSS starts low
    except OSError:
        pass


class PeakMemory:
    """Peak memory of one phase: CPU RSS high-water mark (reset per phase) or CUDA peak allocated."""

    def __init__(self, device: torch.device):
        self.device = device

    def measure(self, fn: Callable[[], Any]) -> tuple[Any, float]:
        _release_memory()
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            out = fn()
            torch.cuda.synchronize()
            return out, torch.cuda.max_memory_allocated() / 2**20
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")  # resets VmHWM to the current RSS
        out = fn()
        return out, _rss_mb("VmHWM")


def _timed(fn: Callable[[], Any], device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0


# ---------------------------------------------------------------------- model and data
def smollm2_meta(cache: Path):
    """SmolLM2's config and tokenizer, read once from the packaged GGUF and kept in ``cache`` (fast reloads)."""
    from transformers import AutoConfig, AutoTokenizer

    if not (cache / "config.json").is_file():
        folder, gguf = packaged_smollm2()
        AutoTokenizer.from_pretrained(folder, gguf_file=gguf).save_pretrained(cache)
        AutoConfig.from_pretrained(folder, gguf_file=gguf).save_pretrained(cache)
    return AutoConfig.from_pretrained(cache), AutoTokenizer.from_pretrained(cache)


def build_model(args: argparse.Namespace, device: torch.device):
    from transformers import AutoModelForCausalLM, OPTConfig

    config, tokenizer = smollm2_meta(Path(args.meta_cache))
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        if args.model == "opt-1.3b":
            config = OPTConfig(**OPT_1_3B)
            model = AutoModelForCausalLM.from_config(config)
        elif args.quick or args.layers is not None:
            config.num_hidden_layers = args.layers or 8
            model = AutoModelForCausalLM.from_config(config)
        else:
            from paczero.config import ModelConfig
            from paczero.models import load_model

            return load_model(ModelConfig(name="smollm2", device=str(device)), seed=0).model, tokenizer
    contiguous_head_input(model)
    return model.to(device).eval(), tokenizer


def encode_pool(tokenizer, device: torch.device, n: int, data_dir: str | None, args: argparse.Namespace):
    """The objective and the encoded pool: SST-2 (the review prompt), or SQuAD (−F1 of greedy answers)."""
    words = ",".join(f'"{w}"' for w in LABEL_WORDS)
    overrides = [f"data.task={args.task}", f"data.n_pool={n}", "data.n_dev=1", "data.n_test=1",
                 f"data.label_words=[{words}]", f"data.max_new_tokens={args.max_new_tokens}"]
    if data_dir:
        overrides.append(f"data.data_dir={data_dir}")
    cfg = load_config(None, overrides)
    cfg.data.prompt = PROMPT
    task, split = load_task(cfg.data, seed=0)
    if args.task == "squad":
        objective = GenerationObjective(tokenizer, task, objective="f1", max_length=cfg.data.max_length,
                                        max_new_tokens=args.max_new_tokens, micro_batch=64, device=device)
    else:
        objective = ClassificationObjective(tokenizer, task, max_length=256, micro_batch=64, device=device)
    return objective, objective.encode(split.pool)


# ---------------------------------------------------------------------- the two steps
class PaczeroStep:
    """One ZPL step: :func:`paczero.step.zo_step`, the very function the trainer runs (estimates, release, update),
    on this benchmark's model and records; the run folder's I/O aside."""

    def __init__(self, model, objective: Objective, enc, autocast: bool):
        trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        engine = ZOEngine(model, trainable, eps=EPS, autocast=torch.bfloat16 if autocast else None)
        cfg = load_config(None, ["privacy.mechanism=zpl", f"privacy.n_subsets={M}", f"data.n_pool={len(enc)}",
                                 f"zo.clip={CLIP}", f"zo.eps={EPS}"])
        membership = membership_matrix(n=len(enc), m=M, seed=0)
        self.mechanism = build_mechanism(cfg, membership=membership, secret=SecretState.fresh(M))
        self.input = StepInput(engine=engine, objective=objective, pool=enc, public_seed=cfg.run.seed,
                               directions=cfg.zo.directions, weight_decay=0.0, mechanism=self.mechanism)
        self.step = 0

    def __call__(self) -> None:
        zo_step(self.input, step=self.step, lr=LR)
        self.step += 1


class ReferenceStep:
    """The official code's step (MeZO's ``zo_step``/``zo_update``, paczero-notes §3.4, §3.8, §9.1), as written there.

    Records in data order, micro-batches of 64 padded (on the right) to their longest record, the full
    vocabulary's logits at every position and their log-softmax, the candidates' log-probabilities read at
    each record's answer position; θ perturbed in place by ``param.data = param.data + s·ε·z`` with
    ``torch.manual_seed(seed)`` and ``torch.normal`` per tensor for s = +1, −2, +1; the same regeneration for
    the update; and one more forward pass over the pool only to log the training loss.
    """

    def __init__(self, model, objective: Objective, enc, mechanism, autocast: bool):
        self.model, self.enc, self.mechanism, self.autocast = model, enc, mechanism, autocast
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.candidates = torch.tensor([c[0] for c in getattr(objective, "candidates", [])])
        self.pad = objective.pad_id
        self.device = objective.device
        self.step = 0

    def _perturb(self, seed: int, scale: float) -> None:
        torch.manual_seed(seed)
        for p in self.params:
            z = torch.normal(mean=0, std=1, size=p.data.size(), device=p.data.device, dtype=p.data.dtype)
            p.data = p.data + scale * z * EPS

    def _losses(self) -> torch.Tensor:
        out = []
        prompts, labels = self.enc.prompts, torch.from_numpy(self.enc.labels)
        for start in range(0, len(prompts), 64):
            chunk = prompts[start:start + 64]
            width = max(len(p) for p in chunk)
            ids = torch.full((len(chunk), width), self.pad, dtype=torch.long)
            mask = torch.zeros((len(chunk), width), dtype=torch.long)
            for row, p in enumerate(chunk):
                ids[row, :len(p)] = torch.tensor(p)
                mask[row, :len(p)] = 1
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.autocast):
                logits = self.model(input_ids=ids.to(self.device), attention_mask=mask.to(self.device)).logits
            log_probs = torch.log_softmax(logits.float(), dim=-1)
            last = torch.tensor([len(p) - 1 for p in chunk], device=log_probs.device)
            scores = log_probs[torch.arange(len(chunk), device=log_probs.device), last][:, self.candidates.to(
                log_probs.device)]
            gold = labels[start:start + 64].to(scores.device)
            out.append(torch.logsumexp(scores, 1) - scores.gather(1, gold[:, None]).squeeze(1))
        return torch.cat(out).cpu()

    @torch.inference_mode()
    def __call__(self) -> None:
        seed = int(np.random.default_rng(self.step).integers(1_000_000_000))
        self._perturb(seed, 1)
        plus = self._losses()
        self._perturb(seed, -2)
        minus = self._losses()
        self._perturb(seed, 1)
        g = ((plus - minus).double() / (2 * EPS)).numpy()
        (release,) = self.mechanism.release_step(g[:, None], step=self.step)  # the mechanism clips
        torch.manual_seed(seed)
        for p in self.params:
            z = torch.normal(mean=0, std=1, size=p.data.size(), device=p.data.device, dtype=p.data.dtype)
            p.data = p.data - LR * release.value * z
        self._losses().mean()  # the logging pass
        self.step += 1


class ReferenceGenerationStep(ReferenceStep):
    """The official step for SQuAD: the same in-place perturbations and logging pass around greedy generation
    (through the objective, with the KV cache, of the model as its weights stand), scored by −F1."""

    def __init__(self, model, objective: GenerationObjective, enc, mechanism, autocast: bool):
        super().__init__(model, objective, enc, mechanism, autocast)
        self.objective = objective

    def _losses(self) -> torch.Tensor:
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.autocast):
            return self.objective.losses(model_forward(self.model), self.enc)


# ---------------------------------------------------------------------- the benchmark
def _best(fn: Callable[[], Any], repeat: int, device: torch.device, memory: PeakMemory, what: str = ""
          ) -> tuple[float, float]:
    """(best time of ``repeat`` runs, peak memory over them)."""
    times, peaks = [], []
    for _ in range(repeat):
        t, peak = memory.measure(lambda: _timed(fn, device))
        times.append(t)
        peaks.append(peak)
        print(f"{what}: {t:.3f} s, peak {peak:.0f} MB", file=sys.stderr, flush=True)
    return min(times), max(peaks)


def _forward(model, objective: Objective, enc, autocast: bool) -> Callable[[], Any]:
    def run() -> Any:
        with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16, enabled=autocast):
            return objective.losses(model_forward(model), enc)
    return run


def _attach_lora(model):
    from peft import LoraConfig, get_peft_model

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        lora = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"],
                                                lora_dropout=0.0, bias="none", task_type="CAUSAL_LM"))
    return lora.eval()


def _matmul_flops(device: torch.device, *, bf16: bool, size: int = 2048, repeat: int = 5) -> float:
    """FLOP/s of a large square matrix product on ``device`` (float32 on CPU, bfloat16 on a GPU): the practical
    peak the forward pass is set against, measured in the same process."""
    dtype = torch.bfloat16 if bf16 else torch.float32
    if device.type == "cuda" and size < 8192:
        size = 8192
    a, b = (torch.randn(size, size, device=device, dtype=dtype) for _ in range(2))
    a @ b  # warm-up
    best = min(_timed(lambda: a @ b, device) for _ in range(repeat))
    return 2 * size**3 / best


def _flops_per_step(model, enc: Encoded, micro_batch: int) -> float:
    """2·(non-embedding parameters)·(padded tokens) per forward, two forwards (the LM head at one position)."""
    n_embed = sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Embedding))
    dense = sum(p.numel() for p in model.parameters()) - n_embed
    lengths = np.array([len(p) for p in enc.prompts])[enc.order]
    padded = sum(len(c) * c.max() for c in np.array_split(lengths, math.ceil(len(lengths) / micro_batch)))
    head = model.get_output_embeddings().weight.numel()
    return 2 * 2 * (dense * padded + head * len(enc))


def run(args: argparse.Namespace) -> dict[str, Any]:
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    autocast = device.type == "cuda"
    n = args.n or ((512 if args.quick else 1000) if args.task == "sst2" else (32 if args.quick else 256))
    memory = PeakMemory(device)
    load_start = os.getloadavg()[0]
    model, tokenizer = build_model(args, device)
    for p in model.parameters():
        p.requires_grad_(True)
    if args.compile:
        compile_layers(model)
    objective, enc = encode_pool(tokenizer, device, n, args.data_dir, args)
    baseline_mb = _rss_mb("VmRSS") if device.type == "cpu" else torch.cuda.memory_allocated() / 2**20
    result: dict[str, Any] = {
        "mode": "quick" if args.quick else "full", "task": args.task, "model": args.model, "device": str(device),
        "compiled": args.compile,
        "layers": model.config.num_hidden_layers, "parameters": sum(p.numel() for p in model.parameters()),
        "n_records": len(enc), "tokens": int(sum(len(p) for p in enc.prompts)), "threads": torch.get_num_threads(),
        "torch": torch.__version__, "repeat": args.repeat, "rss_before_phases_mb": round(baseline_mb, 1)}

    forward = _forward(model, objective, enc, autocast)
    warm_up = time.perf_counter()
    objective.losses(model_forward(model), enc.subset(np.arange(min(8, n))))  # warm-up (compiles with --compile)
    result["warm_up_s"] = time.perf_counter() - warm_up
    step = PaczeroStep(model, objective, enc, autocast)
    step()  # warm-up
    # Forward and step timed in alternation, so that a drift of the machine's speed affects both alike.
    timed = {"forward": [], "step": []}
    for _ in range(args.repeat):
        for what, fn in (("forward", forward), ("step", step)):
            timed[what].append(_best(fn, 1, device, memory, what))
    for what in ("forward", "step"):
        result[f"{what}_s"] = min(t for t, _ in timed[what])
        result[f"peak_rss_{what}_mb"] = max(m for _, m in timed[what])
    if not args.skip_reference:
        reference = (ReferenceGenerationStep if args.task == "squad" else ReferenceStep)(
            model, objective, enc, step.mechanism, autocast)
        reference_s, peak = _best(reference, max(1, args.repeat - 1), device, memory, "reference step")
        result["reference_step_s"], result["peak_rss_reference_mb"] = reference_s, peak
    if args.n_values:
        result["step_vs_n"] = []
        for m in [int(v) for v in args.n_values.split(",")]:
            sub = enc.subset(np.arange(m))
            s = PaczeroStep(model, objective, sub, autocast)
            s()
            result["step_vs_n"].append({"n": m, "forward_s": _best(_forward(model, objective, sub, autocast),
                                                                   args.repeat, device, memory)[0],
                                        "step_s": _best(s, args.repeat, device, memory)[0]})
    del step
    lora = _attach_lora(model)
    lora_step = PaczeroStep(lora, objective, enc, autocast)
    lora_step()
    result["step_lora_s"], result["peak_rss_step_lora_mb"] = _best(lora_step, args.repeat, device, memory, "LoRA step")

    result["overhead"] = result["step_s"] / (2 * result["forward_s"])
    if "reference_step_s" in result:
        result["speedup_vs_reference"] = result["reference_step_s"] / result["step_s"]
    result["memory_ratio"] = result["peak_rss_step_mb"] / result["peak_rss_forward_mb"]
    if args.task == "sst2":
        flops = _flops_per_step(lora.get_base_model(), enc, objective.micro_batch)  # two forwards
        matmul = _matmul_flops(device, bf16=autocast)
        result.update(forward_gflops=flops / 2 / result["forward_s"] / 1e9, step_gflops=flops / result["step_s"] / 1e9,
                      matmul_gflops=matmul / 1e9, forward_fraction_of_matmul=flops / 2 / result["forward_s"] / matmul,
                      tokens_per_s=2 * result["tokens"] / result["step_s"])
        if device.type == "cuda":
            name = torch.cuda.get_device_name()
            peak = next((v for k, v in GPU_PEAK_BF16_TFLOPS.items() if k in name), None)
            result.update(gpu=name, peak_flops_fraction=None if peak is None else flops / result["step_s"] / 1e12 / peak)
    result["targets_met"] = {k: (result[k] <= v if op == "<=" else result[k] >= v)
                             for k, (op, v) in TARGETS.items() if k in result}
    result["load_average"] = [round(load_start, 2), round(os.getloadavg()[0], 2)]
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in result.items()}


# ---------------------------------------------------------------------- the head set
HEAD_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "results" / "sst2-smollm2-head-zpl.yaml"


def _per_call(fn: Callable[[], Any], repeat: int) -> float:
    """Median seconds of one call of ``fn`` over ``repeat`` calls (after one warm-up call)."""
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def run_head_set(args: argparse.Namespace) -> dict[str, Any]:
    """The head set (the label words' rows of the packaged SmolLM2's LM head, final states cached): a whole trainer
    step and each of its parts, as medians over ``--steps`` calls.

    ``trainer_step_s`` is :meth:`paczero.trainer.Trainer._one_step` on a real run folder (estimates, release,
    transcript line and private logs, each appended and fsynced, update, progress bar; dev evaluations and
    checkpoints pushed beyond the measured steps); the parts are timed alone on the same components.
    """
    import tempfile

    from paczero.build import build
    from paczero.settings import load_config
    from paczero.fileio import append_bytes
    from paczero.mechanisms.zpl import ZPL
    from paczero.trainer import Trainer

    if args.threads:
        torch.set_num_threads(args.threads)
    n, steps = args.n or 1000, args.steps
    overrides = [f"data.n_pool={n}", f"privacy.n_subsets={args.subsets}", "data.n_dev=8", "data.n_test=8",
                 f"train.steps={10 * steps}", f"train.eval_every={10 * steps}", f"train.checkpoint_every={10 * steps}",
                 "run.progress=false"]
    if args.data_dir:
        overrides.append(f"data.data_dir={args.data_dir}")
    load_start = os.getloadavg()[0]
    t0 = time.perf_counter()
    c = build(load_config(HEAD_CONFIG, overrides))
    setup_s = time.perf_counter() - t0
    engine, objective, pool = c.engine, c.objective, c.encoded["pool"]
    mechanism = ZPL(c.membership, seed=c.cfg.run.seed, clip=c.cfg.zo.clip)  # ZPL never sees the secret
    seed = iter(range(10**6))
    g, _ = engine.estimates(objective, pool, direction=1)
    result: dict[str, Any] = {"mode": "head-set", "n_records": n, "n_subsets": args.subsets,
                              "trainable_parameters": c.loaded.n_trainable, "threads": torch.get_num_threads(),
                              "torch": torch.__version__, "steps_timed": steps, "setup_s": setup_s}
    parts = {
        "direction_s": lambda: [engine.direction_block(next(seed), i) for i in range(len(engine.trainable))],
        "estimates_s": lambda: engine.estimates(objective, pool, direction=next(seed)),
        "release_s": lambda: mechanism.release_step(g[:, None], step=next(seed)),
        "update_s": lambda: engine.update([(next(seed), 1.0)], lr=0.0),
    }
    with tempfile.TemporaryDirectory() as tmp:
        line = b'{"directions":[{"seed":1234567890123,"value":-1.0}],"lr":0.001,"step":1234}\n'
        parts["log_line_fsync_s"] = lambda: append_bytes(Path(tmp) / "log.jsonl", line)
        bar = __import__("tqdm").tqdm(total=10**9, file=open(os.devnull, "w"), mininterval=0.1)
        parts["progress_s"] = lambda: (bar.update(1), bar.set_postfix({"lr": "1.00e-03"}))
        for name, fn in parts.items():
            result[name] = _per_call(fn, steps)
        cfg = load_config(HEAD_CONFIG, [*overrides, f"run.output_dir={tmp}", "run.name=bench"])
        trainer = Trainer(cfg, base=c)
        trainer.setup()
        result["trainer_step_s"] = _per_call(trainer._one_step, steps)
    result["steps_per_s"] = 1.0 / (result["trainer_step_s"] + result["progress_s"])  # the bar is the loop's
    result["fsynced_lines_per_step"] = 3
    result["load_average"] = [round(load_start, 2), round(os.getloadavg()[0], 2)]
    return {k: round(v, 6) if isinstance(v, float) else v for k, v in result.items()}


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = results["step_vs_n"]
    n = [r["n"] for r in rows]
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot(n, [r["step_s"] for r in rows], "o-", label="paczero step")
    ax.plot(n, [2 * r["forward_s"] for r in rows], "s--", label="2 × forward")
    ax.set_xlabel("pool size N (records)")
    ax.set_ylabel("seconds")
    ax.set_title(f"{results['model']}, {results['layers']} layers, {results['device']}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="random-initialised SmolLM2 architecture, 8 layers, N=512")
    parser.add_argument("--json", action="store_true", help="print the result as JSON only")
    parser.add_argument("--model", choices=["smollm2", "opt-1.3b"], default="smollm2")
    parser.add_argument("--layers", type=int, help="decoder layers of the random-initialised model (quick: 8)")
    parser.add_argument("--n", type=int, help="pool size (quick: 512, full: 1000)")
    parser.add_argument("--n-values", help="comma-separated pool sizes (≤ N) for the step-time-vs-N curve")
    parser.add_argument("--plot", type=Path, help="draw the step-time-vs-N curve to this PNG")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per phase (the best is kept)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice, the cores)")
    parser.add_argument("--skip-reference", action="store_true")
    parser.add_argument("--task", choices=["sst2", "squad"], default="sst2",
                        help="squad: −F1 of greedy answers (N: quick 32, full 256)")
    parser.add_argument("--max-new-tokens", type=int, default=16, help="squad: greedy tokens per record at most")
    parser.add_argument("--compile", action="store_true", help="torch.compile the decoder layers (model.compile)")
    parser.add_argument("--head-set", action="store_true",
                        help="the head set over cached final states: a trainer step and its parts (N: 1000)")
    parser.add_argument("--subsets", type=int, default=M, help="--head-set: M")
    parser.add_argument("--steps", type=int, default=300, help="--head-set: calls timed per part (the median kept)")
    parser.add_argument("--data-dir", default=os.environ.get("PACZERO_DATA_DIR"))
    parser.add_argument("--meta-cache", default=str(Path(__file__).resolve().parents[1] / ".cache" / "smollm2-meta"),
                        help="where the packaged SmolLM2's config and tokenizer are kept (an ignored repo folder)")
    args = parser.parse_args(argv)
    if args.head_set:
        result = run_head_set(args)
        print(json.dumps(result, indent=2) if args.json else "\n".join(f"{k:>24}: {v}" for k, v in result.items()))
        return 0
    result = run(args)
    if args.plot and "step_vs_n" in result:
        plot(result, args.plot)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for k, v in result.items():
            print(f"{k:>24}: {v}")
    return 0 if all(result["targets_met"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
