"""The ``rlhf-gym`` command line: ``rlhf-gym envs``, ``rlhf-gym build-assets TASK``, ...

Each subcommand is a plain function whose signature tyro turns into flags.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import gymnasium as gym
import tyro

from rlhf_gym.registration import SUITE


def envs(details: bool = False) -> None:
    """List the registered environments and their specs.

    Args:
        details: also build each env once and print its spaces and default settings.
    """
    for suite_env in SUITE:
        spec = gym.spec(suite_env.env_id)
        print(f"{spec.id}\n  {suite_env.summary}")
        print(f"  entry_point={spec.entry_point}\n  vector_entry_point={spec.vector_entry_point}")
        print(f"  max_episode_steps={spec.max_episode_steps} (episodes end at max_new_tokens)")
        if details:
            env = gym.make(spec.id).unwrapped
            core = env.vector_env
            print(f"  observation_space={env.observation_space}\n  action_space={env.action_space}")
            print(
                f"  max_prompt_tokens={core.max_prompt_tokens} max_new_tokens={core.max_new_tokens} "
                f"vocab_size={core.vocab_size} prompts={len(core.prompt_source)}"
            )
            env.close()


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``rlhf-gym`` console script."""
    tyro.extras.subcommand_cli_from_dict(
        {"envs": envs},
        prog="rlhf-gym",
        description="rlhf-gym: token-level Gymnasium environments for RLHF on language.",
        args=list(sys.argv[1:] if argv is None else argv),
    )


if __name__ == "__main__":
    main()
