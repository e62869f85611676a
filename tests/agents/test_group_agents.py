"""RLOO and GRPO: their advantages on hand-made groups, learning a simple reward, resume, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from rlhf_gym.agents.grpo import GRPOConfig, group_normalized_advantages, k3_kl, per_response_mean
from rlhf_gym.agents.grpo import train as train_grpo
from rlhf_gym.agents.rloo import RLOOConfig, leave_one_out_advantages
from rlhf_gym.agents.rloo import train as train_rloo
from rlhf_gym.cli import main as cli_main
from rlhf_gym.lm.policy import CausalLMPolicy

AGENTS = {"rloo": (RLOOConfig, train_rloo), "grpo": (GRPOConfig, train_grpo)}


def test_leave_one_out_baseline_is_the_mean_of_the_other_responses():
    rewards = torch.tensor([1.0, 2.0, 6.0, -1.0, 3.0, 3.0, 3.0, 3.0])
    advantages = leave_one_out_advantages(rewards, group_size=4)
    # group 1: baselines (2+6-1)/3, (1+6-1)/3, (1+2-1)/3, (1+2+6)/3
    expected = torch.tensor([1 - 7 / 3, 2 - 2.0, 6 - 2 / 3, -1 - 3.0, 0.0, 0.0, 0.0, 0.0])
    torch.testing.assert_close(advantages, expected)
    # equivalently k/(k-1) times the deviation from the group mean; the groups sum to zero
    torch.testing.assert_close(advantages[:4], 4 / 3 * (rewards[:4] - rewards[:4].mean()))
    assert advantages.view(2, 4).sum(-1).abs().max() < 1e-6


def test_group_normalised_advantages_per_group():
    rewards = torch.tensor([0.0, 1.0, 2.0, 10.0, 10.0, 10.0])
    advantages = group_normalized_advantages(rewards, group_size=3, eps=1e-4)
    torch.testing.assert_close(advantages[:3], torch.tensor([-1.0, 0.0, 1.0]) / (1.0 + 1e-4))  # std 1 (unbiased)
    assert torch.equal(advantages[3:], torch.zeros(3))  # a group of equal rewards teaches nothing
    # invariant to shifting and scaling a group's rewards
    torch.testing.assert_close(group_normalized_advantages(3 * rewards[:3] + 7, 3, eps=1e-8),
                               group_normalized_advantages(rewards[:3], 3, eps=1e-8), atol=1e-5, rtol=0)


@pytest.mark.parametrize("fn", [leave_one_out_advantages, group_normalized_advantages])
def test_advantages_reject_rewards_that_are_not_whole_groups(fn):
    with pytest.raises(ValueError, match="groups"):
        fn(torch.zeros(5), 2)


def test_k3_kl_is_zero_at_the_reference_and_positive_elsewhere():
    logprobs = torch.tensor([-1.0, -2.0, -0.5])
    assert torch.equal(k3_kl(logprobs, logprobs), torch.zeros(3))
    assert bool((k3_kl(logprobs, logprobs + torch.tensor([0.3, -0.7, 1.2])) > 0).all())
    # its mean under pi estimates KL(pi || pi_ref): two-token check by enumeration
    pi, ref = torch.tensor([0.8, 0.2]), torch.tensor([0.5, 0.5])
    exact = (pi * (pi / ref).log()).sum()
    torch.testing.assert_close((pi * k3_kl(pi.log(), ref.log())).sum(), exact)


def test_per_response_mean_weighs_responses_not_tokens():
    x = torch.tensor([[1.0, 1.0, 1.0, 1.0], [5.0, 0.0, 0.0, 0.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0, 1.0], [1.0, 0.0, 0.0, 0.0]])
    assert per_response_mean(x, mask).item() == pytest.approx(3.0)  # (1 + 5) / 2, not 9 / 5


@pytest.mark.parametrize(
    ("config_class", "field", "value", "match"),
    [
        (RLOOConfig, "group_size", 1, "group_size must be >= 2"),
        (GRPOConfig, "group_size", 1, "group_size must be >= 2"),
        (GRPOConfig, "num_minibatches", 3, "divisible by num_minibatches"),
        (RLOOConfig, "num_minibatches", 5, "num_minibatches must be >= 1 and divide"),
        (GRPOConfig, "kl_coef", -0.1, "kl_coef must be a finite number >= 0"),
        (RLOOConfig, "paired_posts", 1, "paired_posts must be 0"),
    ],
)
def test_configs_reject_bad_values(config_class, field, value, match):
    with pytest.raises(ValueError, match=match):
        config_class(**{field: value})


def _small(env_id: str, toy_dir: Path, out: Path, **overrides) -> dict:
    settings = dict(
        env=env_id, policy=str(toy_dir / "policy"), out=str(out), num_prompts=4, group_size=4, eval_episodes=16,
        eval_every=100, checkpoint_every=100, threads=1, seed=0, temperature=1.0, missing_eos_penalty=None,
        paired_posts=16,
    )
    settings.update(overrides)
    return settings


@pytest.mark.slow
@pytest.mark.parametrize("agent", ["rloo", "grpo"])
def test_each_group_agent_learns_a_trivial_preference(agent, register_toy_env, toy_dir, tmp_path):
    env_id = register_toy_env(f"Toy-{agent}-LowTokens-v0", low_tokens=True)
    config_class, train = AGENTS[agent]
    # RLOO takes one REINFORCE step per minibatch, GRPO num_epochs * num_minibatches per batch.
    budget = {"rloo": dict(total_steps=16 * 6 * 30, num_minibatches=2), "grpo": dict(total_steps=16 * 6 * 12)}[agent]
    summary = train(config_class(**_small(env_id, toy_dir, tmp_path / "run", learning_rate=1e-2, kl_coef=0.0, **budget)))
    assert summary["final"]["proxy_reward"] > summary["initial"]["proxy_reward"] + 0.25, summary["final"]
    assert summary["agent"] == agent and summary["config"]["group_size"] == 4
    run = tmp_path / "run"
    assert (run / "training_curves.png").is_file() and (run / "final_policy" / "model.safetensors").is_file()
    assert any((run / "tensorboard").iterdir()) and summary["paired_posts"] == 16


@pytest.mark.slow
@pytest.mark.parametrize("agent", ["rloo", "grpo"])
def test_a_resumed_group_run_continues_exactly(agent, register_toy_env, toy_dir, tmp_path):
    env_id = register_toy_env(f"Toy-{agent}-Resume-v0")
    config_class, train = AGENTS[agent]
    common = _small(env_id, toy_dir, tmp_path, checkpoint_every=1, paired_posts=0, learning_rate=1e-3)
    steps = 16 * 6  # at most one iteration's worth: the runs stop at iteration boundaries
    straight = train(config_class(**{**common, "out": str(tmp_path / "a")}, total_steps=3 * steps))
    train(config_class(**{**common, "out": str(tmp_path / "b")}, total_steps=2 * steps))
    resumed = train(config_class(**{**common, "out": str(tmp_path / "b")}, total_steps=3 * steps, resume=True))
    assert resumed["iterations"] == straight["iterations"] and resumed["env_steps"] == straight["env_steps"]
    a = CausalLMPolicy.from_pretrained(tmp_path / "a" / "final_policy").model.state_dict()
    b = CausalLMPolicy.from_pretrained(tmp_path / "b" / "final_policy").model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert resumed["final"] == straight["final"]


@pytest.mark.slow
def test_cli_trains_grpo_with_the_run_folder_contract(register_toy_env, toy_dir, tmp_path):
    env_id = register_toy_env("Toy-GRPO-CLI-v0")
    out = tmp_path / "cli"
    cli_main(["train", "--agent=grpo", "--env", env_id, "--policy", str(toy_dir / "policy"), "--out", str(out),
              "--total-steps", "96", "--num-prompts", "4", "--group-size", "4", "--temperature", "1.0",
              "--eval-episodes", "8", "--paired-posts", "8", "--threads", "1"])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["agent"] == "grpo" and "gold_improvement_paired" in summary
    assert (out / "checkpoint" / "policy" / "model.safetensors").is_file()
