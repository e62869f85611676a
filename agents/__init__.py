"""The baselines package, installed as ``rlhf_gym.agents``: our agents and SB3 adapters.

Every agent trains through the same command line::

    rlhf-gym train --env ID --agent NAME --total-steps N --seed S --out DIR [agent flags]

`AGENTS` maps each name to the module holding its config dataclass and ``train``
function; modules load only when their agent is used.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable


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
}
