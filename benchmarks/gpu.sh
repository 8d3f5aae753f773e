#!/usr/bin/env bash
# The GPU figures of docs/performance.md, in one prepared script of a few minutes (a lent H100/H200-class GPU):
#   1. benchmarks/step.py on a random-initialised OPT-1.3B at N = 1000 (bf16 autocast): step time, tokens/s,
#      GPU memory against inference, the fraction of the GPU's bf16 peak, the forward against a large bf16
#      matrix product measured in the same process;
#   2. the default job (configs/sst2-smollm2-zpl.yaml) on cuda, wall time and its test accuracy.
# Usage: bash benchmarks/gpu.sh OUT_DIR   (writes OUT_DIR/gpu-step.json, OUT_DIR/gpu-default-job.log)
# It needs the project installed with a CUDA build of torch and SST-2 in $PACZERO_DATA_DIR.
set -euo pipefail
out=${1:?usage: bash benchmarks/gpu.sh OUT_DIR}
mkdir -p "$out"
cd "$(dirname "$0")/.."
python=${PYTHON:-.venv/bin/python}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
"$python" benchmarks/step.py --model opt-1.3b --n 1000 --repeat 2 --json --device cuda \
    > "$out/gpu-step.json" 2> "$out/gpu-step.err"
start=$(date +%s)
"$python" -m paczero train --config configs/sst2-smollm2-zpl.yaml model.device=cuda model.autocast=true \
    run.output_dir="$out/runs" run.name=default-cuda run.progress=false > "$out/gpu-default-job.log" 2>&1
echo "default job wall time: $(( $(date +%s) - start )) s" >> "$out/gpu-default-job.log"
