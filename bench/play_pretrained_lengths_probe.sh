#!/usr/bin/env bash
# Session 30's fifth probe (#8, product default): `finetune --mode goal` continues 500 updates from
# fewer than 36 attempts and 3000 otherwise, lengths measured from the varied CPU pretraining. The
# README and the GUI start from the shipped GPU pretraining (models/play_pretrained.onnx, three
# members continuing together) instead; does the same rule hold for it? One continuation per size
# (seed 0), a checkpoint every 500 updates to 3000, each judged as every #8 cell (task-goals with
# the varied play store's bank, 100 held-out tasks, suite seed 0; a mean-of-3 model acts toward
# the nearest picture alone, task-goals' default for it).
#
#   PATH=$PWD/.venv/bin:$PATH bench/play_pretrained_lengths_probe.sh
# Needs data/task_25, data/task_50 and data/store_varied. Writes runs/s30/gcpp{25,50}_s0 and
# bench/results/finetune_s30/playpre{25,50}-at*_n*_s0.json. About 50 minutes on 2 CPU cores.
set -euo pipefail
OUT=bench/results/finetune_s30; ONNX=runs/s30/onnx; RUNS=runs/s30
mkdir -p "$ONNX" "$OUT"
source "$(dirname "$0")/probe_common.sh"
size() {  # size ATTEMPTS: the continuation, then its judges
    TASK_DATA=data/task_$1 continuation "gcpp$1_s0" 3000 --set init_from=models/play_pretrained.onnx \
        --set checkpoint_every=500
    TASK_DATA=data/task_$1 judge "gcpp$1_s0" "playpre$1" 0 data/store_varied "500 1000 1500 3000"
}
size 25 & size 50 & wait
