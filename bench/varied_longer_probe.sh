#!/usr/bin/env bash
# Session 26's probe: does varied play pretraining give a better goal model when it trains twice
# as long (24000 updates against session 25's 12000), and does its task model do better with goal
# pictures from the varied store? One run per pretraining seed gives both points: the 12000-update
# checkpoint is that of a 12000-update run (the learning rate is constant), so seed 0's 12000 row
# also re-measures session 25 and seed 2 adds the third seed session 25 lacked.
#
#   PATH=$PWD/.venv/bin:$PATH SEEDS="0 2" PRE_STEPS=24000 bench/varied_longer_probe.sh
# Needs data/{store_varied,store_pose,task_50} as bench/varied_play_probe.sh makes them (store_pose
# only for the plain-bank task models). Writes runs/s26/* and bench/results/varied_s26/*.json.
# About 2 hours on 2 CPU cores.
set -euo pipefail
SEEDS=${SEEDS:-"0 2"}; PRE_STEPS=${PRE_STEPS:-24000}; FT_STEPS=${FT_STEPS:-3000}; AT=${AT:-"12000 24000"}
SCRATCH_SEEDS=${SCRATCH_SEEDS:-"0 2"}
OUT=bench/results/varied_s26; ONNX=runs/s26/onnx; mkdir -p "$ONNX" "$OUT"
source "$(dirname "$0")/probe_common.sh"

pretrain() {  # pretrain SEED
    [ -f "runs/s26/varied_s$1/checkpoints/step_$(printf %08d "$PRE_STEPS").pt" ] && return
    "${RA[@]}" train --data data/store_varied --out "runs/s26/varied_s$1" --steps "$PRE_STEPS" "${FLAGS[@]}" \
        --set augment_hue=1 --set seed="$1" --set checkpoint_every=3000 --set keep_checkpoints=10
}
continue_on_attempts() {  # continue_on_attempts SEED AT: session 20's goal-model recipe from that checkpoint
    local ckpt; ckpt=runs/s26/varied_s$1/checkpoints/step_$(printf %08d "$2").pt
    "${RA[@]}" train --data data/task_50 --out "runs/s26/gcft_varied_s$1_at$2" --steps "$FT_STEPS" "${FLAGS[@]}" \
        --set init_from="$ckpt" --set checkpoint_every=1500
}

for s in $SEEDS; do pretrain "$s" & done; wait
for s in $SEEDS; do for at in $AT; do continue_on_attempts "$s" "$at" & done; done
for s in $SCRATCH_SEEDS; do
    "${RA[@]}" train --data data/task_50 --out "runs/s26/gcscratch_s$s" --steps "$FT_STEPS" "${FLAGS[@]}" --set seed="$s" &
done
wait  # six single-thread runs share the two cores: the same total time as two at a time
for s in $SEEDS; do
    for at in $AT; do
        name=varied_s${s}_at$at
        evaluate "runs/s26/varied_s$s" "$at" "$name" grasp,grasp-heldout &
        evaluate "runs/s26/gcft_varied_s${s}_at$at" latest "gcft_$name" grasp-heldout &
        wait
        task_model "gcft_$name" data/store_pose "task_${name}_plainbank" &
        task_model "gcft_$name" data/store_varied "task_${name}_variedbank" &
        wait
    done
done
for s in $SCRATCH_SEEDS; do  # the labelled attempts alone (session 23's scratch)
    evaluate "runs/s26/gcscratch_s$s" latest "gcscratch_s$s" grasp-heldout
    task_model "gcscratch_s$s" data/task_50 "task_scratch_s$s"
done
# The two pretraining seeds' goal models as one (mean action), and the two scratch ones likewise:
# `task-goals` gives a mean-of-N goal model the nearest picture alone (K = 1), as it does the shipped
# one; K = 5, a single model's default, is measured beside it.
mean_of() {  # mean_of NAME BANK RUN...: export the runs as one, judge it given goal pictures and as a task model
    local name=$1 bank=$2; shift 2
    "${RA[@]}" export "$@" -o "$ONNX/$name.onnx" > /dev/null
    "${RA[@]}" eval --policy "$ONNX/$name.onnx" --suite grasp-heldout --episodes 100 --seed 0 --json "$OUT/$name.json" --no-progress
    task_model "$name" "$bank" "task_$name"
    task_model "$name" "$bank" "task_${name}_k5" --goals 5
}
mean_of gcft_varied_mean_at12000 data/store_pose $(for s in $SEEDS; do echo "runs/s26/gcft_varied_s${s}_at12000"; done) &
mean_of gcscratch_mean data/task_50 $(for s in $SCRATCH_SEEDS; do echo "runs/s26/gcscratch_s$s"; done) &
wait
