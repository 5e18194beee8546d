#!/usr/bin/env bash
# Session 28's probe: #8's third mode, "pretrained + sharing", for the task-model recipe. The
# continuation of session 27's varied pretraining on the 50 labelled attempts keeps half of every
# batch on the varied play store (`train --share-data`, hindsight goals there too), three
# pretraining seeds, 6000 updates (so 3000 batches' worth of attempts, the recipe's amount), judged
# at 3000 and 6000 like bench/attempts100_probe.sh: task model (`task-goals`, K = 5) on 100
# held-out tasks at suite seed 0. Set TASK_DATA=data/task_25 or data/task_100 for the other sizes.
# SHARE=0.1 STEPS=3000 AT=3000 is the smaller share measured at 50 attempts (names gcshare10pct50_*).
#
#   PATH=$PWD/.venv/bin:$PATH bench/share_probe.sh
# Needs runs/s27/varied_s{0,1,2} (bench/finetune_length_probe.sh), data/store_varied and
# $TASK_DATA. Writes runs/s28/gcshare* and bench/results/finetune_s28/sharedN-*.json. About 40
# minutes on 2 CPU cores. Measured (BENCHMARKS.md, session 28): below plain continuation at 25, 50
# and 100 attempts, at both lengths.
set -euo pipefail
OUT=bench/results/finetune_s28; ONNX=runs/s28/onnx; RUNS=runs/s28; TASK_DATA=${TASK_DATA:-data/task_50}
mkdir -p "$ONNX" "$OUT"
source "$(dirname "$0")/probe_common.sh"
SHARE=${SHARE:-0.5}; STEPS=${STEPS:-6000}; AT=${AT:-"3000 6000"}
n=$(basename "$TASK_DATA"); n=${n#task_}
tag=$(python3 -c "s = float('$SHARE'); print('' if s == 0.5 else f'{round(100 * s)}pct')")
for s in 0 1 2; do
    continuation "gcshare${tag}${n}_varied_s$s" "$STEPS" --set init_from="runs/s27/varied_s$s/checkpoints/step_00012000.pt" \
        --share-data data/store_varied --set share_fraction="$SHARE" &
done
wait
for s in 0 1 2; do judge "gcshare${tag}${n}_varied_s$s" "shared${tag}$n" "$s" data/store_varied "$AT"; done
