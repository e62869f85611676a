"""PPO: GAE, KL-penalty placement, update direction, end-to-end learning, resume."""

from __future__ import annotations

import json
import math
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from rlhf_gym.agents.common import evaluate, make_env, rollout_seed
from rlhf_gym.agents.ppo import PPOConfig, compute_gae, make_optimizer, masked_whiten, per_token_rewards, train
from rlhf_gym.env.rollout import collect_episodes
from rlhf_gym.env.vector_env import TokenVectorEnv
from rlhf_gym.lm.policy import CausalLMPolicy
from rlhf_gym.rewards.preference_model import PreferenceModel


def test_gae_matches_hand_computation():
    rewards = torch.tensor([[0.0, 0.0, 1.0], [0.5, -1.0, 0.0]])
    values = torch.tensor([[0.1, 0.2, 0.3], [0.4, 0.5, 9.0]])
    mask = torch.tensor([[True, True, True], [True, True, False]])
    adv, ret = compute_gae(rewards, values, mask, gamma=0.9, lam=0.5)
    # row 0: deltas d2 = 1 - .3 = .7; d1 = 0 + .9*.3 - .2 = .07; d0 = .9*.2 - .1 = .08
    a2 = 0.7
    a1 = 0.07 + 0.45 * a2
    a0 = 0.08 + 0.45 * a1
    # row 1 ends after 2 tokens: value 9.0 beyond the end is ignored
    b1 = -1.0 - 0.5
    b0 = 0.5 + 0.9 * 0.5 - 0.4 + 0.45 * b1
    expected = torch.tensor([[a0, a1, a2], [b0, b1, 0.0]])
    assert torch.allclose(adv, expected, atol=1e-6)
    assert torch.allclose(ret, (expected + values) * mask, atol=1e-6)


def test_kl_penalty_sign_and_score_on_last_token():
    logprobs = torch.tensor([[-1.0, -1.0, -1.0], [-2.0, -0.5, 0.0]])
    ref = torch.tensor([[-1.5, -1.0, -0.5], [-1.0, -1.0, 0.0]])
    mask = torch.tensor([[True, True, True], [True, True, False]])
    rewards, kl = per_token_rewards(torch.tensor([2.0, -3.0]), logprobs, ref, mask, kl_coef=0.1)
    assert torch.allclose(kl, torch.tensor([[0.5, 0.0, -0.5], [-1.0, 0.5, 0.0]]))
    # a token more likely under the policy than the reference is penalised (negative reward)
    assert torch.allclose(rewards, torch.tensor([[-0.05, 0.0, 0.05 + 2.0], [0.1, -0.05 - 3.0, 0.0]]))


def test_masked_whiten_ignores_padding():
    x = torch.tensor([[1.0, 3.0, 100.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0]])
    w = masked_whiten(x, mask)
    assert torch.allclose(w, torch.tensor([[-1.0, 1.0, 0.0]]), atol=1e-4)


def test_one_update_moves_policy_toward_positive_advantage(make_toy_env, toy_dir):
    """The clipped surrogate's gradient raises log-probs where the advantage is positive."""
    from rlhf_gym.env.rollout import collect_episodes

    policy = CausalLMPolicy.from_pretrained(toy_dir / "policy", temperature=1.0)
    env = make_toy_env(4, autoreset_mode="disabled", max_new_tokens=4)
    batch = collect_episodes(env, policy, seed=0, generator=torch.Generator().manual_seed(0))
    mask = batch.response_mask.float()
    advantages = torch.tensor([1.0, -1.0, 1.0, -1.0])[:, None] * mask
    optimizer = torch.optim.SGD(policy.parameters(), lr=0.5)
    new, _ = policy.token_logprobs(batch.input_ids, batch.attention_mask, env.max_prompt_tokens)
    ratio = (new - batch.logprobs).exp()
    loss = (torch.max(-advantages * ratio, -advantages * ratio.clamp(0.8, 1.2)) * mask).sum() / mask.sum()
    loss.backward()
    optimizer.step()
    with torch.no_grad():
        after, _ = policy.token_logprobs(batch.input_ids, batch.attention_mask, env.max_prompt_tokens)
    change = ((after - batch.logprobs) * mask).sum(-1)
    assert change[0] > 0 and change[2] > 0 and change[1] < 0 and change[3] < 0


