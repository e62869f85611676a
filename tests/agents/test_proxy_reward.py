"""One meaning of ``proxy_reward``: the reward model's score (the env's info ``proxy``) without the
missing-EOS penalty, with ``proxy_reward_with_penalty`` beside it, the same in our agents' and the
SB3 agents' logs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rlhf_gym.agents import AGENTS
from rlhf_gym.agents.common import make_env, proxy_rewards, read_state, rollout_seed
from rlhf_gym.agents.sb3.train import EpisodeStats
from rlhf_gym.agents.sb3.vec_env import SB3VecEnv
from rlhf_gym.env.rollout import collect_episodes
from rlhf_gym.lm.policy import CausalLMPolicy

NUM_ENVS, NEW_TOKENS = 8, 5


def test_sb3_logs_what_our_agents_log_on_the_same_episodes(make_toy_env, toy_dir):
    """Episodes collected as PPO, RLOO and GRPO collect them, then replayed token by token
    through the SB3 bridge: SB3's per-episode statistics give the same two figures."""
    policy = CausalLMPolicy.from_pretrained(toy_dir / "policy", temperature=1.0)
    env = make_toy_env(NUM_ENVS, autoreset_mode="disabled", missing_eos_penalty=1.0, max_new_tokens=NEW_TOKENS)
    batch = collect_episodes(env, policy, seed=3, generator=torch.Generator().manual_seed(3))
    ours = proxy_rewards(batch.preference, batch.penalty)
    assert ours["proxy_reward_with_penalty"] < ours["proxy_reward"]  # some responses lack EOS
    torch.testing.assert_close(batch.penalty, torch.where(batch.terminated, 0.0, -1.0))

    bridge = SB3VecEnv(make_toy_env(NUM_ENVS, missing_eos_penalty=1.0, max_new_tokens=NEW_TOKENS))  # SAME_STEP
    bridge.seed(3)
    width = env.max_prompt_tokens
    np.testing.assert_array_equal(bridge.reset()["input_ids"][:, :width], batch.input_ids[:, :width].numpy())
    stats = EpisodeStats(NUM_ENVS)
    responses = batch.input_ids[:, width:].numpy()
    filler = next(t for t in range(10, 20) if t != env.eos_token_id)  # a finished row's next episode never ends in time
    finished = np.zeros(NUM_ENVS, dtype=bool)
    for t in range(NEW_TOKENS):
        actions = np.where(finished, filler, responses[:, t])
        _, _, dones, infos = bridge.step(actions)
        stats.update_locals({"infos": infos, "dones": dones, "log_probs": torch.zeros(NUM_ENVS)})
        stats._on_step()
        finished |= dones
    assert finished.all()
    theirs = stats.flush()
    assert theirs["episodes"] == NUM_ENVS
    for key in ("proxy_reward", "proxy_reward_with_penalty"):
        assert theirs[key] == pytest.approx(ours[key], abs=1e-7)


def test_sb3_statistics_of_an_env_without_gold_judge(make_toy_env):
    """The env reports NaN gold there; the proxy figures are read from ``proxy`` and stay finite."""
    bridge = SB3VecEnv(make_toy_env(4, gold_judge=None, max_new_tokens=2))
    bridge.seed(0)
    bridge.reset()
    stats = EpisodeStats(4)
    for _ in range(2):
        _, _, dones, infos = bridge.step(np.full(4, 7))
        stats.update_locals({"infos": infos, "dones": dones, "log_probs": torch.zeros(4)})
        stats._on_step()
    figures = stats.flush()
    assert figures["episodes"] == 4 and np.isnan(figures["gold"]) and np.isfinite(figures["proxy_reward"])


@pytest.mark.parametrize("agent", ["ppo", "grpo"])
def test_our_agents_log_the_figures_of_their_batch(agent, register_toy_env, toy_dir, tmp_path):
    """A one-iteration run's training record holds `proxy_rewards` of its batch, replayed."""
    env_id = register_toy_env(f"Toy-Proxy-{agent}-v0")
    factory, train = AGENTS[agent].load()
    sizes = dict(num_envs=8, num_minibatches=2, num_epochs=1) if agent == "ppo" else dict(num_prompts=2, group_size=4, num_epochs=1)
    config = factory(env=env_id, policy=str(toy_dir / "policy"), out=str(tmp_path / "run"), total_steps=1, eval_episodes=8,
                     paired_posts=0, threads=1, seed=2, temperature=1.0, missing_eos_penalty=0.5, **sizes)
    train(config)
    record = read_state(tmp_path / "run" / "checkpoint")["history"][0]
    num_envs = 8
    seed = rollout_seed(config.seed, 0, num_envs)
    env = make_env(env_id, num_envs, "train", missing_eos_penalty=0.5, group_size=getattr(config, "group_size", 1))
    policy = CausalLMPolicy.from_pretrained(toy_dir / "policy", temperature=1.0)
    batch = collect_episodes(env, policy, seed=seed, generator=torch.Generator().manual_seed(seed),
                             rows=(0, num_envs))  # every agent samples row-wise by default (PPO's row_sampling)
    expected = proxy_rewards(batch.preference, batch.penalty)
    assert expected["proxy_reward_with_penalty"] != expected["proxy_reward"]
    for key in ("proxy_reward", "proxy_reward_with_penalty"):
        assert record[key] == pytest.approx(expected[key], abs=1e-7)
