"""TRL's trainers on a task's shipped models, offline, paced from outside.

Runs only inside a TRL worker process, whose ``PYTHONPATH`` starts with a TRL folder
(`rlhf_gym.bench.trl_install`); TRL is imported inside the functions, so importing this
module needs no TRL.

- PPO: trl 1.12's ``trl.experimental.ppo.PPOTrainer`` with the SFT policy (its reference a
  frozen copy), and the preference model as reward model and as the value model's
  initialisation, both with the normalised head our env and critic use. Its dataset is
  our prompts' token ids, fed in our iterations' order (TRL's own loader shuffles).
- RLOO and GRPO: trl 1.16's ``RLOOTrainer`` / ``GRPOTrainer`` with the SFT policy and the
  normalised preference model as the reward model; the dataset is our prompts' texts,
  unshuffled (``shuffle_dataset=False``).

A ``TrainerCallback`` calls the pacer (`rlhf_gym.bench.trl_pacing`) at ``on_step_end`` once every `steps_per_iteration`
steps, with the trained policy's ``save_pretrained`` (safetensors) for snapshots.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rlhf_gym.bench.trl_pacing import Pacer, StopRun
from rlhf_gym.bench.trl_settings import (
    IterationPrompts,
    TrainingSettings,
    iteration_prompts,
    steps_per_iteration,
    trl_arguments,
    trl_effective,
)


def normalized_reward_model(env: str) -> Any:
    """A trainable copy of the task's preference model (a ``*ForSequenceClassification``) whose
    head outputs the normalised score, ``(w.h + b - mean) / std``: the reward our env gives."""
    from rlhf_gym.agents.value_model import normalized_head
    from rlhf_gym.registration import get_task

    preference = get_task(env).preference_model()
    model = copy.deepcopy(preference.model).requires_grad_(True)
    model.score = normalized_head(model.score, preference)
    return model


def pacing_callback(pacer: Pacer, steps: int) -> Any:
    """A ``TrainerCallback`` calling ``pacer.iteration_end`` after every ``steps`` trainer steps."""
    from transformers import TrainerCallback

    class PacingCallback(TrainerCallback):
        def __init__(self) -> None:
            self.began = time.perf_counter()
            self.steps = 0

        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.began = time.perf_counter()

        def on_step_end(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
            self.steps += 1
            if self.steps % steps == 0:
                policy = getattr(model, "policy", model)  # trl 1.12's PPO wraps the policy and the critic in one module
                pacer.iteration_end(time.perf_counter() - self.began, policy.save_pretrained)

    return PacingCallback()


def build_trainer(settings: TrainingSettings, out: Path, prompts: list[IterationPrompts]) -> Any:
    """TRL's trainer for ``settings`` (output under ``out``), fed ``prompts`` in order."""
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM

    from rlhf_gym.registration import get_task

    task = get_task(settings.env)
    tokenizer = task.tokenizer()  # the policy's; pads on the left, pad != EOS
    policy = AutoModelForCausalLM.from_pretrained(str(task.policy_path()), dtype=torch.float32, local_files_only=True)
    arguments = trl_arguments(settings, out / "trl")
    if settings.algorithm == "ppo":
        from torch.utils.data import DataLoader
        from trl.experimental.ppo import PPOConfig, PPOTrainer

        dataset = Dataset.from_dict({"input_ids": [ids for batch in prompts for ids in batch.token_ids]})
        args = PPOConfig(**arguments)
        trainer = PPOTrainer(
            args=args, processing_class=tokenizer, model=policy, ref_model=None, reward_model=normalized_reward_model(settings.env),
            train_dataset=dataset, value_model=normalized_reward_model(settings.env),
            eval_dataset=dataset.select(range(settings.num_prompts)),
        )
        # Our iteration k's prompts at TRL's update k: TRL's own loader shuffles, so feed it in order.
        loader = DataLoader(dataset, batch_size=args.local_batch_size, shuffle=False, collate_fn=trainer.data_collator, drop_last=True)
        trainer.dataloader = trainer.accelerator.prepare(loader)
        return trainer
    dataset = Dataset.from_dict({"prompt": [text for batch in prompts for text in batch.texts]})
    reward = normalized_reward_model(settings.env)
    reward_tokenizer = get_task(settings.env).preference_model().tokenizer
    if settings.algorithm == "rloo":
        from trl import RLOOConfig, RLOOTrainer

        return RLOOTrainer(model=policy, reward_funcs=[reward], args=RLOOConfig(**arguments), train_dataset=dataset,
                           processing_class=tokenizer, reward_processing_classes=[reward_tokenizer])
    from trl import GRPOConfig, GRPOTrainer

    return GRPOTrainer(model=policy, reward_funcs=[reward], args=GRPOConfig(**arguments), train_dataset=dataset,
                       processing_class=tokenizer, reward_processing_classes=[reward_tokenizer])


def train_with_pacer(settings: TrainingSettings, make_pacer: Callable[[dict[str, Any]], Pacer], out: Path) -> Pacer:
    """Build TRL's trainer, make the pacer from its effective settings, and train until the pacer stops it."""
    import torch

    torch.set_num_threads(settings.threads)
    torch.manual_seed(settings.seed)
    trainer = build_trainer(settings, out, iteration_prompts(settings))
    info = trl_effective(settings.algorithm, trainer.args)
    import trl

    pacer = make_pacer({**info, "trl version": trl.__version__})
    trainer.add_callback(pacing_callback(pacer, steps_per_iteration(settings)))
    try:
        trainer.train()
    except StopRun:
        pass
    return pacer
