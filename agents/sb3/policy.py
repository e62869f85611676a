"""SB3 actor-critic policies whose actor is a causal language model.

SB3's default policies flatten observations into an MLP; for token ids that is wrong
twice (ids become float magnitudes, or ``V * L`` one-hot features) and it would start
from scratch. These policies start from the env's SFT model, as RLHF does (Ziegler et al.
2019; RL4LMs, Ramamurthy et al. 2023):

- actor: the LM's next-token logits at the current position, column ``P + t - 1`` with
  ``t = attention_mask[:, P:].sum(-1)`` (`rlhf_gym.lm.observation_reader`), divided by the sampling
  temperature, so ``pi(.|s) = softmax(logits / T)`` is exactly what the LM samples at
  temperature ``T`` (Huang et al. 2024, N+: the same temperature in rollout and update);
- critic: a zero-initialised linear value head on the LM's last hidden state at that
  position, on the actor's backbone (default: one LM copy, value gradients reach the LM)
  or on its own copy of the LM (``share_features_extractor=False``; TRPO needs it: its
  critic update leaves every actor parameter untouched, so on a shared backbone only the
  linear head would learn).

Token ids reach the model as ids: these policies skip SB3's ``preprocess_obs``. SB3's
rollout buffers store every observation as float32, so the update sees float ids; they are
cast back with ``.long()``, which is exact because every integer below 2**24 is exactly
representable in float32 (checked at construction: the vocabulary must be smaller).

Cost: SB3 policies are stateless per step, so every env step re-encodes the whole context
(prompt and response so far) instead of feeding one token to a KV cache: a rollout step
costs a forward over ``W`` tokens per row, where ``W`` is the longest real context in the
batch (`rlhf_gym.lm.observation_reader.right_align` drops padding), versus one token with a cache
(`rlhf_gym.lm.policy.CausalLMPolicy.decode`, as our PPO does). With
``cache_prompts`` (the default) a rollout step forwards only the response columns on the
cached keys and values of the prompt block (`rlhf_gym.lm.observation_reader.PromptCache`; exact,
no-grad eval-mode calls only): 3.15x faster rollouts with the KL wrapper
(``benchmarks/sb3_rollout.py``). In the update, a
minibatch holds several steps of the same episode; with ``share_prefixes`` (the default)
only the latest step of each episode is forwarded and the earlier steps read their
outputs from it (`rlhf_gym.lm.observation_reader.shared_prefix_hosts`; exact, since a causal model's
output at a token depends only on the tokens before it). Measured (November 2026, 1 CPU
thread on a shared 2-core machine, N = 64 sub-envs; medians of 3 interleaved runs; env
steps per second):

| model, context | SB3 rollout | + KL wrapper | KV-cached rollout (our PPO) | SB3 PPO update, per epoch, unshared |
|---|---|---|---|---|
| toy 1L/32, P=40, T=5 (N=16) | 2,100 | 1,450 | 3,750 | 3,600 samples/s |
| 2L/128, P=256, T=32 (prompts ~233 tokens) | 89 | 44 | 1,470 | 28 samples/s |

Shared prefixes on the shipped 2L/128 models (`benchmarks/sb3_update.py`, the agents'
default 32 sub-envs x 48 steps, one rollout buffer timed both ways, 2 threads while
another 2-thread job ran): a PPO update epoch (minibatches of 256) went from 22 to 93
samples/s (4.3x); A2C's update, one batch of the whole rollout, from 14 to 397 (28x).
The rollout (25 env steps/s in that run, with the KL wrapper) is now the larger share of
an SB3 PPO iteration; a KV cache in the rollout is the next saving.

Usage::

    PPO(CausalLMActorCriticPolicy, vec_env, policy_kwargs=dict(
        model_name_or_path="path/to/sft", prompt_width=env.max_prompt_tokens, temperature=0.7))
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from sb3_contrib.common.maskable.distributions import MaskableCategoricalDistribution
from sb3_contrib.common.maskable.policies import MaskableActorCriticPolicy
from stable_baselines3.common.distributions import CategoricalDistribution, Distribution
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from stable_baselines3.common.type_aliases import PyTorchObs, Schedule
from torch import nn
from transformers import PreTrainedModel

from rlhf_gym.lm.loading import load_causal_lm
from rlhf_gym.lm.observation_reader import PromptCache, next_token_outputs
from rlhf_gym.lm.policy import disable_dropout

FLOAT32_EXACT_INTEGERS = 2**24  # every integer below this is exact in float32


class CausalLMExtractor(BaseFeaturesExtractor):
    """A causal LM as an SB3 features extractor: ids in, last hidden state out.

    ``forward`` gives the ``(N, d)`` hidden state at each row's current position (SB3's
    features contract); the policies call `logits_and_hidden` to get the next-token logits
    from the same forward.

    Args:
        observation_space: the env's ``Dict(input_ids, attention_mask)`` space.
        model: the causal LM (dropout is switched off: N+ detail, no dropout in RLHF).
        prompt_width: P, the env's ``max_prompt_tokens``.
        share_prefixes: rows that are earlier steps of another row's episode are read from
            that row's forward (`rlhf_gym.lm.observation_reader.shared_prefix_hosts`).
        cache_prompts: without gradients and in eval mode (an SB3 rollout), forward each
            prompt block once and only the response columns at each step
            (`rlhf_gym.lm.observation_reader.PromptCache`; exact, emptied when the weights change).
    """

    def __init__(
        self, observation_space: spaces.Dict, model: PreTrainedModel, prompt_width: int,
        share_prefixes: bool = True, cache_prompts: bool = True,
    ) -> None:
        hidden_size = int(model.config.get_text_config().hidden_size)
        super().__init__(observation_space, features_dim=hidden_size)
        disable_dropout(model)
        self.lm = model
        self.prompt_width = int(prompt_width)
        self.share_prefixes = bool(share_prefixes)
        self.prompt_cache = PromptCache() if cache_prompts else None

    def logits_and_hidden(
        self, obs: PyTorchObs, vocab_size: int, output_hidden: bool
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Un-tempered logits (N, V) and, if asked, hidden states (N, d) at the current position."""
        if self.prompt_cache is not None and not torch.is_grad_enabled() and not self.training:
            return self.prompt_cache.outputs(
                self.lm, obs["input_ids"], obs["attention_mask"],  # type: ignore[index]
                self.prompt_width, vocab_size=vocab_size, output_hidden=output_hidden,
            )
        return next_token_outputs(
            self.lm,
            obs["input_ids"],  # type: ignore[index]
            obs["attention_mask"],  # type: ignore[index]
            self.prompt_width,
            vocab_size=vocab_size,
            output_hidden=output_hidden,
            share_prefixes=self.share_prefixes,
        )

    def forward(self, observations: PyTorchObs) -> torch.Tensor:
        vocab_size = int(self.lm.config.get_text_config().vocab_size)
        _, hidden = self.logits_and_hidden(observations, vocab_size, output_hidden=True)
        assert hidden is not None
        return hidden


