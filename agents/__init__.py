"""The baselines package, installed as ``rlhf_gym.agents``: our agents and SB3 adapters.

Every agent trains through the same command line::

    rlhf-gym train --env ID --agent NAME --total-steps N --seed S --out DIR [agent flags]

`AGENTS` maps each name to the module holding its config dataclass and ``train``
function; modules load only when their agent is used.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class AgentEntry:
    """Where an agent lives: ``module.ConfigClass`` and ``module.train(config)``."""

    module: str
    config_class: str
    summary: str

    def load(self) -> tuple[type, Callable[[Any], dict[str, Any]]]:
        module = importlib.import_module(self.module)
        return getattr(module, self.config_class), module.train


AGENTS: dict[str, AgentEntry] = {
    "ppo": AgentEntry("rlhf_gym.agents.ppo", "PPOConfig", "token-level PPO with KL penalty (N+ details)"),
    "sb3-ppo": AgentEntry("rlhf_gym.agents.sb3.train", "SB3PPOConfig", "Stable-Baselines3 PPO, LM policy, KL via reward wrapper"),
    "sb3-a2c": AgentEntry("rlhf_gym.agents.sb3.train", "SB3A2CConfig", "Stable-Baselines3 A2C, LM policy, KL via reward wrapper"),
    "sb3-maskable-ppo": AgentEntry("rlhf_gym.agents.sb3.train", "SB3MaskablePPOConfig", "sb3-contrib MaskablePPO with NLPO top-p masks"),
    "sb3-trpo": AgentEntry("rlhf_gym.agents.sb3.train", "SB3TRPOConfig", "sb3-contrib TRPO, LM policy, KL via reward wrapper"),
}
