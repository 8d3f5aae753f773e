#!/usr/bin/env bash
# docs/results.md, "SQuAD": the runs on SQuAD v1.1 with the packaged SmolLM2 (configs/results/squad-smollm2-top2-zpl.yaml:
# span prompt, top-2-layer tuning with the cached prefix, N = 128, M = 16, T = 20, 200 test questions), and the
# zero-shot F1/EM of the same prompt on 1000 test questions. Resumable: a rerun skips finished runs and resumes an
# interrupted one. Run from the project root with
#   PACZERO_DATA_DIR=../shared/data bash docs/results/squad.sh [name ...]   # no names: every rung, in order
set -u
P=${PACZERO:-.venv/bin/paczero}
OUT=runs/squad
CONFIG=configs/results/squad-smollm2-top2-zpl.yaml
declare -A RUNGS=(
  [squad-zpl-s0]=""
  [squad-zpl-s1]="run.seed=1"
  [squad-zpl-s2]="run.seed=2"
  [squad-mi033-s0]="privacy.mechanism=mi privacy.budget=0.33"
  # the LM objective needs no generation in training (two teacher-forced passes of the top layers per step), so it
  # runs 100 steps in about the time −F1 takes for 20
  [squad-zpl-lm-s0]="data.objective=lm train.steps=100 train.eval_every=25"
)
ORDER=(squad-zpl-s0 squad-zpl-s1 squad-zpl-s2 zero-shot-1000 squad-mi033-s0 squad-zpl-lm-s0)
[ $# -gt 0 ] && ORDER=("$@")
mkdir -p "$OUT"
for name in "${ORDER[@]}"; do
  start=$(date +%s)
  if [ "$name" = zero-shot-1000 ]; then
    # the base model, no training: F1/EM of the span prompt on the first 1000 test questions
    if [ -f "$OUT/zero-shot-1000.json" ]; then echo "squad: $name finished"; continue; fi
    $P eval --config "$CONFIG" --splits test --set data.n_test=1000 run.progress=false \
      > "$OUT/zero-shot-1000.json.part" 2> "$OUT/zero-shot-1000.log" || exit $?
    mv "$OUT/zero-shot-1000.json.part" "$OUT/zero-shot-1000.json"
  else
    if [ -f "$OUT/$name/metrics.json" ]; then echo "squad: $name finished"; continue; fi
    if [ -d "$OUT/$name" ]; then
      $P train --resume "$OUT/$name" run.progress=false || exit $?
    else
      # shellcheck disable=SC2086
      $P train --config "$CONFIG" run.output_dir=$OUT run.name="$name" run.progress=false ${RUNGS[$name]} || exit $?
    fi
  fi
  echo "squad: $name took $(( $(date +%s) - start )) s"
done
