"""The asset recipe runs end to end at toy scale and produces loadable, consistent assets."""

from __future__ import annotations

import json

import gymnasium as gym
import pytest

import rlhf_gym  # noqa: F401
from rlhf_gym.envs.summarize.build import (
    BuildConfig,
    accuracy_by_source,
    accuracy_vs_gold,
    build_assets,
    prefers_chosen,
)
from rlhf_gym.envs.summarize.perturbations import PERTURBATIONS
from rlhf_gym.envs.summarize.world import STYLES


@pytest.mark.slow
def test_toy_build_end_to_end(tmp_path):
    out = tmp_path / "assets"
    card = build_assets(BuildConfig.toy(), out, progress=False)
    for name in ("tokenizer/tokenizer.json", "sft_policy/model.safetensors", "preference_model/model.safetensors",
                 "preference_model/reward_normalization.json", "card.json", "card.md"):
        assert (out / name).is_file(), name
    assert json.loads((out / "card.json").read_text()) == card
    assert card["comparisons"]["train_pairs"] == 24 * 3
    assert 0.0 <= card["preference_model"]["valid_accuracy_vs_annotators"] <= 1.0
    assert 0.5 <= card["comparisons"]["valid_label_accuracy_ceiling"] <= 1.0
    assert 0.0 <= card["comparisons"]["valid_gold_judge_accuracy_vs_annotators"] <= 1.0
    fooled = card["preference_model"]["prefers_reference_over"]
    assert set(fooled) == set(PERTURBATIONS)
    for kind, figures in fooled.items():
        assert 0.0 <= figures["preference_model"] <= 1.0
        assert figures["gold_judge"] > 0.5 and figures["gold_drop"] > 0.0, kind  # each kind does damage
    assert "| change_number |" in (out / "card.md").read_text()
    by_source = card["preference_model"]["valid_accuracy_by_source"]
    styles = {f"style_{s}" for s in STYLES[1:]}
    assert {"reference", "sft_sample"} <= set(by_source) <= {"reference", "sft_sample", *PERTURBATIONS, *styles}
    assert set(by_source) & styles  # the writer styles are candidates, and the card says how each fares
    evaluation = card["evaluation"]
    assert set(evaluation["sft_t0.7_styles"]) == {*STYLES, "other"}
    assert evaluation["sft_greedy_hallucinated"] >= 0.0 and "per summary" in (out / "card.md").read_text()
    valid_pairs = card["comparisons"]["valid_pairs"]
    # every pair counts under one or two sources
    assert valid_pairs <= sum(f["pairs"] for f in by_source.values()) <= 2 * valid_pairs
    assert "| sft_sample |" in (out / "card.md").read_text()
    env = gym.make_vec(
        "RLHF-Summarize-v0", num_envs=2, tokenizer=str(out / "tokenizer"),
        reward_model=str(out / "preference_model"), local_files_only=True,
    )
    obs, _ = env.reset(seed=0)
    assert obs["input_ids"].shape == (2, 288)


@pytest.mark.slow
def test_build_is_deterministic_in_its_seed(tmp_path):
    config = BuildConfig.toy()
    config.sft_posts, config.comparison_posts, config.valid_posts, config.eval_posts = 16, 8, 8, 8
    first = build_assets(config, tmp_path / "a", progress=False)
    second = build_assets(config, tmp_path / "b", progress=False)
    assert without_timings(first) == without_timings(second)
    assert (tmp_path / "a/sft_policy/model.safetensors").read_bytes() == (tmp_path / "b/sft_policy/model.safetensors").read_bytes()

    # Reusing the first build's tokenizer and policy reproduces its preference model exactly.
    reused = build_assets(config, tmp_path / "c", reuse_policy=tmp_path / "a", progress=False)
    assert reused["sft"]["reused_from"] == str(tmp_path / "a")
    assert without_timings(reused)["preference_model"] == without_timings(first)["preference_model"]
    assert (tmp_path / "a/preference_model/model.safetensors").read_bytes() == (
        tmp_path / "c/preference_model/model.safetensors"
    ).read_bytes()


def without_timings(card: dict) -> dict:
    """The card minus wall-clock figures, which differ between identical builds."""
    card = {k: v for k, v in card.items() if k != "build_seconds"}
    card["sft"] = {k: v for k, v in card["sft"].items() if k not in ("seconds", "reused_from")}
    card["preference_model"] = {k: v for k, v in card["preference_model"].items() if k != "train_seconds"}
    return card


@pytest.mark.slow
def test_cli_sets_the_number_of_comparison_posts(tmp_path):
    from rlhf_gym.cli import main

    main(["build-assets", "summarize", "--toy", "--comparison-posts", "10", "--out", str(tmp_path / "assets")])
    card = json.loads((tmp_path / "assets/card.json").read_text())
    assert card["config"]["comparison_posts"] == 10
    assert card["comparisons"]["train_pairs"] == 10 * BuildConfig.toy().pairs_per_post
    with pytest.raises(SystemExit, match="comparison-posts must be >= 1, got 0"):
        main(["build-assets", "summarize", "--toy", "--comparison-posts", "0", "--out", str(tmp_path / "x")])
    with pytest.raises(SystemExit, match="preference-members must be >= 1, got 0"):
        main(["build-assets", "summarize", "--toy", "--preference-members", "0", "--out", str(tmp_path / "x")])
    assert not (tmp_path / "x").exists()


