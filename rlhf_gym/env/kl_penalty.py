"""`KLRewardWrapper`: KL regularisation toward a reference policy, for any agent.

RLHF fine-tunes a language model to maximise reward minus ``beta`` times its KL divergence
from the model it started from (Ziegler et al. 2019, "Fine-Tuning Language Models from
Human Preferences", eq. 2; Stiennon et al. 2020). Our PPO applies that penalty itself from
its own log-probs (`rlhf_gym.agents.ppo.per_token_rewards`). Agents that only see rewards
(SB3's PPO, A2C, TRPO, MaskablePPO, or anyone's) get it from this wrapper plus an entropy
bonus of the same ``beta`` (docs/architecture.md, "KL regularisation").

Derivation. At state ``s_t`` the agent samples ``a_t ~ pi(.|s_t)``; the wrapper adds
``beta * log pi_ref(a_t | s_t)`` to the step's reward, and the agent adds an entropy bonus
``beta * H(pi(.|s_t))`` to its objective (SB3: ``ent_coef=beta``). For one state,

    E_{a ~ pi}[beta log pi_ref(a|s)] + beta H(pi(.|s))
        = beta sum_a pi(a|s) (log pi_ref(a|s) - log pi(a|s)) = -beta KL(pi(.|s) || pi_ref(.|s)),

so, summed over the tokens of an episode,

    E[sum_t r_t + beta log pi_ref(a_t|s_t) + beta H(pi(.|s_t))] = E[sum_t r_t] - beta E[sum_t KL_t],

and by the chain rule of KL the expected sum of per-token KLs is the KL between the two
policies' distributions over whole responses: the objective is exactly reward minus
``beta * KL(pi || pi_ref)``. (``tests/agents/sb3/test_kl_reward.py`` checks the identity by
enumerating every action of a one-token episode.) Without the entropy bonus the wrapper
alone optimises ``E[r] - beta (KL + H(pi))``, which also pushes entropy down; an agent
with no entropy term can instead add ``-beta log pi(a_t|s_t)`` to its rewards (whose
expectation is ``beta H``), the k1 per-token estimator of our PPO.

Note on gradients: the identity is about the objective's value. An entropy bonus in the
loss (SB3's ``ent_coef``) differentiates ``H(pi(.|s_t))`` with the states held fixed; it
ignores how ``a_t`` changes the entropies of later states, which the reward-side estimator
credits through the returns.

Cost: one batched forward of the reference per step over the right-aligned context
(`rlhf_gym.lm.observation_reader`), i.e. a full-context forward, not a KV-cached one; it roughly
doubles the cost of an agent that itself re-encodes the context each step (SB3).
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
import torch
from gymnasium.vector import VectorEnv, VectorWrapper
from transformers import PreTrainedModel

from rlhf_gym.env.vector_env import TokenVectorEnv
from rlhf_gym.lm.observation_reader import next_token_reader


class ReferencePolicy(Protocol):
    """What the wrapper needs of a reference: a causal LM and its sampling temperature.

    ``rlhf_gym.lm.policy.CausalLMPolicy`` satisfies it (``rlhf_gym`` does not import
    ``agents``, so the type is structural).
    """

    model: PreTrainedModel
    temperature: float


class KLRewardWrapper(VectorWrapper):
    """Adds ``beta * log pi_ref(a_t | s_t)`` to each step's reward of a `TokenVectorEnv`.

    ``pi_ref`` is ``softmax(logits / T)`` of the reference's next-token logits at the
    current position, with ``T`` the reference's temperature, which must be the agent's
    sampling temperature (Huang et al. 2024, N+ detail: the same temperature everywhere).
    Rows that ignore the step's action (a finished episode waiting in ``NEXT_STEP`` or
    ``DISABLED`` autoreset) get no bonus. Works in every autoreset mode.

    Info: ``infos["ref_logprob"]`` (N,) float64 with mask ``infos["_ref_logprob"]``: the
    reference log-prob of each row's action, for KL monitoring (``log pi - ref_logprob``
    is the k1 estimate of the token's KL).

    Args:
        env: a `TokenVectorEnv`, or a vector wrapper around one.
        reference: the frozen reference policy (e.g. a deep copy of the initial
            ``CausalLMPolicy``); it is only run under ``torch.no_grad``.
        beta: the KL coefficient (>= 0; N+ uses 0.05 on TL;DR).
        cache_prompts: forward each prompt block once per episode and only the response
            at each step (`rlhf_gym.lm.observation_reader.PromptCache`; the same log-probs).

    Example:
        >>> KLRewardWrapper.bonus(torch.tensor([-1.0, -2.0]), beta=0.5).tolist()
        [-0.5, -1.0]
    """

    def __init__(self, env: VectorEnv, reference: ReferencePolicy, beta: float, *, cache_prompts: bool = True) -> None:
        super().__init__(env)
        core = env.unwrapped
        if not isinstance(core, TokenVectorEnv):
            raise TypeError(f"KLRewardWrapper wraps a TokenVectorEnv, got {type(core).__name__}")
        if not (isinstance(beta, (int, float)) and np.isfinite(beta) and beta >= 0):
            raise ValueError(f"beta must be a finite number >= 0, got {beta!r}")
        temperature = getattr(reference, "temperature", None)
        if not (isinstance(temperature, (int, float)) and temperature > 0):
            raise ValueError(f"reference.temperature must be > 0, got {temperature!r}")
        if not hasattr(reference, "model"):
            raise TypeError("reference must have a .model (a causal LM), e.g. a CausalLMPolicy")
        self.reference = reference
        self.beta = float(beta)
        self._core = core
        self._last_obs: dict[str, torch.Tensor] | None = None
        # Each step needs the reference at every row's current token: forward each prompt
        # once per episode and only the responses at each step (exact).
        self._read_next_token = next_token_reader(cache_prompts)

    @staticmethod
    def bonus(ref_logprobs: torch.Tensor, beta: float) -> torch.Tensor:
        """The reward added per step: ``beta * log pi_ref(a_t | s_t)``."""
        return beta * ref_logprobs

    @torch.no_grad()
    def reference_logprobs(self, observation: dict[str, torch.Tensor]) -> torch.Tensor:
        """``log pi_ref(. | s)`` at each row's current position: (N, V) float32."""
        logits, _ = self._read_next_token(
            self.reference.model,
            observation["input_ids"],
            observation["attention_mask"],
            self._core.max_prompt_tokens,
            vocab_size=self._core.vocab_size,
        )
        return torch.log_softmax(logits / self.reference.temperature, dim=-1)

    def reset(
        self, *, seed: int | list[int] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        observation, info = self.env.reset(seed=seed, options=options)
        self._last_obs = observation
        return observation, info

    def step(
        self, actions: torch.Tensor | np.ndarray
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor, torch.Tensor, dict[str, Any]]:
        if self._last_obs is None:
            raise RuntimeError("call reset() before step()")
        ref_logprobs_all = self.reference_logprobs(self._last_obs)  # (N, V) at s_t
        acting = ~self._core.finished  # (N,) rows whose action is taken
        # The env validates the actions before they index anything.
        observation, rewards, terminated, truncated, infos = self.env.step(actions)
        tokens = torch.as_tensor(actions, device=ref_logprobs_all.device).long()  # (N,)
        ref_logprobs = ref_logprobs_all.gather(-1, tokens[:, None]).squeeze(-1)  # (N,)
        ref_logprobs = torch.where(acting, ref_logprobs, torch.zeros_like(ref_logprobs))
        rewards = rewards + self.bonus(ref_logprobs, self.beta).to(rewards.dtype)
        acting_np = acting.cpu().numpy()
        infos["ref_logprob"] = np.where(acting_np, ref_logprobs.double().cpu().numpy(), 0.0)
        infos["_ref_logprob"] = acting_np
        self._last_obs = observation
        return observation, rewards, terminated, truncated, infos