class _CausalLMActorCritic:
    """What the ActorCriticPolicy and MaskableActorCriticPolicy variants share.

    Mixed in before the SB3 base class, it replaces SB3's features/MLP/action-net pipeline
    with the LM: `_build` adds only the value head, and the four methods SB3's algorithms
    call (``forward``, ``evaluate_actions``, ``get_distribution``, ``predict_values``) read
    the LM directly.
    """

    action_dist: Distribution
    features_extractor: CausalLMExtractor
    pi_features_extractor: CausalLMExtractor
    vf_features_extractor: CausalLMExtractor
    share_features_extractor: bool
    observation_space: spaces.Dict
    action_space: spaces.Discrete

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        lr_schedule: Schedule,
        *,
        model_name_or_path: str | os.PathLike[str],
        prompt_width: int,
        temperature: float = 0.7,
        trust_remote_code: bool = False,
        attn_implementation: str | None = None,
        share_features_extractor: bool = True,
        share_prefixes: bool = True,
        cache_prompts: bool = True,
        optimizer_class: type[torch.optim.Optimizer] = torch.optim.Adam,
        optimizer_kwargs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        _check_spaces(observation_space, action_space, prompt_width)
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        if kwargs.pop("use_sde", False):  # PPO, A2C and TRPO pass use_sde=False
            raise ValueError("use_sde must be False: gSDE is for continuous actions; the actor is the LM")
        if kwargs:
            raise ValueError(
                f"unsupported policy_kwargs {sorted(kwargs)}: the actor is the LM (no MLP); supported: "
                "model_name_or_path, prompt_width, temperature, trust_remote_code, "
                "attn_implementation, share_features_extractor, share_prefixes, cache_prompts, optimizer_class, "
                "optimizer_kwargs"
            )
        # Plain attributes may be set before nn.Module.__init__; the base __init__ below
        # calls make_features_extractor, which reads them.
        self.model_name_or_path = str(model_name_or_path)
        self.prompt_width = int(prompt_width)
        self.temperature = float(temperature)
        self.trust_remote_code = bool(trust_remote_code)
        self.attn_implementation = attn_implementation
        self.share_prefixes = bool(share_prefixes)
        self.cache_prompts = bool(cache_prompts)
        super().__init__(  # type: ignore[call-arg]
            observation_space,
            action_space,
            lr_schedule,
            net_arch=[],
            ortho_init=False,  # never re-initialise the pretrained LM
            share_features_extractor=share_features_extractor,
            optimizer_class=optimizer_class,
            optimizer_kwargs=optimizer_kwargs,
        )

    # Construction ----------------------------------------------------------------------
    def make_features_extractor(self) -> CausalLMExtractor:
        """Load the LM (a fresh copy per call: two when the critic has its own backbone)."""
        extra = {} if self.attn_implementation is None else {"attn_implementation": self.attn_implementation}
        model = load_causal_lm(
            self.model_name_or_path, trust_remote_code=self.trust_remote_code, **extra
        )
        vocab = int(model.config.get_text_config().vocab_size)
        if vocab < self.action_space.n:
            raise ValueError(
                f"the LM at {self.model_name_or_path} has {vocab} output logits but the env's "
                f"action space has {self.action_space.n} tokens: policy and tokenizer do not match"
            )
        return CausalLMExtractor(
            self.observation_space, model, self.prompt_width, self.share_prefixes, self.cache_prompts
        )

    def _build(self, lr_schedule: Schedule) -> None:
        """The value head and the optimizer; the actor head is the LM's own."""
        self.value_net = nn.Linear(self.features_dim, 1)  # "value" in the name: TRPO skips it
        nn.init.zeros_(self.value_net.weight)
        nn.init.zeros_(self.value_net.bias)
        self.optimizer = self.optimizer_class(  # type: ignore[attr-defined]
            self.parameters(), lr=lr_schedule(1), **self.optimizer_kwargs  # type: ignore[attr-defined]
        )

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()  # type: ignore[misc]
        # Drop what the LM replaces (the MLP, gSDE, the extractor class): not constructor args here.
        for key in ("net_arch", "activation_fn", "ortho_init", "use_sde", "log_std_init",
                    "squash_output", "full_std", "use_expln", "features_extractor_class",
                    "features_extractor_kwargs", "normalize_images"):
            data.pop(key, None)
        data.update(
            model_name_or_path=self.model_name_or_path,
            prompt_width=self.prompt_width,
            temperature=self.temperature,
            trust_remote_code=self.trust_remote_code,
            attn_implementation=self.attn_implementation,
            share_features_extractor=self.share_features_extractor,
            share_prefixes=self.share_prefixes,
            cache_prompts=self.cache_prompts,
        )
        return data

    @property
    def lm(self) -> PreTrainedModel:
        """The actor's causal LM (an ordinary Hugging Face model: ``save_pretrained`` works)."""
        return self.pi_features_extractor.lm

    # Heads -----------------------------------------------------------------------------
    def extract_features(  # type: ignore[override]
        self, obs: PyTorchObs, features_extractor: BaseFeaturesExtractor | None = None
    ) -> torch.Tensor:
        """Hidden states (N, d), without SB3's ``preprocess_obs`` (ids stay ids)."""
        return (features_extractor or self.pi_features_extractor)(obs)

    def _actor_logits(
        self, obs: PyTorchObs, output_hidden: bool
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Temperature-scaled logits (N, V), and the actor backbone's hidden state if asked."""
        vocab_size = int(self.action_space.n)
        logits, hidden = self.pi_features_extractor.logits_and_hidden(obs, vocab_size, output_hidden)
        return logits / self.temperature, hidden

    def _logits_and_values(self, obs: PyTorchObs) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, V) tempered logits and (N, 1) values, one LM forward when the backbone is shared."""
        if self.share_features_extractor:
            logits, hidden = self._actor_logits(obs, output_hidden=True)
            assert hidden is not None
        else:
            logits, _ = self._actor_logits(obs, output_hidden=False)
            hidden = self.vf_features_extractor(obs)
        return logits, self.value_net(hidden.float())

    def _distribution(self, logits: torch.Tensor, action_masks: Any) -> Distribution:
        distribution = self.action_dist.proba_distribution(action_logits=logits)  # type: ignore[call-arg]
        if action_masks is not None:
            if not isinstance(distribution, MaskableCategoricalDistribution):
                raise ValueError(
                    "action_masks need MaskableCausalLMActorCriticPolicy (sb3-contrib MaskablePPO)"
                )
            distribution.apply_masking(action_masks)
        return distribution

    def forward(
        self, obs: PyTorchObs, deterministic: bool = False, action_masks: Any = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Sample (or take the mode of) the next token: actions (N,), values (N, 1), log-probs (N,)."""
        logits, values = self._logits_and_values(obs)
        distribution = self._distribution(logits, action_masks)
        actions = distribution.get_actions(deterministic=deterministic)
        return actions, values, distribution.log_prob(actions)

    def evaluate_actions(
        self, obs: PyTorchObs, actions: torch.Tensor, action_masks: Any = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Values (N, 1), log-probs (N,) and entropies (N,) of ``actions`` under the policy."""
        logits, values = self._logits_and_values(obs)
        distribution = self._distribution(logits, action_masks)
        return values, distribution.log_prob(actions), distribution.entropy()

    def get_distribution(self, obs: PyTorchObs, action_masks: Any = None) -> Distribution:
        """``softmax(logits / T)`` at the current position (masked if masks are given)."""
        logits, _ = self._actor_logits(obs, output_hidden=False)
        return self._distribution(logits, action_masks)

    def predict_values(self, obs: PyTorchObs) -> torch.Tensor:
        """V(s): (N, 1)."""
        if self.share_features_extractor:
            _, hidden = self._actor_logits(obs, output_hidden=True)
            assert hidden is not None
        else:
            hidden = self.vf_features_extractor(obs)
        return self.value_net(hidden.float())


class CausalLMActorCriticPolicy(_CausalLMActorCritic, ActorCriticPolicy):
    """SB3 ``ActorCriticPolicy`` (PPO, A2C, TRPO) whose actor is a causal LM.

    Args (``policy_kwargs``):
        model_name_or_path: any ``AutoModelForCausalLM`` (hub id or folder), e.g. the
            env's SFT policy.
        prompt_width: P, the env's ``max_prompt_tokens``.
        temperature: sampling temperature T (> 0); the actor is ``softmax(logits / T)``.
        trust_remote_code: allow model code from the hub (off by default).
        attn_implementation: passed to ``from_pretrained`` when set. TRPO needs
            ``"eager"``: its Hessian-vector products differentiate the KL twice, and
            PyTorch's fused SDPA attention kernels on CPU have no second derivative.
        share_features_extractor: the critic's head sits on the actor's backbone (True,
            one LM copy; value-loss gradients then reach the LM) or on its own copy.
        share_prefixes: in a batch holding several steps of one episode (an update
            minibatch), forward only the latest and read the earlier steps' outputs from
            it (exact: a causal model's output at a token depends only on the tokens
            before it). On by default.
        optimizer_class, optimizer_kwargs: as in SB3 (Adam, eps 1e-5).
    """

    def __init__(
        self, observation_space: spaces.Space, action_space: spaces.Space, lr_schedule: Schedule, **kwargs: Any
    ) -> None:
        super().__init__(observation_space, action_space, lr_schedule, **kwargs)
        assert isinstance(self.action_dist, CategoricalDistribution)


class MaskableCausalLMActorCriticPolicy(_CausalLMActorCritic, MaskableActorCriticPolicy):
    """sb3-contrib ``MaskableActorCriticPolicy`` (MaskablePPO, NLPO-style) backed by a causal LM.

    Same arguments as `CausalLMActorCriticPolicy`; ``action_masks`` (N, V) restrict the
    distribution to the allowed tokens, renormalised (Ramamurthy et al. 2023, NLPO).
    """

    def __init__(
        self, observation_space: spaces.Space, action_space: spaces.Space, lr_schedule: Schedule, **kwargs: Any
    ) -> None:
        super().__init__(observation_space, action_space, lr_schedule, **kwargs)
        assert isinstance(self.action_dist, MaskableCategoricalDistribution)


def _check_spaces(observation_space: spaces.Space, action_space: spaces.Space, prompt_width: int) -> None:
    """The env's spaces: ``Dict(input_ids, attention_mask)`` of ``(L,)`` and ``Discrete(V)``."""
    keys = set(observation_space.spaces) if isinstance(observation_space, spaces.Dict) else set()
    if keys != {"input_ids", "attention_mask"}:
        raise ValueError(
            "observation_space must be the TokenVectorEnv's Dict(input_ids, attention_mask), "
            f"got {observation_space}"
        )
    if not isinstance(action_space, spaces.Discrete) or action_space.start != 0:
        raise ValueError(f"action_space must be Discrete(V) from 0 (token ids), got {action_space}")
    if action_space.n >= FLOAT32_EXACT_INTEGERS:
        raise ValueError(
            f"a vocabulary of {action_space.n} tokens is too large: SB3's rollout buffers store ids "
            f"as float32, exact only below {FLOAT32_EXACT_INTEGERS}"
        )
    width = observation_space["input_ids"].shape[0]
    if not (isinstance(prompt_width, (int, np.integer)) and 1 <= prompt_width < width):
        raise ValueError(
            f"prompt_width must be the env's max_prompt_tokens, in [1, {width}), got {prompt_width!r}"
        )
