"""A causal language model as a token-level policy over `TokenVectorEnv` observations.

The env's observation is a fixed ``(N, P + T)`` buffer: the left-padded prompt block, then
the response. `CausalLMPolicy` reads it in two ways that must agree to float precision:

- step by step with a KV cache (`prefill` the prompt block once, then `decode` one token
  per step): one forward of one token per env step, as fast as ``generate()``;
- all at once (`token_logprobs` over the whole buffer): what the PPO update uses.

Sampling is from exactly ``softmax(logits / temperature)`` with no top-k or top-p, and the
update scores tokens at the same temperature, so rollout and update log-probs agree
(Huang et al. 2024, N+ implementation details: "the same temperature in rollout and
update"; top-k sampling makes single-sample KL estimates go negative).
"""

from __future__ import annotations

import copy
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import PreTrainedModel

from rlhf_gym.atomic_dir import swap_in
from rlhf_gym.lm.layout import (
    pad_response_columns,
    position_ids_from_attention_mask,
    trim_shared_left_padding,
    trim_shared_right_padding,
)
from rlhf_gym.lm.loading import load_causal_lm, quiet_progress


@dataclass
class DecodeState:
    """What a KV-cached rollout carries from one token to the next."""

    cache: Any  # the model's KV cache (transformers ``DynamicCache``)
    attention_mask: torch.Tensor  # (N, S) mask over the cached positions
    next_position: torch.Tensor  # (N,) position id of the next token fed


