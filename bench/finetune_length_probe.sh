#!/usr/bin/env bash
# Session 27's probe: is 3000 updates the right length for the continuation on the 50 labelled
# attempts? Every #8 number since session 20 continued the goal model for 3000 updates, a length
# no session chose by a curve. Each continuation keeps a checkpoint every 1500 updates; each kept
# length's goal model is made a task model (`task-goals`, K = 5) and judged on the same 100
# held-out tasks (suite seed 0). Scratch (the attempts alone) gets the same lengths and more, so
# each length has its own ratio and scratch's best is known too. Seed 0 is also continued from
# the shipped models/varied_pretrained.onnx (its weights with Adam afresh), the fresh-checkout path.
#
#   PATH=$PWD/.venv/bin:$PATH SEEDS="0 1 2" bench/finetune_length_probe.sh
#   (then the table and picture: the bench/finetune_steps.py command in BENCHMARKS.md, session 27)
# Needs data/{store_varied,task_50} as bench/varied_play_probe.sh makes them. Writes runs/s27/*
# and bench/results/finetune_length_s27/*.json. About 2.5 hours on 2 CPU cores. (Session 27 ran
# it in pieces: seeds 0 1 and 2 as two instances, scratch first to 6000 and then on to 12000 with
# `train --resume`, which continues a run exactly.)
set -euo pipefail
SEEDS=${SEEDS:-"0 1 2"}; PRE_STEPS=${PRE_STEPS:-12000}; FT_STEPS=${FT_STEPS:-6000}; SCRATCH_STEPS=${SCRATCH_STEPS:-12000}
AT=${AT:-"1500 3000 6000"}; SCRATCH_AT=${SCRATCH_AT:-"1500 3000 6000 9000 12000"}
OUT=bench/results/finetune_length_s27; ONNX=runs/s27/onnx; RUNS=runs/s27; mkdir -p "$ONNX" "$OUT"
source "$(dirname "$0")/probe_common.sh"

pretrain() {  # pretrain SEED: session 25's varied pretraining
    [ -f "$(ckpt "varied_s$1" "$PRE_STEPS")" ] && return
    "${RA[@]}" train --data data/store_varied --out "$RUNS/varied_s$1" --steps "$PRE_STEPS" "${FLAGS[@]}" \
        --set augment_hue=1 --set seed="$1" --set checkpoint_every=3000
}

for s in $SEEDS; do pretrain "$s" & done; wait
for s in $SEEDS; do
    continuation "gcft_varied_s$s" "$FT_STEPS" --set init_from="$(ckpt "varied_s$s" "$PRE_STEPS")" &
    continuation "gcscratch_s$s" "$SCRATCH_STEPS" --set seed="$s" &
done
continuation gcft_varied_onnx_s0 "$FT_STEPS" --set init_from=models/varied_pretrained.onnx &
wait
for s in $SEEDS; do
    judge "gcft_varied_s$s" pretrained "$s" data/store_varied "$AT" &
    judge "gcscratch_s$s" scratch "$s" data/task_50 "$SCRATCH_AT" &
    wait
done
judge gcft_varied_onnx_s0 pretrained-onnx 0 data/store_varied "$AT"
