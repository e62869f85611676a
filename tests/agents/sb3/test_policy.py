"""The LM-backed SB3 policies: exactly the LM's tempered next-token distribution, ids kept exact."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gymnasium import spaces
from stable_baselines3.common.utils import obs_as_tensor

from rlhf_gym.agents.sb3.policy import CausalLMActorCriticPolicy, MaskableCausalLMActorCriticPolicy
from rlhf_gym.agents.sb3.vec_env import SB3VecEnv
from rlhf_gym.lm.policy import CausalLMPolicy

TEMPERATURE = 0.7


def _policy(env, policy_path, cls=CausalLMActorCriticPolicy, **kwargs):
    return cls(
        env.single_observation_space, env.single_action_space, lambda _: 1e-4,
        model_name_or_path=policy_path, prompt_width=env.max_prompt_tokens, temperature=TEMPERATURE, **kwargs,
    )


def test_distribution_at_reset_is_the_lms_tempered_next_token_distribution(make_toy_env, policy_path):
    env = make_toy_env(4)
    obs, _ = env.reset(seed=0)
    policy = _policy(env, policy_path)
    lm = CausalLMPolicy.from_pretrained(policy_path, temperature=TEMPERATURE)
    with torch.no_grad():
        logits, _ = lm.prefill(obs["input_ids"][:, : env.max_prompt_tokens], obs["attention_mask"][:, : env.max_prompt_tokens])
        expected = torch.softmax(logits / TEMPERATURE, dim=-1)
        probs = policy.get_distribution(obs).distribution.probs
    assert probs.shape == (4, env.vocab_size)
    torch.testing.assert_close(probs, expected, atol=1e-5, rtol=0)


def test_distribution_mid_episode_with_rows_at_different_positions(make_toy_env, policy_path):
    """After SAME_STEP resets rows sit at different t; each row reads its own column P + t - 1."""
    env = make_toy_env(4)
    obs, _ = env.reset(seed=1)
    eos = env.eos_token_id
    other = (eos + 3) % env.vocab_size
    for actions in ([other, eos, other, other], [other, other, eos, other]):  # rows 1 and 2 restart
        obs, *_ = env.step(torch.tensor(actions))
    generated = obs["attention_mask"][:, env.max_prompt_tokens :].sum(-1)
    assert generated.tolist() == [2, 1, 0, 2]
    policy = _policy(env, policy_path)
    lm = CausalLMPolicy.from_pretrained(policy_path, temperature=TEMPERATURE)
    with torch.no_grad():
        all_logits = lm.response_logits(obs["input_ids"], obs["attention_mask"], env.max_prompt_tokens)  # (N, T, V), tempered
        expected = torch.softmax(all_logits[torch.arange(4), generated], dim=-1)
        probs = policy.get_distribution(obs).distribution.probs
    torch.testing.assert_close(probs, expected, atol=1e-5, rtol=0)


def test_rollouts_read_cached_prompts_with_the_same_distribution(make_toy_env, policy_path):
    env = make_toy_env(4)
    obs, _ = env.reset(seed=1)
    for actions in ([7, env.eos_token_id, 8, 9], [10, 11, env.eos_token_id, 12]):  # rows at t = 2, 1, 0, 2
        obs, *_ = env.step(torch.tensor(actions))
    cached, uncached = _policy(env, policy_path), _policy(env, policy_path, cache_prompts=False)
    for policy in (cached, uncached):
        policy.set_training_mode(False)  # what SB3's collect_rollouts does
    with torch.no_grad():
        actions_values = [p(obs, deterministic=True) for p in (cached, uncached)]
        probs = [p.get_distribution(obs).distribution.probs for p in (cached, uncached)]
    torch.testing.assert_close(probs[0], probs[1], atol=1e-5, rtol=0)
    assert torch.equal(actions_values[0][0], actions_values[1][0])
    torch.testing.assert_close(actions_values[0][1], actions_values[1][1], atol=1e-5, rtol=0)  # values
    extractor = cached.pi_features_extractor
    assert extractor.prompt_cache.prompt_forwards == 4  # each distinct prompt once, reused by the next calls
    cached.set_training_mode(True)  # updates differentiate through the full forward, never the cache
    cached.evaluate_actions(obs, torch.zeros(4, dtype=torch.long))
    assert extractor.prompt_cache.prompt_forwards == 4


def test_float_ids_from_the_rollout_buffer_give_the_same_outputs(make_toy_env, policy_path):
    """SB3 stores observations as float32; ids < 2**24 survive the round trip exactly."""
    env = make_toy_env(3)
    obs, _ = env.reset(seed=2)
    policy = _policy(env, policy_path)
    as_float = {key: value.float() for key, value in obs.items()}
    actions = torch.tensor([1, 2, 3])
    with torch.no_grad():
        values_int, logp_int, ent_int = policy.evaluate_actions(obs, actions)
        values_float, logp_float, ent_float = policy.evaluate_actions(as_float, actions)
    torch.testing.assert_close(logp_int, logp_float, atol=0, rtol=0)
    torch.testing.assert_close(ent_int, ent_float, atol=0, rtol=0)
    assert values_int.shape == (3, 1) and torch.all(values_int == 0)  # zero-initialised head


def test_forward_sampling_and_evaluate_agree(make_toy_env, policy_path):
    env = make_toy_env(4)
    obs, _ = env.reset(seed=3)
    policy = _policy(env, policy_path)
    torch.manual_seed(0)
    with torch.no_grad():
        actions, values, logp = policy(obs)
        _, logp_again, _ = policy.evaluate_actions(obs, actions)
        greedy, _ = policy.predict({k: v.numpy() for k, v in obs.items()}, deterministic=True)
        probs = policy.get_distribution(obs).distribution.probs
    assert actions.shape == (4,) and values.shape == (4, 1)
    torch.testing.assert_close(logp, logp_again)
    np.testing.assert_array_equal(greedy, probs.argmax(-1).numpy())


def test_maskable_policy_puts_no_mass_outside_the_mask(make_toy_env, policy_path):
    env = make_toy_env(2)
    obs, _ = env.reset(seed=4)
    policy = _policy(env, policy_path, MaskableCausalLMActorCriticPolicy)
    masks = np.zeros((2, env.vocab_size), dtype=bool)
    masks[0, [5, 9]] = True
    masks[1, 11] = True
    with torch.no_grad():
        unmasked = policy.get_distribution(obs).distribution.probs
        probs = policy.get_distribution(obs, action_masks=masks).distribution.probs
        actions, _, _ = policy(obs, action_masks=masks)
    assert probs[~torch.as_tensor(masks)].max() < 1e-12
    expected = unmasked[0, [5, 9]] / unmasked[0, [5, 9]].sum()
    torch.testing.assert_close(probs[0, [5, 9]], expected, atol=1e-6, rtol=0)
    assert actions[0].item() in (5, 9) and actions[1].item() == 11
    plain = _policy(env, policy_path)
    with pytest.raises(ValueError, match="Maskable"):
        plain.get_distribution(obs, action_masks=masks)


def test_separate_critic_has_its_own_lm_copy(make_toy_env, policy_path):
    env = make_toy_env(2)
    obs, _ = env.reset(seed=5)
    policy = _policy(env, policy_path, share_features_extractor=False)
    actor = dict(policy.pi_features_extractor.named_parameters())
    critic = dict(policy.vf_features_extractor.named_parameters())
    assert all(actor[name] is not critic[name] for name in actor)
    with torch.no_grad():
        values = policy.predict_values(obs)
        policy.value_net.bias.fill_(1.5)
        shifted = policy.predict_values(obs)
    assert values.shape == (2, 1)
    torch.testing.assert_close(shifted, values + 1.5)
    # The optimizer holds both backbones and the head, each parameter once.
    optimised = [p for group in policy.optimizer.param_groups for p in group["params"]]
    assert len({id(p) for p in optimised}) == len(optimised) == len(list(policy.parameters()))


def test_works_on_bridge_observations(make_toy_env, policy_path):
    """The numpy observations of the SB3 bridge, as SB3 converts them, read the same columns."""
    bridge = SB3VecEnv(make_toy_env(2))
    bridge.seed(6)
    obs_np = bridge.reset()
    policy = _policy(bridge.core, policy_path)
    with torch.no_grad():
        from_numpy = policy.get_distribution(obs_as_tensor(obs_np, torch.device("cpu"))).distribution.probs
        from_env = policy.get_distribution(bridge._obs).distribution.probs
    torch.testing.assert_close(from_numpy, from_env, atol=0, rtol=0)


def test_bad_arguments_name_the_value(make_toy_env, policy_path):
    env = make_toy_env(2)
    obs_space, act_space = env.single_observation_space, env.single_action_space
    kwargs = dict(model_name_or_path=policy_path, prompt_width=env.max_prompt_tokens)
    with pytest.raises(ValueError, match="observation_space"):
        CausalLMActorCriticPolicy(spaces.Box(0, 1, (3,)), act_space, lambda _: 1e-4, **kwargs)
    with pytest.raises(ValueError, match="prompt_width"):
        CausalLMActorCriticPolicy(obs_space, act_space, lambda _: 1e-4, model_name_or_path=policy_path, prompt_width=999)
    with pytest.raises(ValueError, match="temperature"):
        CausalLMActorCriticPolicy(obs_space, act_space, lambda _: 1e-4, temperature=0.0, **kwargs)
    with pytest.raises(ValueError, match="net_arch"):
        CausalLMActorCriticPolicy(obs_space, act_space, lambda _: 1e-4, net_arch=[64], **kwargs)
    with pytest.raises(ValueError, match="does not match|do not match"):
        CausalLMActorCriticPolicy(obs_space, spaces.Discrete(env.vocab_size + 100), lambda _: 1e-4, **kwargs)
