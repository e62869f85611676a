"""NLPO-style action masks: the top-p tokens of a slowly refreshed mask model.

NLPO (Natural Language Policy Optimization; Ramamurthy et al. 2023, "Is Reinforcement
Learning (Not) for Natural Language Processing?", §4, and RL4LMs' ``NLPOPolicy``) runs PPO
with invalid-action masking: at each step only the nucleus of a *mask model*'s
next-token distribution may be sampled, the smallest set of most likely tokens whose
probability reaches ``top_p`` (Holtzman et al. 2020's nucleus). The mask model starts as
the reference (SFT) policy and is replaced by a copy of the current policy every ``M``
iterations, so the action space follows the policy slowly while never admitting tokens
that a recent policy found implausible.

Here the mask model is a `TopPMaskProvider`, the bridge's ``mask_provider``
(`rlhf_gym.agents.sb3.vec_env.SB3VecEnv.action_masks`), which sb3-contrib's MaskablePPO
queries every step; `MaskModelRefresh` is the SB3 callback that refreshes it.

Temperature: RL4LMs takes the nucleus of the mask model's raw (temperature 1) logits. We
take it at the policy's sampling temperature, so the mask is the nucleus of the
distribution the mask model would actually sample from; pass ``temperature=1.0`` for
RL4LMs' choice.

Cost: a third model copy (policy, reference for the KL reward, mask model; plus the
env's preference model), and one more full-context forward per env step.
"""

from __future__ import annotations

import torch
from stable_baselines3.common.callbacks import BaseCallback
from transformers import PreTrainedModel

from rlhf_gym.lm.observation_reader import next_token_reader


def top_p_mask(logits: torch.Tensor, top_p: float) -> torch.Tensor:
    """The nucleus of ``softmax(logits)``: the fewest most likely tokens with mass >= ``top_p``.

    A token is kept when the probability of the tokens ranked above it is below ``top_p``,
    so the most likely token is always kept and the kept mass reaches ``top_p``. Ties are
    broken by ``torch.sort``.

    Args:
        logits: (N, V) logits (already divided by any temperature).
        top_p: in (0, 1]; 1 keeps every token except those whose higher-ranked mass
            already rounds to 1 in float32.

    Returns:
        (N, V) bool.

    Example:
        >>> import torch
        >>> probs = torch.tensor([[0.5, 0.3, 0.15, 0.05]])
        >>> top_p_mask(probs.log(), 0.8).tolist(), top_p_mask(probs.log(), 0.81).tolist()
        ([[True, True, False, False]], [[True, True, True, False]])
    """
    if not 0 < top_p <= 1:
        raise ValueError(f"top_p must be in (0, 1], got {top_p}")
    sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
    sorted_probs = torch.softmax(sorted_logits.float(), dim=-1)
    mass_above = torch.cumsum(sorted_probs, dim=-1) - sorted_probs  # (N, V) mass ranked higher
    keep_sorted = mass_above < top_p
    keep_sorted[:, 0] = True  # the argmax, whatever rounding does
    return torch.zeros_like(keep_sorted).scatter(-1, order, keep_sorted)


class TopPMaskProvider:
    """Allowed next tokens: the top-p nucleus of a mask model at the current position.

    Args:
        model: the mask model, a causal LM (start it as a copy of the reference policy;
            it is run under ``torch.no_grad`` and never trained).
        prompt_width: P, the env's ``max_prompt_tokens``.
        vocab_size: V, the env's vocabulary (``len(tokenizer)``).
        top_p: nucleus mass (RL4LMs' NLPO uses 0.9).
        temperature: logits are divided by it before the nucleus (see the module docstring).
        cache_prompts: forward each prompt block once per episode and only the response at
            each step (`rlhf_gym.lm.observation_reader.PromptCache`; the same masks; emptied by a refresh).
    """

    def __init__(
        self,
        model: PreTrainedModel,
        *,
        prompt_width: int,
        vocab_size: int,
        top_p: float = 0.9,
        temperature: float = 1.0,
        cache_prompts: bool = True,
    ) -> None:
        if not 0 < top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {top_p}")
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.model = model.eval().requires_grad_(False)
        self.prompt_width = int(prompt_width)
        self.vocab_size = int(vocab_size)
        self.top_p = float(top_p)
        self.temperature = float(temperature)
        self.refreshes = 0
        self._read_next_token = next_token_reader(cache_prompts)

    @torch.no_grad()
    def __call__(self, observation: dict[str, torch.Tensor]) -> torch.Tensor:
        """(N, V) bool masks for the observation's current positions."""
        logits, _ = self._read_next_token(
            self.model, observation["input_ids"], observation["attention_mask"], self.prompt_width,
            vocab_size=self.vocab_size,
        )
        return top_p_mask(logits / self.temperature, self.top_p)

    @torch.no_grad()
    def refresh_from(self, policy_model: PreTrainedModel) -> None:
        """Copy the current policy's weights into the mask model (NLPO's periodic update)."""
        self.model.load_state_dict(policy_model.state_dict())
        self.refreshes += 1


class MaskModelRefresh(BaseCallback):
    """Every ``every`` training iterations, refresh the mask model from the policy's LM.

    An iteration is one rollout of ``n_steps * n_envs`` env steps and its update; the count
    is derived from ``model.num_timesteps`` at each rollout's start, so it survives
    resuming and repeated ``learn`` calls. RL4LMs calls this period
    ``target_update_iterations``.
    """

    def __init__(self, provider: TopPMaskProvider, every: int) -> None:
        super().__init__()
        if every < 1:
            raise ValueError(f"mask refresh period must be >= 1 iteration, got {every}")
        self.provider = provider
        self.every = int(every)

    def _on_rollout_start(self) -> None:
        samples_per_iteration = self.model.n_steps * self.model.n_envs  # type: ignore[attr-defined]
        completed = self.model.num_timesteps // samples_per_iteration
        if completed > 0 and completed % self.every == 0:
            self.provider.refresh_from(self.model.policy.lm)  # type: ignore[attr-defined]

    def _on_step(self) -> bool:
        return True
