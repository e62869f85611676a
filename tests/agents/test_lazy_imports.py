"""Agents load lazily: ``rlhf-gym train --agent ppo`` imports neither Stable-Baselines3 nor sb3-contrib."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

SB3_PACKAGES = ("stable_baselines3", "sb3_contrib")

# The CLI's whole path up to the agent's train function (parsing the flags, building the
# config, dispatching), in a fresh interpreter; train itself only records its config. Then
# the SB3 agent's module is imported in the same process, to show the check sees SB3 when it
# is there.
SCRIPT = f"""
import json, sys
import rlhf_gym.agents.ppo as ppo
configs = []
ppo.train = configs.append
from rlhf_gym.cli import main
main(["train", "--agent", "ppo", "--total-steps", "7", "--seed", "3"])
loaded = lambda: sorted({{name.split(".")[0] for name in sys.modules}} & set({SB3_PACKAGES!r}))
after_ppo = loaded()
import rlhf_gym.agents.sb3.train
print(json.dumps({{"config": [configs[0].total_steps, configs[0].seed], "after_ppo": after_ppo, "after_sb3": loaded()}}))
"""


@pytest.mark.slow  # a fresh interpreter importing torch and transformers: ~6 s of CPU, more on a busy machine
def test_training_ppo_from_the_cli_imports_no_sb3():
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=300, check=True)
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["config"] == [7, 3]  # the CLI did reach PPO's train with the parsed flags
    assert report["after_ppo"] == []
    assert report["after_sb3"] == sorted(SB3_PACKAGES)
