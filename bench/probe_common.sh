# Shared by the bench/*_probe.sh scripts (source it after setting ONNX and OUT; RUNS and TASK_DATA
# for the continuation helpers): the README's pre-grasp GCBC recipe flags, the two measurements
# every probe makes, and the continuation on labelled attempts, through the command line alone.
RA=(robot-app)
FLAGS=(--algo gcbc --set network.height_input=true --set gcbc.switch_weight=3 --set sampler.p_next=0
       --set sampler.p_geometric=0 --set sampler.pre_grasp_steps=10 --set sampler.pre_grasp_weight=3
       --set num_threads=1 --no-progress)

evaluate() {  # evaluate RUN CHECKPOINT NAME FAMILIES: export, then each task's own goal image given
    "${RA[@]}" export "$1" --checkpoint "$2" -o "$ONNX/$3.onnx" > /dev/null
    "${RA[@]}" eval --policy "$ONNX/$3.onnx" --suite "$4" --episodes 100 --seed 0 --json "$OUT/$3.json" --no-progress
}
task_model() {  # task_model GOAL_MODEL_NAME BANK_STORE NAME [TASK_GOALS_FLAGS...]: `task-goals` on the
    # labelled attempts in $TASK_DATA (default data/task_50), then eval
    "${RA[@]}" task-goals --model "$ONNX/$1.onnx" --data "${TASK_DATA:-data/task_50}" --play "$2" \
        --out "$ONNX/$3.onnx" --threads 1 --no-progress "${@:4}"
    "${RA[@]}" eval --policy "$ONNX/$3.onnx" --suite grasp-heldout --episodes 100 --seed 0 \
        --json "$OUT/$3.json" --no-progress
}

ckpt() { echo "$RUNS/$1/checkpoints/step_$(printf %08d "$2").pt"; }  # ckpt RUN STEP
continuation() {  # continuation NAME STEPS [FLAGS...]: STEPS on $TASK_DATA, a checkpoint every 1500 (skipped when done)
    local name=$1 steps=$2; shift 2
    [ -f "$(ckpt "$name" "$steps")" ] && return
    "${RA[@]}" train --data "${TASK_DATA:-data/task_50}" --out "$RUNS/$name" --steps "$steps" "${FLAGS[@]}" \
        --set checkpoint_every=1500 --set keep_checkpoints=10 "$@"
}
judge() {  # judge RUN LABEL SEED BANK LENGTHS: each length's goal model made a task model and evaluated,
    # named LABEL-atLENGTH_nATTEMPTS_sSEED.json as bench/finetune_steps.py reads it
    local attempts; attempts=$(basename "${TASK_DATA:-data/task_50}"); attempts=${attempts#task_}
    for at in $5; do
        "${RA[@]}" export "$RUNS/$1" --checkpoint "$at" -o "$ONNX/$1_at$at.onnx" > /dev/null
        task_model "$1_at$at" "$4" "$2-at${at}_n${attempts}_s$3"
    done
}
