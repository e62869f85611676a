"""The baselines package, installed as ``rlhf_gym.agents``: our agents and SB3 adapters.

Every agent trains through the same command line::

    rlhf-gym train --agent NAME --env ID --total-steps N --seed S --out DIR [agent flags]

`AGENTS` maps each name to the module holding its config dataclass and ``train``
function; modules load only when their agent is used (``--agent ppo`` imports neither
Stable-Baselines3 nor sb3-contrib; only ``rlhf-gym train --help`` loads every agent). Shared
plumbing (env construction, evaluation, run seeds, run folders, checkpoints, finish-of-run)
lives in `rlhf_gym.agents.common`.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class AgentEntry:
    """Where an agent lives: ``module.ConfigClass`` and ``module.train(config)``.

    Attributes:
        module: the agent's module.
        config_class: its config dataclass (the flags of ``rlhf-gym train --agent NAME``).
        summary: one line for ``rlhf-gym train --help``.
        defaults: config fields this agent sets (the SB3 agents share one config class and
            differ in ``algo`` and ``out``).
    """

    module: str
    config_class: str
    summary: str
    defaults: tuple[tuple[str, Any], ...] = ()

    def config_type(self) -> type:
        return getattr(importlib.import_module(self.module), self.config_class)

    def load(self) -> tuple[Callable[..., Any], Callable[[Any], dict[str, Any]]]:
        """The config factory (the class with this agent's defaults) and ``train``."""
        module = importlib.import_module(self.module)
        return functools.partial(self.config_type(), **dict(self.defaults)), module.train


def _sb3(algo: str, summary: str) -> AgentEntry:
    return AgentEntry("rlhf_gym.agents.sb3.train", "SB3Config", summary, (("algo", algo), ("out", f"runs/sb3-{algo}")))


AGENTS: dict[str, AgentEntry] = {
    "ppo": AgentEntry("rlhf_gym.agents.ppo", "PPOConfig", "token-level PPO with KL penalty (N+ details)"),
    "rloo": AgentEntry("rlhf_gym.agents.rloo", "RLOOConfig", "REINFORCE with leave-one-out baselines (Ahmadian et al. 2024)"),
    "grpo": AgentEntry("rlhf_gym.agents.grpo", "GRPOConfig", "group-normalised advantages, clipped, KL in the loss (Shao et al. 2024)"),
    "sb3-ppo": _sb3("ppo", "Stable-Baselines3 PPO, LM policy, KL via reward wrapper"),
    "sb3-a2c": _sb3("a2c", "Stable-Baselines3 A2C, LM policy, KL via reward wrapper"),
    "sb3-maskable-ppo": _sb3("maskable-ppo", "sb3-contrib MaskablePPO with NLPO top-p masks"),
    "sb3-trpo": _sb3("trpo", "sb3-contrib TRPO, LM policy, KL via reward wrapper"),
}
