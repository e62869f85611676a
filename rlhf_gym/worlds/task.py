"""What a task declares (`Task`), and what ``rlhf-gym build-assets`` asks of it (`BuildRequest`).

A task is everything the rest of the library finds through an env id: its generated
prompts, its shipped assets (tokenizer, SFT policy, preference model), its gold judge, its
benchmark protocol's settings and the recipe that rebuilds the assets. The CLI, the
agents, the audit and the leaderboard reach a task through `rlhf_gym.get_task`; nothing
outside a world's own package names a world.

A generated world gets its task from `Task.from_world`, so its ``__init__.py`` is its
Gymnasium-style docstring and a few lines. This module imports nothing heavy: worlds
declare their task when ``import rlhf_gym`` registers the suite, and the models load only
when an env is made.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import torch
    from transformers import PreTrainedTokenizerBase

    from rlhf_gym.env.prompts import Prompt, PromptSource
    from rlhf_gym.lm.policy import CausalLMPolicy
    from rlhf_gym.rewards.preference_model import PreferenceModel
    from rlhf_gym.worlds.assets import TaskAssets
    from rlhf_gym.worlds.world import World

GoldJudge = Callable[["Sequence[Prompt]", Sequence[str]], "np.ndarray"]


@dataclass(frozen=True)
class BuildRequest:
    """What ``rlhf-gym build-assets TASK`` asks of a task's build recipe.

    Attributes:
        out: folder to write the assets to (a task's own ``assets_dir`` by default).
        toy: a seconds-scale build with tiny sizes (tests, trying the pipeline).
        device: where the models train and sample.
        reuse_policy: an earlier build's folder whose tokenizer and SFT policy to copy
            instead of retraining them.
    """

    out: Path
    toy: bool = False
    device: str = "cpu"
    reuse_policy: Path | None = None


@dataclass(frozen=True)
class Task:
    """A world's declaration: its prompts, shipped assets, gold judge and protocol settings.

    Get one by env id with ``rlhf_gym.get_task("RLHF-Summarize-v0")``.

    Attributes:
        name: short task name, e.g. ``"summarize"`` (``rlhf-gym build-assets NAME``).
        env_id: the registered env id, e.g. ``"RLHF-Summarize-v0"``.
        prompt_source: ``split -> PromptSource`` for the task's own prompts.
        tokenizer: loads the shipped policy tokenizer (cached, shared).
        preference_model: ``device -> PreferenceModel``, the shipped learned reward, as a
            frozen, read-only view (see `rlhf_gym.worlds.assets.TaskAssets`).
        policy_path: ``() -> Path`` of the shipped SFT policy, a folder that
            ``AutoModelForCausalLM.from_pretrained`` loads (see `sft_policy`).
        gold_judge: the true scorer of the task's own prompts (None: the task has none).
        temperature: the sampling temperature of the task's benchmark protocol: agents
            sample and evaluate at it, and the shipped ``generation_config.json`` says it.
        build_assets: the recipe of a task made by hand (None for a world's task, whose
            assets the kit's recipe builds from ``world``; None and no world: nothing to build).
        assets_dir: where the shipped assets live inside the package.
        splits: the split names ``prompt_source`` accepts.
        dataset_template: how an external dataset's prompt column becomes prompt text.
        max_prompt_tokens: default prompt block width.
        max_new_tokens: default response budget.
        has_references: whether the task's own prompts carry reference responses.
        world: the generated world behind the task (None: a task made by hand).
        assets: the shipped assets' folder and loaders (None: none shipped).
        protocol_revision: the ``N`` of the leaderboard protocol's version
            ``"<name>-test-vN"``; raise it whenever the world or its assets change what a
            score means, so old submissions are not ranked with new ones.
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
    has_references: bool = True
    world: World | None = None
    assets: TaskAssets | None = None
    protocol_revision: int = 1

    def __post_init__(self) -> None:
        if not self.temperature > 0:
            raise ValueError(f"task {self.name!r}: temperature must be > 0, got {self.temperature}")
        for name in ("max_prompt_tokens", "max_new_tokens", "protocol_revision"):
            if getattr(self, name) < 1:
                raise ValueError(f"task {self.name!r}: {name} must be >= 1, got {getattr(self, name)}")

    @classmethod
    def from_world(cls, world: World, assets_dir: Path) -> Task:
        """The task of a generated world whose built assets live in ``assets_dir``.

        Its prompts are the world's generated items, its gold judge scores each prompt's
        record with ``world.gold_scores``, its assets load through `TaskAssets`, and
        ``rlhf-gym build-assets NAME`` runs the kit's recipe on the world.
        """
        from rlhf_gym.worlds.assets import TaskAssets

        assets = TaskAssets(Path(assets_dir), world.name)

        def prompt_source(split: str) -> PromptSource:
            from rlhf_gym.env.prompts import GeneratedPromptSource

            def make_prompt(item_id: int) -> tuple[str, str | None, Any]:
                sample = world.generate(item_id)
                return sample.prompt, sample.reference, sample.record

            return GeneratedPromptSource(make_prompt, world.splits[split])

        def gold_judge(prompts: Sequence[Prompt], responses: Sequence[str]) -> np.ndarray:
            return world.gold_scores([p.record for p in prompts], responses)

        return cls(
            name=world.name,
            env_id=world.env_id,
            prompt_source=prompt_source,
            tokenizer=assets.tokenizer,
            preference_model=assets.preference_model,
            policy_path=assets.policy_path,
            gold_judge=gold_judge,
            temperature=world.temperature,
            assets_dir=assets.folder,
            splits=world.splits.names,
            dataset_template=world.dataset_template,
            max_prompt_tokens=world.max_prompt_tokens,
            max_new_tokens=world.max_new_tokens,
            has_references=world.has_references,
            world=world,
            assets=assets,
            protocol_revision=world.protocol_revision,
        )

    def sft_policy(self, device: str | torch.device = "cpu", temperature: float | None = None) -> CausalLMPolicy:
        """The shipped SFT policy as a `CausalLMPolicy` on ``device``, sampling at
        ``temperature`` (None: the protocol's, `temperature`). A fresh copy each call."""
        from rlhf_gym.lm.policy import CausalLMPolicy

        policy = CausalLMPolicy.from_pretrained(
            self.policy_path(), temperature=self.temperature if temperature is None else temperature,
            local_files_only=True,
        )
        return policy.to(device)
