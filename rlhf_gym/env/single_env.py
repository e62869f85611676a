"""`TokenEnv`: the single-episode Gymnasium env, a numpy view of `TokenVectorEnv` at N=1.

There is no second implementation of the env logic: every call forwards to a one-row
`TokenVectorEnv` (autoreset DISABLED) and converts tensors to numpy and Python scalars,
so the single and batched envs cannot drift apart. SB3's ``check_env`` insists on a
Python ``float`` reward and Python ``bool`` flags; they are returned as such.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode

from rlhf_gym.env.vector_env import TokenVectorEnv


class TokenEnv(gym.Env[dict[str, np.ndarray], int]):
    """One token-level text-generation episode at a time (see `TokenVectorEnv` for the spec).

    Observation: ``{"input_ids": (L,) int64, "attention_mask": (L,) int64}`` numpy
    arrays; action: an int token id; reward: a Python float, non-zero only on the last
    step; ``info`` at the last step holds the episode's reward components and texts.
    Stepping a finished episode raises ``RuntimeError``: call ``reset()``.

    Render modes: ``"ansi"`` returns the prompt and the response so far as text.
    ``metadata["has_gold_judge"]`` (and ``has_gold_judge``) say whether ``info["gold"]``
    holds the gold judge's score or NaN.
    """

    metadata = {"render_modes": ["ansi"]}

    def __init__(self, vector_env: TokenVectorEnv, render_mode: str | None = None) -> None:
        if vector_env.num_envs != 1:
            raise ValueError(f"TokenEnv wraps a one-row TokenVectorEnv, got num_envs={vector_env.num_envs}")
        if vector_env.autoreset_mode != AutoresetMode.DISABLED:
            raise ValueError("TokenEnv needs its TokenVectorEnv in autoreset mode DISABLED")
        if render_mode not in (None, "ansi"):
            raise ValueError(f"render_mode must be None or 'ansi', got {render_mode!r}")
        self.vector_env = vector_env
        self.metadata = {**TokenEnv.metadata, "has_gold_judge": vector_env.has_gold_judge}
        self.render_mode = render_mode
        self.observation_space = vector_env.single_observation_space
        self.action_space = vector_env.single_action_space
        self._episode_over = True

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        super().reset(seed=seed)
        if options:
            raise ValueError(f"TokenEnv.reset takes no options, got {sorted(options)}")
        if seed is None and self.vector_env._stream_keys is None:
            # Derive the stream from Gymnasium's own seeding so `env.np_random` governs it.
            seed = int(self.np_random.integers(0, 2**63 - 1))
        observation, info = self.vector_env.reset(seed=seed)
        self._episode_over = False
        return _to_numpy(observation), unbatch_info(info, 0)

    def step(self, action: int | np.integer | np.ndarray) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        if self._episode_over:
            raise RuntimeError("the episode is over (or never started): call reset() before step()")
        batched = np.asarray(action)
        if batched.shape not in ((), (1,)):
            raise ValueError(f"action must be a single token id, got an array of shape {batched.shape}")
        observation, reward, terminated, truncated, info = self.vector_env.step(batched.reshape(1))
        done_terminated, done_truncated = bool(terminated[0]), bool(truncated[0])
        self._episode_over = done_terminated or done_truncated
        return (
            _to_numpy(observation),
            float(reward[0]),
            done_terminated,
            done_truncated,
            unbatch_info(info, 0),
        )

    @property
    def has_gold_judge(self) -> bool:
        """Whether ``info["gold"]`` holds the gold judge's score (else NaN)."""
        return self.vector_env.has_gold_judge

    def render(self) -> str | None:
        if self.render_mode != "ansi":
            return None
        env = self.vector_env
        prompt = env.prompts[0]
        ids = env._input_ids[0, env.max_prompt_tokens :][env._attention_mask[0, env.max_prompt_tokens :].bool()]
        response = env.tokenizer.decode(ids.tolist(), skip_special_tokens=False)
        return f"{prompt.text if prompt else ''}{response}"

    def close(self) -> None:
        self.vector_env.close()


def _to_numpy(observation: dict[str, Any]) -> dict[str, np.ndarray]:
    return {key: value[0].cpu().numpy() for key, value in observation.items()}


def unbatch_info(infos: dict[str, Any], index: int) -> dict[str, Any]:
    """Sub-env ``index``'s entries of a vector info, as Python scalars.

    Example:
        >>> import numpy as np
        >>> unbatch_info({"gold": np.array([0.5, 0.0]), "_gold": np.array([True, False])}, 0)
        {'gold': 0.5}
    """
    single: dict[str, Any] = {}
    for key, values in infos.items():
        if key.startswith("_") or not bool(infos.get(f"_{key}", np.ones(1, bool))[index]):
            continue
        if isinstance(values, dict):
            single[key] = unbatch_info(values, index)
        else:
            value = values[index]
            single[key] = value.item() if isinstance(value, np.generic) else value
    return single
