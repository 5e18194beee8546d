#!/usr/bin/env bash
# Session 31's #4 probe: does a short continuation on the play data's lifting segments lift the
# cube grasp family? The play episodes (`collect --episodes 400 --seed 1`, the first 400 of the
# tour's store) cut at the first frame whose measured gripper holds an object 12-20 cm up (plus 2
# frames; robot_app/goal_proposal.held_lift_rows: proprioception only, no labels, no simulator
# state), so every hindsight goal of a segment is on the way to a lifted object. Continued with the
# pre-grasp recipe from models/gcbc_grasp.onnx (grasp 42/100 at suite seed 0) and from
# models/play_pretrained.onnx (37/100), 1000 updates, judged every 250 on the grasp family's 100
# tasks at suite seed 0.
#
#   PATH=$PWD/.venv/bin:$PATH bench/lift_segments_probe.sh
# Writes data/bags_play400 (session 31 then moved it to data/bags_play), data/store_play400, data/store_lift400,
# data/store_play1000, data/store_lift1000, runs/s31/lift*_from_*,
# bench/results/s31/lift_segments/*.json.
set -euo pipefail
OUT=bench/results/s31/lift_segments; ONNX=runs/s31/onnx; mkdir -p "$OUT" "$ONNX"
if [ ! -d data/store_lift400 ]; then
    [ -d data/store_play400 ] || { robot-app collect --episodes 400 --workers 2 --seed 1 --out data/bags_play400 --no-progress
                                   robot-app dataset build data/bags_play400 -o data/store_play400; }
    robot-app dataset lifts data/store_play400 -o data/store_lift400
fi
RECIPE=(--set gcbc.switch_weight=3 --set sampler.p_next=0 --set sampler.p_geometric=0 --set sampler.pre_grasp_steps=10
        --set sampler.pre_grasp_weight=3 --set num_threads=1 --set checkpoint_every=250 --set keep_checkpoints=10 --no-progress)
judge_lift() {  # judge_lift RUN NAME STEP SUITES: export at STEP, grasp family per suite seed
    [ -f "$ONNX/$2_at$3.onnx" ] || robot-app export "$1" --checkpoint "$3" -o "$ONNX/$2_at$3.onnx" > /dev/null
    for suite in $4; do
        local json="$OUT/$2_at$3_grasp_suite$suite.json"; [ "$suite" = 0 ] && json="$OUT/$2_at$3.json"
        [ -f "$json" ] || robot-app eval --policy "$ONNX/$2_at$3.onnx" --suite grasp --episodes 100 --seed "$suite" \
            --json "$json" --no-progress
    done
}
continue_from() {  # continue_from MODEL NAME [STORE]
    # (any checkpoint: seed 0's run was later continued to 6000 and its rolling checkpoints dropped 1000)
    compgen -G "runs/s31/$2/checkpoints/step_*.pt" > /dev/null || robot-app train --data "${3:-data/store_lift400}" --algo gcbc \
        --out "runs/s31/$2" --steps 1000 --set init_from="$1" "${RECIPE[@]}"
    for at in ${STEPS:-250 500 1000}; do judge_lift "runs/s31/$2" "$2" "$at" 0; done
}
continue_from models/gcbc_grasp.onnx lift_from_gcbc_grasp &
continue_from models/play_pretrained.onnx lift_from_play_pretrained &
wait
# Then the same from all 1000 play episodes of the tour's store (756 lift something), from
# play_pretrained, the better start above.
if [ ! -d data/store_lift1000 ]; then
    robot-app collect --episodes 1000 --workers 2 --seed 1 --out data/bags_play --no-progress
    [ -d data/store_play1000 ] || robot-app dataset build data/bags_play -o data/store_play1000
    robot-app dataset lifts data/store_play1000 -o data/store_lift1000
fi
continue_from models/play_pretrained.onnx lift1000_from_play_pretrained data/store_lift1000
# Seed 0 was continued to 3000 updates and then 6000 (`train --resume --steps N`, a checkpoint every
# 250 then 1000), judged at 2000, 3000 and 6000 on suite seed 0, then at 3000 and 6000 on suite
# seeds 1 and 2; seeds 1 and 2 from the same start likewise, each judged on suites 0-2.
R=runs/s31/lift1000_from_play_pretrained
for steps in 3000 6000; do
    [ -f "$R/checkpoints/step_$(printf %08d $steps).pt" ] || robot-app train --out "$R" --resume --steps "$steps" \
        --data data/store_lift1000 --no-progress $([ "$steps" = 6000 ] && echo --set checkpoint_every=1000)
done
judge_lift "$R" lift1000_from_play_pretrained 2000 0
judge_lift "$R" lift1000_from_play_pretrained 3000 "0 1 2"
judge_lift "$R" lift1000_from_play_pretrained 6000 "0 1 2"
# 6000 grasped 81 of suite seed 0's 100 against 72 at 3000, so both lengths for seeds 1 and 2 too.
for seed in 1 2; do
    [ -f "${R}_seed$seed/checkpoints/step_00003000.pt" ] || robot-app train --data data/store_lift1000 --algo gcbc \
        --out "${R}_seed$seed" --steps 3000 --set init_from=models/play_pretrained.onnx --set seed=$seed "${RECIPE[@]}" \
        --set checkpoint_every=500
    judge_lift "${R}_seed$seed" "lift1000_from_play_pretrained_seed$seed" 3000 "0 1 2"
    [ -f "${R}_seed$seed/checkpoints/step_00006000.pt" ] || robot-app train --out "${R}_seed$seed" --resume --steps 6000 \
        --data data/store_lift1000 --no-progress --set checkpoint_every=1000
    judge_lift "${R}_seed$seed" "lift1000_from_play_pretrained_seed$seed" 6000 "0 1 2"
done
