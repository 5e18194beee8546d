#!/usr/bin/env bash
# Session 25's probe: does varied play data make a better goal model for the held-out grasp?
# Plain and varied play stores side by side, the same pretraining (the README's pre-grasp GCBC
# recipe with hue turns), the same continuation on 50 labelled attempts, the same evaluation.
#
#   PATH=$PWD/.venv/bin:$PATH SEEDS="0 1" PRE_STEPS=12000 FT_STEPS=3000 bench/varied_play_probe.sh
# Writes data/{bags,store_pose,bags_varied,store_varied,task_bags_50,task_50} (skipped when
# present), runs/s25/* and bench/results/varied_s25/*.json. About 2 hours on 2 CPU cores.
set -euo pipefail
SEEDS=${SEEDS:-"0 1"}; PRE_STEPS=${PRE_STEPS:-12000}; FT_STEPS=${FT_STEPS:-3000}
OUT=bench/results/varied_s25; ONNX=runs/s25/onnx; mkdir -p "$ONNX" "$OUT"
source "$(dirname "$0")/probe_common.sh"

store() {  # store NAME TASK EPISODES SEED BAGS
    [ -d "data/$1" ] && return
    "${RA[@]}" collect --task "$2" --episodes "$3" --seed "$4" --workers 2 --out "data/$5" --no-progress
    "${RA[@]}" dataset build "data/$5" -o "data/$1" --workers 2
}

store store_pose play 1000 1 bags
store store_varied play-varied 1000 1 bags_varied
store task_50 grasp-heldout 50 100 task_bags_50

for s in $SEEDS; do
    for play in plain varied; do
        data=data/store_pose; [ $play = varied ] && data=data/store_varied
        "${RA[@]}" train --data $data --out "runs/s25/${play}_s$s" --steps "$PRE_STEPS" "${FLAGS[@]}" \
            --set augment_hue=1 --set seed="$s" --set checkpoint_every=3000 --set keep_checkpoints=10 &
    done
    wait
    for play in plain varied; do
        "${RA[@]}" train --data data/task_50 --out "runs/s25/gcft_${play}_s$s" --steps "$FT_STEPS" "${FLAGS[@]}" \
            --set init_from="runs/s25/${play}_s$s" --set checkpoint_every=1500 &
    done
    "${RA[@]}" train --data data/task_50 --out "runs/s25/gcscratch_s$s" --steps "$FT_STEPS" "${FLAGS[@]}" --set seed="$s" &
    wait
    for play in plain varied; do
        evaluate "runs/s25/${play}_s$s" latest "${play}_s${s}_12k" grasp,grasp-heldout
        evaluate "runs/s25/gcft_${play}_s$s" latest "gcft_${play}_s$s" grasp,grasp-heldout
        task_model "gcft_${play}_s$s" data/store_pose "task_${play}_s$s"  # goal pictures from the plain play
    done
    evaluate "runs/s25/gcscratch_s$s" latest "gcscratch_s$s" grasp,grasp-heldout
    task_model "gcscratch_s$s" data/task_50 "task_scratch_s$s"  # the labelled attempts alone (session 23's scratch)
done
