#!/usr/bin/env bash
# Session 29's probe: the best lengths at 25 labelled attempts (#8), where pretrained against
# scratch was 49.0% against 14.0% at the recipe's 3000 updates (3.5x) and neither side's best
# length was known. Scratch is resumed exactly (`train --resume`) from 3000 to 9000 updates and
# judged at 6000 and 9000 (the runs checkpoint every 2000 and kept 3: the resume keeps more), and
# at 2000; the pretrained continuation is judged at its 2000-update checkpoint (it has 2000 and 3000). Judged as every #8 cell: task-goals K=5, 100 held-out tasks, suite seed 0.
#
#   PATH=$PWD/.venv/bin:$PATH bench/scratch25_length_probe.sh
# Needs runs/s27/gcscratch25_s{0,1,2} and gcft25_varied_s{0,1,2} (bench/attempts25_probe.sh),
# data/task_25 and data/store_varied. Writes bench/results/finetune_s29/. About 40 minutes on 2 CPU cores.
set -euo pipefail
OUT=bench/results/finetune_s29; ONNX=runs/s29/onnx; RUNS=runs/s27; TASK_DATA=data/task_25
mkdir -p "$ONNX" "$OUT"
source "$(dirname "$0")/probe_common.sh"
resume_to() {  # resume_to RUN STEPS: the run continued exactly to STEPS (skipped when done)
    [ -f "$(ckpt "$1" "$2")" ] && return
    "${RA[@]}" train --out "$RUNS/$1" --resume --steps "$2" --set keep_checkpoints=10 --no-progress
}
resume_to gcscratch25_s0 9000 & resume_to gcscratch25_s1 9000 & wait
resume_to gcscratch25_s2 9000 &
judge gcft25_varied_s0 pretrained25 0 data/store_varied 2000 &
judge gcft25_varied_s1 pretrained25 1 data/store_varied 2000 & wait
judge gcft25_varied_s2 pretrained25 2 data/store_varied 2000 &
judge gcscratch25_s0 scratch25 0 "$TASK_DATA" "6000 9000" & wait
judge gcscratch25_s1 scratch25 1 "$TASK_DATA" "6000 9000" &
judge gcscratch25_s2 scratch25 2 "$TASK_DATA" "6000 9000" & wait
for s in 0 1 2; do judge "gcscratch25_s$s" scratch25 "$s" "$TASK_DATA" 2000; done  # pretrained's best length
