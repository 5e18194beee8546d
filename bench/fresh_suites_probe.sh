#!/usr/bin/env bash
# Session 30's third probe (#8): each side's best length was picked on suite seed 0's 100 held-out
# tasks, the tasks its score was then read on, so the best of several lengths is biased upward.
# This judges the picked task models on tasks they were not picked on: suite seeds 1 and 2
# (100 tasks each), for the cells #8's bars are read from: 25 attempts (pretrained at 500 updates,
# scratch at 3000) and 50 attempts (pretrained at 3000, scratch at 6000). Three models a cell.
#
#   PATH=$PWD/.venv/bin:$PATH bench/fresh_suites_probe.sh
# Needs the task models of bench/pretrained25_early_probe.sh (runs/s30/onnx) and
# bench/attempts25_probe.sh (runs/s27/onnx/task_gcscratch25_s*), the 50-attempt runs of
# bench/finetune_length_probe.sh (runs/s27/gcft_varied_s*, gcscratch_s*), data/task_50 and
# data/store_varied. Writes bench/results/finetune_s30/fresh_suites/*_suite{1,2}.json. About 30 minutes on 2 CPU cores.
set -euo pipefail
OUT=bench/results/finetune_s30/fresh_suites; ONNX=runs/s30/onnx; RUNS=runs/s27; TASK_DATA=data/task_50
mkdir -p "$ONNX" "$OUT"
source "$(dirname "$0")/probe_common.sh"
on_fresh_suites() {  # on_fresh_suites TASK_MODEL.onnx NAME: NAME_suite1.json and NAME_suite2.json
    for suite in 1 2; do
        [ -f "$OUT/$2_suite$suite.json" ] || "${RA[@]}" eval --policy "$1" --suite grasp-heldout --episodes 100 \
            --seed "$suite" --json "$OUT/$2_suite$suite.json" --no-progress
    done
}
fifty() {  # fifty RUN STEPS LABEL SEED BANK: the 50-attempt task model built as judge() builds it
    local name="$3-at$2_n50_s$4"
    if [ ! -f "$ONNX/$name.onnx" ]; then
        "${RA[@]}" export "$RUNS/$1" --checkpoint "$2" -o "$ONNX/$1_at$2.onnx" > /dev/null
        "${RA[@]}" task-goals --model "$ONNX/$1_at$2.onnx" --data "$TASK_DATA" --play "$5" \
            --out "$ONNX/$name.onnx" --threads 1 --no-progress
    fi
    on_fresh_suites "$ONNX/$name.onnx" "$name"
}
for s in 0 1 2; do
    on_fresh_suites "$ONNX/pretrained25-at500_n25_s$s.onnx" "pretrained25-at500_n25_s$s" &
    on_fresh_suites "runs/s27/onnx/task_gcscratch25_s$s.onnx" "scratch25-at3000_n25_s$s" &
    wait
    fifty "gcft_varied_s$s" 3000 pretrained "$s" data/store_varied &
    fifty "gcscratch_s$s" 6000 scratch "$s" "$TASK_DATA" &
    wait
done
