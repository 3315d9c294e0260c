#!/bin/bash
# Session 15: ImageWAM with the goal readout (weight 0.05, as the main model) and the prefix modulated at the
# editing timestep in training too (prefix_shares_target_timestep false: the cache the expert learns to read
# is the one inference fills), on run P's data (data/sim_3000s + data/sim_start), episode-balanced clips, and
# tokens of 8 × 8 pixels (codec patch 8, as Action Images' 2 × 2 patches over its patch-4 codec): 4× fewer image
# tokens than the config's patch 4, 0.52 s/step instead of 2.15 on this machine.
# STEPS is sized to 55 minutes of the machine at hand (measure s/step first; default for ~0.55 s/step).
# SEED: session 15 trained seed 0; session 16 repeated the run with SEED=1 RUN=runs/imagewam_readout_s1.
set -e
cd "$(dirname "$0")/../../.."  # the repository root
export MUJOCO_GL=egl
A=.venv/bin/action-images
STEPS=${STEPS:-5600}
SEED=${SEED:-0}
RUN=${RUN:-runs/imagewam_readout}
[ -d data/sim_3000s ] || $A collect --task reach push pick_place --episodes 1000 --seed 1 --settle 10 --out data/sim_3000s --workers 2
[ -d data/sim_start ] || $A collect --task reach push pick_place --episodes 500 --seed 2 --start-spread 0.15 --out data/sim_start --workers 2
date
$A fit --config configs/imagewam_sim_cpu.yaml --data.datasets '[data/sim_3000s, data/sim_start]' --data.balance episodes --seed_everything $SEED \
  --model.init_args.transformer '{backbone_config: {patch_size: 1, num_layers: 2, num_single_layers: 4, attention_head_dim: 32, num_attention_heads: 4, joint_attention_dim: 64, timestep_guidance_channels: 64, mlp_ratio: 3.0, axes_dims_rope: [8, 8, 8, 8], rope_theta: 2000, eps: 1.0e-06, guidance_embeds: false}, action_hidden_dim: 64, action_mlp_ratio: 4.0, edit_timestep: 0.0, prefix_shares_target_timestep: false, image_shift: 5.0, action_shift: 5.0, image_loss_weight: 0.5, action_loss_weight: 1.0, loss_weighting: bell}' \
  --model.init_args.goal_readout_weight 0.05 --model.init_args.codec '{name: patch, patch: 8}' \
  --model.init_args.max_steps $STEPS --trainer.max_steps $STEPS --trainer.max_time 00:00:55:00 \
  --trainer.default_root_dir $RUN --trainer.logger.init_args.save_dir $RUN
date