class LowTokenPreference(PreferenceModel):
    """A trivially learnable preference: the share of response tokens with id < V/4."""

    def score(self, prompts, responses):
        rows = self.tokenizer(list(responses), add_special_tokens=False)["input_ids"]
        limit = len(self.tokenizer) // 4
        return torch.tensor([sum(t < limit for t in r) / max(len(r), 1) for r in rows], dtype=torch.float32)


def test_rollout_batches_draw_fresh_prompts():
    """Consecutive iterations (and seeds) share no prompt: PPO must not fit a fixed few."""
    import rlhf_gym  # noqa: F401  (registers the env)

    env = gym.make_vec("RLHF-Summarize-v0", num_envs=16, autoreset_mode="disabled", text_in_info=False)
    config = PPOConfig(num_envs=16)
    seen = []
    for seed, iteration in ((0, 0), (0, 1), (0, 2), (1, 0)):
        config.seed = seed
        _, info = env.reset(seed=rollout_seed(config.seed, iteration, config.num_envs))
        seen.append(set(info["prompt_index"].tolist()))
    assert all(len(batch) == 16 for batch in seen)
    assert len(set().union(*seen)) == 16 * len(seen)


def _register_toy(toy_tokenizer, toy_preference_model, toy_prompt_source, env_id: str, preference=None, gold_judge=None) -> str:
    from rlhf_gym.env.prompts import Prompt  # noqa: F401

    def toy_gold_judge(prompts, responses):
        import numpy as np

        return np.array([float(p.record["animal"] in r) for p, r in zip(prompts, responses)])

    def make_vec(num_envs=1, split="train", **kwargs):
        kwargs.pop("max_episode_steps", None)
        return TokenVectorEnv(
            num_envs,
            prompt_source=toy_prompt_source,
            tokenizer=toy_tokenizer,
            preference_model=preference or toy_preference_model,
            gold_judge=gold_judge or toy_gold_judge,
            max_prompt_tokens=32,
            max_new_tokens=kwargs.pop("max_new_tokens", 6),
            **kwargs,
        )

    if env_id in gym.registry:
        del gym.registry[env_id]
    gym.register(env_id, entry_point=None, vector_entry_point=make_vec)
    return env_id


@pytest.mark.slow
def test_ppo_learns_a_trivial_preference(toy_tokenizer, toy_preference_model, toy_prompt_source, toy_dir, tmp_path, capsys):
    preference = LowTokenPreference(toy_preference_model.model, toy_tokenizer)
    env_id = _register_toy(toy_tokenizer, toy_preference_model, toy_prompt_source, "Toy-LowTokens-v0", preference)
    config = PPOConfig(
        env=env_id, policy=str(toy_dir / "policy"), out=str(tmp_path / "run"), total_steps=16 * 6 * 10,
        num_envs=16, num_minibatches=2, eval_episodes=32, eval_every=100, checkpoint_every=100,
        learning_rate=1e-2, kl_coef=0.0, temperature=1.0, missing_eos_penalty=None, seed=0, threads=1,
    )
    summary = train(config)
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["env_steps"] == summary["env_steps"]
    assert summary["final"]["proxy_reward"] > summary["initial"]["proxy_reward"] + 0.25
    first, last = summary["initial"]["gold_sem"], summary["final"]["gold_sem"]
    assert summary["gold_improvement_sem"] == pytest.approx(math.hypot(first, last)) and first > 0
    # The final policy against the SFT policy on the same posts and sampling stream: the
    # figure the result line prints.
    paired, paired_sem = summary["gold_improvement_paired"], summary["gold_improvement_paired_sem"]
    assert summary["paired_posts"] == config.paired_posts and paired_sem > 0
    assert paired == pytest.approx(summary["gold_final_paired"] - summary["gold_baseline_paired"])
    assert f"({paired:+.3f} ± {paired_sem:.3f} s.e., paired vs SFT on {config.paired_posts} posts)" in capsys.readouterr().out
    run = Path(config.out)
    assert (run / "training_curves.png").is_file() and (run / "checkpoint" / "state.json").is_file()
    assert any((run / "tensorboard").iterdir())
    assert (run / "final_policy" / "model.safetensors").is_file()


