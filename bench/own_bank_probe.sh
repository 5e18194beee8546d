#!/usr/bin/env bash
# Session 30's fourth probe (#8, product): `finetune --mode goal` without --play takes its goal
# pictures from the labelled attempts' own frames, for a user who has no play store. How much
# does that cost? The 50-attempt pretrained goal models of bench/fresh_suites_probe.sh (varied
# pretraining, 3000 updates) made task models with the attempts as the bank, judged as every
# #8 cell (K = 5, 100 held-out tasks, suite seed 0), against the play bank's 77/73/77.
#
#   PATH=$PWD/.venv/bin:$PATH bench/own_bank_probe.sh
# Needs runs/s30/onnx/gcft_varied_s{0,1,2}_at3000.onnx and data/task_50. Writes
# bench/results/finetune_s30/ownbank-at3000_n50_s*.json. About 10 minutes on 2 CPU cores.
set -euo pipefail
OUT=bench/results/finetune_s30; ONNX=runs/s30/onnx; TASK_DATA=data/task_50
source "$(dirname "$0")/probe_common.sh"
task_model gcft_varied_s0_at3000 "$TASK_DATA" ownbank-at3000_n50_s0 &
task_model gcft_varied_s1_at3000 "$TASK_DATA" ownbank-at3000_n50_s1 & wait
task_model gcft_varied_s2_at3000 "$TASK_DATA" ownbank-at3000_n50_s2