def test_cli_rejects_a_device_torch_cannot_use(tmp_path):
    from rlhf_gym.cli import main

    with pytest.raises(SystemExit, match="'gpu0' is not a torch device"):
        main(["build-assets", "summarize", "--toy", "--device", "gpu0", "--out", str(tmp_path / "x")])
    assert not (tmp_path / "x").exists()


def test_accuracy_by_source_counts_each_pair_under_its_sources(toy_preference_model):
    """Hand-made pairs: a tie is an error for the model and half right for the gold judge."""
    prompt = "POST: I (25F) owe 40 dollars.\nTL;DR:"
    same, other = " I owe 40 dollars.", " I owe 90 dollars, help."
    scores = toy_preference_model.raw_scores([prompt, prompt], [same, other])
    better, worse = (same, other) if scores[0] > scores[1] else (other, same)
    pairs = {
        "prompts": [prompt] * 3,
        "chosen": [same, better, worse],  # a tie, a pair the model gets right, one it gets wrong
        "rejected": [same, worse, better],
        "gold_chosen": [0.5, 0.9, 0.9],
        "gold_rejected": [0.5, 0.1, 0.1],
        "sources": [("reference", "reference"), ("reference", "change_number"), ("sft_sample", "change_number")],
    }
    figures = accuracy_by_source(prefers_chosen(toy_preference_model, pairs), pairs)
    assert figures == {
        "change_number": {"pairs": 2, "preference_model": 0.5, "gold_judge": 1.0},
        "reference": {"pairs": 2, "preference_model": 0.5, "gold_judge": 0.75},
        "sft_sample": {"pairs": 1, "preference_model": 0.0, "gold_judge": 1.0},
    }


@pytest.mark.slow
def test_build_trains_an_ensemble_of_preference_models(tmp_path):
    config = BuildConfig.toy()
    config.sft_posts, config.comparison_posts, config.valid_posts, config.eval_posts = 16, 8, 8, 8
    single = build_assets(config, tmp_path / "one", progress=False)
    config.preference_members = 2
    card = build_assets(config, tmp_path / "two", reuse_policy=tmp_path / "one", progress=False)

    assert card["preference_model"]["members"] == 2
    assert card["preference_model"]["parameters"] == 2 * single["preference_model"]["parameters"]
    assert "(2 ensemble members" in (tmp_path / "two" / "card.md").read_text()
    folder = tmp_path / "two" / "preference_model"
    # Member 0 is the single model (same recipe and seed); member 1 saw another minibatch order.
    first, second = ((folder / f"member_{i}" / "model.safetensors").read_bytes() for i in (0, 1))
    assert first == (tmp_path / "one" / "preference_model" / "model.safetensors").read_bytes()
    assert second != first
    env = gym.make_vec(
        "RLHF-Summarize-v0", num_envs=2, tokenizer=str(tmp_path / "one" / "tokenizer"),
        reward_model=str(folder), local_files_only=True,
    )
    assert type(env.unwrapped.preference_model).__name__ == "PreferenceEnsemble"


def test_accuracy_vs_gold_orders_pairs_by_the_gold_judge(toy_preference_model):
    """Equal to `preference_accuracy` on the pairs re-ordered by gold, gold ties dropped."""
    from rlhf_gym.pipeline.preference_training import preference_accuracy

    prompt = "POST: I (25F) owe 40 dollars to my friend.\nTL;DR:"
    responses = [" I owe 40 dollars.", " I owe 90 dollars, help.", " friend", " I (25F) owe money.", " owe"]
    gold = [0.9, 0.2, 0.1, 0.5, 0.5]
    pairs = {"prompts": [], "chosen": [], "rejected": [], "gold_chosen": [], "gold_rejected": []}
    for a in range(len(responses)):
        for b in range(len(responses)):
            if a != b:  # both orders: the annotators' choice agrees with gold half the time
                for key, value in zip(pairs, (prompt, responses[a], responses[b], gold[a], gold[b]), strict=True):
                    pairs[key].append(value)
    chosen = toy_preference_model.raw_scores(pairs["prompts"], pairs["chosen"])
    rejected = toy_preference_model.raw_scores(pairs["prompts"], pairs["rejected"])
    accuracy, untied = accuracy_vs_gold(chosen, rejected, pairs)

    ordered = [(c, r) if gc > gr else (r, c) for c, r, gc, gr in zip(
        pairs["chosen"], pairs["rejected"], pairs["gold_chosen"], pairs["gold_rejected"], strict=True) if gc != gr]
    assert untied == len(ordered) == 20 - 2  # the 0.5 / 0.5 pair, in both orders, is a gold tie
    better, worse = zip(*ordered, strict=True)
    assert accuracy == preference_accuracy(toy_preference_model, [prompt] * untied, list(better), list(worse))
    assert 0.0 < accuracy < 1.0  # a random model: the check is not vacuous
