"""Stable-Baselines3 adapters: SB3 and sb3-contrib algorithms on the batched token env.

- `vec_env.SB3VecEnv`: SB3's ``VecEnv`` over a SAME_STEP `TokenVectorEnv` (numpy in and
  out, ``terminal_observation``, ``action_masks()``).
- `policy.CausalLMActorCriticPolicy` / `policy.MaskableCausalLMActorCriticPolicy`: the
  actor is a causal LM (the env's SFT model), the critic a value head on it.
- `masks.TopPMaskProvider` / `masks.MaskModelRefresh`: NLPO's top-p action masks.
- `kl_reward.PolicyLogProbReward`: the entropy half of the KL penalty for TRPO; the
  reference half is the env wrapper `rlhf_gym.env.kl_penalty.KLRewardWrapper`.
- `trpo.FusedGradTRPO`: sb3-contrib's TRPO with its actor gradients in one autograd call
  (sb3-contrib's one call per parameter tensor made an LM iteration take 13+ min).
- `train.train`: ``rlhf-gym train --agent sb3-ppo|sb3-a2c|sb3-maskable-ppo|sb3-trpo``.

Submodules are imported where used, so ``import rlhf_gym.agents.sb3`` stays cheap.
"""
