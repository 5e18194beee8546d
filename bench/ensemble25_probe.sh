#!/usr/bin/env bash
# Session 31's first probe (#8): do the three seeds of a 25-attempt cell act better as one model
# (robot-app export RUN1 RUN2 RUN3: their mean action) than each alone? Same goal models as
# bench/fresh_suites_probe.sh's 25-attempt cells (pretrained at 500 updates, scratch at 3000),
# made one task model each as those were (pretrained: the play bank; scratch: its own attempts),
# judged on the same fresh tasks (suite seeds 1 and 2).
#
#   PATH=$PWD/.venv/bin:$PATH bench/ensemble25_probe.sh
# Needs runs/s30/gcft25_varied_s* (bench/pretrained25_early_probe.sh), runs/s27/gcscratch25_s*
# (bench/attempts25_probe.sh), data/task_25 and data/store_varied. Writes
# bench/results/finetune_s31/{pre,scr}25_ens012_suite{1,2}.json. About 10 minutes on 2 CPU cores.
# (Session 31 ran it with the localiser of then, before pasting was its default: --paste 0 keeps that.)
set -euo pipefail
ONNX=runs/s31/onnx; OUT=bench/results/finetune_s31
mkdir -p "$ONNX" "$OUT"
robot-app export runs/s30/gcft25_varied_s{0,1,2} --checkpoint 500 -o $ONNX/pre25_ens012.onnx > /dev/null &
robot-app export runs/s27/gcscratch25_s{0,1,2} --checkpoint 3000 -o $ONNX/scr25_ens012.onnx > /dev/null &
wait
robot-app task-goals --model $ONNX/pre25_ens012.onnx --data data/task_25 --play data/store_varied \
    --out $ONNX/task_pre25_ens012.onnx --paste 0 --threads 1 --no-progress &
robot-app task-goals --model $ONNX/scr25_ens012.onnx --data data/task_25 --play data/task_25 \
    --out $ONNX/task_scr25_ens012.onnx --paste 0 --threads 1 --no-progress &
wait
for suite in 1 2; do
    for side in pre scr; do
        robot-app eval --policy $ONNX/task_${side}25_ens012.onnx --suite grasp-heldout --episodes 100 --seed $suite \
            --json $OUT/${side}25_ens012_suite$suite.json --no-progress &
    done
    wait
done
