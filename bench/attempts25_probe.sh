#!/usr/bin/env bash
# Session 27's second probe: the same task-model recipe from 25 labelled attempts instead of 50
# (the first 25 of `collect --task grasp-heldout --seed 100`: episode i depends only on the seed
# and i), from bench/finetune_length_probe.sh's varied pretraining and from scratch, 3000 updates
# on the attempts, three seeds each, 100 held-out tasks at suite seed 0.
#
#   PATH=$PWD/.venv/bin:$PATH bench/attempts25_probe.sh
# Needs runs/s27/varied_s{0,1,2} (bench/finetune_length_probe.sh) and data/store_varied. Writes
# data/task_25, runs/s27/*25* and bench/results/finetune_length_s27/*_n25_*.json. About 30
# minutes on 2 CPU cores.
set -euo pipefail
OUT=bench/results/finetune_length_s27; ONNX=runs/s27/onnx; RUNS=runs/s27; TASK_DATA=data/task_25
mkdir -p "$ONNX" "$OUT"
source "$(dirname "$0")/probe_common.sh"
if [ ! -d "$TASK_DATA" ]; then
    "${RA[@]}" collect --task grasp-heldout --episodes 25 --seed 100 --out data/task_bags_25 --no-progress
    "${RA[@]}" dataset build data/task_bags_25 -o "$TASK_DATA"
fi
for s in 0 1 2; do
    continuation "gcft25_varied_s$s" 3000 --set init_from="$(ckpt "varied_s$s" 12000)" &
    continuation "gcscratch25_s$s" 3000 --set seed="$s" &
done
wait
for s in 0 1 2; do  # pretrained25-at3000_n25_sS.json and scratch25-at3000_n25_sS.json
    judge "gcft25_varied_s$s" pretrained25 "$s" data/store_varied 3000 &
    judge "gcscratch25_s$s" scratch25 "$s" "$TASK_DATA" 3000 &
    wait
done
