#!/usr/bin/env bash
# The GPU figures of docs/performance.md and docs/results.md, in one prepared script of under ten minutes on a lent
# H100/H200-class GPU:
#   1. the paper-scale SmolLM2 cells with full tuning (configs/gpu/: every tensor of SmolLM2-135M-Instruct,
#      N = 1000, M = 128, T = 1000, bf16 autocast): PACZero-ZPL and MeZO, test accuracy before and after, the
#      dev curve, wall time and steps per second;
#   2. the default job (configs/sst2-smollm2-review-zpl.yaml) on cuda, wall time and its test accuracy;
#   3. benchmarks/step.py on a random-initialised OPT-1.3B at N = 1000 (bf16 autocast): step time, tokens/s,
#      GPU memory against inference, the fraction of the GPU's bf16 peak, the forward against a large bf16
#      matrix product measured in the same process.
# Each part runs under its own time limit (GPU_LIMIT_S, default 230 s for a cell), so that one slow part leaves
# the others' figures; a cell stopped at its limit keeps its dev curve (evaluations.jsonl) and step count.
# Usage: bash benchmarks/gpu.sh OUT_DIR   (writes OUT_DIR/*.log, OUT_DIR/*.json, OUT_DIR/runs/)
# It needs the project importable with a CUDA build of torch and SST-2 in $PACZERO_DATA_DIR.
set -uo pipefail
out=${1:?usage: bash benchmarks/gpu.sh OUT_DIR}
mkdir -p "$out"
out=$(cd "$out" && pwd)
cd "$(dirname "$0")/.."
python=${PYTHON:-.venv/bin/python}
limit=${GPU_LIMIT_S:-230}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"

cell() {  # cell NAME CONFIG LIMIT [OVERRIDES...]
    local name=$1 config=$2 seconds=$3
    shift 3
    local start=$(date +%s)
    timeout "$seconds" "$python" -m paczero train --config "$config" model.device=cuda run.output_dir="$out/runs" \
        run.name="$name" run.progress=false "$@" > "$out/$name.log" 2>&1
    local rc=$?
    local wall=$(( $(date +%s) - start ))
    local steps=$(wc -l < "$out/runs/$name/transcript.jsonl" 2>/dev/null || echo 0)
    echo "$name: exit $rc, wall time $wall s, transcript lines $steps" | tee -a "$out/summary.txt"
}

cell gpu-ft-zpl configs/gpu/sst2-smollm2-ft-zpl.yaml "$limit"
cell gpu-ft-mezo configs/gpu/sst2-smollm2-ft-mezo.yaml "$limit"
cell default-cuda configs/sst2-smollm2-review-zpl.yaml 90 model.autocast=true
timeout 120 "$python" benchmarks/step.py --model opt-1.3b --n 1000 --repeat 2 --json --device cuda \
    > "$out/gpu-step.json" 2> "$out/gpu-step.err"
echo "step benchmark: exit $?" | tee -a "$out/summary.txt"