class CausalLMPolicy(nn.Module):
    """Token-level policy backed by any ``AutoModelForCausalLM``.

    Args:
        model: the language model (dropout should be off; see `rlhf_gym.pipeline.tiny_models`).
        temperature: sampling and scoring temperature (> 0).

    Attributes:
        model: that language model, an ordinary Hugging Face ``PreTrainedModel``: its
            parameters are the policy's (an optimiser steps them), and `save_pretrained`
            writes it as a plain Hugging Face checkpoint.
        temperature: the temperature.
    """

    def __init__(self, model: PreTrainedModel, temperature: float = 0.7) -> None:
        super().__init__()
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0 (use greedy decoding separately), got {temperature}")
        self.model = model
        self.temperature = float(temperature)

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | os.PathLike[str],
        *,
        temperature: float = 0.7,
        revision: str | None = None,
        trust_remote_code: bool = False,
        local_files_only: bool = False,
        **kwargs: Any,
    ) -> CausalLMPolicy:
        """Load the language model by hub id or path (dropout disabled for RL).

        Loads through `rlhf_gym.lm.loading.load_causal_lm`: safetensors only, float32 unless
        ``dtype`` is passed, remote code refused unless ``trust_remote_code``.

        Args:
            name_or_path: hub id or local folder (e.g. one written by `save_pretrained`).
            temperature: sampling and scoring temperature (> 0).
            revision: the hub branch, tag or commit (ignored for a local folder).
            trust_remote_code: allow model classes shipped as Python with the checkpoint.
            local_files_only: never reach the hub.
            **kwargs: passed to ``from_pretrained`` (``dtype``, ``attn_implementation``, ...).

        Raises:
            MissingArtifactError: the model cannot be found.
            UnsafeCheckpointError: pickled weights only, or remote code not allowed.
        """
        model = load_causal_lm(
            str(name_or_path), revision=revision, trust_remote_code=trust_remote_code,
            local_files_only=local_files_only, **kwargs,
        )
        disable_dropout(model)
        return cls(model, temperature)

    def save_pretrained(self, directory: str | os.PathLike[str], *, dtype: torch.dtype | None = None) -> None:
        """Write `model` as a plain Hugging Face checkpoint: ``model.safetensors``,
        ``config.json`` and ``generation_config.json``.

        The folder loads back with `from_pretrained`, ``rlhf-gym evaluate --policy DIR`` and
        ``transformers.AutoModelForCausalLM.from_pretrained(DIR)``. It is written to a
        temporary sibling and swapped in (`rlhf_gym.atomic_dir.swap_in`), so ``directory`` is
        replaced as a whole and a reader never sees half a checkpoint. The temperature is not
        saved: it is the caller's (an env's protocol fixes it).

        Args:
            directory: the folder to write (replaced if it exists).
            dtype: the weights' dtype on disk, e.g. ``torch.float16`` to halve the size; None
                keeps the model's. The policy itself is not converted, and our loaders
                return float32 whatever the dtype on disk.
        """
        directory = Path(directory)
        staging = directory.with_name(f".{directory.name}.tmp-{os.getpid()}")
        shutil.rmtree(staging, ignore_errors=True)
        # A converted copy, so the policy keeps its own precision (fp32 -> fp16 -> fp32 is lossy);
        # save_pretrained records the copy's dtype in config.json.
        model = self.model if dtype is None or dtype == self.model.dtype else copy.deepcopy(self.model).to(dtype)
        with quiet_progress():
            model.save_pretrained(staging)
        swap_in(staging, directory)

    # KV-cached stepping -------------------------------------------------------------
    def prefill(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, DecodeState]:
        """Run the prompt block; return next-token logits (N, V) and the decode state.

        Columns that are padding in every row are skipped (`trim_shared_left_padding`): the
        env's prompt block fits its longest prompt, a batch's prompts are usually shorter,
        and the KV cache of the narrower block gives the same logits (positions count real
        tokens only) with less work in the prefill and in every decode step's attention,
        as ``generate()`` on a batch padded to its own longest prompt does.

        Args:
            input_ids: (N, P) left-padded prompts (the first P columns of the observation).
            attention_mask: (N, P).
        """
        input_ids, attention_mask, _ = trim_shared_left_padding(input_ids, attention_mask, input_ids.shape[1])
        return self._prefill(input_ids, attention_mask)

    def _prefill(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, DecodeState]:
        """`prefill` of exactly these columns."""
        position_ids = position_ids_from_attention_mask(attention_mask)
        out = self.model(
            input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, use_cache=True
        )
        state = DecodeState(
            cache=out.cache, attention_mask=attention_mask, next_position=attention_mask.sum(-1)
        )
        return out.logits[:, -1].float(), state

    def prefill_groups(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, group_size: int
    ) -> tuple[torch.Tensor, DecodeState]:
        """`prefill` for rows in groups of ``group_size`` that share their prompt block.

        Runs the prompt of each group's first row only (rows ``::k``), then repeats the
        logits and the KV cache k times along the batch (``repeat_interleave``): the prompt
        is forwarded N/k times instead of N, and the result is what `prefill` of all N rows
        gives, to float precision. The repeated cache tensors are copies, so `decode`
        appends to each row's cache independently.

        Args:
            input_ids: (N, P) left-padded prompts, rows ``g*k .. g*k+k-1`` identical
                (a `TokenVectorEnv` built with ``group_size=k`` after a full reset).
            attention_mask: (N, P).
            group_size: k, dividing N.

        Raises:
            ValueError: If k does not divide N, or a row's prompt block differs from its
                group's first row (named in the message).
        """
        n, width = input_ids.shape
        k = int(group_size)
        if k < 1 or n % k != 0:
            raise ValueError(f"group_size must be >= 1 and divide the batch size {n}, got {group_size}")
        ids, mask = input_ids.reshape(n // k, k, width), attention_mask.reshape(n // k, k, width)
        differs = ((ids != ids[:, :1]) | (mask != mask[:, :1])).any(-1).flatten()  # (N,)
        if bool(differs.any()):
            rows = differs.nonzero().flatten().tolist()
            raise ValueError(
                f"rows {rows} do not share the prompt block of their group's first row "
                f"(group_size={k}: rows g*k .. g*k+k-1 must have identical prompts)"
            )
        input_ids, attention_mask, _ = trim_shared_left_padding(input_ids, attention_mask, width)  # the whole batch's
        logits, state = self._prefill(input_ids[::k], attention_mask[::k])
        state.cache.batch_repeat_interleave(k)  # transformers' Cache: every layer's keys and values
        state.attention_mask = attention_mask
        state.next_position = attention_mask.sum(-1)
        return logits.repeat_interleave(k, dim=0), state

    def decode(self, tokens: torch.Tensor, state: DecodeState, token_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Feed one token per row; return next-token logits (N, V). Updates ``state``.

        Args:
            tokens: (N,) the tokens just appended.
            state: from `prefill` or the previous `decode`.
            token_mask: (N,) 0 for rows whose token is not part of their context (a
                finished episode waiting for the others); 1 by default.
        """
        mask_column = torch.ones_like(tokens) if token_mask is None else token_mask.long()
        attention_mask = torch.cat([state.attention_mask, mask_column[:, None]], dim=1)
        out = self.model(
            input_ids=tokens[:, None],
            attention_mask=attention_mask,
            position_ids=state.next_position[:, None],
            cache=state.cache,
            use_cache=True,
        )
        state.cache = out.cache
        state.attention_mask = attention_mask
        state.next_position = state.next_position + mask_column
        return out.logits[:, -1].float()

    def sample(
        self,
        logits: torch.Tensor,
        generator: torch.Generator | None = None,
        *,
        greedy: bool = False,
        uniforms: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Choose the next tokens: tokens (N,) and their log-probs (N,) under ``softmax(logits / T)``.

        Samples from exactly that distribution, or takes the argmax with ``greedy`` (the
        log-probs are still those of the tempered distribution). Every rollout and sampling
        loop of the library chooses its tokens here.

        Args:
            uniforms: (N,) draws in [0, 1): sample each row by inverting its CDF at its draw
                instead of ``torch.multinomial``. A row's token then depends on its own draw
                only, so a shard of a batch samples what those rows sample in the whole batch
                (data-parallel ranks, `rlhf_gym.env.rollout.collect_episodes` ``rows=``).
        """
        logprobs = torch.log_softmax(logits / self.temperature, dim=-1)
        if greedy:
            tokens = logits.argmax(-1)
        elif uniforms is not None:
            cdf = logprobs.exp().cumsum(-1)
            tokens = torch.searchsorted(cdf, (uniforms * cdf[:, -1])[:, None]).squeeze(-1).clamp(max=logits.shape[-1] - 1)
        else:
            tokens = multinomial_one(logprobs.exp(), generator)
        return tokens, logprobs.gather(-1, tokens[:, None]).squeeze(-1)

    # Whole-sequence scoring ----------------------------------------------------------
    def response_logits(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, prompt_width: int) -> torch.Tensor:
        """Temperature-scaled logits predicting each response column: (N, T, V).

        Column ``P + t`` of the buffer is predicted by the logits at column ``P + t - 1``.
        Prompt columns that are padding in every row are skipped (`trim_shared_left_padding`).
        """
        input_ids, attention_mask, prompt_width = trim_shared_left_padding(input_ids, attention_mask, prompt_width)
        position_ids = position_ids_from_attention_mask(attention_mask)
        horizon = input_ids.shape[1] - prompt_width
        # Only the last T + 1 positions need the vocabulary projection.
        logits = self.model(
            input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
            logits_to_keep=horizon + 1,
        ).logits
        return logits[:, :-1].float() / self.temperature

    def token_logprobs(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, prompt_width: int, *, entropy: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Log-probs (N, T) of the response tokens in the buffer, and the entropies (N, T);
        0 at response columns after every row's end (`trim_shared_right_padding`).

        The entropies are a logged statistic (no agent here has an entropy bonus), so they
        are computed without a gradient, and not at all with ``entropy=False`` (None is
        returned): a full-vocabulary pass over every response token that the reference
        and evaluation passes would throw away.
        """
        # Response columns after every row's end are skipped and come back as zeros.
        input_ids, attention_mask, dropped = trim_shared_right_padding(input_ids, attention_mask, prompt_width)
        logits = self.response_logits(input_ids, attention_mask, prompt_width)
        logprobs_all = torch.log_softmax(logits, dim=-1)
        tokens = input_ids[:, prompt_width:]
        logprobs = logprobs_all.gather(-1, tokens[..., None]).squeeze(-1)
        if not entropy:
            return pad_response_columns(logprobs, dropped), None
        with torch.no_grad():
            entropies = -(logprobs_all.exp() * logprobs_all).sum(-1)
        return pad_response_columns(logprobs, dropped), pad_response_columns(entropies, dropped)


def multinomial_one(probs: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """One draw per row of ``probs`` (N, V): ``torch.multinomial(probs, 1, generator=generator)[:, 0]``.

    The same draws and tokens, without its per-call validity checks: torch samples one
    token as an exponential race (``argmax(p / q)``, ``q ~ Exp(1)``, the Gumbel-max trick
    with exp applied), after checking ``probs`` with three reductions read back to the host.
    Those reads are three host syncs per generated token on a GPU, and half the cost of the
    call on 2 CPU cores (11.7 ms against 5.1 ms for (64, 1059) probabilities). A rollout
    checks its log-probs once instead (`rlhf_gym.env.rollout.collect_episodes`).

    Example:
        >>> probs = torch.softmax(torch.randn(4, 10, generator=torch.Generator().manual_seed(0)), -1)
        >>> ours = multinomial_one(probs, torch.Generator().manual_seed(1))
        >>> torch.equal(ours, torch.multinomial(probs, 1, generator=torch.Generator().manual_seed(1))[:, 0])
        True
    """
    race = torch.empty_like(probs).exponential_(1, generator=generator)
    return (probs / race).argmax(-1)


def per_token_kl(logprobs: torch.Tensor, ref_logprobs: torch.Tensor, response_mask: torch.Tensor) -> torch.Tensor:
    """Per-token KL estimate ``log pi(a_t|s_t) - log pi_ref(a_t|s_t)`` on the response tokens.

    The k1 estimator (Ziegler et al. 2019; Schulman 2020, "Approximating KL Divergence"):
    unbiased for each token's KL when ``a_t`` is sampled from ``pi`` at the temperature both
    log-probs use; its sum over a response estimates KL(pi || pi_ref) of the whole response.

    Args:
        logprobs, ref_logprobs: (N, T) log-probs of the taken tokens under the policy and the
            reference (`CausalLMPolicy.token_logprobs` of a final observation).
        response_mask: (N, T) True on generated tokens.

    Returns:
        (N, T), zero off the mask.

    Example:
        >>> kl = per_token_kl(torch.tensor([[-1.0, -2.0]]), torch.tensor([[-1.5, -1.0]]), torch.tensor([[True, False]]))
        >>> kl.tolist()
        [[0.5, 0.0]]
    """
    if not logprobs.shape == ref_logprobs.shape == response_mask.shape:
        raise ValueError(
            f"logprobs, ref_logprobs and response_mask must share one (N, T) shape, got "
            f"{tuple(logprobs.shape)}, {tuple(ref_logprobs.shape)} and {tuple(response_mask.shape)}"
        )
    difference = logprobs - ref_logprobs
    return torch.where(response_mask.bool(), difference, torch.zeros_like(difference))


def disable_dropout(model: nn.Module) -> None:
    """Set every dropout probability to 0 (N+ detail: dropout off in all RLHF models)."""
    for module in model.modules():
        if isinstance(module, nn.Dropout):
            module.p = 0.0
