"""Batched sampling: seeded reproducibility, stopping at EOS, and correct left padding."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rlhf_gym.lm.sampling import _decode_until_eos, sample_completions
from rlhf_gym.pipeline.sft import SFTConfig, train_sft
from rlhf_gym.pipeline.tiny_models import TinyGPT2Size, tiny_causal_lm
from rlhf_gym.pipeline.tokenizer_training import train_bpe_tokenizer

SIZE = TinyGPT2Size(n_layer=2, n_embd=32, n_head=2, n_positions=128)
WORDS = ["cat", "dog", "owl", "fox", "bee", "yak", "the", "saw", "in", "yard"]
ANIMALS = WORDS[:6]
PROMPTS = [
    "the cat saw the dog in the yard and the owl saw the fox in the yard",  # long
    "owl",  # one token
    "the yak saw",
    "fox in the yard",
]


@pytest.fixture(scope="module")
def tokenizer():
    rng = np.random.default_rng(0)
    lines = [" ".join(rng.choice(WORDS, size=int(rng.integers(2, 12)))) for _ in range(300)]
    lines += [f"{w} says {w} {w}" for w in ANIMALS] * 10  # the echo task's text
    return train_bpe_tokenizer(lines, vocab_size=300)


@pytest.fixture(scope="module")
def random_model(tokenizer):
    model = tiny_causal_lm(tokenizer, SIZE, seed=0)
    # Make positions matter a lot, so that misaligned position ids change the output.
    with torch.no_grad():
        model.transformer.wpe.weight.mul_(50.0)
    return model


@pytest.fixture(scope="module")
def echo_model(tokenizer):
    """Trained to answer '<animal> says' with ' <animal> <animal>' and then EOS."""
    prompts = [f"{w} says" for w in ANIMALS] * 16
    completions = [f" {w} {w}" for w in ANIMALS] * 16
    model = tiny_causal_lm(tokenizer, SIZE, seed=1)
    config = SFTConfig(epochs=10, batch_size=16, learning_rate=1e-2)
    result = train_sft(model, tokenizer, prompts, completions, config, progress=False)
    assert result.final_loss < 0.1
    return model


def sample(model, tokenizer, prompts, **overrides):
    kwargs = dict(max_new_tokens=12, temperature=1.0, seed=0, max_prompt_tokens=32)
    kwargs.update(overrides)
    return sample_completions(model, tokenizer, prompts, **kwargs)


def test_sampling_is_reproducible_for_a_seed_and_varies_across_seeds(random_model, tokenizer):
    prompts = PROMPTS * 4
    rng_before = torch.get_rng_state()
    first = sample(random_model, tokenizer, prompts, seed=7)
    assert torch.equal(torch.get_rng_state(), rng_before)  # the global RNG is untouched
    assert sample(random_model, tokenizer, prompts, seed=7) == first
    assert sample(random_model, tokenizer, prompts, seed=8) != first
    assert len(set(first)) > len(PROMPTS)  # identical prompts get different samples
    torch.manual_seed(123)  # the global RNG plays no part
    assert sample(random_model, tokenizer, prompts, seed=7) == first


def test_progress_bar_counts_prompts_and_changes_nothing(random_model, tokenizer, capsys):
    prompts = PROMPTS * 4
    quiet = sample(random_model, tokenizer, prompts, seed=7, batch_size=3)
    assert capsys.readouterr().err == ""
    assert sample(random_model, tokenizer, prompts, seed=7, batch_size=3, progress="sampling") == quiet
    bar = capsys.readouterr().err
    assert "sampling:" in bar and f"0/{len(prompts)} " in bar  # a bar over prompts (it clears when done)


def test_greedy_ignores_the_seed(random_model, tokenizer):
    greedy = sample(random_model, tokenizer, PROMPTS, temperature=0.0, seed=0)
    assert sample(random_model, tokenizer, PROMPTS, temperature=0.0, seed=1) == greedy


def test_greedy_on_a_left_padded_batch_equals_greedy_on_each_prompt_alone(random_model, tokenizer):
    batched = sample(random_model, tokenizer, PROMPTS, temperature=0.0)
    alone = [sample(random_model, tokenizer, [p], temperature=0.0)[0] for p in PROMPTS]
    assert batched == alone
    # The check has teeth: the same prompt at shifted positions decodes differently.
    prompt = torch.tensor([tokenizer(PROMPTS[1])["input_ids"]])
    shifted = random_model.generate(
        input_ids=prompt,
        attention_mask=torch.ones_like(prompt),
        position_ids=torch.full_like(prompt, 40),
        max_new_tokens=12,
        do_sample=False,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    assert tokenizer.decode(shifted[0, 1:]) != alone[1]


def test_greedy_equals_transformers_generate(random_model, tokenizer):
    """Our KV-cached sampling path decodes what ``generate()`` decodes, prompt by prompt."""
    ours = sample(random_model, tokenizer, PROMPTS, temperature=0.0)
    for prompt_text, text in zip(PROMPTS, ours, strict=True):
        prompt = torch.tensor([tokenizer(prompt_text)["input_ids"]])
        out = random_model.generate(
            input_ids=prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=12, do_sample=False,
            pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
        )[0, prompt.shape[1]:].tolist()
        if tokenizer.eos_token_id in out:
            out = out[: out.index(tokenizer.eos_token_id)]
        assert tokenizer.decode(out, skip_special_tokens=False, clean_up_tokenization_spaces=False) == text


def test_completions_stop_before_the_first_eos(echo_model, tokenizer):
    prompts = ["owl says", "cat says", "yak says"]
    greedy = sample(echo_model, tokenizer, prompts, temperature=0.0)
    assert greedy == [" owl owl", " cat cat", " yak yak"]  # no EOS text, nothing after it
    sampled = sample(echo_model, tokenizer, prompts * 10, temperature=1.0, seed=3)
    assert all(tokenizer.eos_token not in text for text in sampled)
    assert sum(text in {" owl owl", " cat cat", " yak yak"} for text in sampled) >= 25


def test_long_prompts_keep_their_end_and_budget_is_respected(echo_model, tokenizer):
    long_prompt = "the yard " * 40 + "\nfox says"
    out = sample(echo_model, tokenizer, [long_prompt], temperature=0.0, max_prompt_tokens=2)
    assert out == [" fox fox"]  # only "fox", " says" were kept: the trained prompt exactly
    capped = sample(echo_model, tokenizer, ["fox says"], temperature=0.0, max_new_tokens=1)
    assert len(tokenizer(capped[0])["input_ids"]) == 1


def test_decode_until_eos_cuts_at_the_first_eos(tokenizer):
    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    (cat,), (dog,) = tokenizer(" cat")["input_ids"], tokenizer(" dog")["input_ids"]
    generated = torch.tensor(
        [
            [cat, eos, dog, eos],  # text after the first EOS is dropped
            [cat, dog, dog, cat],  # no EOS: the whole budget is the completion
            [eos, pad, pad, pad],  # immediate EOS: empty completion
            [dog, pad, eos, pad],  # a pad the policy chose itself is text, not padding
        ]
    )
    decoded = _decode_until_eos(tokenizer, generated, eos)
    assert decoded == [" cat", " cat dog dog cat", "", " dog<pad>"]


def test_empty_prompt_list_and_bad_arguments(random_model, tokenizer):
    assert sample(random_model, tokenizer, []) == []
    with pytest.raises(ValueError, match="temperature must be .* got -1.0"):
        sample(random_model, tokenizer, PROMPTS, temperature=-1.0)
    with pytest.raises(ValueError, match="max_new_tokens must be >= 1, got 0"):
        sample(random_model, tokenizer, PROMPTS, max_new_tokens=0)
    with pytest.raises(ValueError, match="batch_size must be >= 1, got 0"):
        sample(random_model, tokenizer, PROMPTS, batch_size=0)
    with pytest.raises(ValueError, match=r"prompts \[1\] have no tokens"):
        sample(random_model, tokenizer, ["owl", ""])


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("shape", [(1, 7), (64, 1059), (3, 2)])
def test_multinomial_one_draws_what_torch_multinomial_draws(seed, shape):
    """The same tokens from the same generator state, and the generator left in the same state."""
    from rlhf_gym.lm.policy import multinomial_one

    logits = torch.randn(shape, generator=torch.Generator().manual_seed(100 + seed)) * 3
    logits[0, 0] = -float("inf")  # a zero probability is never drawn
    probs = torch.softmax(logits, -1)
    ours, theirs = torch.Generator().manual_seed(seed), torch.Generator().manual_seed(seed)
    for _ in range(3):
        expected = torch.multinomial(probs, 1, generator=theirs)[:, 0]
        assert torch.equal(multinomial_one(probs, ours), expected)
    assert torch.equal(ours.get_state(), theirs.get_state())


def test_a_rollout_with_non_finite_logits_fails_once_with_a_clear_error(make_toy_env, toy_dir):
    from rlhf_gym.env.rollout import collect_episodes
    from rlhf_gym.lm.policy import CausalLMPolicy

    policy = CausalLMPolicy.from_pretrained(toy_dir / "policy", temperature=1.0)
    with torch.no_grad():
        policy.model.lm_head.weight[3] = float("nan")
    env = make_toy_env(2, autoreset_mode="disabled", max_new_tokens=3)
    with pytest.raises(RuntimeError, match="non-finite logits"):
        collect_episodes(env, policy, seed=0, generator=torch.Generator().manual_seed(0))
