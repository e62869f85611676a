"""The PPO critic initialised from the preference model predicts normalised rewards; a reward
model with another vocabulary hands the critic the policy's backbone."""

from __future__ import annotations

import pytest
import torch

from rlhf_gym.agents.value_model import ValueModel, same_vocabulary
from rlhf_gym.lm.policy import CausalLMPolicy
from rlhf_gym.rewards.preference_model import PreferenceModel, RewardNormalization


def test_critic_from_the_preference_model_starts_at_the_normalised_reward(toy_dir):
    preference_model = PreferenceModel.from_pretrained(toy_dir / "preference_model")
    preference_model.normalization = RewardNormalization(mean=1.5, std=0.25)  # far from identity
    policy = CausalLMPolicy.from_pretrained(toy_dir / "policy")
    critic = ValueModel.create("preference-model", preference_model, policy, preference_model.tokenizer)
    prompts, responses = ["POST: a cat\nTL;DR:", "POST: two dogs ran\nTL;DR:"], [" a cat", " dogs"]
    encoded = preference_model.encode(prompts, responses)
    ids, mask = encoded["input_ids"], encoded["attention_mask"]
    # The critic read at the final (EOS) token is the preference model's normalised score.
    with torch.no_grad():
        width = ids.shape[1]
        padded_ids = torch.cat([ids, torch.zeros_like(ids[:, :1])], dim=1)  # V(s) before one more token
        padded_mask = torch.cat([mask, torch.zeros_like(mask[:, :1])], dim=1)
        values = critic(padded_ids, padded_mask, prompt_width=width)  # (N, 1): state after EOS
    torch.testing.assert_close(values[:, 0], preference_model.score(prompts, responses), atol=1e-5, rtol=1e-5)
    assert critic.backbone is not preference_model.model.base_model  # a copy: training it leaves the reward alone


def test_critic_rejects_a_non_linear_head(toy_dir):
    preference_model = PreferenceModel.from_pretrained(toy_dir / "preference_model")
    preference_model.model.score = torch.nn.Sequential(preference_model.model.score)
    with pytest.raises(ValueError, match="nn.Linear"):
        ValueModel.create(
            "preference-model", preference_model, CausalLMPolicy.from_pretrained(toy_dir / "policy"), preference_model.tokenizer
        )


def test_critic_for_another_reward_keeps_the_backbone_and_starts_at_zero(toy_dir):
    """An oracle run rewards the gold judge: a head on the proxy's scale would mislead the advantages."""
    preference_model = PreferenceModel.from_pretrained(toy_dir / "preference_model")
    preference_model.normalization = RewardNormalization(mean=1.5, std=0.25)
    policy = CausalLMPolicy.from_pretrained(toy_dir / "policy")
    critic = ValueModel.create("preference-model", preference_model, policy, preference_model.tokenizer, reward_is_preference=False)
    encoded = preference_model.encode(["POST: a cat\nTL;DR:"], [" a cat"])
    with torch.no_grad():
        values = critic(encoded["input_ids"], encoded["attention_mask"], prompt_width=2)
    assert torch.count_nonzero(values) == 0
    copied = dict(critic.backbone.named_parameters())
    for name, parameter in preference_model.model.base_model.named_parameters():
        torch.testing.assert_close(copied[name], parameter)  # the preference model's features, copied


def test_a_preference_model_of_another_vocabulary_gives_the_critic_the_policys_backbone(
    toy_dir, toy_tokenizer, other_vocabulary_preference_dir, capsys
):
    """The critic reads the policy's token ids: a reward model with its own tokenizer would look
    them up in another table (here a smaller one: an IndexError), so the critic starts from a
    copy of the policy's backbone with a zeroed head, and says so."""
    preference_model = PreferenceModel.from_pretrained(other_vocabulary_preference_dir)
    assert not same_vocabulary(preference_model.tokenizer, toy_tokenizer)
    policy = CausalLMPolicy.from_pretrained(toy_dir / "policy")
    critic = ValueModel.create("preference-model", preference_model, policy, toy_tokenizer)
    assert "vocabulary" in capsys.readouterr().out
    embedding = critic.backbone.get_input_embeddings()
    assert embedding.num_embeddings == len(toy_tokenizer)
    for name, parameter in policy.model.base_model.named_parameters():
        torch.testing.assert_close(dict(critic.backbone.named_parameters())[name], parameter)
    assert embedding.weight.data_ptr() != policy.model.get_input_embeddings().weight.data_ptr()  # a copy, not shared
    ids = torch.tensor([[5, 7, len(toy_tokenizer) - 1, len(toy_tokenizer) - 2]])  # ids past the reward model's table
    with torch.no_grad():
        values = critic(ids, torch.ones_like(ids), prompt_width=2)
    assert values.shape == (1, 2) and torch.count_nonzero(values) == 0
    with pytest.raises(IndexError):  # what the critic copied from this reward model would have done
        preference_model.model.base_model(input_ids=ids)


def test_same_vocabulary_compares_the_token_tables(toy_tokenizer, toy_preference_model):
    assert same_vocabulary(toy_tokenizer, toy_preference_model.tokenizer)  # loaded twice, equal tables
