#!/usr/bin/env bash
# The GPU run (issue 5 item 8, issue 6 item 8): train `configs/sim_gpu.yaml` on one GPU, measure the
# held-out figures and costs (`tools/bench_model.py --device cuda` → benchmarks/results/model_gpu.json),
# then run the closed-loop evaluation of that model with the model on the GPU.
#
#   action-images collect --task reach push pick_place --episodes 100 --out data/sim --workers 2
#   TRAIN_TIME=00:00:03:45 EPISODES=20 OUT=gpu_output bash tools/gpu_run.sh
#
# The control recipe at GPU size, its demonstrations collected on the device's cores, evaluated as
# the CPU runs are (policy canvas, 2 Euler steps, guidance 2), no held-out bench. Collecting is slow
# there (measured on the H200 machine: ~2,900 episodes in 6 minutes with 14 workers, rendering-bound),
# so it gets at most a third of the deadline; within a 15-minute lease carry the data instead, or
# collect a few hundred episodes per task:
#   CONFIG=configs/sim_gpu_policy.yaml COLLECT_EPISODES=1000 BENCH=0 EPISODES=50 \
#   EVAL_ARGS="--steps 2 --guidance-scale 2" FIT_ARGS="--model.init_args.max_steps 1800 --trainer.max_steps 1800" \
#   TRAIN_TIME=00:00:04:00 bash tools/gpu_run.sh
#
# Everything runs against one deadline (DEADLINE seconds from the start, default 570) so that the
# figures come back even when a lease is short: training stops at TRAIN_TIME, and each evaluation gets
# what time is left. The three tasks are evaluated in parallel processes (the simulator runs on the CPU).
# On a machine whose Python lacks this project's dependencies, `.device/site.tar.xz` (unpacked onto
# PYTHONPATH) and `.device/*.deb` (OpenGL/EGL loaders for MuJoCo) are used when present.
set -euo pipefail
START=$(date +%s)
DEADLINE=${DEADLINE:-570}
TRAIN_TIME=${TRAIN_TIME:-00:00:03:45}
EPISODES=${EPISODES:-20}
OUT=${OUT:-gpu_output}
DEVICE=${DEVICE:-cuda}
FIT_ARGS=${FIT_ARGS:-}  # extra `fit` arguments (no spaces inside one), e.g. to try the script on a CPU
CONFIG=${CONFIG:-configs/sim_gpu.yaml}
COLLECT_EPISODES=${COLLECT_EPISODES:-}  # if set: collect this many settled episodes per task here first
BENCH=${BENCH:-1}  # 0: skip the held-out figures (tools/bench_model.py)
EVAL_ARGS=${EVAL_ARGS:---steps 10}
RUN=$(sed -n 's/^ *default_root_dir: *//p' "$CONFIG" | head -1)
WORK=$(mktemp -d)  # logs and evaluation folders; $OUT receives a few files at the end
mkdir -p "$OUT"
left() { echo $((DEADLINE - ($(date +%s) - START))); }
stage() { echo "=== $(($(date +%s) - START)) s: $*" | tee -a "$OUT/stages.txt"; }  # comes back even if the run is killed

