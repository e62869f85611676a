"""What a task (a world in ``rlhf_gym.envs``) provides, and how its envs are assembled.

A task supplies defaults that work offline (its generated prompts, shipped tokenizer and
preference model, gold judge); a user may replace any of them by a Hugging Face name or
local path, or by an object. `make_vector_env` is the one place where that choice is made,
shared by every task's registered entry points.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from gymnasium.vector import AutoresetMode
from transformers import PreTrainedTokenizerBase

from rlhf_gym.env.prompts import DatasetPromptSource, PromptSource
from rlhf_gym.env.single_env import TokenEnv
from rlhf_gym.env.vector_env import GoldJudge, TokenVectorEnv
from rlhf_gym.lm.loading import check_tokenizer, load_tokenizer
from rlhf_gym.rewards.loading import load_reward_model
from rlhf_gym.rewards.preference_model import PreferenceModel

PathOrName = str | os.PathLike[str]


@dataclass(frozen=True)
class Task:
    """A world's defaults.

    Attributes:
        name: short task name, e.g. ``"summarize"``.
        prompt_source: ``split -> PromptSource`` for the task's own prompts.
        tokenizer: loads the default policy tokenizer.
        preference_model: ``device -> PreferenceModel``, the default learned reward.
        gold_judge: true scorer of the task's own prompts (not of external datasets).
        splits: the split names ``prompt_source`` accepts.
        dataset_template: how an external dataset's prompt column becomes prompt text.
        max_prompt_tokens: default prompt block width.
        max_new_tokens: default response budget.
    """

    name: str
    prompt_source: Callable[[str], PromptSource]
    tokenizer: Callable[[], PreTrainedTokenizerBase]
    preference_model: Callable[[torch.device], PreferenceModel]
    gold_judge: GoldJudge | None
    splits: tuple[str, ...] = ("train", "valid", "test")
    dataset_template: str = "{}"
    max_prompt_tokens: int = 256
    max_new_tokens: int = 48


def make_vector_env(
    task: Task,
    num_envs: int = 1,
    *,
    split: str = "train",
    dataset: PathOrName | PromptSource | None = None,
    prompt_column: str = "prompt",
    reference_column: str | None = None,
    template: str | None = None,
    tokenizer: PathOrName | PreTrainedTokenizerBase | None = None,
    reward_model: PathOrName | PreferenceModel | None = None,
    device: str | torch.device = "cpu",
    max_prompt_tokens: int | None = None,
    max_new_tokens: int | None = None,
    autoreset_mode: AutoresetMode | str = AutoresetMode.SAME_STEP,
    group_size: int = 1,
    reward: str = "preference",
    missing_eos_penalty: float | None = None,
    text_in_info: bool = True,
    trust_remote_code: bool = False,
    local_files_only: bool = False,
) -> TokenVectorEnv:
    """Assemble a task's `TokenVectorEnv`, each component a default, a name/path or an object.

    Args:
        task: the world's defaults.
        num_envs: number of sub-envs.
        split: split of the task's own prompts, or of ``dataset``.
        dataset: a Hugging Face dataset (hub id, local folder or data file) or a
            `PromptSource`; the task's gold judge applies only to its own prompts.
        prompt_column / reference_column / template: how dataset rows become prompts
            (``template`` defaults to the task's format, e.g. ``"{}\\nTL;DR:"``).
        tokenizer: the policy tokenizer (hub id, path or object).
        reward_model: the preference model (hub id, path or `PreferenceModel`; a folder saved
            by `PreferenceEnsemble` loads as that ensemble).
        reward: ``"preference"`` (the learned reward) or ``"gold"`` (the task's gold judge
            as the reward: an oracle run; needs the task's own prompts).
        device: where tensors and the preference model live.
        trust_remote_code: allow hub code to run when loading (off by default).
        local_files_only: never reach the hub (the error then names the missing artifact).
        Other arguments: see `TokenVectorEnv`.
    """
    device = torch.device(device)
    gold_judge = task.gold_judge
    if dataset is None:
        if split not in task.splits:
            raise ValueError(f"unknown split {split!r} for task {task.name!r}; use one of {task.splits}")
        prompt_source = task.prompt_source(split)
    elif isinstance(dataset, PromptSource):
        prompt_source, gold_judge = dataset, None
    else:
        prompt_source = DatasetPromptSource.from_name(
            dataset,
            split=split,
            prompt_column=prompt_column,
            reference_column=reference_column,
            template=template if template is not None else task.dataset_template,
            local_files_only=local_files_only,
        )
        gold_judge = None

    if tokenizer is None:
        tokenizer_obj = task.tokenizer()
    elif isinstance(tokenizer, PreTrainedTokenizerBase):
        check_tokenizer(tokenizer)
        tokenizer_obj = tokenizer
    else:
        tokenizer_obj = load_tokenizer(
            str(tokenizer), trust_remote_code=trust_remote_code, local_files_only=local_files_only
        )

    if reward_model is None:
        preference_model = task.preference_model(device)
    elif isinstance(reward_model, PreferenceModel):
        preference_model = reward_model
    else:
        preference_model = load_reward_model(
            reward_model,
            device=device,
            trust_remote_code=trust_remote_code,
            local_files_only=local_files_only,
        )

    return TokenVectorEnv(
        num_envs,
        prompt_source=prompt_source,
        tokenizer=tokenizer_obj,
        preference_model=preference_model,
        gold_judge=gold_judge,
        max_prompt_tokens=max_prompt_tokens or task.max_prompt_tokens,
        max_new_tokens=max_new_tokens or task.max_new_tokens,
        device=device,
        autoreset_mode=autoreset_mode,
        group_size=group_size,
        reward=reward,
        missing_eos_penalty=missing_eos_penalty,
        text_in_info=text_in_info,
    )


def make_env(task: Task, *, render_mode: str | None = None, **kwargs: Any) -> TokenEnv:
    """Assemble a task's single env: `make_vector_env` at N=1 behind the numpy view.

    Takes the same keyword arguments as `make_vector_env` except ``num_envs``,
    ``autoreset_mode`` and ``group_size``.
    """
    for name in ("num_envs", "autoreset_mode", "group_size"):
        if name in kwargs:
            raise TypeError(f"{name!r} applies to vector envs only (use gym.make_vec)")
    vector_env = make_vector_env(task, 1, autoreset_mode=AutoresetMode.DISABLED, **kwargs)
    return TokenEnv(vector_env, render_mode=render_mode)
