#!/usr/bin/env bash
# Session 31: the README's one command (`finetune --mode goal` from models/varied_pretrained.onnx,
# its defaults: 500 updates from 25 attempts, 3000 from 50, the localiser pasting onto the play
# frames) run again now that pasting is the default, judged on suite seeds 0, 1 and 2 (100 tasks
# each). Session 27-30's figure for the same command without pasting: 66 / 79 of 100 (suite seed 0).
#
#   PATH=$PWD/.venv/bin:$PATH bench/readme_goal_mode_probe.sh
# Needs data/task_25, data/task_50 and data/store_varied. Writes runs/s31/readme_n{25,50} and
# bench/results/finetune_s31/readme/readme-goal-mode_n{25,50}_suite{0,1,2}.json. About 15 minutes on 2 CPU cores.
set -euo pipefail
OUT=bench/results/finetune_s31/readme; mkdir -p "$OUT"
readme() {  # readme ATTEMPTS
    local run=runs/s31/readme_n$1
    [ -f "$run/task_model.onnx" ] || robot-app finetune --mode goal --from models/varied_pretrained.onnx \
        --data "data/task_$1" --play data/store_varied --out "$run" --set num_threads=1 --no-progress
    for suite in 0 1 2; do
        [ -f "$OUT/readme-goal-mode_n$1_suite$suite.json" ] || robot-app eval --policy "$run/task_model.onnx" \
            --suite grasp-heldout --episodes 100 --seed "$suite" --json "$OUT/readme-goal-mode_n$1_suite$suite.json" --no-progress
    done
}
readme 25 &
readme 50 &
wait
