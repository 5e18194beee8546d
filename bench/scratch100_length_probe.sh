#!/usr/bin/env bash
# Session 29's probe: scratch's best length at 100 labelled attempts (#8). Session 28 judged the
# scratch task model at 3000 and 6000 updates (50.3% and 55.3%, still rising); this resumes the
# same three runs exactly (`train --resume`) to TO (default 12000) and judges the lengths in AT
# (default 9000 12000) the same way (task-goals K=5, 100 held-out tasks at suite seed 0, no goal
# picture). Session 29 ran it twice: as is, then with TO=18000 AT="15000 18000".
#
#   PATH=$PWD/.venv/bin:$PATH bench/scratch100_length_probe.sh
# Needs runs/s28/gcscratch100_s{0,1,2} (bench/attempts100_probe.sh) and data/task_100. Writes
# bench/results/finetune_s28/scratch100-atN_n100_sS.json. About 40 minutes on 2 CPU cores per 6000 updates.
set -euo pipefail
OUT=bench/results/finetune_s28; ONNX=runs/s28/onnx; RUNS=runs/s28; TASK_DATA=data/task_100
TO=${TO:-12000}; AT=${AT:-"9000 12000"}
source "$(dirname "$0")/probe_common.sh"
resume_to() {  # resume_to RUN STEPS: the run continued exactly to STEPS (skipped when done)
    [ -f "$(ckpt "$1" "$2")" ] && return
    "${RA[@]}" train --out "$RUNS/$1" --resume --steps "$2" --no-progress
}
resume_to gcscratch100_s0 "$TO" & resume_to gcscratch100_s1 "$TO" & wait
resume_to gcscratch100_s2 "$TO" &
judge gcscratch100_s0 scratch100 0 "$TASK_DATA" "$AT" & wait
judge gcscratch100_s1 scratch100 1 "$TASK_DATA" "$AT" &
judge gcscratch100_s2 scratch100 2 "$TASK_DATA" "$AT" & wait
