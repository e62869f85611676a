"""KL to the reference: the wrapper's per-token bonus, the reward - beta KL identity, TRPO's callback."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback

from rlhf_gym.agents.sb3.kl_reward import PolicyLogProbReward
from rlhf_gym.agents.sb3.policy import CausalLMActorCriticPolicy
from rlhf_gym.agents.sb3.vec_env import SB3VecEnv
from rlhf_gym.env.kl_penalty import KLRewardWrapper
from rlhf_gym.lm.policy import CausalLMPolicy
from rlhf_gym.pipeline.tiny_models import TinyGPT2Size, tiny_causal_lm

BETA = 0.3
TEMPERATURE = 0.8


def test_reward_minus_beta_kl_identity_by_enumeration(make_toy_env, toy_tokenizer, toy_dir):
    """E_pi[r + beta log pi_ref(a|s)] + beta H(pi) = E_pi[r] - beta KL(pi || pi_ref), exactly.

    One-token episodes (max_new_tokens=1) from one shared prompt, one sub-env per token of
    the vocabulary: stepping all V actions at once enumerates the expectation over a ~ pi.
    """
    policy = CausalLMPolicy.from_pretrained(toy_dir / "policy", temperature=TEMPERATURE)
    reference = CausalLMPolicy(
        tiny_causal_lm(toy_tokenizer, TinyGPT2Size(n_layer=1, n_embd=32, n_head=2, n_positions=256), seed=7),
        temperature=TEMPERATURE,
    ).eval()
    vocab = len(toy_tokenizer)
    make = lambda: make_toy_env(vocab, group_size=vocab, max_new_tokens=1)  # noqa: E731
    raw, wrapped = make(), KLRewardWrapper(make(), reference, beta=BETA)
    obs, _ = wrapped.reset(seed=11)
    raw.reset(seed=11)
    assert bool((obs["input_ids"] == obs["input_ids"][0]).all())  # one state s for every row
    actions = torch.arange(vocab)
    _, task_rewards, _, _, _ = raw.step(actions)
    _, rewards, terminated, truncated, info = wrapped.step(actions)
    assert bool((terminated | truncated).all())  # every episode is this one step

    prompt = obs["input_ids"][:1, : raw.max_prompt_tokens], obs["attention_mask"][:1, : raw.max_prompt_tokens]
    with torch.no_grad():
        pi_logits, _ = policy.prefill(*prompt)
        ref_logits, _ = reference.prefill(*prompt)
    log_pi = torch.log_softmax(pi_logits[0].double() / TEMPERATURE, -1)  # (V,)
    log_ref = torch.log_softmax(ref_logits[0].double() / TEMPERATURE, -1)  # (V,)
    pi = log_pi.exp()

    # The wrapper adds beta * log pi_ref(a|s) to each action's reward (independent computation).
    torch.testing.assert_close((rewards - task_rewards).double(), BETA * log_ref, atol=1e-5, rtol=0)
    np.testing.assert_allclose(info["ref_logprob"], log_ref.numpy(), atol=1e-5)

    entropy = -(pi * log_pi).sum()
    kl = (pi * (log_pi - log_ref)).sum()
    lhs = (pi * rewards.double()).sum() + BETA * entropy
    rhs = (pi * task_rewards.double()).sum() - BETA * kl
    assert BETA * kl > 1e-3  # 100x the tolerance: the two models differ, the identity is not 0 = 0
    assert abs(lhs - rhs) < 1e-5
    # Without the entropy bonus the wrapper alone also penalises entropy.
    assert (pi * rewards.double()).sum() == pytest.approx((rhs - BETA * entropy).item(), abs=1e-5)


@pytest.mark.parametrize("cache_prompts", [True, False])
def test_bonus_follows_the_trajectory_and_skips_waiting_rows(make_toy_env, toy_dir, cache_prompts):
    """Per-step bonuses equal the reference's log-probs of the response tokens, scored in one
    full-sequence pass; rows that finished and wait (DISABLED autoreset) get nothing."""
    reference = CausalLMPolicy.from_pretrained(toy_dir / "policy", temperature=TEMPERATURE).eval()
    env = make_toy_env(6, autoreset_mode="disabled", max_new_tokens=6)
    wrapped = KLRewardWrapper(env, reference, beta=BETA, cache_prompts=cache_prompts)
    raw = make_toy_env(6, autoreset_mode="disabled", max_new_tokens=6)
    wrapped.reset(seed=3)
    raw.reset(seed=3)
    rng = np.random.default_rng(0)
    bonuses = []
    for _ in range(6):
        actions = rng.integers(0, env.vocab_size, size=6)
        actions[rng.random(6) < 0.25] = env.eos_token_id
        waiting = env.finished.numpy()
        obs, rewards, _, _, info = wrapped.step(actions)
        _, task_rewards, _, _, _ = raw.step(actions)
        bonuses.append((rewards - task_rewards) / BETA)
        np.testing.assert_array_equal(info["_ref_logprob"], ~waiting)
    bonuses = torch.stack(bonuses, dim=1)  # (N, T)
    with torch.no_grad():
        expected, _ = reference.token_logprobs(obs["input_ids"], obs["attention_mask"], env.max_prompt_tokens)
    mask = obs["attention_mask"][:, env.max_prompt_tokens :].bool()
    assert not bool(mask.all())  # some rows ended early and waited
    torch.testing.assert_close(bonuses[mask], expected[mask], atol=2e-5, rtol=0)
    assert bool((bonuses[~mask] == 0).all())


def test_wrapper_checks_its_arguments(make_toy_env, toy_dir):
    reference = CausalLMPolicy.from_pretrained(toy_dir / "policy", temperature=TEMPERATURE)
    env = make_toy_env(2)
    for beta in (-0.1, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="beta"):
            KLRewardWrapper(env, reference, beta=beta)
    with pytest.raises(ValueError, match="temperature"):
        KLRewardWrapper(env, CausalLMPolicy.__new__(CausalLMPolicy), beta=0.1)
    with pytest.raises(RuntimeError, match="reset"):
        KLRewardWrapper(env, reference, beta=0.1).step(np.zeros(2, dtype=np.int64))


class _Snapshot(BaseCallback):
    """Copies the rollout buffer at the end of the rollout (the update flattens it afterwards)."""

    def _on_rollout_end(self) -> None:
        buffer = self.model.rollout_buffer
        self.rewards, self.advantages = buffer.rewards.copy(), buffer.advantages.copy()
        self.log_probs, self.episode_starts = buffer.log_probs.copy(), buffer.episode_starts.copy()
        self.last_episode_starts = self.model._last_episode_starts.copy()

    def _on_step(self) -> bool:
        return True


class _Check(_Snapshot):
    pass


def test_policy_logprob_reward_shifts_rewards_and_redoes_gae(make_toy_env, policy_path):
    """Rewards lose beta * log pi(a_t|s_t); with gamma = lambda = 1 each advantage changes by the
    sum of the reward changes from its step to its episode's end (or the rollout's)."""
    env = SB3VecEnv(make_toy_env(2))
    model = PPO(
        CausalLMActorCriticPolicy, env, n_steps=12, batch_size=24, n_epochs=1, gamma=1.0, gae_lambda=1.0,
        policy_kwargs=dict(model_name_or_path=policy_path, prompt_width=env.core.max_prompt_tokens), seed=0,
    )
    before, after = _Snapshot(), _Check()
    model.learn(24, callback=[before, PolicyLogProbReward(BETA), after])
    delta = -BETA * before.log_probs  # (n_steps, n_envs)
    np.testing.assert_allclose(after.rewards, before.rewards + delta, atol=1e-6)
    expected = np.zeros_like(delta)
    running = np.zeros(delta.shape[1])
    for t in reversed(range(delta.shape[0])):  # over steps, vectorised over envs
        next_start = before.episode_starts[t + 1] if t + 1 < delta.shape[0] else before.last_episode_starts
        running = delta[t] + running * (1.0 - next_start)
        expected[t] = running
    np.testing.assert_allclose(after.advantages - before.advantages, expected, atol=1e-5)
