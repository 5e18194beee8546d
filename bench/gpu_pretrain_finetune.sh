#!/usr/bin/env bash
# Hue-turned GCBC pretraining at GPU scale, then cloning fine-tunes from several of its
# checkpoints, all exported to ONNX for evaluation elsewhere (the GPU machine has no pybullet).
#
# Why: on the 2-core CPU machine pretraining stopped at 12000 updates (40 minutes a seed), so
# whether transfer to the held-out object grows with more pretraining was never measured.
# On a GPU the CUDA-graph feed trains the same recipe at hundreds of updates/s, and the
# fine-tunes (host-fed, one thread each) run side by side on the machine's many cores.
#
#   bench/gpu_pretrain_finetune.sh WORK PLAY_STORE TASK_STORE
#   environment: PRE_SEEDS="0 1 2" PRE_STEPS=60000 PRE_EVERY=12000 FT_FROM="12000 36000 60000" (empty: pretraining only)
#                FT_SEEDS="0" SCRATCH_SEEDS="0 1" (empty: none) FT_STEPS=0 (= finetune's default) PARALLEL=12
#                PYTHON=python3 (the interpreter that runs `robot_app.cli`)
#                EXTRA_TASK=DIR (a second labelled store, e.g. 100 episodes: one fine-tune per
#                pretraining seed from its last FT_FROM checkpoint, named ftx_pS_atK_f0)
# Writes WORK/pre_sS (pretraining runs), WORK/ft_pS_atK_fF and WORK/scratch_fF (fine-tunes),
# WORK/onnx/*.onnx (+ cards) and WORK/log/*.log; prints a line as each stage ends.
set -euo pipefail

WORK=${1:?WORK directory}; PLAY=${2:?play store}; TASK=${3:?labelled task store}
PRE_SEEDS=${PRE_SEEDS:-"0 1 2"}; PRE_STEPS=${PRE_STEPS:-60000}; PRE_EVERY=${PRE_EVERY:-12000}
FT_FROM=${FT_FROM-"12000 36000 60000"}; FT_SEEDS=${FT_SEEDS:-0}; SCRATCH_SEEDS=${SCRATCH_SEEDS-"0 1"}
FT_STEPS=${FT_STEPS:-0}; PARALLEL=${PARALLEL:-12}; PYTHON=${PYTHON:-python3}
RA=("$PYTHON" -m robot_app.cli)
# The README's pre-grasp GCBC recipe with hue turns (BENCHMARKS.md, session 15).
RECIPE=(--algo gcbc --set augment_hue=1 --set network.height_input=true --set gcbc.switch_weight=3
        --set sampler.p_next=0 --set sampler.p_geometric=0 --set sampler.pre_grasp_steps=10
        --set sampler.pre_grasp_weight=3)
CLONE=(--set num_threads=1 --set clone_failed_approaches=true --steps "$FT_STEPS" --no-progress)
mkdir -p "$WORK/log" "$WORK/onnx"

throttle() {  # wait until fewer than PARALLEL background jobs run
    while [ "$(jobs -rp | wc -l)" -ge "$PARALLEL" ]; do wait -n || true; done
}

for s in $PRE_SEEDS; do
    "${RA[@]}" train --data "$PLAY" --out "$WORK/pre_s$s" --steps "$PRE_STEPS" "${RECIPE[@]}" \
        --set seed="$s" --set checkpoint_every="$PRE_EVERY" --set keep_checkpoints=1000 --no-progress \
        >"$WORK/log/pre_s$s.log" 2>&1 &
done
wait
echo "pretraining done: $(date -u +%T)"

for s in $PRE_SEEDS; do
    for k in $FT_FROM; do
        from="$WORK/pre_s${s}_at$k"  # a run directory holding just that checkpoint, for --from
        mkdir -p "$from/checkpoints"
        ln -sf "$(realpath "$WORK/pre_s$s/checkpoints")/$(printf 'step_%08d.pt' "$k")" "$from/checkpoints/"
        for f in $FT_SEEDS; do
            name="ft_p${s}_at${k}_f$f"
            throttle
            "${RA[@]}" finetune --mode bc --from "$from" --data "$TASK" --out "$WORK/$name" --seed "$f" \
                "${CLONE[@]}" --export "$WORK/onnx/$name.onnx" >"$WORK/log/$name.log" 2>&1 &
        done
    done
done
if [ -n "${EXTRA_TASK:-}" ]; then
    last=$(echo "$FT_FROM" | awk '{print $NF}')
    for s in $PRE_SEEDS; do
        name="ftx_p${s}_at${last}_f0"
        throttle
        "${RA[@]}" finetune --mode bc --from "$WORK/pre_s${s}_at$last" --data "$EXTRA_TASK" --out "$WORK/$name" \
            "${CLONE[@]}" --export "$WORK/onnx/$name.onnx" >"$WORK/log/$name.log" 2>&1 &
    done
fi
for f in $SCRATCH_SEEDS; do
    throttle
    "${RA[@]}" finetune --mode bc-scratch --from "$WORK/pre_s$(echo "$PRE_SEEDS" | cut -d' ' -f1)" --data "$TASK" \
        --out "$WORK/scratch_f$f" --seed "$f" "${CLONE[@]}" --export "$WORK/onnx/scratch_f$f.onnx" \
        >"$WORK/log/scratch_f$f.log" 2>&1 &
done
wait
echo "fine-tuning done: $(date -u +%T)"
