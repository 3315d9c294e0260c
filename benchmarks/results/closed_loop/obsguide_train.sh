#!/bin/bash
# Session 14: run P's recipe plus observation dropout (10 %), so guidance amplifies the scene, trained in session 14.
# This machine trains at 0.75 s/step (run P had 0.22): the schedule is sized to 55 minutes here, 4200 steps.
set -e
cd "$(dirname "$0")/../../.."  # the repository root
export MUJOCO_GL=egl
A=.venv/bin/action-images
[ -d data/sim_3000s ] || $A collect --task reach push pick_place --episodes 1000 --seed 1 --settle 10 --out data/sim_3000s --workers 2
test -d data/sim_3000s
date
[ -d data/sim_start ] || $A collect --task reach push pick_place --episodes 500 --seed 2 --start-spread 0.15 --out data/sim_start --workers 2
date
$A fit --config configs/sim_cpu.yaml --data.datasets '[data/sim_3000s, data/sim_start]' --data.balance episodes \
  --model.init_args.transformer '{patch_size: [2, 2, 2], num_attention_heads: 4, attention_head_dim: 32, ffn_dim: 512, num_layers: 4, freq_dim: 64, rope_max_seq_len: 256, num_slot_ids: 6, pooled_text: true}' \
  --model.init_args.goal_readout_weight 0.05 --model.init_args.goal_readout_min_noise 0.5 --model.init_args.timestep_shift 3.0 \
  --model.init_args.canvas policy --model.init_args.observation_dropout 0.1 \
  --model.init_args.max_steps 4200 --trainer.max_steps 4200 --trainer.max_time 00:00:55:00 \
  --trainer.default_root_dir runs/policy_obsguide --trainer.logger.init_args.save_dir runs/policy_obsguide --model.init_args.samples_dir runs/policy_obsguide/samples
date
