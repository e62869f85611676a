"""The four SB3 agents end to end on a toy env: run folder, summary, CLI, resume."""

from __future__ import annotations

import json
from pathlib import Path

import gymnasium as gym
import pytest
import torch

from rlhf_gym.agents import AGENTS
from rlhf_gym.agents.sb3.train import SB3Config, SB3TRPOConfig, train
from rlhf_gym.cli import main as cli_main
from rlhf_gym.env.vector_env import TokenVectorEnv
from rlhf_gym.lm.policy import CausalLMPolicy
from rlhf_gym.rewards.preference_model import PreferenceModel

SUMMARY_KEYS = {"agent", "env", "seed", "env_steps", "iterations", "wall_time_seconds", "initial", "final", "gold_improvement", "gold_improvement_sem", "evals", "config"}
EVAL_KEYS = {"env_steps", "proxy_reward", "gold", "gold_sem", "kl", "response_length", "eos_fraction"}


def _small(env_id: str, policy_path: str, out: Path, **overrides) -> dict:
    settings = dict(
        env=env_id, policy=policy_path, out=str(out), num_envs=4, n_steps=16, batch_size=32, n_epochs=2,
        eval_episodes=8, eval_every=2, checkpoint_every=2, threads=1, seed=0, learning_rate=1e-3,
    )
    settings.update(overrides)
    return settings


@pytest.mark.parametrize(
    "agent, total_steps, overrides",
    [
        ("sb3-ppo", 256, {}),
        ("sb3-a2c", 256, {}),
        ("sb3-maskable-ppo", 256, {"mask_refresh_every": 2}),
        ("sb3-trpo", 256, {}),
    ],
)
def test_each_algorithm_trains_and_leaves_a_run_folder(agent, total_steps, overrides, toy_env_id, policy_path, tmp_path):
    config_class, train_fn = AGENTS[agent].load()
    config = config_class(**_small(toy_env_id, policy_path, tmp_path / agent, total_steps=total_steps, **overrides))
    assert config.algo == agent.removeprefix("sb3-")
    summary = train_fn(config)
    run = tmp_path / agent
    assert json.loads((run / "summary.json").read_text()) == json.loads(json.dumps(summary))
    assert set(summary) == SUMMARY_KEYS and summary["agent"] == agent
    assert set(summary["initial"]) == EVAL_KEYS and set(summary["final"]) == EVAL_KEYS
    assert summary["env_steps"] >= total_steps and summary["final"]["env_steps"] == summary["env_steps"]
    assert summary["initial"]["kl"] == pytest.approx(0.0, abs=1e-4)  # the policy starts as the reference
    assert (run / "training_curves.png").stat().st_size > 10_000
    assert (run / "checkpoint" / "policy.safetensors").is_file() and (run / "checkpoint" / "state.json").is_file()
    assert not list(run.rglob("*.zip"))  # no cloudpickle anywhere
    assert any((run / "tensorboard").iterdir())
    trained = CausalLMPolicy.from_pretrained(run / "final_policy").model.state_dict()
    initial = CausalLMPolicy.from_pretrained(policy_path).model.state_dict()
    assert any(not torch.equal(trained[k], initial[k]) for k in initial)  # it did update the LM


def test_cli_trains_sb3_ppo(toy_env_id, policy_path, tmp_path):
    """``rlhf-gym train --agent sb3-ppo --total-steps N --seed S --out DIR`` end to end."""
    out = tmp_path / "cli"
    cli_main([
        "train", "--agent", "sb3-ppo", "--env", toy_env_id, "--total-steps", "128", "--seed", "1", "--out", str(out),
        "--policy", policy_path, "--num-envs", "4", "--n-steps", "16", "--batch-size", "32", "--eval-episodes", "8",
        "--threads", "1",
    ])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["agent"] == "sb3-ppo" and summary["seed"] == 1 and summary["env_steps"] == 128
    assert (out / "training_curves.png").is_file()


def test_resume_continues_from_the_checkpoint(toy_env_id, policy_path, tmp_path):
    common = _small(toy_env_id, policy_path, tmp_path / "run", algo="maskable-ppo", checkpoint_every=1, eval_every=100)
    first = train(SB3Config(total_steps=128, **common))
    state = json.loads((tmp_path / "run" / "checkpoint" / "state.json").read_text())
    assert state["iteration"] == 2 and state["env_steps"] == 128
    resumed = train(SB3Config(total_steps=256, resume=True, **common))
    assert resumed["iterations"] == 4 and resumed["env_steps"] == 256
    assert resumed["initial"] == first["initial"]  # the history came back with the checkpoint
    state = json.loads((tmp_path / "run" / "checkpoint" / "state.json").read_text())
    assert len(state["history"]) == 4 and state["n_updates"] == 4 * common["n_epochs"]  # PPO counts epochs


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match="algo"):
        SB3Config(algo="dqn")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="batch_size"):
        SB3Config(num_envs=4, n_steps=10, batch_size=16)
    with pytest.raises(ValueError, match="ent_coef"):
        SB3TRPOConfig(ent_coef=0.1)
    with pytest.raises(ValueError, match="top_p"):
        SB3Config(top_p=0.0)
    with pytest.raises(ValueError, match="kl_coef"):
        SB3Config(kl_coef=-1.0)


class LowTokenPreference(PreferenceModel):
    """A trivially learnable preference: the share of response tokens with id < V/4."""

    def score(self, prompts, responses):
        rows = self.tokenizer(list(responses), add_special_tokens=False)["input_ids"]
        limit = len(self.tokenizer) // 4
        return torch.tensor([sum(t < limit for t in r) / max(len(r), 1) for r in rows], dtype=torch.float32)


def test_sb3_ppo_learns_a_trivial_preference(toy_tokenizer, toy_preference_model, toy_prompt_source, policy_path, tmp_path):
    """The whole pipeline learns: SB3 PPO raises a trivially learnable reward within 20 iterations."""
    preference = LowTokenPreference(toy_preference_model.model, toy_tokenizer)

    def make_vec(num_envs=1, split="train", **kwargs):
        kwargs.pop("max_episode_steps", None)
        return TokenVectorEnv(
            num_envs, prompt_source=toy_prompt_source, tokenizer=toy_tokenizer, preference_model=preference,
            gold_judge=None, max_prompt_tokens=32, max_new_tokens=6, **kwargs,
        )

    env_id = "Toy-SB3-LowTokens-v0"
    if env_id in gym.registry:
        del gym.registry[env_id]
    gym.register(env_id, entry_point=None, vector_entry_point=make_vec)
    summary = train(SB3Config(
        env=env_id, policy=policy_path, out=str(tmp_path / "run"), total_steps=16 * 12 * 10, num_envs=16,
        n_steps=12, batch_size=48, n_epochs=4, learning_rate=1e-2, kl_coef=0.0, temperature=1.0,
        missing_eos_penalty=None, eval_episodes=32, eval_every=100, checkpoint_every=100, threads=1, seed=0,
    ))
    assert summary["final"]["proxy_reward"] > summary["initial"]["proxy_reward"] + 0.25