@pytest.mark.slow
def test_oracle_run_trains_on_the_gold_judge(toy_tokenizer, toy_preference_model, toy_prompt_source, toy_dir, tmp_path):
    """``reward="gold"``: PPO climbs the gold judge, while evaluations still report the proxy."""
    low_tokens = LowTokenPreference(toy_preference_model.model, toy_tokenizer)

    def low_token_gold(prompts, responses):
        return low_tokens.score([p.text for p in prompts], responses).double().numpy()

    env_id = _register_toy(toy_tokenizer, toy_preference_model, toy_prompt_source, "Toy-Oracle-v0", gold_judge=low_token_gold)
    config = PPOConfig(
        env=env_id, policy=str(toy_dir / "policy"), out=str(tmp_path / "run"), total_steps=16 * 6 * 10,
        num_envs=16, num_minibatches=2, eval_episodes=32, eval_every=100, checkpoint_every=100,
        learning_rate=1e-2, kl_coef=0.0, temperature=1.0, missing_eos_penalty=None, seed=0, threads=1,
        reward="gold",
    )
    summary = train(config)
    assert summary["final"]["gold"] > summary["initial"]["gold"] + 0.25
    assert summary["gold_improvement_paired"] > 4 * summary["gold_improvement_paired_sem"] > 0
    # Evaluations score with the preference model (were they rewarded by the gold judge,
    # the two figures would coincide: this toy has no missing-EOS penalty).
    assert summary["final"]["proxy_reward"] != pytest.approx(summary["final"]["gold"], abs=1e-3)


@pytest.mark.slow
def test_resume_reproduces_an_uninterrupted_run(toy_tokenizer, toy_preference_model, toy_prompt_source, toy_dir, tmp_path):
    env_id = _register_toy(toy_tokenizer, toy_preference_model, toy_prompt_source, "Toy-Resume-v0")
    common = dict(
        env=env_id, policy=str(toy_dir / "policy"), num_envs=8, num_minibatches=2, eval_episodes=8,
        eval_every=100, checkpoint_every=1, seed=3, threads=1, temperature=0.7,
    )
    straight = train(PPOConfig(out=str(tmp_path / "a"), total_steps=8 * 6 * 3, **common))
    train(PPOConfig(out=str(tmp_path / "b"), total_steps=8 * 6 * 2, **common))
    resumed = train(PPOConfig(out=str(tmp_path / "b"), total_steps=8 * 6 * 3, resume=True, **common))
    assert resumed["env_steps"] == straight["env_steps"]
    a = CausalLMPolicy.from_pretrained(tmp_path / "a" / "final_policy").model.state_dict()
    b = CausalLMPolicy.from_pretrained(tmp_path / "b" / "final_policy").model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert resumed["final"] == straight["final"]

    # Resuming loads strictly: a checkpoint that lacks one of the policy's tensors is an error,
    # not a policy left half at its initial weights.
    weights = tmp_path / "b" / "checkpoint" / "policy" / "model.safetensors"
    tensors = load_file(str(weights))
    dropped = next(k for k in tensors if k.endswith("mlp.c_fc.weight"))
    save_file({k: v for k, v in tensors.items() if k != dropped}, str(weights))
    with pytest.raises(ValueError, match=f"missing keys \\['{dropped}'\\]"):
        train(PPOConfig(out=str(tmp_path / "b"), total_steps=8 * 6 * 4, resume=True, **common))


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("num_envs", 10, "divisible by num_minibatches"),
        ("temperature", 0.0, "temperature must be > 0"),
        ("learning_rate", 0.0, "learning_rate must be a finite number > 0, got 0.0"),
        ("value_learning_rate", float("nan"), "value_learning_rate must be a finite number > 0, got nan"),
        ("adam_eps", -1e-5, "adam_eps must be a finite number > 0, got -1e-05"),
        ("paired_posts", 1, "paired_posts must be 0 \\(off\\) or >= 2, got 1"),
    ],
)
def test_config_rejects_bad_values(field, value, match):
    with pytest.raises(ValueError, match=match):
        PPOConfig(**{field: value})


