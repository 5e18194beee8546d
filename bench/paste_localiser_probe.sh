#!/usr/bin/env bash
# Session 31's probe (#8): the task models' localiser with pasted scenes (training/localiser.py,
# paste_fraction 0.5: the attempts' object cut out and pasted onto play frames at other places).
# At 25 attempts the localiser found the object within 2 cm in 48-55% of suite seed 0's start
# frames, and with pasting in 88-99% (bench/task_goal_proposal.py --localiser, three seeds). Here
# the same goal models as session 30's fresh-suite cells (pretrained, 25 attempts at 500 updates;
# 50 attempts at 3000) get a pasting localiser, judged on suite seeds 1 and 2, the tasks session
# 30 judged them on with the old localiser (bench/fresh_suites_probe.sh). Scratch models keep their
# localiser: they have no play data to paste onto.
#
#   PATH=$PWD/.venv/bin:$PATH bench/paste_localiser_probe.sh
# Needs runs/s30/onnx/gcft25_varied_s*_at500.onnx (bench/pretrained25_early_probe.sh),
# runs/s27/onnx/gcft_varied_s*_at3000.onnx (bench/finetune_length_probe.sh),
# runs/s28/onnx/gcft100_varied_s*_at3000.onnx and scratch100-at12000_n100_s*.onnx (bench/attempts100_probe.sh,
# bench/scratch100_length_probe.sh), data/task_25, data/task_50, data/task_100 and data/store_varied.
# Writes bench/results/finetune_s31/paste/*_suite{0,1,2}.json (table: bench/fresh_suites_table.py
# bench/results/finetune_s30/fresh_suites bench/results/finetune_s31/paste) and finetune_s31/shipped/. About
# 50 minutes on 2 CPU cores.
set -euo pipefail
OUT=bench/results/finetune_s31/paste; ONNX=runs/s31/onnx
mkdir -p "$ONNX" "$OUT"
pasted() {  # pasted GOAL_MODEL TASK_DATA NAME SEED SUITES: a task model with a pasting localiser, judged
    [ -f "$ONNX/$3.onnx" ] || robot-app task-goals --model "$1" --data "$2" --play data/store_varied --out "$ONNX/$3.onnx" \
        --seed "$4" --paste 0.5 --threads 1 --no-progress
    for suite in $5; do
        [ -f "$OUT/$3_suite$suite.json" ] || robot-app eval --policy "$ONNX/$3.onnx" --suite grasp-heldout --episodes 100 \
            --seed "$suite" --json "$OUT/$3_suite$suite.json" --no-progress
    done
}
for s in 0 1 2; do
    pasted "runs/s30/onnx/gcft25_varied_s${s}_at500.onnx" data/task_25 "pretrained25+paste-at500_n25_s$s" "$s" "1 2" &
    pasted "runs/s27/onnx/gcft_varied_s${s}_at3000.onnx" data/task_50 "pretrained+paste-at3000_n50_s$s" "$s" "1 2" &
    wait
done
# Then: the same models on suite seed 0 (the tasks the #8 table's lengths were picked on), and,
# to show how much of the gain is the task model's and how much the policy's, the scratch goal
# models (25 attempts, 3000 updates) given the same play bank and pasting localiser, though
# scratch by definition uses no play data (the #8 comparison keeps their own-attempts bank).
for s in 0 1 2; do
    pasted "runs/s30/onnx/gcft25_varied_s${s}_at500.onnx" data/task_25 "pretrained25+paste-at500_n25_s$s" "$s" "0" &
    pasted "runs/s27/onnx/gcft_varied_s${s}_at3000.onnx" data/task_50 "pretrained+paste-at3000_n50_s$s" "$s" "0" &
    wait
    pasted "runs/s27/onnx/gcscratch25_s$s.onnx" data/task_25 "scratch25+playbank+paste-at3000_n25_s$s" "$s" "1 2"
done
# Then the 100-attempt cell (session 29's picks: pretrained at 3000 updates, scratch at 12000), on
# the fresh suites: pretrained with the pasting localiser, and scratch with its own-attempts task
# model as before (no play data; its task model is the one session 29 judged on suite seed 0).
for s in 0 1 2; do
    pasted "runs/s28/onnx/gcft100_varied_s${s}_at3000.onnx" data/task_100 "pretrained100+paste-at3000_n100_s$s" "$s" "0 1 2" &
    for suite in 1 2; do
        [ -f "$OUT/scratch100-at12000_n100_s${s}_suite$suite.json" ] || robot-app eval \
            --policy "runs/s28/onnx/scratch100-at12000_n100_s$s.onnx" --suite grasp-heldout --episodes 100 \
            --seed "$suite" --json "$OUT/scratch100-at12000_n100_s${s}_suite$suite.json" --no-progress
    done &
    wait
done
# Last, the shipped task model's goal graph (models/grasp_heldout_goal.onnx, the same graph as
# models/grasp_heldout.onnx) made a task model again as the cells above are: today's data/task_50,
# the pasting localiser, the varied play bank, K = 5 (the shipped one: session 22's attempts, no
# pasting, the cube play bank of data/store_pose, K = 1; 84 / 79 / 79 on suites 0 / 1 / 2).
SHIPPED=runs/s31/shipped; mkdir -p "$SHIPPED" bench/results/finetune_s31/shipped
[ -f "$SHIPPED/grasp_heldout.onnx" ] || robot-app task-goals --model models/grasp_heldout_goal.onnx --data data/task_50 \
    --play data/store_varied --out "$SHIPPED/grasp_heldout.onnx" --threads 1 --no-progress
for suite in 0 1 2; do
    [ -f "bench/results/finetune_s31/shipped/rebuilt_suite$suite.json" ] || robot-app eval --policy "$SHIPPED/grasp_heldout.onnx" \
        --suite grasp-heldout --episodes 100 --seed "$suite" --json "bench/results/finetune_s31/shipped/rebuilt_suite$suite.json" --no-progress
done