collect_outputs() {  # whatever exists, also after a failure: at most 6 files
    if [ "$BENCH" = 1 ]; then cp benchmarks/results/model_gpu.json benchmarks/results/model_gpu_training_curve.png "$OUT"/ 2>/dev/null || true; fi
    cp "$(ls -t $RUN/lightning_logs/*/metrics.csv 2>/dev/null | head -1)" "$OUT"/metrics.csv 2>/dev/null || true
    for log in "$WORK"/*.log; do
        if [ -f "$log" ]; then echo "##### $(basename "$log")"; tail -60 "$log"; fi
    done > "$OUT/logs.txt"
    python3 -c 'import json, pathlib, sys
tables = {p.stem.removesuffix("_success"): json.loads(p.read_text()) for p in pathlib.Path(sys.argv[1]).glob("eval_*/*_success.json")}
if tables:
    pathlib.Path(sys.argv[2]).write_text(json.dumps(tables, indent=1))' "$WORK" "$OUT/eval_success.json" || true
    for task in reach push; do
        video=$(ls "$WORK"/eval_$task/videos/*.mp4 2>/dev/null | head -1)
        if [ -n "$video" ]; then cp "$video" "$OUT/${task}_episode.mp4"; fi
    done
}
trap collect_outputs EXIT

if [ -f .device/site.tar.xz ] && ! python3 -c "import diffusers, mujoco, av" 2>/dev/null; then
    stage "unpacking the carried packages"
    for f in .device/*.deb; do dpkg -x "$f" /; done
    ldconfig
    mkdir -p /tmp/site && tar xJf .device/site.tar.xz -C /tmp/site
    export PYTHONPATH=$PWD:/tmp/site
fi
export MUJOCO_GL=egl PYTHONUNBUFFERED=1
vendor=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json  # NVIDIA's EGL, where the driver is mounted there
if [ -f $vendor ]; then export __EGL_VENDOR_LIBRARY_FILENAMES=$vendor; fi
AI="python3 -m action_images.cli"

stage "preflight"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
python3 -c '
import torch, diffusers, lightning, mujoco, av
from action_images.sim import make_env
observation, _ = make_env("reach", image_size=64).reset(seed=0)
print("torch", torch.__version__, "GPU", torch.cuda.is_available() and torch.cuda.get_device_name(), "| diffusers", diffusers.__version__,
      "| lightning", lightning.__version__, "| mujoco", mujoco.__version__, "| rendered", {k: v.shape for k, v in observation["images"].items()})'

DATA_ARGS=""
if [ -n "$COLLECT_EPISODES" ]; then
    stage "collect $COLLECT_EPISODES settled episodes per task"
    timeout $(($(left) / 3)) $AI collect --task reach push pick_place --episodes "$COLLECT_EPISODES" --seed 1 --settle 10 --out data/sim_device \
        --workers $(( $(nproc) > 3 ? $(nproc) - 2 : 1 )) > "$WORK/collect.log" 2>&1 || { tail -20 "$WORK/collect.log"; exit 1; }
    tail -2 "$WORK/collect.log"
    DATA_ARGS="--data.datasets [data/sim_device]"
fi

stage "fit $CONFIG for $TRAIN_TIME"
# A checkpoint every 1000 steps rather than 250: with EMA weights and optimiser state one is 0.6 GB.
$AI fit --config "$CONFIG" --trainer.max_time "$TRAIN_TIME" --trainer.enable_progress_bar false \
    --trainer.callbacks '[{class_path: action_images.callbacks.FinalStepCheckpoint, init_args: {save_last: true, every_n_train_steps: 1000}},
                          {class_path: lightning.pytorch.callbacks.LearningRateMonitor, init_args: {logging_interval: step}}]' \
    $DATA_ARGS $FIT_ARGS > "$WORK/fit.log" 2>&1 \
    || { tail -40 "$WORK/fit.log"; exit 1; }
tail -5 "$WORK/fit.log"
CKPT=$(ls -t $RUN/lightning_logs/*/checkpoints/last.ckpt | head -1)

if [ "$BENCH" = 1 ]; then
stage "held-out figures and costs on the GPU"
timeout $(($(left) - 140)) python3 tools/bench_model.py --run $RUN --config "$CONFIG" --results model_gpu --device "$DEVICE" \
    --step-sweep 2 > "$WORK/bench_model.log" 2>&1 || { echo "bench_model failed or ran out of time:"; tail -30 "$WORK/bench_model.log"; }
tail -3 "$WORK/bench_model.log"
fi

stage "closed-loop evaluation, $EPISODES episodes per task, replanning every 3 steps, $EVAL_ARGS"
budget=$(($(left) - 10))
for task in reach push pick_place; do
    OMP_NUM_THREADS=4 timeout "$budget" $AI eval --checkpoint "$CKPT" --task $task --episodes "$EPISODES" --replan-every 3 $EVAL_ARGS \
        --device "$DEVICE" --videos 1 --label "$(basename "$CONFIG" .yaml)_closed_$task" --out "$WORK/eval_$task" > "$WORK/eval_$task.log" 2>&1 &
done
wait || true
for task in reach push pick_place; do tail -4 "$WORK/eval_$task.log"; done
stage "done"
