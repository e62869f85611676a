"""Reading a causal LM's next-token outputs at env observations, with shared prefixes."""

from __future__ import annotations

import pytest
import torch

from rlhf_gym.lm.loading import load_causal_lm
from rlhf_gym.lm.observation_reader import PromptCache, next_token_outputs, shared_prefix_hosts


def _rollout_observations(env, steps: int, seed: int) -> dict[str, torch.Tensor]:
    """Every observation of ``steps`` random-action steps, stacked and shuffled as SB3 does."""
    obs, _ = env.reset(seed=seed)
    generator = torch.Generator().manual_seed(seed)
    seen = [obs]
    for _ in range(steps):
        actions = torch.randint(env.vocab_size, (env.num_envs,), generator=generator)
        obs, *_ = env.step(actions)
        seen.append(obs)
    stacked = {key: torch.cat([o[key] for o in seen]) for key in ("input_ids", "attention_mask")}
    order = torch.randperm(stacked["input_ids"].shape[0], generator=generator)
    return {key: value[order] for key, value in stacked.items()}


def test_hosts_are_the_longest_containing_row_of_the_same_prompt():
    # P = 2. One episode at t = 0, 1, 2; a diverged response; other prompts; a duplicate.
    ids = torch.tensor([
        [5, 6, 0, 0, 0],  # 0: prompt A, t=0
        [5, 6, 1, 0, 0],  # 1: prompt A, t=1
        [5, 6, 1, 2, 0],  # 2: prompt A, t=2
        [5, 6, 3, 0, 0],  # 3: prompt A, diverged at the first token
        [5, 7, 1, 0, 0],  # 4: prompt B, same response as row 1
        [5, 6, 1, 2, 0],  # 5: duplicate of row 2
        [9, 6, 1, 9, 9],  # 6: a one-token prompt (junk in padded columns): not prompt A
    ])
    mask = torch.tensor([
        [1, 1, 0, 0, 0], [1, 1, 1, 0, 0], [1, 1, 1, 1, 0], [1, 1, 1, 0, 0],
        [1, 1, 1, 0, 0], [1, 1, 1, 1, 0], [0, 1, 1, 0, 0],
    ])
    host, offset = shared_prefix_hosts(ids, mask, prompt_width=2)
    assert host.tolist() == [2, 2, 2, 3, 4, 2, 6]
    assert offset.tolist() == [2, 1, 0, 0, 0, 0, 0]


@pytest.mark.parametrize("output_hidden", [False, True])
def test_shared_prefixes_give_the_same_outputs_from_fewer_rows(make_toy_env, toy_dir, output_hidden):
    env = make_toy_env(4)
    obs = _rollout_observations(env, steps=6, seed=0)  # 28 rows from at most 4 + resets episodes
    model = load_causal_lm(toy_dir / "policy").eval()
    batch_sizes: list[int] = []
    hook = model.register_forward_pre_hook(
        lambda _module, _args, kwargs: batch_sizes.append(kwargs["input_ids"].shape[0]), with_kwargs=True
    )
    with torch.no_grad():
        expected = next_token_outputs(model, obs["input_ids"], obs["attention_mask"], env.max_prompt_tokens,
                                      vocab_size=env.vocab_size, output_hidden=output_hidden, share_prefixes=False)
        shared = next_token_outputs(model, obs["input_ids"].float(), obs["attention_mask"], env.max_prompt_tokens,
                                    vocab_size=env.vocab_size, output_hidden=output_hidden)
    hook.remove()
    assert batch_sizes[0] == 28 and batch_sizes[1] < 28 / 2
    torch.testing.assert_close(shared[0], expected[0], atol=1e-5, rtol=0)
    if output_hidden:
        torch.testing.assert_close(shared[1], expected[1], atol=1e-5, rtol=0)


