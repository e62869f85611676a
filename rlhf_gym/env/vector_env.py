"""`TokenVectorEnv`: N text-generation episodes stepped as one token tensor on a device.

This is the one implementation of the environment contract (docs/architecture.md, "The env contract"); the single
env `rlhf_gym.env.single_env.TokenEnv` is a numpy view of it at ``num_envs=1``. Its docstring
is the spec.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space
from transformers import PreTrainedTokenizerBase

from rlhf_gym.env.prompt_tokens import PromptTokenCache
from rlhf_gym.env.prompts import Prompt, PromptSource
from rlhf_gym.env.seeding import draw_prompt_indices, entropy_keys, seed_keys
from rlhf_gym.lm.layout import decode_exact, left_pad
from rlhf_gym.lm.loading import check_tokenizer
from rlhf_gym.rewards.reward_model import (
    FinishedEpisodes,
    RewardModel,
    make_reward_scorer,
    score_episodes,
    takes_token_ids,
)

GoldJudge = Callable[[Sequence[Prompt], Sequence[str]], np.ndarray]
"""Scores responses against the prompts' latent records: ``(prompts, responses) -> (R,)``."""

Observation = dict[str, torch.Tensor]


class TokenVectorEnv(VectorEnv):
    """N token-level text-generation episodes, batched as one ``(N, L)`` tensor.

    ## Description
    Each sub-env is one episode of writing a response to a prompt, one token per step, as
    in RLHF fine-tuning of language models (Ziegler et al. 2019, "Fine-Tuning Language
    Models from Human Preferences"; Stiennon et al. 2020, "Learning to summarize from
    human feedback"). The state is the token context, the action the next token, and the
    reward a learned reward model's score of the finished response: a proxy of the true
    preference, which a gold judge, when the task has one, reports beside it.

    ## Action Space
    ``MultiDiscrete([V] * N)`` (single: ``Discrete(V)``), ``V = len(tokenizer)``: a
    ``(N,)`` integer tensor (or numpy array) of next-token ids in ``[0, V)``.

    ## Observation Space
    ``Dict`` of two ``(N, L)`` int64 tensors on ``device``, ``L = P + T`` with
    ``P = max_prompt_tokens`` and ``T = max_new_tokens``:

    | key              | columns ``[0, P)``                     | columns ``[P, P + t)`` | columns ``[P + t, L)`` |
    |------------------|-----------------------------------------|-------------------------|------------------------|
    | ``input_ids``    | prompt, left-padded with ``pad_token_id`` | the ``t`` response tokens so far | ``pad_token_id`` |
    | ``attention_mask`` | 0 on padding, 1 on prompt tokens      | 1                       | 0                      |

    The next token is written at column ``P + t`` with ``t = attention_mask[:, P:].sum(-1)``,
    so no search is needed. Models must use position ids counted over real tokens
    (`rlhf_gym.lm.layout.position_ids_from_attention_mask`). Prompts longer than ``P``
    tokens lose their beginning (the task suffix such as ``"TL;DR:"`` is kept).

    ## Rewards
    0 on every step but the last. On the last step, the reward model's score of
    ``(prompt text, response text)`` (the shipped preference model's is normalised:
    references score mean 0, std 1), plus ``-missing_eos_penalty`` if the episode was
    truncated without EOS (TRL's convention; off by default). The reward model is any
    `rlhf_gym.rewards.reward_model.RewardModel`; one that declares it reads this env's
    token ids (`TokenRewardModel`) gets them directly instead of texts.

    ``reward`` chooses what the last step scores with: a scorer registered by name
    (`rlhf_gym.rewards.reward_model.register_reward_scorer`; built in: ``"preference"``,
    the reward model, and ``"gold"``, the gold judge's score in [0, 1]: an oracle run,
    what an agent reaches when the reward is the true preference; Gao et al. 2023 compare
    against such runs), or a `RewardModel` object whose score becomes the reward while
    the reward model's stays in ``info["proxy"]``. All rows finishing in a step are
    decoded and scored in one batched call. A non-finite score raises ``RuntimeError``
    and leaves the env unchanged. Rewards are a ``(N,)`` float32 tensor on ``device``.

    Batch scoring (``batch_scoring=True``, ``DISABLED`` mode only): finished rows are not
    scored when they end but all together, in one call, in the step where the last running
    row ends. That step returns every waiting row's reward and episode info (their flags
    stay False: they ended earlier); the earlier steps return reward 0 for them. A learned
    reward scores a batch of R rows in one forward for about the cost of the few rows that
    end together, so a rollout scored once costs the reward model one forward instead of
    one per step in which some row ends (about 30 for 64 sampled responses). The scores
    are the same, to float precision. `rlhf_gym.env.rollout.collect_episodes` turns it on
    for its rollout. A reset discards the waiting rows' unscored episodes.

    ## Starting State
    Each episode's prompt is drawn from ``prompt_source`` by the sub-env's own stream
    (`rlhf_gym.env.seeding`): sub-env ``i`` reset with seed ``s`` is keyed ``s + i``, exactly
    as Gymnasium's ``SyncVectorEnv`` seeds its sub-envs, so N single envs seeded
    ``s + i`` replay this env. With ``group_size = k``, the k consecutive sub-envs of a
    group draw from the group's first stream: their j-th episodes share a prompt.
    A prompt is tokenised (left-truncated to ``P`` tokens) once while it stays among the
    last ``prompt_cache_size`` prompts seen (`rlhf_gym.env.prompt_tokens`): a group's rows,
    a replayed evaluation split and a dataset's later epochs reuse its ids. A hit is checked
    against the prompt's text, so the ids are always those of the prompt written.

    ## Episode End
    1. Termination: the action is the EOS token (it is appended to the context).
    2. Truncation: ``max_new_tokens`` tokens were generated without EOS.

    ## Autoreset (``metadata["autoreset_mode"]``)
    - ``SAME_STEP`` (default; what SB3 expects): finished rows are reset inside the step;
      ``infos["final_obs"]`` holds their last observation (a dict of ``(N, L)`` tensors,
      valid where ``infos["_final_obs"]``), ``infos["final_info"]`` their episode info.
    - ``NEXT_STEP`` (Gymnasium's default): the step after a finished row ignores its
      action and returns the new episode's first observation, reward 0, flags False.
    - ``DISABLED``: finished rows wait, ignoring actions (reward 0, flags False,
      observation unchanged), until ``reset(options={"reset_mask": mask})`` resets them.
      Gymnasium leaves stepping a finished sub-env undefined; freezing it lets
      group-sampling agents (GRPO, RLOO) run whole groups to completion synchronously.

    ## Info
    Gymnasium's vector-info format (numpy arrays with ``_key`` masks). At an episode's
    end (top level for NEXT_STEP and DISABLED, under ``final_info`` for SAME_STEP):

    | key | meaning |
    |---|---|
    | ``proxy`` | the reward model's score (float64): the learned proxy of the gold judge, whatever ``reward`` is |
    | ``preference`` | the same values as ``proxy``; a deprecated alias, kept for one version |
    | ``penalty`` | the missing-EOS penalty (<= 0) |
    | ``gold`` | the gold judge's score; NaN when the env has no gold judge (``has_gold_judge``) |
    | ``response_length`` | tokens generated, EOS included |
    | ``prompt_index`` | the prompt's index in ``prompt_source`` |
    | ``prompt_text``, ``response_text`` | decoded texts (``response_text`` excludes EOS), unless ``text_in_info=False`` |

    Every key's ``_key`` mask is True exactly on the rows that finished in this step, so
    an agent may find them there or, equivalently, from ``terminated | truncated``. With
    ``batch_scoring`` it is True on the rows scored in this step: every row of the batch,
    in the step where the last one ends (`rlhf_gym.env.rollout.collect_episodes` reads the
    masks, so it serves both). On reset: ``prompt_index``.

    ## Arguments
    | name | type | default | meaning |
    |---|---|---|---|
    | ``num_envs`` | int | — | number of sub-envs N |
    | ``prompt_source`` | `PromptSource` | — | where prompts come from |
    | ``tokenizer`` | tokenizer | — | the policy's tokenizer (EOS and a distinct pad token) |
    | ``reward_model`` | `RewardModel` | — | the learned reward (``preference_model=`` is accepted as its former name) |
    | ``gold_judge`` | `GoldJudge` or None | None | true score of a response, for info |
    | ``reward`` | str or `RewardModel` | "preference" | a registered scorer name (see Rewards) or a `RewardModel` |
    | ``max_prompt_tokens`` | int | 256 | prompt block width P |
    | ``max_new_tokens`` | int | 48 | response budget T (truncation) |
    | ``device`` | str or device | "cpu" | where tensors live |
    | ``autoreset_mode`` | AutoresetMode or str | SAME_STEP | see Autoreset |
    | ``group_size`` | int | 1 | consecutive sub-envs sharing prompts |
    | ``missing_eos_penalty`` | float or None | None | subtracted when truncated |
    | ``text_in_info`` | bool | True | decode texts into info |
    | ``batch_scoring`` | bool | False | ``DISABLED`` mode: score the batch's episodes together when its last row ends (see Rewards) |
    | ``prompt_cache_size`` | int | 16384 | prompts whose token ids are kept for reuse (see Starting State); 0: none |

    ## Attributes an agent reads
    | name | meaning |
    |---|---|
    | ``num_envs`` | N |
    | ``max_prompt_tokens`` | P, the prompt block width (responses start at column P) |
    | ``max_new_tokens`` | T, the response budget |
    | ``context_length`` | L = P + T, the observation width |
    | ``vocab_size`` | V = ``len(tokenizer)``, the number of actions |
    | ``tokenizer`` | the policy's tokenizer (decode responses with it) |
    | ``pad_token_id``, ``eos_token_id`` | the padding token and the token that ends an episode |
    | ``device`` | where observations, rewards and flags live |
    | ``autoreset_mode``, ``group_size``, ``reward`` | as constructed |
    | ``batch_scoring`` | as constructed; settable between steps (``DISABLED`` mode only; turning it off drops the unscored episodes) |
    | ``reward_model``, ``gold_judge``, ``prompt_source`` | the env's components (``preference_model``: a former name of ``reward_model``) |
    | ``has_gold_judge`` | whether ``info["gold"]`` holds scores (also ``metadata["has_gold_judge"]``) |

    ## Acting with a causal LM
    `rlhf_gym.lm.policy.CausalLMPolicy` reads this layout: ``prefill`` the prompt block
    ``obs["input_ids"][:, :P]`` once, then ``decode`` each sampled token from its KV cache;
    ``token_logprobs`` scores a final observation's responses in one forward.
    `rlhf_gym.env.rollout.collect_episodes` runs that loop in ``DISABLED`` mode::

        policy = rlhf_gym.get_task("RLHF-Summarize-v0").sft_policy()
        logits, state = policy.prefill(obs["input_ids"][:, :P], obs["attention_mask"][:, :P])
        done = torch.zeros(env.num_envs, dtype=torch.bool)
        while not done.all():
            tokens, logprobs = policy.sample(logits, generator)
            obs, reward, terminated, truncated, info = env.step(tokens)
            active = ~done  # rows whose token joined their context (finished rows wait)
            done |= terminated | truncated
            logits = policy.decode(tokens, state, token_mask=active)

    ## Version History
    - v0: initial release.
    - v0, reward seam (rewards and their order of operations unchanged): the reward model
      may be any `RewardModel` (``reward_model=``; ``preference_model=`` still accepted);
      ``reward`` takes any registered scorer name or a `RewardModel`; info gains ``proxy``,
      the reward model's score, with ``preference`` kept as an alias of the same values for
      one version; ``gold`` is NaN on finished rows of an env without a gold judge (it was
      absent), which ``has_gold_judge`` and ``metadata["has_gold_judge"]`` announce.
    - v0, batch scoring (opt-in, defaults unchanged): ``batch_scoring=True`` in ``DISABLED``
      mode scores a batch's episodes in one call when its last row ends.
    - v0, prompt token cache (observations unchanged): ``prompt_cache_size`` prompts' token
      ids are reused while they recur.
    """

    def __init__(
        self,
        num_envs: int,
        *,
        prompt_source: PromptSource,
        tokenizer: PreTrainedTokenizerBase,
        reward_model: RewardModel | None = None,
        gold_judge: GoldJudge | None = None,
        reward: str | RewardModel = "preference",
        max_prompt_tokens: int = 256,
        max_new_tokens: int = 48,
        device: str | torch.device = "cpu",
        autoreset_mode: AutoresetMode | str = AutoresetMode.SAME_STEP,
        group_size: int = 1,
        missing_eos_penalty: float | None = None,
        text_in_info: bool = True,
        preference_model: RewardModel | None = None,
        batch_scoring: bool = False,
        prompt_cache_size: int = 16384,
    ) -> None:
        reward_model = _one_reward_model(reward_model, preference_model)
        for name, value in [
            ("num_envs", num_envs),
            ("max_prompt_tokens", max_prompt_tokens),
            ("max_new_tokens", max_new_tokens),
            ("group_size", group_size),
        ]:
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if num_envs % group_size != 0:
            raise ValueError(
                f"num_envs ({num_envs}) must be a multiple of group_size ({group_size})"
            )
        if missing_eos_penalty is not None and not (
            np.isfinite(missing_eos_penalty) and missing_eos_penalty >= 0
        ):
            raise ValueError(
                f"missing_eos_penalty must be a finite number >= 0 (it is subtracted), "
                f"got {missing_eos_penalty!r}"
            )
        check_tokenizer(tokenizer)
        self.autoreset_mode = _parse_autoreset_mode(autoreset_mode)
        self.metadata = {
            "render_modes": [],
            "autoreset_mode": self.autoreset_mode,
            "has_gold_judge": gold_judge is not None,
        }
        self.render_mode = None

        self.num_envs = int(num_envs)
        self.prompt_source = prompt_source
        self.tokenizer = tokenizer
        self.reward_model = reward_model
        self._proxy_takes_ids = takes_token_ids(reward_model, tokenizer)
        self.gold_judge = gold_judge
        self.device = torch.device(device)
        self.reward = reward
        self.max_prompt_tokens = int(max_prompt_tokens)
        self.max_new_tokens = int(max_new_tokens)
        self.context_length = self.max_prompt_tokens + self.max_new_tokens
        self.group_size = int(group_size)
        self.missing_eos_penalty = float(missing_eos_penalty or 0.0)
        self.text_in_info = text_in_info
        self.vocab_size = len(tokenizer)
        self.eos_token_id = int(tokenizer.eos_token_id)
        self.pad_token_id = int(tokenizer.pad_token_id)

        token_box = spaces.Box(0, self.vocab_size - 1, (self.context_length,), np.int64)
        mask_box = spaces.Box(0, 1, (self.context_length,), np.int64)
        self.single_observation_space = spaces.Dict(
            {"input_ids": token_box, "attention_mask": mask_box}
        )
        self.single_action_space = spaces.Discrete(self.vocab_size)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)

        n, width = self.num_envs, self.context_length
        self._input_ids = torch.full((n, width), self.pad_token_id, dtype=torch.long, device=self.device)
        self._attention_mask = torch.zeros((n, width), dtype=torch.long, device=self.device)
        self._num_generated = torch.zeros(n, dtype=torch.long, device=self.device)  # (N,)
        # Rows whose episode ended and that wait for a reset (NEXT_STEP and DISABLED).
        self._finished = torch.zeros(n, dtype=torch.bool, device=self.device)  # (N,)
        # Batch scoring only: rows that ended and wait to be scored, and whether each row's episode ended with EOS.
        self._unscored = torch.zeros(n, dtype=torch.bool, device=self.device)  # (N,)
        self._ended_with_eos = torch.zeros(n, dtype=torch.bool, device=self.device)  # (N,)
        self._batch_scoring = False
        self.batch_scoring = batch_scoring  # validated by the setter (DISABLED mode only)
        self._row_index = torch.arange(n, device=self.device)
        self._stream_keys: np.ndarray | None = None  # (N,) uint64, set by the first reset
        self._episode_counts = np.zeros(n, dtype=np.int64)  # (N,) episodes started per row
        self._prompts: list[Prompt | None] = [None] * n
        self._prompt_tokens = PromptTokenCache(tokenizer, self.max_prompt_tokens, prompt_cache_size)
        # Last, so a factory sees the whole env; it rejects unknown names and reward="gold"
        # without a gold judge.
        self._reward_scorer = make_reward_scorer(reward, self)

    # Reset --------------------------------------------------------------------------
    def reset(
        self,
        *,
        seed: int | Sequence[int] | None = None,
        options: dict[str, Any] | None = None,
    ) -> tuple[Observation, dict[str, Any]]:
        """Start new episodes in all sub-envs, or in those of ``options["reset_mask"]``.

        Args:
            seed: an int (sub-env ``i`` keyed ``seed + i``), one int per sub-env, or
                None to continue the current streams (fresh random streams on first use).
            options: ``{"reset_mask": (N,) bool}`` resets only the masked sub-envs (any
                autoreset mode); a seed then re-keys only those sub-envs.
        """
        rows = self._rows_to_reset(options)
        if seed is not None:
            keys = seed_keys(seed, self.num_envs)
            if self._stream_keys is None:
                self._stream_keys = keys
            self._stream_keys[rows] = keys[rows]
            self._episode_counts[rows] = 0
        elif self._stream_keys is None:
            self._stream_keys = entropy_keys(self.num_envs)
        info = self._start_episodes(rows)
        return self._observation(), info

    def _rows_to_reset(self, options: dict[str, Any] | None) -> np.ndarray:
        options = options or {}
        unknown = set(options) - {"reset_mask"}
        if unknown:
            raise ValueError(f"unknown reset options {sorted(unknown)}; supported: ['reset_mask']")
        mask = options.get("reset_mask")
        if mask is None:
            return np.arange(self.num_envs)
        mask = mask.cpu().numpy() if isinstance(mask, torch.Tensor) else np.asarray(mask)
        if mask.dtype != np.bool_ or mask.shape != (self.num_envs,):
            raise ValueError(
                f"reset_mask must be a bool array of shape ({self.num_envs},), "
                f"got dtype {mask.dtype} and shape {mask.shape}"
            )
        if self._stream_keys is None and not mask.all():
            raise RuntimeError("the first reset() must reset every sub-env (no reset_mask)")
        return np.flatnonzero(mask)

    def _start_episodes(self, rows: np.ndarray) -> dict[str, Any]:
        """Draw and write fresh prompts into ``rows``; return their reset info."""
        info: dict[str, Any] = {}
        if rows.size == 0:
            return info
        assert self._stream_keys is not None
        group_leaders = rows - rows % self.group_size
        indices = draw_prompt_indices(
            self._stream_keys[group_leaders], self._episode_counts[rows], len(self.prompt_source)
        )
        prompts = self.prompt_source.get_many(indices.tolist())
        token_rows = self._prompt_tokens.token_ids(prompts)  # raises on a prompt without tokens
        self._episode_counts[rows] += 1  # after the checks: a bad prompt leaves the streams where they were
        prompt_ids, prompt_mask = left_pad(token_rows, self.pad_token_id, self.max_prompt_tokens)
        row_index = torch.as_tensor(rows, device=self.device)
        self._input_ids[row_index] = self.pad_token_id
        self._attention_mask[row_index] = 0
        self._input_ids[row_index, : self.max_prompt_tokens] = prompt_ids.to(self.device)
        self._attention_mask[row_index, : self.max_prompt_tokens] = prompt_mask.to(self.device)
        self._num_generated[row_index] = 0
        self._finished[row_index] = False
        self._unscored[row_index] = False  # batch scoring: a reset discards an unscored episode
        self._ended_with_eos[row_index] = False
        for row, prompt in zip(rows.tolist(), prompts, strict=True):  # rows being reset only
            self._prompts[row] = prompt
        _put(info, "prompt_index", rows, indices.astype(np.int64), self.num_envs)
        return info

    # Step ---------------------------------------------------------------------------
    def step(
        self, actions: torch.Tensor | np.ndarray
    ) -> tuple[Observation, torch.Tensor, torch.Tensor, torch.Tensor, dict[str, Any]]:
        """Append one token per sub-env; score, report and (per mode) reset finished rows.

        The hot path is vectorised over sub-envs: Python only touches the rows that
        finish in this step (to decode and score them in one batch) or start anew.

        Raises:
            RuntimeError: ``step`` before ``reset``, or the reward model, the gold judge or
                the ``reward`` scorer returned a non-finite score (the env is left unchanged).
            ValueError / TypeError: actions of the wrong shape, dtype or range.
        """
        if self._stream_keys is None:
            raise RuntimeError("call reset() before step()")
        actions = self._check_actions(actions)  # (N,) int64 on device; the range is checked below

        waiting = self._finished  # rows that sit this step out (read before a reset below writes it)
        active = ~waiting
        column = self.max_prompt_tokens + self._num_generated  # (N,) where the token goes
        num_generated = self._num_generated + active.long()
        terminated = active & (actions == self.eos_token_id)
        truncated = active & ~terminated & (num_generated >= self.max_new_tokens)
        done = terminated | truncated
        out_of_range = (actions < 0) | (actions >= self.vocab_size)
        if self._batch_scoring:  # every ended row at once, in the step where the last one ends
            unscored = self._unscored | done
            to_score = unscored & (waiting | done).all()
            ended_with_eos = self._ended_with_eos | terminated  # rows scored now may have ended earlier
        else:
            to_score, ended_with_eos = done, terminated  # every scored row ends in this step
        # The step's one read from the device: the range check and which rows end, wait and are scored.
        out_of_range_np, done_np, waiting_np, to_score_np = torch.stack([out_of_range, done, waiting, to_score]).cpu().numpy()
        if out_of_range_np.any():
            self._raise_out_of_range(actions, np.flatnonzero(out_of_range_np))

        # Score before touching state, so a NaN leaves the env intact.
        rewards = torch.zeros(self.num_envs, dtype=torch.float32, device=self.device)
        episode_info: dict[str, Any] = {}
        if to_score_np.any():
            score_rows_np = np.flatnonzero(to_score_np)
            score_rows = torch.as_tensor(score_rows_np, device=self.device)
            ids = self._input_ids[score_rows]  # advanced indexing copies
            mask = self._attention_mask[score_rows]
            ending_now = torch.as_tensor(np.flatnonzero(~waiting_np[score_rows_np]), device=self.device)  # still lack their last token
            written = (ending_now, column[score_rows[ending_now]])
            ids[written] = actions[score_rows[ending_now]]
            mask[written] = 1
            rewards[score_rows], episode_info = self._score(
                score_rows, ids, mask, num_generated[score_rows], ended_with_eos[score_rows]
            )

        # Commit the step for active rows: vectorised scatter of one token per row.
        active_rows = torch.as_tensor(np.flatnonzero(~waiting_np), device=self.device)
        self._input_ids[active_rows, column[active_rows]] = actions[active_rows]
        self._attention_mask[active_rows, column[active_rows]] = 1
        self._num_generated = num_generated
        if self._batch_scoring:
            self._ended_with_eos = ended_with_eos
            self._unscored = unscored & ~to_score
        infos: dict[str, Any] = {}

        if self.autoreset_mode == AutoresetMode.SAME_STEP:
            if done_np.any():
                final_obs = self._observation()
                infos["final_obs"] = final_obs
                infos["_final_obs"] = done_np
                infos["final_info"] = episode_info
                infos["_final_info"] = done_np
                infos.update(self._start_episodes(np.flatnonzero(done_np)))
        elif self.autoreset_mode == AutoresetMode.NEXT_STEP:
            infos.update(episode_info)
            _merge(infos, self._start_episodes(np.flatnonzero(waiting_np)))
            self._finished = done
        else:  # DISABLED
            infos.update(episode_info)
            self._finished = self._finished | done
        return self._observation(), rewards, terminated, truncated, infos

    def _check_actions(self, actions: torch.Tensor | np.ndarray) -> torch.Tensor:
        if isinstance(actions, np.ndarray):
            if actions.dtype == np.bool_ or not np.issubdtype(actions.dtype, np.integer):
                raise TypeError(
                    f"actions must be integer token ids, got a numpy array of dtype {actions.dtype}"
                )
            actions = torch.from_numpy(actions.astype(np.int64, copy=False))
        elif isinstance(actions, torch.Tensor):
            if actions.dtype == torch.bool or actions.is_floating_point() or actions.is_complex():
                raise TypeError(
                    f"actions must be integer token ids, got a tensor of dtype {actions.dtype}"
                )
        else:
            raise TypeError(
                f"actions must be a torch.Tensor or numpy array of shape ({self.num_envs},), "
                f"got {type(actions).__name__}"
            )
        if tuple(actions.shape) != (self.num_envs,):
            raise ValueError(
                f"actions must have shape ({self.num_envs},) (one token per sub-env), "
                f"got {tuple(actions.shape)}"
            )
        return actions.to(device=self.device, dtype=torch.long)

    def _raise_out_of_range(self, actions: torch.Tensor, rows: np.ndarray) -> None:
        """Raise the ``ValueError`` of actions outside ``[0, V)`` in ``rows`` (before any state changes)."""
        bad = actions[torch.as_tensor(rows, device=self.device)].tolist()
        raise ValueError(f"actions must be token ids in [0, {self.vocab_size}); sub-envs {rows[:8].tolist()} got {bad[:8]}")

    def _score(
        self,
        rows: torch.Tensor,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        num_generated: torch.Tensor,
        terminated: torch.Tensor,
    ) -> tuple[torch.Tensor, dict[str, Any]]:
        """Decode and score the finished ``rows`` in one batch.

        Args:
            rows: (R,) sub-env indices.
            input_ids: (R, L) their final contexts.
            attention_mask: (R, L) their final masks.
            num_generated: (R,) response lengths (EOS included).
            terminated: (R,) whether each ended with EOS.

        Returns:
            (R,) rewards, and the episode info in vector-info format.
        """
        row_list = rows.tolist()
        prompts = [self._prompts[r] for r in row_list]
        text_lengths = (num_generated - terminated.long()).tolist()  # EOS is not text
        responses_ids = input_ids[:, self.max_prompt_tokens :].tolist()
        responses = decode_exact(self.tokenizer, [ids[:n] for ids, n in zip(responses_ids, text_lengths, strict=True)])
        prompt_texts = [p.text for p in prompts]
        proxy = score_episodes(
            self.reward_model, prompt_texts, responses, input_ids, attention_mask, use_ids=self._proxy_takes_ids
        ).to(self.device)
        self._check_scores("the reward model", proxy, row_list, responses)
        penalty = torch.where(
            terminated,
            torch.zeros_like(proxy),
            torch.full_like(proxy, -self.missing_eos_penalty),
        )
        rows_np = np.asarray(row_list)
        info: dict[str, Any] = {}
        n = self.num_envs
        proxy_np = proxy.double().cpu().numpy()
        _put(info, "proxy", rows_np, proxy_np, n)
        _put(info, "preference", rows_np, proxy_np, n)  # deprecated alias of "proxy", for one version
        _put(info, "penalty", rows_np, penalty.double().cpu().numpy(), n)
        gold = None
        if self.gold_judge is not None:
            gold = np.asarray(self.gold_judge(prompts, responses), dtype=np.float64)
            if gold.shape != (len(row_list),) or not np.isfinite(gold).all():
                raise RuntimeError(
                    f"the gold judge must return {len(row_list)} finite scores, got {gold!r}; "
                    "the env state is unchanged"
                )
        _put(info, "gold", rows_np, gold if gold is not None else np.full(len(row_list), np.nan), n)
        episodes = FinishedEpisodes(prompt_texts, responses, input_ids, attention_mask, proxy, gold)
        score = self._reward_scorer(episodes)
        if score is not proxy:  # the default reward is the proxy itself, already checked
            if tuple(score.shape) != (len(row_list),):
                raise RuntimeError(
                    f"the reward {self.reward!r} must return {len(row_list)} scores, got shape "
                    f"{tuple(score.shape)}; the env state is unchanged"
                )
            self._check_scores(f"the reward {self.reward!r}", score, row_list, responses)
        _put(info, "response_length", rows_np, num_generated.cpu().numpy().astype(np.int64), n)
        _put(info, "prompt_index", rows_np, np.array([p.index for p in prompts], dtype=np.int64), n)
        if self.text_in_info:
            _put(info, "prompt_text", rows_np, np.array(prompt_texts, dtype=object), n)
            _put(info, "response_text", rows_np, np.array(responses, dtype=object), n)
        return (score + penalty).float(), info

    def _check_scores(self, source: str, scores: torch.Tensor, rows: list[int], responses: list[str]) -> None:
        """Raise ``RuntimeError`` naming the rows whose score is not finite (before any state changes)."""
        finite = torch.isfinite(scores)
        if not bool(finite.all()):
            bad = torch.nonzero(~finite).flatten().tolist()
            raise RuntimeError(
                f"{source} returned non-finite scores {scores[bad].tolist()} "
                f"for sub-envs {[rows[i] for i in bad]} (responses "
                f"{[responses[i] for i in bad][:3]!r}); the env state is unchanged"
            )

    # Views --------------------------------------------------------------------------
    def _observation(self) -> Observation:
        return {"input_ids": self._input_ids.clone(), "attention_mask": self._attention_mask.clone()}

    @property
    def prompts(self) -> list[Prompt | None]:
        """The current prompt of each sub-env (a copy of the list)."""
        return list(self._prompts)

    @property
    def batch_scoring(self) -> bool:
        """Whether a batch's episodes are scored together when its last row ends (``DISABLED`` mode)."""
        return self._batch_scoring

    @batch_scoring.setter
    def batch_scoring(self, value: bool) -> None:
        if not isinstance(value, (bool, np.bool_)):
            raise TypeError(f"batch_scoring must be a bool, got {value!r}")
        if value and self.autoreset_mode != AutoresetMode.DISABLED:
            raise ValueError(
                f"batch_scoring needs autoreset_mode DISABLED (rows wait for the batch), got {self.autoreset_mode.name}"
            )
        if not value:  # rows that ended unscored stay finished, waiting for their reset, and are never scored
            self._unscored.zero_()
        self._batch_scoring = bool(value)

    @property
    def has_gold_judge(self) -> bool:
        """Whether finished rows' ``info["gold"]`` holds the gold judge's score (else NaN)."""
        return self.gold_judge is not None

    @property
    def preference_model(self) -> RewardModel:
        """The reward model under its former name (``reward_model``); kept for one version."""
        return self.reward_model

    @property
    def finished(self) -> torch.Tensor:
        """(N,) bool: rows whose episode ended and that await a reset (NEXT_STEP, DISABLED)."""
        return self._finished.clone()

    def close_extras(self, **kwargs: Any) -> None:
        """Release the buffers."""
        self._prompts = [None] * self.num_envs


