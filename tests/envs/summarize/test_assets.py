"""The shipped assets load offline, meet the world's bars, and their card's headline figures are
recomputed here from the shipped models (not read back from the card)."""

from __future__ import annotations

import time

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env
from transformers import AutoModelForCausalLM

import rlhf_gym  # noqa: F401
from rlhf_gym.envs.summarize import assets
from rlhf_gym.envs.summarize.annotators import AnnotatorPool
from rlhf_gym.envs.summarize.build import (
    BuildConfig,
    comparison_pairs,
    perturbation_preferences,
    prefers_chosen,
    split_posts,
)
from rlhf_gym.envs.summarize.gold_judge import gold_breakdown, gold_scores, style_shares
from rlhf_gym.envs.summarize.world import STYLES, generate_post, prompt_text
from rlhf_gym.lm.sampling import sample_completions


def test_card_figures_are_consistent_and_meet_the_bars():
    card = assets.model_card()
    assert card["task"] == "RLHF-Summarize-v0" and card["config"]["seed"] == 0
    comparisons, reward_model, evaluation = (
        card["comparisons"], card["preference_model"], card["evaluation"]
    )
    assert card["tokenizer"]["vocab_size"] == len(assets.default_tokenizer()) <= 2100
    assert 0.70 <= comparisons["annotator_gold_agreement"] <= 0.80
    assert comparisons["train_pairs"] >= 50_000
    assert reward_model["valid_accuracy_vs_annotators"] >= 0.70
    assert reward_model["valid_accuracy_vs_gold"] >= 0.70
    # No scorer can beat the Bayes rate of the labels; the gold judge comes close to it.
    ceiling = comparisons["valid_label_accuracy_ceiling"]
    assert reward_model["valid_accuracy_vs_annotators"] < ceiling
    assert comparisons["valid_gold_judge_accuracy_vs_annotators"] <= ceiling + 0.01
    # Where the model errs, by candidate source: every valid pair counts under its one or two
    # sources, and the writer styles are among them.
    by_source = reward_model["valid_accuracy_by_source"]
    assert comparisons["valid_pairs"] <= sum(f["pairs"] for f in by_source.values()) <= 2 * comparisons["valid_pairs"]
    assert {f"style_{s}" for s in STYLES[1:]} <= set(by_source)
    assert all(0.0 <= f["preference_model"] <= 1.0 and 0.0 <= f["gold_judge"] <= 1.0 for f in by_source.values())
    # Headroom: the SFT policy at the protocol temperature is well below the references.
    assert evaluation["sft_t0.7_gold"] <= 0.65
    # The shipped model is what `build-assets summarize` builds: as many members as its config says.
    assert reward_model["members"] == card["config"]["preference_members"] == BuildConfig().preference_members


@pytest.fixture(scope="module")
def sft_samples() -> dict[str, object]:
    """The shipped SFT policy's summaries of the first 128 test posts, greedy and at T=0.7."""
    tokenizer = assets.default_tokenizer()
    policy = AutoModelForCausalLM.from_pretrained(assets.sft_policy_path()).eval()
    posts = split_posts("test", 128)
    prompts = [prompt_text(p) for p in posts]
    samples = {
        name: sample_completions(policy, tokenizer, prompts, max_new_tokens=64, temperature=t, seed=0,
                                 max_prompt_tokens=224)
        for name, t in (("greedy", 0.0), ("t0.7", 0.7))
    }
    return {"posts": posts, "prompts": prompts, **samples}


@pytest.mark.slow
def test_sft_policy_states_numbers_faithfully(sft_samples):
    """Recomputed, not read from the card: invented or wrong numbers/entities per summary."""
    records = [p.record for p in sft_samples["posts"]]
    for name, bar in (("greedy", 0.10), ("t0.7", 0.25)):
        rate = np.mean([gold_breakdown(r, s).hallucinated for r, s in zip(records, sft_samples[name])])
        assert rate <= bar + 0.05, (name, rate)  # 128 posts: the bar is checked on the card's 512


@pytest.mark.slow
def test_sft_policy_samples_spread_over_the_writer_styles(sft_samples):
    records = [p.record for p in sft_samples["posts"]]
    shares = style_shares(records, sft_samples["t0.7"])
    # The best style is common but not dominant: best-of-n and RL can raise it.
    assert 0.1 <= shares["complete"] <= 0.6, shares
    assert sum(shares[s] > 0.03 for s in STYLES) >= 5, shares
    assert shares["other"] <= 0.15, shares


def test_references_score_one():
    posts = split_posts("test", 256)
    assert (gold_scores([p.record for p in posts], [p.reference for p in posts]) == 1.0).all()


