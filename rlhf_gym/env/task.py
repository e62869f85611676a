"""What a task (a world in ``rlhf_gym.envs``) declares, and how its envs are assembled.

A task declares everything the rest of the library finds through it: its generated
prompts, its shipped assets (tokenizer, SFT policy, preference model), its gold judge,
the sampling temperature of its benchmark protocol, and the recipe that rebuilds the
assets. The CLI, the agents and the benchmarks reach a task by env id through
`rlhf_gym.registration.get_task`; nothing outside a world's own package names it.

A user may replace any default by a Hugging Face name or local path, or by an object.
`make_vector_env` is the one place where that choice is made, shared by every task's
registered entry points.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from gymnasium.vector import AutoresetMode
from transformers import PreTrainedTokenizerBase

from rlhf_gym.env.prompts import DatasetPromptSource, PromptSource
from rlhf_gym.env.single_env import TokenEnv
from rlhf_gym.env.vector_env import GoldJudge, TokenVectorEnv
from rlhf_gym.lm.loading import check_tokenizer, load_tokenizer
from rlhf_gym.lm.policy import CausalLMPolicy
from rlhf_gym.rewards.loading import load_reward_model
from rlhf_gym.rewards.preference_model import PreferenceModel

PathOrName = str | os.PathLike[str]


@dataclass(frozen=True)
class BuildRequest:
    """What ``rlhf-gym build-assets TASK`` asks of a task's build recipe.

    Attributes:
        out: folder to write the assets to (a task's own ``assets_dir`` by default).
        toy: a seconds-scale build with tiny sizes (tests, trying the pipeline).
        device: where the models train and sample.
        reuse_policy: an earlier build's folder whose tokenizer and SFT policy to copy
            instead of retraining them.
        comparison_posts: prompts whose candidates are labelled for the preference model
            (None: the recipe's).
        preference_members: preference models trained and shipped as one ensemble
            (None: the recipe's).
    """

    out: Path
    toy: bool = False
    device: str = "cpu"
    reuse_policy: Path | None = None
    comparison_posts: int | None = None
    preference_members: int | None = None


@dataclass(frozen=True)
class Task:
    """A world's declaration: its prompts, shipped assets, gold judge and protocol settings.

    Get one by env id with ``rlhf_gym.get_task("RLHF-Summarize-v0")``.

    Attributes:
        name: short task name, e.g. ``"summarize"`` (``rlhf-gym build-assets NAME``).
        env_id: the registered env id, e.g. ``"RLHF-Summarize-v0"``.
        prompt_source: ``split -> PromptSource`` for the task's own prompts.
        tokenizer: loads the shipped policy tokenizer (cached, shared).
        preference_model: ``device -> PreferenceModel``, the shipped learned reward.
        policy_path: ``() -> Path`` of the shipped SFT policy, a folder that
            ``AutoModelForCausalLM.from_pretrained`` loads (see `sft_policy`).
        gold_judge: the true scorer of the task's own prompts (not of external datasets).
        temperature: the sampling temperature of the task's benchmark protocol: agents
            sample and evaluate at it, and the shipped ``generation_config.json`` says it.
        build_assets: the recipe that rebuilds the shipped assets (None: nothing to build).
        assets_dir: where the shipped assets live inside the package.
        splits: the split names ``prompt_source`` accepts.
        dataset_template: how an external dataset's prompt column becomes prompt text.
        max_prompt_tokens: default prompt block width.
        max_new_tokens: default response budget.
    """

    name: str
    env_id: str
    prompt_source: Callable[[str], PromptSource]
    tokenizer: Callable[[], PreTrainedTokenizerBase]
    preference_model: Callable[[torch.device], PreferenceModel]
    policy_path: Callable[[], Path]
    gold_judge: GoldJudge | None
    temperature: float = 0.7
    build_assets: Callable[[BuildRequest], None] | None = None
    assets_dir: Path | None = None
    splits: tuple[str, ...] = ("train", "valid", "test")
    dataset_template: str = "{}"
    max_prompt_tokens: int = 256
    max_new_tokens: int = 48

    def __post_init__(self) -> None:
        if not self.temperature > 0:
            raise ValueError(f"task {self.name!r}: temperature must be > 0, got {self.temperature}")
        for name in ("max_prompt_tokens", "max_new_tokens"):
            if getattr(self, name) < 1:
                raise ValueError(f"task {self.name!r}: {name} must be >= 1, got {getattr(self, name)}")

    def sft_policy(self, device: str | torch.device = "cpu", temperature: float | None = None) -> CausalLMPolicy:
        """The shipped SFT policy as a `CausalLMPolicy` on ``device``, sampling at
        ``temperature`` (None: the protocol's, `temperature`). A fresh copy each call."""
        policy = CausalLMPolicy.from_pretrained(
            self.policy_path(), temperature=self.temperature if temperature is None else temperature,
            local_files_only=True,
        )
        return policy.to(device)


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
        max_prompt_tokens=task.max_prompt_tokens if max_prompt_tokens is None else max_prompt_tokens,
        max_new_tokens=task.max_new_tokens if max_new_tokens is None else max_new_tokens,
        device=device,
        autoreset_mode=autoreset_mode,
        group_size=group_size,
        reward=reward,
        missing_eos_penalty=missing_eos_penalty,
        text_in_info=text_in_info,
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