def _one_reward_model(reward_model: RewardModel | None, preference_model: RewardModel | None) -> RewardModel:
    """The reward model, given as ``reward_model=`` or by its former name ``preference_model=``."""
    if reward_model is not None and preference_model is not None:
        raise TypeError("pass the reward model once: reward_model= (preference_model= is its former name), not both")
    model = reward_model if reward_model is not None else preference_model
    if model is None:
        raise TypeError("TokenVectorEnv needs reward_model= (a RewardModel: an object with score(prompts, responses))")
    if not isinstance(model, RewardModel):
        raise TypeError(
            f"reward_model must be a RewardModel (an object with score(prompts, responses)), got {type(model).__name__}"
        )
    return model


def _parse_autoreset_mode(mode: AutoresetMode | str) -> AutoresetMode:
    if isinstance(mode, AutoresetMode):
        return mode
    wanted = str(mode).replace("_", "").lower()  # accepts "same_step", "SameStep", "SAME_STEP"
    for member in AutoresetMode:
        if wanted in (member.value.lower(), member.name.replace("_", "").lower()):
            return member
    choices = [m.name.lower() for m in AutoresetMode]
    raise ValueError(f"autoreset_mode must be an AutoresetMode or one of {choices}, got {mode!r}")


def _put(info: dict[str, Any], key: str, rows: np.ndarray, values: np.ndarray, num_envs: int) -> None:
    """Write per-row values into Gymnasium's vector-info layout (array plus ``_key`` mask).

    The dtypes follow what ``SyncVectorEnv`` builds from single-env infos: float64 for
    floats, int64 for ints, object (``None`` elsewhere) for strings.
    """
    if values.dtype == object:
        array = np.full(num_envs, None, dtype=object)
    else:
        array = np.zeros(num_envs, dtype=values.dtype)
    array[rows] = values
    mask = np.zeros(num_envs, dtype=bool)
    mask[rows] = True
    info[key] = array
    info[f"_{key}"] = mask


def _merge(info: dict[str, Any], other: dict[str, Any]) -> None:
    """Merge vector-info ``other`` into ``info`` row-wise (the rows of the two are disjoint)."""
    for key, values in other.items():
        if key.startswith("_"):
            continue
        mask = other[f"_{key}"]
        if key in info:
            info[key][mask] = values[mask]
            info[f"_{key}"] = info[f"_{key}"] | mask
        else:
            info[key], info[f"_{key}"] = values, mask
