"""P2: the hand-written side counts what it generated up to EOS, and a tiny comparison on the shipped env.

Sizes are tiny (a few rows, a few new tokens); no test asserts a time.
"""

from __future__ import annotations

import gymnasium as gym
import pytest
import torch

import rlhf_gym
from rlhf_gym.bench.rollout import HandWritten, P2Sizes, rollout_comparison, tokens_up_to_eos
from rlhf_gym.lm.layout import trim_shared_left_padding

ENV = "RLHF-Summarize-v0"


def test_tokens_up_to_eos_counts_the_eos_and_stops_there():
    eos, pad = 0, 1
    new = torch.tensor([
        [5, 6, 0, pad, pad],  # EOS third: 3
        [5, 6, 7, 8, 9],  # no EOS: the whole budget
        [0, pad, pad, pad, pad],  # EOS first: 1
        [5, 0, 7, 0, pad],  # only the first EOS counts
    ])
    assert tokens_up_to_eos(new, eos).tolist() == [3, 5, 1, 2]


@pytest.fixture(scope="module")
def shipped():
    task = rlhf_gym.get_task(ENV)
    env = gym.make_vec(ENV, num_envs=3, autoreset_mode="disabled", max_new_tokens=12).unwrapped
    yield task, env, task.sft_policy()
    env.close()


def test_the_hand_written_count_is_the_non_padding_tokens_up_to_eos(shipped):
    task, env, policy = shipped
    scored: list[tuple[list[str], list[str]]] = []

    def score(prompts, responses):
        scored.append((list(prompts), list(responses)))
        return env.reward_model.score(prompts, responses)

    hand = HandWritten(policy.model, env.tokenizer, score=score, gold_judge=env.gold_judge, temperature=policy.temperature,
                       max_new_tokens=env.max_new_tokens, device=torch.device("cpu"))
    obs, _ = env.reset(seed=5)
    width = env.max_prompt_tokens
    ids, mask, trimmed = trim_shared_left_padding(obs["input_ids"][:, :width], obs["attention_mask"][:, :width], width)
    assert trimmed < width  # the env's block carries columns that are padding in every row
    sample = hand.run(ids, mask, env.prompts, seed=11)

    torch.manual_seed(11)  # the same draw again, to count independently
    out = policy.model.generate(input_ids=ids, attention_mask=mask, do_sample=True, temperature=policy.temperature, top_k=0,
                                top_p=1.0, max_new_tokens=env.max_new_tokens, pad_token_id=env.pad_token_id,
                                eos_token_id=env.eos_token_id)
    new = out[:, ids.shape[1]:]
    assert sample.work == float((new != env.pad_token_id).sum())  # generate() pads after a row's EOS
    assert 3 <= sample.work <= 3 * env.max_new_tokens
    (prompts, responses), = scored  # ONE batched reward call, on the decoded responses
    assert prompts == [p.text for p in env.prompts] and len(responses) == 3
    assert all(env.tokenizer.eos_token not in r for r in responses)
    assert 0 < sample.extra["scoring_seconds"] < sample.seconds


def test_a_tiny_comparison_reports_both_ratios_with_gold_on_both_sides():
    lines: list[str] = []
    result = rollout_comparison(quick=True, env_id=ENV, sizes=P2Sizes(batch=3, pairs=2, warmup=1, max_new_tokens=5), log=lines.append)
    c = result["comparison"]
    assert len(c["a_samples"]) == len(c["b_samples"]) == 2
    assert all(1 <= s["work"] <= 15 for s in c["a_samples"] + c["b_samples"])
    assert result["gold_judge"] is True and result["ratio"] > 0 and result["ratio_without_scoring"] > 0
    assert 0 < result["a_scoring_share"] < 1 and 0 < result["b_scoring_share"] < 1
    assert result["prompt_block_columns"]["prefilled"] <= result["prompt_block_columns"]["env_block"]
    assert [row["goal"] for row in result["headline"]] == [">= 1x", None] and len(lines) == 1


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("bf16", [False, True])
def test_a_tiny_comparison_runs_on_cuda(bf16):
    sizes = P2Sizes(batch=3, pairs=1, warmup=1, max_new_tokens=5)
    result = rollout_comparison(quick=True, env_id=ENV, device="cuda", bf16=bf16, sizes=sizes, log=lambda line: None)
    assert result["ratio"] > 0 and result["device"] == "cuda"
