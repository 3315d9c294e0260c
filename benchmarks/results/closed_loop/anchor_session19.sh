#!/bin/bash
# Session 19: does anchoring Action Images' plans on their goal readout help, as it helped ImageWAM?
# RUN is a policy-canvas model trained with a goal readout (imagewam_comparison_train.sh MODEL=actionimages).
# Each evaluation: 50 unseen episodes per task (seeds from 100000), 2 Euler steps, guidance 2, best of 4 plans by the
# readout, keeping the plan unless a new one scores higher; closed loop replans every 3 control steps.
set -e
cd "$(dirname "$0")/../../.."  # the repository root
export MUJOCO_GL=egl
RUN=${RUN:-runs/ai_s19}
CKPT=$RUN/lightning_logs/version_0/checkpoints/last.ckpt
OUT=$RUN/eval  # episode videos and per-episode records; the success tables are copied beside this script
COMMON=(--checkpoint $CKPT --task reach push pick_place --episodes 50 --steps 2 --guidance-scale 2 --candidates 4 --keep-plan --videos 2)
evaluate() {  # label, options
  label=$1; shift
  .venv/bin/action-images eval "${COMMON[@]}" "$@" --label $label --out $OUT
  cp $OUT/${label}_success.json benchmarks/results/closed_loop/$label.json
}
evaluate ai_s19_anchor --replan-every 3 --anchor
evaluate ai_s19 --replan-every 3
evaluate ai_s19_anchor_open --replan-every 12 --anchor
