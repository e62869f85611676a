"""How a task's envs are assembled: `make_vector_env` and `make_env`.

A user may replace any default of a task (`rlhf_gym.worlds.task.Task`) by a Hugging Face
name or local path, or by an object. `make_vector_env` is the one place where that choice
is made, shared by every task's registered entry points.
"""

from __future__ import annotations

import os
from typing import Any

import torch
from gymnasium.vector import AutoresetMode
from transformers import PreTrainedTokenizerBase

from rlhf_gym.env.prompts import DatasetPromptSource, PromptSource
from rlhf_gym.env.single_env import TokenEnv
from rlhf_gym.env.vector_env import TokenVectorEnv
from rlhf_gym.lm.loading import check_tokenizer, load_tokenizer
from rlhf_gym.rewards.loading import load_reward_model
from rlhf_gym.rewards.reward_model import RewardModel
from rlhf_gym.worlds.task import Task

PathOrName = str | os.PathLike[str]


def make_vector_env(
    num_envs: int = 1,
    *,
    task: Task,
    split: str = "train",
    dataset: PathOrName | PromptSource | None = None,
    prompt_column: str = "prompt",
    reference_column: str | None = None,
    template: str | None = None,
    tokenizer: PathOrName | PreTrainedTokenizerBase | None = None,
    reward_model: PathOrName | RewardModel | None = None,
    device: str | torch.device = "cpu",
    max_prompt_tokens: int | None = None,
    max_new_tokens: int | None = None,
    autoreset_mode: AutoresetMode | str = AutoresetMode.SAME_STEP,
    group_size: int = 1,
    reward: str | RewardModel = "preference",
    missing_eos_penalty: float | None = None,
    text_in_info: bool = True,
    prompt_cache_size: int = 16384,
    trust_remote_code: bool = False,
    local_files_only: bool = False,
) -> TokenVectorEnv:
    """Assemble a task's `TokenVectorEnv`, each component a default, a name/path or an object.

    ``gym.make_vec(env_id, num_envs=N, **kwargs)`` reaches it through the registered entry
    point `rlhf_gym.registration.make_vector_env`, which looks the task up.

    Args:
        num_envs: number of sub-envs.
        task: the world's declaration.
        split: split of the task's own prompts, or of ``dataset``.
        dataset: a Hugging Face dataset (hub id, local folder or data file) or a
            `PromptSource`; the task's gold judge applies only to its own prompts.
        prompt_column / reference_column / template: how dataset rows become prompts
            (``template`` defaults to the task's format, e.g. ``"{}\\nTL;DR:"``).
        tokenizer: the policy tokenizer (hub id, path or object).
        reward_model: the learned reward: a hub id or path of a preference model (a folder
            saved by `PreferenceEnsemble` loads as that ensemble), or any `RewardModel`
            object (a `PreferenceModel`, a discriminator, ...), used as given. Its score is
            the env's ``proxy``.
        reward: what the last step rewards: a registered scorer name (``"preference"``:
            the reward model; ``"gold"``: the task's gold judge, an oracle run that needs
            the task's own prompts; others through
            `rlhf_gym.rewards.reward_model.register_reward_scorer`) or a `RewardModel`.
        device: where tensors and a loaded reward model live.
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
        learned_reward = task.preference_model(device)
    elif isinstance(reward_model, (str, os.PathLike)):
        learned_reward = load_reward_model(
            reward_model,
            device=device,
            trust_remote_code=trust_remote_code,
            local_files_only=local_files_only,
        )
    elif isinstance(reward_model, RewardModel):
        learned_reward = reward_model
    else:
        raise TypeError(
            f"reward_model must be a hub id, a path or a RewardModel (an object with score(prompts, responses)), "
            f"got {type(reward_model).__name__}"
        )

    return TokenVectorEnv(
        num_envs,
        prompt_source=prompt_source,
        tokenizer=tokenizer_obj,
        reward_model=learned_reward,
        gold_judge=gold_judge,
        max_prompt_tokens=task.max_prompt_tokens if max_prompt_tokens is None else max_prompt_tokens,
        max_new_tokens=task.max_new_tokens if max_new_tokens is None else max_new_tokens,
        device=device,
        autoreset_mode=autoreset_mode,
        group_size=group_size,
        reward=reward,
        missing_eos_penalty=missing_eos_penalty,
        text_in_info=text_in_info,
        prompt_cache_size=prompt_cache_size,
    )


def make_env(*, task: Task, render_mode: str | None = None, **kwargs: Any) -> TokenEnv:
    """Assemble a task's single env: `make_vector_env` at N=1 behind the numpy view.

    ``gym.make(env_id)`` reaches it through `rlhf_gym.registration.make_env`. Takes the
    same keyword arguments as `make_vector_env` except ``num_envs``, ``autoreset_mode``
    and ``group_size``.
    """
    for name in ("num_envs", "autoreset_mode", "group_size"):
        if name in kwargs:
            raise TypeError(f"{name!r} applies to vector envs only (use gym.make_vec)")
    vector_env = make_vector_env(1, task=task, autoreset_mode=AutoresetMode.DISABLED, **kwargs)
    return TokenEnv(vector_env, render_mode=render_mode)
