# Shared by bench/varied_*_probe.sh (source it after setting ONNX and OUT): the README's pre-grasp
# GCBC recipe flags, and the two measurements every probe makes, through the command line alone.
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
