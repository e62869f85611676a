"""The four SB3 agents end to end on a toy env: run folder, summary, CLI, resume."""

from __future__ import annotations

import json
from pathlib import Path

import gymnasium as gym
import pytest
import torch

from rlhf_gym.agents import AGENTS
from rlhf_gym.agents.sb3.train import SB3Config, resumed_env_seed, train
from rlhf_gym.agents.sb3.vec_env import SB3VecEnv
from rlhf_gym.cli import main as cli_main
from rlhf_gym.env.vector_env import TokenVectorEnv
from rlhf_gym.lm.policy import CausalLMPolicy
from rlhf_gym.rewards.preference_model import PreferenceModel

SUMMARY_KEYS = {
    "agent", "env", "seed", "env_steps", "iterations", "wall_time_seconds", "initial", "final", "gold_improvement",
    "gold_improvement_sem", "evals", "config", "gold_improvement_paired", "gold_improvement_paired_sem",
    "gold_final_paired", "gold_baseline_paired", "paired_posts", "command",
}
EVAL_KEYS = {"env_steps", "proxy_reward", "proxy_reward_with_penalty", "gold", "gold_sem", "kl", "response_length", "eos_fraction"}


def _small(env_id: str, policy_path: str, out: Path, **overrides) -> dict:
    settings = dict(
        env=env_id, policy=policy_path, out=str(out), num_envs=4, n_steps=16, batch_size=32, n_epochs=2,
        eval_episodes=8, eval_every=2, checkpoint_every=2, threads=1, seed=0, learning_rate=1e-3,
        temperature=0.7, paired_posts=8,
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
@pytest.mark.slow
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


@pytest.mark.slow
def test_cli_trains_sb3_ppo(toy_env_id, policy_path, tmp_path):
    """``rlhf-gym train --agent sb3-ppo --total-steps N --seed S --out DIR`` end to end."""
    out = tmp_path / "cli"
    cli_main([
        "train", "--env", toy_env_id, "--agent=sb3-ppo", "--total-steps", "128", "--seed", "1", "--out", str(out),
        "--policy", policy_path, "--num-envs", "4", "--n-steps", "16", "--batch-size", "32", "--eval-episodes", "8",
        "--threads", "1", "--temperature", "0.7", "--paired-posts", "0",
    ])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["agent"] == "sb3-ppo" and summary["seed"] == 1 and summary["env_steps"] == 128
    assert (out / "training_curves.png").is_file()


@pytest.mark.slow
def test_resume_continues_from_the_checkpoint(toy_env_id, policy_path, tmp_path, monkeypatch):
    common = _small(toy_env_id, policy_path, tmp_path / "run", algo="maskable-ppo", checkpoint_every=1, eval_every=100)
    first = train(SB3Config(total_steps=128, **common))
    state = json.loads((tmp_path / "run" / "checkpoint" / "state.json").read_text())
    assert state["iteration"] == 2 and state["env_steps"] == 128
    seeds: list[int | None] = []
    original_seed = SB3VecEnv.seed
    monkeypatch.setattr(SB3VecEnv, "seed", lambda self, seed=None: seeds.append(seed) or original_seed(self, seed))
    resumed = train(SB3Config(total_steps=256, resume=True, **common))
    assert resumed_env_seed(SB3Config(total_steps=256, **common), 2) in seeds  # the iteration's own block
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
        SB3Config(algo="trpo", ent_coef=0.1)
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


@pytest.mark.parametrize("algo", ["ppo", "a2c", "maskable-ppo", "trpo"])
@pytest.mark.slow
def test_each_algorithm_learns_a_trivial_preference(algo, toy_tokenizer, toy_preference_model, toy_prompt_source, policy_path, tmp_path):
    """The whole pipeline learns: every SB3 algorithm raises a trivially learnable reward."""
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
    # TRPO's step is set by its trust region (target_kl), not the learning rate; A2C makes
    # one gradient step per rollout where PPO makes n_epochs * 4, so it gets more rollouts.
    extra = {"target_kl": 0.2} if algo == "trpo" else {}
    iterations = {"a2c": 30, "trpo": 15}.get(algo, 10)
    summary = train(SB3Config(
        algo=algo, env=env_id, policy=policy_path, out=str(tmp_path / "run"), total_steps=16 * 12 * iterations, num_envs=16,
        n_steps=12, batch_size=48, n_epochs=4, learning_rate=1e-2, kl_coef=0.0, temperature=1.0,
        missing_eos_penalty=None, eval_episodes=32, eval_every=100, checkpoint_every=100, threads=1, seed=0,
        paired_posts=0, **extra,
    ))
    assert summary["final"]["proxy_reward"] > summary["initial"]["proxy_reward"] + 0.25, summary["final"]


def test_a_resumed_run_draws_fresh_prompt_streams():
    """Resuming at iteration k re-seeds the env with the iteration's own block of sub-env
    keys: no resume replays the streams of the first iterations (before 1 Dec 2026 the seed
    lacked the ``num_envs`` stride, and a resume at iteration 10 replayed 22 of 32 streams)."""
    config = SB3Config(num_envs=32, n_steps=48, batch_size=256, seed=0)
    first = set(range(config.seed, config.seed + config.num_envs))  # the first reset's keys
    blocks = [set(range(resumed_env_seed(config, k), resumed_env_seed(config, k) + config.num_envs)) for k in range(1, 50)]
    assert all(not (first & block) for block in blocks)
    assert all(not (a & b) for i, a in enumerate(blocks) for b in blocks[i + 1:])
