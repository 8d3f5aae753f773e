#!/usr/bin/env bash
# docs/results.md, "Longer and wider": the ladder of review-prompt (and paper-prompt) runs on SST-2, top-2-layer
# tuning of the packaged SmolLM2 with the cached bottom, every run tested on all 872 validation records.
# Resumable: a rerun skips finished runs and resumes an interrupted one. Run from the project root with
#   PACZERO_DATA_DIR=../shared/data bash docs/results/ladder.sh [name ...]   # no names: every rung, in order
set -u
P=${PACZERO:-.venv/bin/paczero}
OUT=runs/ladder
REVIEW=configs/results/sst2-smollm2-top2-zpl.yaml    # "Review: {sentence}\nSentiment:"
PAPER=configs/sst2-smollm2-zpl.yaml                  # "{sentence} It was" (the default job)
COMMON=(data.n_test=null data.n_dev=128 run.progress=false)
declare -A RUNGS=(
  [rv-zpl-n256-m16-t300]="$REVIEW data.n_pool=256 privacy.n_subsets=16 train.steps=300 train.eval_every=50 train.lr=2e-3"
  [rv-zpl-n256-m16-t300-s1]="$REVIEW run.seed=1 data.n_pool=256 privacy.n_subsets=16 train.steps=300 train.eval_every=50 train.lr=2e-3"
  [rv-zpl-n256-m16-t300-s2]="$REVIEW run.seed=2 data.n_pool=256 privacy.n_subsets=16 train.steps=300 train.eval_every=50 train.lr=2e-3"
  [rv-mezo-n256-t300]="$REVIEW data.n_pool=256 privacy.mechanism=mezo train.batch_size=256 train.steps=300 train.eval_every=50 train.lr=2e-3"
  [rv-zpl-n1000-m16-t100]="$REVIEW data.n_pool=1000 privacy.n_subsets=16 train.steps=100 train.eval_every=25 train.lr=2e-3"
  [rv-zpl-n1000-m128-t100]="$REVIEW data.n_pool=1000 privacy.n_subsets=128 train.steps=100 train.eval_every=25 train.lr=2e-3"
  [rv-zpl-n256-m16-t1000]="$REVIEW data.n_pool=256 privacy.n_subsets=16 train.steps=1000 train.eval_every=100 train.lr=1e-3"
  [rv-mi011-n256-m16-t300]="$REVIEW data.n_pool=256 privacy.mechanism=mi privacy.budget=0.111 privacy.n_subsets=16 train.steps=300 train.eval_every=50 train.lr=2e-3"
  [rv-mezo-n256-t300-s1]="$REVIEW run.seed=1 data.n_pool=256 privacy.mechanism=mezo train.batch_size=256 train.steps=300 train.eval_every=50 train.lr=2e-3"
  [rv-mezo-n256-t300-s2]="$REVIEW run.seed=2 data.n_pool=256 privacy.mechanism=mezo train.batch_size=256 train.steps=300 train.eval_every=50 train.lr=2e-3"
  # K = 4 directions per step at the forward-pass budget of the T = 300 cell; the update averages the K released
  # signs, so each direction moves lr/K = 1e-3
  [rv-zpl-n256-m16-t75-k4]="$REVIEW data.n_pool=256 privacy.n_subsets=16 zo.directions=4 train.steps=75 train.eval_every=25 train.lr=4e-3"
  [pp-zpl-n256-m16-t300]="$PAPER data.n_pool=256 privacy.n_subsets=16 train.steps=300 train.eval_every=50 train.lr=5e-3"
)
ORDER=(rv-zpl-n256-m16-t300 rv-zpl-n256-m16-t300-s1 rv-zpl-n256-m16-t300-s2 rv-mezo-n256-t300 rv-zpl-n1000-m16-t100 rv-zpl-n1000-m128-t100 rv-zpl-n256-m16-t1000
       rv-mi011-n256-m16-t300 rv-mezo-n256-t300-s1 rv-mezo-n256-t300-s2 rv-zpl-n256-m16-t75-k4 pp-zpl-n256-m16-t300)
[ $# -gt 0 ] && ORDER=("$@")
for name in "${ORDER[@]}"; do
  read -r config overrides <<< "${RUNGS[$name]}"
  if [ -f "$OUT/$name/metrics.json" ]; then echo "ladder: $name finished"; continue; fi
  start=$(date +%s)
  if [ -d "$OUT/$name" ]; then
    $P train --resume "$OUT/$name" run.progress=false || exit $?
  else
    # shellcheck disable=SC2086
    $P train --config "$config" run.output_dir=$OUT run.name="$name" "${COMMON[@]}" $overrides || exit $?
  fi
  echo "ladder: $name took $(( $(date +%s) - start )) s"
done