@pytest.mark.slow
def test_preference_model_accuracy_is_recomputed_within_the_card_margin():
    """Valid comparisons rebuilt by the build's own code on its first 40 valid posts (~1,400
    pairs); the shipped model's accuracy on them is within 0.03 of the card's."""
    card = assets.model_card()
    config = BuildConfig()
    tokenizer = assets.default_tokenizer()
    policy = AutoModelForCausalLM.from_pretrained(assets.sft_policy_path()).eval()
    pairs = comparison_pairs(split_posts("valid", 40), policy, tokenizer, AnnotatorPool(seed=config.seed), config,
                         seed=config.seed + 2, progress=False)
    assert len(pairs["chosen"]) >= 1000
    model = assets.default_preference_model(torch.device("cpu"))
    accuracy = prefers_chosen(model, pairs).float().mean().item()
    assert abs(accuracy - card["preference_model"]["valid_accuracy_vs_annotators"]) <= 0.03, accuracy


@pytest.mark.slow
def test_card_figures_are_reproduced_by_the_shipped_models(sft_samples):
    """Recompute card figures on a slice of the test split: the card tells the truth."""
    card = assets.model_card()
    model = assets.default_preference_model(torch.device("cpu"))
    posts, prompts = sft_samples["posts"][:96], sft_samples["prompts"][:96]
    reference_proxy = model.score(prompts, [p.reference for p in posts])
    # References are the normalisation's anchor: mean ~0, std ~1 (fit on train references).
    assert abs(float(reference_proxy.mean())) < 0.35
    assert 0.6 < float(reference_proxy.std()) < 1.5
    greedy_gold = float(gold_scores([p.record for p in posts], sft_samples["greedy"][:96]).mean())
    assert abs(greedy_gold - card["evaluation"]["sft_greedy_gold"]) < 0.1
    # The reference-vs-perturbation figures, recomputed exactly (same posts and seed as the build).
    posts = split_posts("valid", card["config"]["valid_posts"])
    recomputed = perturbation_preferences(model, posts, seed=card["config"]["seed"] + 3)
    for kind, figures in card["preference_model"]["prefers_reference_over"].items():
        assert recomputed[kind] == pytest.approx(figures, abs=0.02), kind  # near-ties may flip (padding widths)


def test_shipped_models_load_and_are_safetensors():
    members = sorted(assets.PREFERENCE_MODEL_DIR.glob("member_*")) or [assets.PREFERENCE_MODEL_DIR]
    assert len(members) == assets.model_card()["preference_model"]["members"]
    for folder in (assets.POLICY_DIR, *members):
        assert (folder / "model.safetensors").is_file()
    for folder in (assets.POLICY_DIR, assets.PREFERENCE_MODEL_DIR):
        assert not list(folder.rglob("*.bin")) and not list(folder.rglob("*.pt")) and not list(folder.rglob("*.pkl"))
    policy = AutoModelForCausalLM.from_pretrained(assets.sft_policy_path())
    assert policy.config.vocab_size == len(assets.default_tokenizer())


def test_preference_model_scores_references():
    model = assets.default_preference_model(torch.device("cpu"))
    posts = [generate_post(10_050_000 + i) for i in range(32)]  # valid split
    prompts = [prompt_text(p) for p in posts]
    scores = model.score(prompts, [p.reference for p in posts])
    assert torch.isfinite(scores).all() and scores.shape == (32,)


def test_default_env_is_made_offline_quickly_and_passes_checkers():
    start = time.perf_counter()
    env = gym.make("RLHF-Summarize-v0")
    assert time.perf_counter() - start < 10  # loose bound: the "in under 10 s"
    gym_check_env(env.unwrapped)
    sb3_check_env(env.unwrapped)
    obs, _ = env.reset(seed=0)
    assert obs["input_ids"].shape == (288,)
    info = {}
    for _ in range(64):
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
        if terminated or truncated:
            break
    assert {"preference", "gold", "response_text"} <= set(info)
    assert 0.0 <= info["gold"] <= 1.0


def test_shipped_generation_config_samples_at_the_protocol_temperature():
    """``generate()`` with the SFT policy's saved defaults samples as the benchmark does."""
    from transformers import GenerationConfig

    from rlhf_gym.envs.summarize import TASK

    config = GenerationConfig.from_pretrained(TASK.policy_path())
    assert config.do_sample and config.temperature == TASK.temperature == 0.7
    assert config.top_k == 0 and config.top_p == 1.0  # pure sampling, as the env rollouts
