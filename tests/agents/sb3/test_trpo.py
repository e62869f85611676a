"""`FusedGradTRPO` computes exactly sb3-contrib TRPO's actor gradients, in one call each."""

from __future__ import annotations

import copy

import numpy as np
import torch
from sb3_contrib import TRPO
from torch.distributions import kl_divergence

from rlhf_gym.agents.common import make_env
from rlhf_gym.agents.sb3.train import SB3Config, build_model
from rlhf_gym.agents.sb3.trpo import FusedGradTRPO
from rlhf_gym.agents.sb3.vec_env import SB3VecEnv


def test_fused_actor_gradients_equal_sb3_contribs(toy_env_id, policy_path, tmp_path):
    config = SB3Config(algo="trpo", env=toy_env_id, policy=policy_path, num_envs=4, n_steps=8, batch_size=32, temperature=0.7,
                           threads=1, out=str(tmp_path))
    core = make_env(config.env, config.num_envs, "train", autoreset_mode="same_step")
    venv = SB3VecEnv(core)
    model = build_model(config, venv, policy_path, core.max_prompt_tokens, config.temperature)
    assert isinstance(model, FusedGradTRPO)
    rng = np.random.default_rng(0)
    observations = [venv.reset()]
    for _ in range(3):  # a batch with several steps of the same episodes
        observations.append(venv.step(rng.integers(core.vocab_size, size=config.num_envs))[0])
    obs = {key: np.concatenate([o[key] for o in observations]) for key in observations[0]}
    obs_tensor, _ = model.policy.obs_to_tensor(obs)

    torch.manual_seed(0)
    with torch.no_grad():
        old = copy.copy(model.policy.get_distribution(obs_tensor))
        actions = old.sample()
        for param in model.policy.lm.parameters():  # step off the old policy: a non-zero KL gradient
            param.add_(1e-2 * torch.randn_like(param))
    new = model.policy.get_distribution(obs_tensor)
    advantages = torch.randn(actions.shape[0])
    objective = (advantages * torch.exp(new.log_prob(actions) - old.log_prob(actions))).mean()
    kl = kl_divergence(new.distribution, old.distribution).mean()

    params, objective_grad, grad_kl, shapes = model._compute_actor_grad(kl, objective)
    ref_params, ref_objective_grad, ref_grad_kl, ref_shapes = TRPO._compute_actor_grad(model, kl, objective)
    assert [id(p) for p in params] == [id(p) for p in ref_params]
    assert all(p.data_ptr() not in {q.data_ptr() for q in model.policy.vf_features_extractor.parameters()}
               for p in params)  # the critic's LM copy is not an actor parameter
    assert shapes == ref_shapes
    assert grad_kl.abs().max() > 0
    torch.testing.assert_close(objective_grad, ref_objective_grad, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(grad_kl, ref_grad_kl, atol=1e-6, rtol=1e-5)
    vector = torch.randn_like(grad_kl)
    torch.testing.assert_close(  # the conjugate-gradient solve's Hessian-vector product
        model.hessian_vector_product(params, grad_kl, vector),
        model.hessian_vector_product(ref_params, ref_grad_kl, vector),
        atol=1e-5, rtol=1e-4,
    )
