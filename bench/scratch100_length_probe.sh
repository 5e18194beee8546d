#!/usr/bin/env bash
# Session 29's probe: scratch's best length at 100 labelled attempts (#8). Session 28 judged the
# scratch task model at 3000 and 6000 updates (50.3% and 55.3%, still rising); this resumes the
# same three runs exactly (`train --resume`) to 12000 and judges 9000 and 12000 the same way
# (task-goals K=5, 100 held-out tasks at suite seed 0, no goal picture).
#
#   PATH=$PWD/.venv/bin:$PATH bench/scratch100_length_probe.sh
# Needs runs/s28/gcscratch100_s{0,1,2} (bench/attempts100_probe.sh) and data/task_100. Writes
# bench/results/finetune_s28/scratch100-at{9000,12000}_n100_sS.json. About 40 minutes on 2 CPU cores.
set -euo pipefail
OUT=bench/results/finetune_s28; ONNX=runs/s28/onnx; RUNS=runs/s28; TASK_DATA=data/task_100
source "$(dirname "$0")/probe_common.sh"
resume_to() {  # resume_to RUN STEPS: the run continued exactly to STEPS (skipped when done)
    [ -f "$(ckpt "$1" "$2")" ] && return
    "${RA[@]}" train --out "$RUNS/$1" --resume --steps "$2" --no-progress
}
resume_to gcscratch100_s0 12000 & resume_to gcscratch100_s1 12000 & wait
resume_to gcscratch100_s2 12000 &
judge gcscratch100_s0 scratch100 0 "$TASK_DATA" "9000 12000" & wait
judge gcscratch100_s1 scratch100 1 "$TASK_DATA" "9000 12000" &
judge gcscratch100_s2 scratch100 2 "$TASK_DATA" "9000 12000" & wait
