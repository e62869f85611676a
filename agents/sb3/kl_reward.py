"""The agent's half of the KL penalty for SB3 algorithms without an entropy bonus.

`rlhf_gym.env.kl_penalty.KLRewardWrapper` adds ``beta * log pi_ref(a_t|s_t)`` to the
env's rewards; the objective becomes ``E[r] - beta KL(pi || pi_ref)`` once the agent adds
``beta * H(pi(.|s_t))``. PPO, A2C and MaskablePPO do that with ``ent_coef=beta``. TRPO has
no entropy term, so `PolicyLogProbReward` adds ``-beta * log pi(a_t|s_t)`` (the rollout's
own log-prob, whose expectation is ``beta * H``) to every reward after the rollout and
recomputes the advantages. Wrapper and callback together give the per-token reward
``-beta (log pi - log pi_ref)`` of Ziegler et al. (2019) and our PPO (the k1 estimator).
"""

from __future__ import annotations

import torch
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.utils import obs_as_tensor


class PolicyLogProbReward(BaseCallback):
    """Subtract ``beta * log pi(a_t|s_t)`` from each reward of the rollout, then redo GAE.

    Runs at the end of each rollout, before the update: rewards ``(n_steps, n_envs)`` in
    the rollout buffer change in place, and returns and advantages are recomputed from
    the last observation's value exactly as SB3's ``collect_rollouts`` does.

    Args:
        beta: the KL coefficient, the same as the wrapper's (>= 0).
    """

    def __init__(self, beta: float) -> None:
        super().__init__()
        if not beta >= 0:
            raise ValueError(f"beta must be >= 0, got {beta}")
        self.beta = float(beta)

    def _on_rollout_end(self) -> None:
        if self.beta == 0:
            return
        model = self.model
        buffer = model.rollout_buffer  # type: ignore[attr-defined]
        buffer.rewards -= self.beta * buffer.log_probs  # (n_steps, n_envs) numpy
        last_obs = obs_as_tensor(model._last_obs, model.device)  # type: ignore[arg-type]
        with torch.no_grad():
            last_values = model.policy.predict_values(last_obs)
        buffer.compute_returns_and_advantage(last_values=last_values, dones=model._last_episode_starts)

    def _on_step(self) -> bool:
        return True
