#!/usr/bin/env bash
# Session 30's second probe (#8): both sides from 25 labelled attempts at the lengths not yet judged.
# bench/pretrained25_early_probe.sh found the pretrained continuation best at the shortest length it
# judged (500 updates: 61.0%, against 53.3% at 2000), so this judges it shorter still: at 250, and
# at 0 (the varied pretraining itself made a task model, nothing learned from the attempts but the
# localiser). Scratch is judged below 2000 (500, 1000, 1500) so that each side's best is its best.
# Re-trained runs are checked bit for bit against the judged ones at a step both kept.
#
#   PATH=$PWD/.venv/bin:$PATH bench/early25_both_probe.sh
# Needs runs/s27/varied_s{0,1,2}, runs/s27/gcscratch25_s{0,1,2} (bench/attempts25_probe.sh),
# runs/s30/gcft25_varied_s{0,1,2} (bench/pretrained25_early_probe.sh), data/task_25 and
# data/store_varied. Writes runs/s30/ and bench/results/finetune_s30/. About 30 minutes on 2 CPU cores.
set -euo pipefail
OUT=bench/results/finetune_s30; ONNX=runs/s30/onnx; RUNS=runs/s30; TASK_DATA=data/task_25
mkdir -p "$ONNX" "$OUT"
source "$(dirname "$0")/probe_common.sh"
pretrained() { echo "runs/s27/varied_s$1/checkpoints/step_00012000.pt"; }
short() { continuation "gcft25q_varied_s$1" 500 --set checkpoint_every=250 --set init_from="$(pretrained "$1")"; }
scratch() { continuation "gcscratch25_s$1" 2000 --set checkpoint_every=500 --set seed="$1"; }
short 0 & short 1 & wait
short 2 & scratch 0 & wait
scratch 1 & scratch 2 & wait
for s in 0 1 2; do
    python bench/same_weights.py "$(ckpt "gcft25q_varied_s$s" 500)" "$(ckpt "gcft25_varied_s$s" 500)"
    python bench/same_weights.py "$(ckpt "gcscratch25_s$s" 2000)" "runs/s27/gcscratch25_s$s/checkpoints/step_00002000.pt"
done
zero() {  # the pretraining alone as the goal model: pretrained25-at0_n25_sS.json
    "${RA[@]}" export "runs/s27/varied_s$1" --checkpoint 12000 -o "$ONNX/varied_s$1_at0.onnx" > /dev/null
    task_model "varied_s$1_at0" data/store_varied "pretrained25-at0_n25_s$1"
}
zero 0 & zero 1 & wait
zero 2 & judge gcft25q_varied_s0 pretrained25 0 data/store_varied 250 & wait
judge gcft25q_varied_s1 pretrained25 1 data/store_varied 250 & judge gcft25q_varied_s2 pretrained25 2 data/store_varied 250 & wait
judge gcscratch25_s0 scratch25 0 "$TASK_DATA" "500 1000 1500" &
judge gcscratch25_s1 scratch25 1 "$TASK_DATA" "500 1000 1500" & wait
judge gcscratch25_s2 scratch25 2 "$TASK_DATA" "500 1000 1500"
