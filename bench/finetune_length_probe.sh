#!/usr/bin/env bash
# Session 27's probe: is 3000 updates the right length for the continuation on the 50 labelled
# attempts? Every #8 number since session 20 continued the goal model for 3000 updates, a length
# no session chose by a curve. One 6000-update continuation per model, a checkpoint every 1500,
# each checkpoint made a task model (`task-goals`, K = 5) and judged on the same 100 held-out
# tasks; scratch (the attempts alone) gets the same lengths, so each length has its own ratio.
#
#   PATH=$PWD/.venv/bin:$PATH SEEDS="0 1" bench/finetune_length_probe.sh
# Needs data/{store_varied,task_50} as bench/varied_play_probe.sh makes them. Writes runs/s27/*
# and bench/results/finetune_length_s27/*.json. About 2 hours on 2 CPU cores.
set -euo pipefail
SEEDS=${SEEDS:-"0 1"}; PRE_STEPS=${PRE_STEPS:-12000}; FT_STEPS=${FT_STEPS:-6000}
AT=${AT:-"1500 3000 6000"}
OUT=bench/results/finetune_length_s27; ONNX=runs/s27/onnx; mkdir -p "$ONNX" "$OUT"
source "$(dirname "$0")/probe_common.sh"
ckpt() { echo "runs/s27/$1/checkpoints/step_$(printf %08d "$2").pt"; }

pretrain() {  # pretrain SEED: session 25's varied pretraining
    [ -f "$(ckpt "varied_s$1" "$PRE_STEPS")" ] && return
    "${RA[@]}" train --data data/store_varied --out "runs/s27/varied_s$1" --steps "$PRE_STEPS" "${FLAGS[@]}" \
        --set augment_hue=1 --set seed="$1" --set checkpoint_every=3000
}
continuation() {  # continuation NAME [FLAGS...]: FT_STEPS on the attempts, a checkpoint every 1500
    local name=$1; shift
    [ -f "$(ckpt "$name" "$FT_STEPS")" ] && return
    "${RA[@]}" train --data data/task_50 --out "runs/s27/$name" --steps "$FT_STEPS" "${FLAGS[@]}" \
        --set checkpoint_every=1500 --set keep_checkpoints=10 "$@"
}
judge() {  # judge NAME BANK: each kept length's goal model made a task model and evaluated
    for at in $AT; do
        "${RA[@]}" export "runs/s27/$1" --checkpoint "$at" -o "$ONNX/$1_at$at.onnx" > /dev/null
        task_model "$1_at$at" "$2" "task_$1_at$at"
    done
}

for s in $SEEDS; do pretrain "$s" & done; wait
for s in $SEEDS; do
    continuation "gcft_varied_s$s" --set init_from="$(ckpt "varied_s$s" "$PRE_STEPS")" &
    continuation "gcscratch_s$s" --set seed="$s" &
done
wait  # four single-thread runs share the two cores
for s in $SEEDS; do
    judge "gcft_varied_s$s" data/store_varied &
    judge "gcscratch_s$s" data/task_50 &
    wait
done
