#!/usr/bin/env bash
# Session 30's probe (#8): the pretrained continuation from 25 labelled attempts below 2000 updates.
# Session 29 judged it at 2000 (53.3%) and 3000 (49.0%): falling, so its best may come earlier.
# The runs of bench/attempts25_probe.sh are re-trained from the same start with a checkpoint every
# 500 updates to 2000 (one thread: the same checkpoints bit for bit; checked against session 29's
# step 2000) and judged at 500, 1000 and 1500 as every #8 cell: task-goals K=5, 100 held-out
# tasks, suite seed 0.
#
#   PATH=$PWD/.venv/bin:$PATH bench/pretrained25_early_probe.sh
# Needs runs/s27/varied_s{0,1,2} (bench/finetune_length_probe.sh), data/task_25 and
# data/store_varied. Writes runs/s30/gcft25_varied_s* and bench/results/finetune_s30/. About 25
# minutes on 2 CPU cores.
set -euo pipefail
OUT=bench/results/finetune_s30; ONNX=runs/s30/onnx; RUNS=runs/s30; TASK_DATA=data/task_25
mkdir -p "$ONNX" "$OUT"
source "$(dirname "$0")/probe_common.sh"
rerun() { continuation "gcft25_varied_s$1" 2000 --set checkpoint_every=500 \
    --set init_from="runs/s27/varied_s$1/checkpoints/step_00012000.pt"; }
rerun 0 & rerun 1 & wait
rerun 2
for s in 0 1 2; do  # the same weights as session 29's run at 2000, or the lengths are not one run
    python bench/same_weights.py "$(ckpt "gcft25_varied_s$s" 2000)" \
        "runs/s27/gcft25_varied_s$s/checkpoints/step_00002000.pt"
done
for s in 0 1 2; do judge "gcft25_varied_s$s" pretrained25 "$s" data/store_varied "500 1000 1500" & done
wait
