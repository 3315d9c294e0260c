#!/bin/bash
# The success table of one policy-canvas run with a goal readout, closed loop (replanning every 3 control steps) and
# open loop (the paper's protocol: one plan per 12 steps), as in sessions 17–20: 50 unseen episodes per task (seeds
# from 100000), 2 Euler steps, guidance 2, best of 4 plans by the readout, keeping the plan unless a new one scores
# higher. The success tables are copied beside this script as LABEL.json and LABEL_open.json.
#   RUN=runs/ai_s20 LABEL=ai_s20 [TASKS="push"] bash benchmarks/results/closed_loop/evaluate_run.sh
set -e
cd "$(dirname "$0")/../../.."  # the repository root
export MUJOCO_GL=egl
: "${RUN:?set RUN to the run folder}" "${LABEL:?set LABEL to the name of the results}"
CKPT=$RUN/lightning_logs/version_0/checkpoints/last.ckpt
OUT=$RUN/eval  # episode videos and per-episode records
COMMON=(--checkpoint $CKPT --task ${TASKS:-reach push pick_place} --episodes 50 --steps 2 --guidance-scale 2 --candidates 4 --keep-plan --videos 2)
evaluate() {  # label, options
  label=$1; shift
  .venv/bin/action-images eval "${COMMON[@]}" "$@" --label $label --out $OUT
  cp $OUT/${label}_success.json benchmarks/results/closed_loop/$label.json
}
evaluate $LABEL --replan-every 3
[ -n "$CLOSED_ONLY" ] || evaluate ${LABEL}_open --replan-every 12