def test_critic_learning_rate_defaults_to_the_policys():
    actor, critic = [torch.nn.Parameter(torch.zeros(1))], [torch.nn.Parameter(torch.zeros(1))]
    groups = make_optimizer(PPOConfig(learning_rate=2e-5, value_learning_rate=None), actor, critic).param_groups
    assert [g["lr"] for g in groups] == [2e-5, 2e-5]
    groups = make_optimizer(PPOConfig(learning_rate=2e-5, value_learning_rate=3e-4), actor, critic).param_groups
    assert [g["lr"] for g in groups] == [2e-5, 3e-4] and groups[0]["eps"] == PPOConfig().adam_eps


def test_evaluation_reports_the_standard_error_of_its_gold_mean(make_toy_env, toy_dir):
    def judge_by_length(prompts, responses):  # a gold score that varies across random responses
        return np.array([len(r) / 10 for r in responses])

    env = make_toy_env(8, autoreset_mode="disabled", max_new_tokens=6, gold_judge=judge_by_length)
    policy = CausalLMPolicy.from_pretrained(toy_dir / "policy", temperature=1.0)
    result = evaluate(env, policy, policy, seed=3)
    batch = collect_episodes(env, policy, seed=3, generator=torch.Generator().manual_seed(3))  # the same episodes
    gold = batch.gold.double()
    assert result["gold"] == pytest.approx(gold.mean().item(), abs=1e-6)
    assert result["gold_sem"] == pytest.approx((gold.std() / math.sqrt(len(gold))).item(), rel=1e-5)
    assert result["gold_sem"] > 0 and result["kl"] == pytest.approx(0.0, abs=1e-5)


def test_reward_model_replaces_the_envs_preference_model(tmp_path):
    """``--reward-model`` reaches both envs; a saved ensemble folder loads as the ensemble."""
    import rlhf_gym

    default_preference_model = rlhf_gym.get_task("RLHF-Summarize-v0").preference_model
    from rlhf_gym.rewards.preference_ensemble import PreferenceEnsemble

    shipped = default_preference_model(torch.device("cpu"))
    single = getattr(shipped, "members", [shipped])[0]
    single.save_pretrained(tmp_path / "single")
    PreferenceEnsemble([single, single]).save_pretrained(tmp_path / "rm")
    config = PPOConfig(reward_model=str(tmp_path / "rm"))
    for split in ("train", "valid"):
        assert isinstance(make_env(config.env, 2, split, reward_model=config.reward_model).preference_model, PreferenceEnsemble)
    chosen = make_env(config.env, 2, "valid", reward_model=str(tmp_path / "single")).preference_model
    assert not isinstance(chosen, PreferenceEnsemble)


def test_ppo_trains_with_a_reward_model_of_another_vocabulary(register_toy_env, other_vocabulary_preference_dir, toy_dir, tmp_path,
                                                              capsys):
    """``--reward-model`` with its own, smaller vocabulary: the env scores re-tokenised text, and
    the critic, which reads the policy's ids, starts from the policy's backbone (no IndexError)."""
    env_id = register_toy_env("Toy-OtherVocabulary-v0")
    config = PPOConfig(
        env=env_id, policy=str(toy_dir / "policy"), out=str(tmp_path / "run"), reward_model=str(other_vocabulary_preference_dir),
        total_steps=1, num_envs=8, num_minibatches=2, num_epochs=1, eval_episodes=8, paired_posts=0, threads=1, temperature=1.0,
    )
    summary = train(config)
    assert summary["iterations"] == 1 and math.isfinite(summary["final"]["proxy_reward"])
    assert "the critic starts from a copy of the policy's backbone" in capsys.readouterr().out
