"""A preference model deepened from a causal LM keeps the LM's weights and adds fresh blocks."""

from __future__ import annotations

import pytest
import torch
from transformers import GPT2LMHeadModel

from rlhf_gym.pipeline.tiny_models import deepened_sequence_classifier


def test_deepened_classifier_copies_the_lm_and_stacks_new_blocks(toy_dir):
    lm = GPT2LMHeadModel.from_pretrained(toy_dir / "policy")
    model = deepened_sequence_classifier(toy_dir / "policy", extra_layers=2, seed=3)
    assert model.config.n_layer == lm.config.n_layer + 2 and model.config.num_labels == 1
    lm_weights, weights = lm.transformer.state_dict(), model.transformer.state_dict()
    for name, tensor in lm_weights.items():  # embeddings, every LM block, final norm
        torch.testing.assert_close(weights[name], tensor, rtol=0, atol=0)
    new_block = f"h.{lm.config.n_layer}.attn.c_attn.weight"
    assert new_block in weights and new_block not in lm_weights
    assert weights[new_block].std() > 0  # initialised, not zeros

    again = deepened_sequence_classifier(toy_dir / "policy", extra_layers=2, seed=3)
    other_seed = deepened_sequence_classifier(toy_dir / "policy", extra_layers=2, seed=4)
    torch.testing.assert_close(again.state_dict(), model.state_dict(), rtol=0, atol=0)
    assert not torch.equal(other_seed.transformer.h[-1].mlp.c_fc.weight, model.transformer.h[-1].mlp.c_fc.weight)


def test_zero_extra_layers_is_the_lm_with_a_head(toy_dir):
    lm = GPT2LMHeadModel.from_pretrained(toy_dir / "policy")
    model = deepened_sequence_classifier(toy_dir / "policy", extra_layers=0)
    assert model.config.n_layer == lm.config.n_layer
    torch.testing.assert_close(model.transformer.wte.weight, lm.transformer.wte.weight, rtol=0, atol=0)
    with pytest.raises(ValueError, match="extra_layers"):
        deepened_sequence_classifier(toy_dir / "policy", extra_layers=-1)
