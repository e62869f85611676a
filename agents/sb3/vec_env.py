"""`SB3VecEnv`: a Stable-Baselines3 ``VecEnv`` over a batched `TokenVectorEnv`.

The batched env keeps its tensors on its device; this adapter is the one place where they
become numpy for SB3 (STYLE.md: conversion happens only inside the adapter that needs it).
The class docstring lists the contract, in the manner of IsaacLab's SB3 wrapper.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector import AutoresetMode, VectorEnv
from stable_baselines3.common.vec_env.base_vec_env import (
    VecEnv,
    VecEnvIndices,
    VecEnvObs,
    VecEnvStepReturn,
)

from rlhf_gym.env.single_env import unbatch_info
from rlhf_gym.env.vector_env import TokenVectorEnv

MaskProvider = Callable[[dict[str, torch.Tensor]], torch.Tensor]
"""``observation -> (N, V) bool`` allowed next tokens; observation tensors on the env's device."""

_BRIDGE_METHODS = ("action_masks",)  # per-sub-env methods the bridge answers itself


class SB3VecEnv(VecEnv):
    """SB3's ``VecEnv`` API over a `TokenVectorEnv` (or a vector wrapper of one) in SAME_STEP mode.

    ## What SB3 expects, and what this adapter does
    - ``reset() -> obs``: resets every sub-env and returns ``{"input_ids", "attention_mask"}``,
      each an ``(N, L)`` int64 numpy array. Seeds set by ``seed(s)`` are used by this next
      reset only (SB3 semantics): sub-env ``i`` gets ``s + i``, exactly the keying of
      ``TokenVectorEnv.reset(seed=s)``, so ``seed(s); reset()`` equals ``env.reset(seed=s)``.
      Options set by ``set_options`` must be the same for every sub-env (they go to the one
      batched reset). The reset info of each sub-env is in ``reset_infos[i]``.
    - ``step_async(actions)`` / ``step_wait()``: ``actions`` is an ``(N,)`` integer array of
      token ids; returns ``(obs, rewards (N,) float32, dones (N,) bool, infos: list[dict])``.
    - Resets happen inside the step (the env's ``SAME_STEP`` autoreset, which SB3 assumes):
      for a finished sub-env ``obs`` already holds the next episode's first observation,
      ``infos[i]["terminal_observation"]`` holds the last one (a dict of ``(L,)`` arrays,
      from the env's ``infos["final_obs"]``) and ``reset_infos[i]`` the new episode's info.
    - ``infos[i]`` of a finished sub-env carries the episode's reward components, copied
      from the env's ``final_info``: ``proxy`` (and its alias ``preference``), ``penalty``,
      ``gold`` (NaN without a gold judge), ``response_length``, ``prompt_index``, and the
      texts unless disabled. Per-step
      keys of wrappers (e.g. ``ref_logprob`` of `rlhf_gym.env.kl_penalty`) are copied for
      every sub-env. ``infos[i]["truncated"]`` is the env's truncation flag.
    - ``infos[i]["TimeLimit.truncated"]``: SB3 adds ``gamma * V(terminal_observation)`` to
      the last reward of an episode marked so. Here the response budget is part of the
      task: a truncated response is scored and its episode is over, and the observation
      shows how many tokens were written, so there is nothing to bootstrap (our PPO
      bootstraps nothing either). It is therefore False unless
      ``bootstrap_truncation=True``, which sets it to ``truncated and not terminated``
      (Gymnasium's meaning of a time limit).
    - ``action_masks() -> (N, V) bool``: what sb3-contrib's MaskablePPO asks for (through
      ``env_method("action_masks")``, which returns the N rows). It delegates to
      ``mask_provider(observation)`` on the current observation (tensors on the env's
      device), or allows every token when there is no provider.
    - ``get_attr`` / ``set_attr`` / ``env_method``: sub-envs are rows of one batched env,
      not separate objects. Attributes and methods are looked up along the wrapper chain
      (outermost first, down to the `TokenVectorEnv`) and answered once for all sub-envs:
      ``get_attr`` and ``env_method`` return that one value for each requested index,
      ``set_attr`` sets it on the object that has it. Only ``action_masks`` is per row.
      Targeting a proper subset of sub-envs otherwise raises ``ValueError``.
    - ``env_is_wrapped(cls)``: True for every index if a wrapper of that class is in the
      vector wrapper chain (a ``gymnasium.Wrapper`` such as SB3's ``Monitor`` never is).
    - ``seed`` returns the seeds; ``close`` closes the env; rendering is not supported
      (``render_mode`` is None).

    Works under ``VecMonitor`` and ``VecNormalize(norm_obs=False)``. Observations are
    categorical token ids: never normalise them (``norm_obs=True`` would average ids).

    Cost: the numpy conversion is one device-to-host copy of the ``(N, L)`` buffers per
    step; building SB3's list of info dicts is the only per-sub-env Python loop, which the
    SB3 API requires.

    Args:
        env: a `TokenVectorEnv` or a ``gymnasium.vector.VectorWrapper`` chain around one,
            in autoreset mode ``SAME_STEP``.
        mask_provider: optional ``observation -> (N, V) bool`` tensor of allowed tokens,
            e.g. `rlhf_gym.agents.sb3.masks.TopPMaskProvider`.
        bootstrap_truncation: report truncation as a time limit (see above).
    """

    def __init__(
        self,
        env: VectorEnv,
        *,
        mask_provider: MaskProvider | None = None,
        bootstrap_truncation: bool = False,
    ) -> None:
        core = env.unwrapped
        if not isinstance(core, TokenVectorEnv):
            raise TypeError(
                f"SB3VecEnv wraps a TokenVectorEnv (or a wrapper of one), got {type(core).__name__}"
            )
        mode = env.metadata.get("autoreset_mode")
        if mode != AutoresetMode.SAME_STEP:
            raise ValueError(
                f"SB3 resets finished sub-envs inside the step: make the env with "
                f"autoreset_mode='same_step', got {mode}"
            )
        self.env = env
        self.core = core
        self.mask_provider = mask_provider
        self.bootstrap_truncation = bool(bootstrap_truncation)
        self._actions: np.ndarray | None = None
        self._obs: dict[str, torch.Tensor] | None = None  # current observation, on the device
        super().__init__(core.num_envs, core.single_observation_space, core.single_action_space)

    # Reset and step -----------------------------------------------------------------
    def reset(self) -> VecEnvObs:
        seeds = self._seeds
        if all(s is None for s in seeds):
            seed: list[int] | None = None
        elif any(s is None for s in seeds):
            raise ValueError(f"seed every sub-env or none, got seeds {seeds}")
        else:
            seed = [int(s) for s in seeds]  # type: ignore[arg-type]
        options = self._options[0]
        if any(o != options for o in self._options):
            raise ValueError(
                "the batched env resets all sub-envs in one call: set_options must give every "
                f"sub-env the same options, got {self._options}"
            )
        observation, info = self.env.reset(seed=seed, options=options or None)
        self._reset_seeds()
        self._reset_options()
        self._obs = observation
        self.reset_infos = [unbatch_info(info, i) for i in range(self.num_envs)]
        return _to_numpy(observation)

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions)

    def step_wait(self) -> VecEnvStepReturn:
        if self._actions is None:
            raise RuntimeError("call step_async(actions) before step_wait()")
        if self._obs is None:
            raise RuntimeError("call reset() before step()")
        actions, self._actions = self._actions, None
        observation, rewards, terminated, truncated, vector_info = self.env.step(actions)
        self._obs = observation
        terminated_np = terminated.cpu().numpy()
        truncated_np = truncated.cpu().numpy()
        dones = terminated_np | truncated_np  # (N,) bool
        time_limit = truncated_np & ~terminated_np  # Gymnasium's meaning of a time limit
        if not self.bootstrap_truncation:
            time_limit = np.zeros_like(dones)

        final_obs = vector_info.pop("final_obs", None)
        vector_info.pop("_final_obs", None)
        final_info = vector_info.pop("final_info", {})
        vector_info.pop("_final_info", None)
        final_obs_np = _to_numpy(final_obs) if final_obs is not None else None
        infos: list[dict[str, Any]] = []
        for i in range(self.num_envs):  # SB3's API is a list of dicts: one loop, unavoidable
            step_info = unbatch_info(vector_info, i)
            if dones[i]:
                # The top-level reset keys (prompt_index) belong to the new episode.
                reset_keys = {"prompt_index"}
                self.reset_infos[i] = {k: step_info.pop(k) for k in reset_keys if k in step_info}
                step_info.update(unbatch_info(final_info, i))
                assert final_obs_np is not None
                step_info["terminal_observation"] = {k: v[i] for k, v in final_obs_np.items()}
            step_info["truncated"] = bool(truncated_np[i])
            step_info["TimeLimit.truncated"] = bool(time_limit[i])
            infos.append(step_info)
        rewards_np = rewards.detach().float().cpu().numpy()
        return _to_numpy(observation), rewards_np, dones, infos

    # Action masks (sb3-contrib MaskablePPO) ------------------------------------------
    def action_masks(self) -> np.ndarray:
        """(N, V) bool: the tokens each sub-env may take now (all True without a provider)."""
        if self._obs is None:
            raise RuntimeError("call reset() before action_masks()")
        shape = (self.num_envs, self.core.vocab_size)
        if self.mask_provider is None:
            return np.ones(shape, dtype=bool)
        masks = self.mask_provider(self._obs)
        if not (isinstance(masks, torch.Tensor) and masks.dtype == torch.bool and masks.shape == shape):
            raise ValueError(
                f"mask_provider must return a bool tensor of shape {shape}, got {type(masks).__name__} "
                f"{getattr(masks, 'dtype', None)} {tuple(getattr(masks, 'shape', ()))}"
            )
        if not bool(masks.any(-1).all()):
            rows = torch.nonzero(~masks.any(-1)).flatten().tolist()
            raise ValueError(f"mask_provider allowed no token for sub-envs {rows[:8]}")
        return masks.cpu().numpy()

    # Attributes and methods ------------------------------------------------------------
    def _chain(self) -> list[VectorEnv]:
        """The wrapper chain, outermost first, ending with the `TokenVectorEnv`."""
        chain: list[VectorEnv] = [self.env]
        while chain[-1] is not self.core:
            chain.append(chain[-1].env)  # type: ignore[attr-defined]
        return chain

    def _owner(self, name: str) -> Any:
        for env in self._chain():
            if hasattr(env, name):
                return env
        names = [type(env).__name__ for env in self._chain()]
        raise AttributeError(f"no env in the chain {names} has attribute {name!r}")

    def _all_indices(self, indices: VecEnvIndices, what: str) -> list[int]:
        rows = list(self._get_indices(indices))
        if sorted(set(rows)) != list(range(self.num_envs)):
            raise ValueError(
                f"{what} acts on the batched env as a whole; it cannot target sub-envs {rows} "
                f"of {self.num_envs} (pass indices=None)"
            )
        return rows

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        """The attribute's one value, repeated for each index (see the class docstring)."""
        rows = list(self._get_indices(indices))
        if attr_name in _BRIDGE_METHODS:
            return [getattr(self, attr_name)] * len(rows)
        return [getattr(self._owner(attr_name), attr_name)] * len(rows)

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        """Set the attribute on the env of the chain that has it (all sub-envs at once)."""
        self._all_indices(indices, f"set_attr({attr_name!r})")
        try:
            owner = self._owner(attr_name)
        except AttributeError:
            owner = self.core
        setattr(owner, attr_name, value)

    def env_method(
        self, method_name: str, *method_args: Any, indices: VecEnvIndices = None, **method_kwargs: Any
    ) -> list[Any]:
        """Call a method once for the batched env; ``action_masks`` gives one row per index."""
        rows = list(self._get_indices(indices))
        if method_name == "action_masks":
            masks = self.action_masks(*method_args, **method_kwargs)
            return [masks[i] for i in rows]
        self._all_indices(indices, f"env_method({method_name!r})")
        result = getattr(self._owner(method_name), method_name)(*method_args, **method_kwargs)
        return [result] * len(rows)

    def env_is_wrapped(
        self, wrapper_class: type[gym.Wrapper], indices: VecEnvIndices = None
    ) -> list[bool]:
        """Whether a wrapper of ``wrapper_class`` is in the vector wrapper chain, per index."""
        wrapped = any(isinstance(env, wrapper_class) for env in self._chain())
        return [wrapped] * len(list(self._get_indices(indices)))

    def seed(self, seed: int | None = None) -> Sequence[int | None]:
        """Seed the next reset: sub-env ``i`` gets ``seed + i`` (a random base if None)."""
        return super().seed(seed)

    def close(self) -> None:
        self.env.close()

    def get_images(self) -> Sequence[np.ndarray | None]:
        raise NotImplementedError("token envs have no images; decode observations with the tokenizer")


def _to_numpy(observation: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    """Device tensors to numpy: ``{key: (N, L) int64}``."""
    return {key: value.cpu().numpy() for key, value in observation.items()}

