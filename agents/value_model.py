"""The PPO critic: a transformer with a scalar head read at every response position.

Two initialisations (N+ implementation details, Huang et al. 2024, #9):

- ``"preference-model"`` (default, as in N+ and Stiennon et al. 2020): a separate copy of
  the preference model's backbone and scalar head, so the critic starts out predicting
  the score it will be trained toward. The reward is the *normalised* score, so the copied
  head is the normalised one, ``(w·h + b - mean) / std`` (N+ folds the normalisation into
  the reward head's bias, and the critic inherits it; a raw copy predicts the raw scale,
  mean 1.9 on TL;DR, where returns are about -1). At unfinished responses the head was
  never trained and its output is noise (std 2.6 against 1.5 for the returns on TL;DR),
  which is why the critic gets its own, higher learning rate
  (``PPOConfig.value_learning_rate``);
- ``"head"``: a new zero-initialised head on the policy's own backbone (one model copy
  fewer; policy and value gradients then share the backbone).

When the reward is not the preference model's score (``reward="gold"``, an oracle run),
the ``"preference-model"`` critic keeps the copied backbone but starts from a zeroed head:
a head predicting the proxy's scale (normalised scores around -5 for SFT samples on
RLHF-Summarize-v0) against returns in [0, 1] makes the advantage largest exactly where the
proxy thinks a response is worst. That inverted the first oracle runs on the second world
(gold -0.057 in 20k env steps).

The critic reads the env's token ids, which are the policy's. A preference model with
another vocabulary (``--reward-model`` with its own tokenizer: the env decodes each response
and the preference model re-tokenises the text) cannot start the critic: its embedding would
look up the policy's ids in a table of other tokens, garbage or an ``IndexError``. Then the
``"preference-model"`` critic starts from a copy of the *policy's* backbone with a zeroed
head (still a separate model, so the value loss never moves the actor), and says so.
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from rlhf_gym.lm.layout import (
    pad_response_columns,
    position_ids_from_attention_mask,
    trim_shared_left_padding,
    trim_shared_right_padding,
)
from rlhf_gym.lm.policy import CausalLMPolicy
from rlhf_gym.rewards.preference_model import PreferenceModel


def normalized_head(head: nn.Module, preference_model: PreferenceModel) -> nn.Linear:
    """A linear copy of the preference model's scalar head that outputs normalised rewards.

    ``head(h)`` is the raw score; the copy returns ``(head(h) - mean) / std`` with the
    preference model's `RewardNormalization`, the scale of the rewards the critic learns.
    """
    if not isinstance(head, nn.Linear) or head.out_features != 1:
        raise ValueError(f"expected the preference model's head to be nn.Linear(d, 1), got {head}")
    norm = preference_model.normalization
    folded = nn.Linear(head.in_features, 1, bias=True).to(device=head.weight.device, dtype=head.weight.dtype)
    with torch.no_grad():
        folded.weight.copy_(head.weight / norm.std)
        bias = head.bias if head.bias is not None else torch.zeros(1, device=head.weight.device)
        folded.bias.copy_((bias - norm.mean) / norm.std)
    return folded


def same_vocabulary(a: PreTrainedTokenizerBase, b: PreTrainedTokenizerBase) -> bool:
    """Whether two tokenizers map the same tokens to the same ids (so a model trained on one
    reads the other's ids): the same size and the same token-to-id table."""
    return a is b or (len(a) == len(b) and a.get_vocab() == b.get_vocab())


def _zero_head(backbone: PreTrainedModel) -> nn.Linear:
    """A scalar head on ``backbone`` that predicts 0 everywhere until trained."""
    head = nn.Linear(backbone.config.hidden_size, 1, bias=True).to(next(backbone.parameters()).device)
    nn.init.zeros_(head.weight)
    nn.init.zeros_(head.bias)
    return head


class ValueModel(nn.Module):
    """V(s_t) for every response token t of a `TokenVectorEnv` observation buffer."""

    def __init__(self, backbone: PreTrainedModel, head: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head

    @classmethod
    def create(
        cls, kind: str, preference_model: PreferenceModel, policy: CausalLMPolicy, tokenizer: PreTrainedTokenizerBase, *,
        reward_is_preference: bool = True,
    ) -> ValueModel:
        """Build the critic: ``"preference-model"`` (a copy) or ``"head"`` (on the policy).

        Args:
            kind: ``"preference-model"`` or ``"head"``.
            preference_model: the env's preference model (an ensemble: its first member).
            policy: the policy being trained.
            tokenizer: the policy's (the env's) tokenizer, whose ids the critic reads. A
                preference model with another vocabulary gives way to a copy of the
                policy's backbone with a zeroed head (module docstring).
            reward_is_preference: False when the env rewards something else, such as the
                gold judge: the copy's head starts at zero instead of at the preference
                model's scores.
        """
        if kind == "preference-model":
            # An ensemble's critic starts from its first member (model and reward scale).
            preference_model = getattr(preference_model, "members", [preference_model])[0]
            if not isinstance(preference_model, PreferenceModel):
                raise ValueError(
                    f"value_model='preference-model' copies a PreferenceModel, but the env's reward model is a "
                    f"{type(preference_model).__name__}; use value_model='head'"
                )
            if not same_vocabulary(preference_model.tokenizer, tokenizer):
                print(f"note: the preference model's vocabulary ({len(preference_model.tokenizer)} tokens) is not the policy's "
                      f"({len(tokenizer)}): the critic starts from a copy of the policy's backbone with a zeroed head")
                backbone = copy.deepcopy(policy.model.base_model)
                return cls(backbone, _zero_head(backbone))
            # The critic trains its own copy; the env's model is a frozen, shared view.
            classifier = copy.deepcopy(preference_model.model).requires_grad_(True)
            head = getattr(classifier, "score", None) or getattr(classifier, "classifier", None)
            if head is None:
                raise ValueError(f"cannot find the scalar head of {type(classifier).__name__} (expected .score or .classifier)")
            if not reward_is_preference:
                return cls(classifier.base_model, _zero_head(classifier.base_model))
            return cls(classifier.base_model, normalized_head(head, preference_model))
        if kind == "head":
            backbone = policy.model.base_model
            return cls(backbone, _zero_head(backbone))
        raise ValueError(f"value_model must be 'preference-model' or 'head', got {kind!r}")

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, prompt_width: int) -> torch.Tensor:
        """Values (N, T): the value of the state before response token t is read at column P + t - 1.
        Prompt columns that are padding in every row are skipped (`trim_shared_left_padding`),
        and so are response columns after every row's end (`trim_shared_right_padding`): values there are 0, but
        for the first of them, the state after the longest response, which reads only kept columns."""
        input_ids, attention_mask, dropped = trim_shared_right_padding(input_ids, attention_mask, prompt_width)
        input_ids, attention_mask, prompt_width = trim_shared_left_padding(input_ids, attention_mask, prompt_width)
        position_ids = position_ids_from_attention_mask(attention_mask)
        hidden = self.backbone(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids).last_hidden_state
        if dropped == 0:
            return self.head(hidden[:, prompt_width - 1 : -1]).squeeze(-1).float()
        # The value at the first dropped column reads the last kept one: the state after every response's end.
        return pad_response_columns(self.head(hidden[:, prompt_width - 1 :]).squeeze(-1).float(), dropped - 1)
