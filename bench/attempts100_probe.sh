#!/usr/bin/env bash
# Session 28's probe: the task-model recipe from 100 labelled attempts (#8's third size), from
# session 27's varied pretraining and from scratch, three seeds each. With twice the attempts the
# best continuation length may move, so both go to 6000 updates and are judged at 3000 (the
# recipe's length) and 6000 (scratch's best at 50 attempts). 100 held-out tasks at suite seed 0.
#
#   PATH=$PWD/.venv/bin:$PATH bench/attempts100_probe.sh
# Needs runs/s27/varied_s{0,1,2} (bench/finetune_length_probe.sh) and data/store_varied. Writes
# data/task_100 (its first 50 attempts are data/task_50, image for image), runs/s28/*100* and
# bench/results/finetune_s28/*_n100_*.json. About 1.2 hours on 2 CPU cores.
set -euo pipefail
OUT=bench/results/finetune_s28; ONNX=runs/s28/onnx; RUNS=runs/s28; TASK_DATA=data/task_100
mkdir -p "$ONNX" "$OUT"
source "$(dirname "$0")/probe_common.sh"
if [ ! -d "$TASK_DATA" ]; then
    "${RA[@]}" collect --task grasp-heldout --episodes 100 --seed 100 --workers 2 --out data/task_bags_100 --no-progress
    "${RA[@]}" dataset build data/task_bags_100 -o "$TASK_DATA" --workers 2
fi
for s in 0 1 2; do
    continuation "gcft100_varied_s$s" 6000 --set init_from="runs/s27/varied_s$s/checkpoints/step_00012000.pt" &
    continuation "gcscratch100_s$s" 6000 --set seed="$s" &
done
wait
for s in 0 1 2; do  # pretrained100-atN_n100_sS.json and scratch100-atN_n100_sS.json
    judge "gcft100_varied_s$s" pretrained100 "$s" data/store_varied "3000 6000" &
    judge "gcscratch100_s$s" scratch100 "$s" "$TASK_DATA" "3000 6000" &
    wait
done
for s in 0 1 2; do  # session 29: the pretrained runs at 1500 too, a shorter length than the recipe's
    judge "gcft100_varied_s$s" pretrained100 "$s" data/store_varied 1500
done