def test_shared_prefixes_still_reject_a_broken_layout(make_toy_env, toy_dir):
    env = make_toy_env(2)
    obs, _ = env.reset(seed=0)
    mask = obs["attention_mask"].clone()
    mask[0, env.max_prompt_tokens - 2] = 0  # a hole in the prompt block
    model = load_causal_lm(toy_dir / "policy")
    with pytest.raises(ValueError, match="one block of real tokens"):
        next_token_outputs(model, obs["input_ids"], mask, env.max_prompt_tokens)


def test_prompt_cache_gives_the_same_outputs_and_forwards_each_prompt_once(make_toy_env, toy_dir):
    env = make_toy_env(4)
    model = load_causal_lm(toy_dir / "policy").eval()
    cache = PromptCache()
    obs, _ = env.reset(seed=0)
    generator = torch.Generator().manual_seed(0)
    for _ in range(8):  # steps of the same episodes (t = 0 included), and resets with new prompts
        with torch.no_grad():
            expected = next_token_outputs(model, obs["input_ids"], obs["attention_mask"], env.max_prompt_tokens,
                                          vocab_size=env.vocab_size, output_hidden=True, share_prefixes=False)
        cached = cache.outputs(model, obs["input_ids"].float(), obs["attention_mask"], env.max_prompt_tokens,
                               vocab_size=env.vocab_size, output_hidden=True)
        torch.testing.assert_close(cached[0], expected[0], atol=1e-5, rtol=0)
        torch.testing.assert_close(cached[1], expected[1], atol=1e-5, rtol=0)
        obs, *_ = env.step(torch.randint(env.vocab_size, (env.num_envs,), generator=generator))
    assert 4 <= cache.prompt_forwards < 4 * 8 / 2  # once per episode, not once per step


def test_prompt_cache_empties_when_the_weights_change(make_toy_env, toy_dir):
    env = make_toy_env(2)
    model = load_causal_lm(toy_dir / "policy").eval()
    cache = PromptCache()
    obs, _ = env.reset(seed=0)
    obs, *_ = env.step(torch.tensor([5, 6]))
    cache.outputs(model, obs["input_ids"], obs["attention_mask"], env.max_prompt_tokens)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    for param in model.parameters():
        param.grad = torch.randn_like(param)
    optimizer.step()  # in place, as every optimiser
    with torch.no_grad():
        expected, _ = next_token_outputs(model, obs["input_ids"], obs["attention_mask"], env.max_prompt_tokens)
    torch.testing.assert_close(cache.outputs(model, obs["input_ids"], obs["attention_mask"], env.max_prompt_tokens)[0],
                               expected, atol=1e-4, rtol=0)  # float32 order at logits ~10; a stale cache is off by > 0.1
    assert cache.prompt_forwards == 4
    first = next(model.parameters())
    first.data = first.data + 0.1  # TRPO's line search assigns .data
    with torch.no_grad():
        expected, _ = next_token_outputs(model, obs["input_ids"], obs["attention_mask"], env.max_prompt_tokens)
    torch.testing.assert_close(cache.outputs(model, obs["input_ids"], obs["attention_mask"], env.max_prompt_tokens)[0],
                               expected, atol=1e-4, rtol=0)


def test_a_vocabulary_larger_than_the_models_head_is_rejected_by_both_reads(make_toy_env, toy_dir):
    env = make_toy_env(2)
    obs, _ = env.reset(seed=0)
    model = load_causal_lm(toy_dir / "policy")
    too_many = model.config.vocab_size + 1
    with pytest.raises(ValueError, match=f"vocab_size {too_many} exceeds"):
        next_token_outputs(model, obs["input_ids"], obs["attention_mask"], env.max_prompt_tokens, vocab_size=too_many)
    with pytest.raises(ValueError, match=f"vocab_size {too_many} exceeds"):
        PromptCache().outputs(model, obs["input_ids"], obs["attention_mask"], env.max_prompt_tokens, vocab_size=too_many)
