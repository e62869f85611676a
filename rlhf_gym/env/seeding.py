"""Per-env random streams that need no Python loop: counter-based prompt draws.

Each sub-env owns a stream keyed by its seed, exactly as Gymnasium's ``SyncVectorEnv``
seeds sub-env ``i`` with ``seed + i``. The env's only randomness is which prompt an
episode gets, so the stream is counter-based: episode ``k`` of the env keyed ``s`` gets
prompt ``splitmix64(splitmix64(s) ^ k) mod num_prompts``. A whole batch of draws is then
one vectorised numpy expression, and a single env seeded ``s + i`` replays sub-env ``i``
of a batched env seeded ``s`` exactly. (Gymnasium's own batched CartPole shares one
generator across sub-envs and so cannot match its single env; this design can.)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

_MAX_SEED = 2**63 - 1


def splitmix64(x: np.ndarray) -> np.ndarray:
    """The splitmix64 finaliser (Steele et al. 2014), vectorised over uint64 arrays.

    Example:
        >>> int(splitmix64(np.array([0], dtype=np.uint64))[0])
        16294208416658607535
    """
    with np.errstate(over="ignore"):  # uint64 arithmetic wraps by design
        z = np.asarray(x, dtype=np.uint64) + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def draw_prompt_indices(keys: np.ndarray, episode_counts: np.ndarray, num_prompts: int) -> np.ndarray:
    """Prompt index of episode ``episode_counts[i]`` of the stream keyed ``keys[i]``.

    Args:
        keys: (R,) uint64 stream keys.
        episode_counts: (R,) non-negative episode numbers within each stream.
        num_prompts: size of the prompt source.

    Returns:
        (R,) int64 indices in ``[0, num_prompts)``.
    """
    if num_prompts < 1:
        raise ValueError(f"the prompt source is empty (num_prompts={num_prompts})")
    mixed = splitmix64(splitmix64(keys) ^ np.asarray(episode_counts, dtype=np.uint64))
    return (mixed % np.uint64(num_prompts)).astype(np.int64)


def seed_keys(seed: int | Sequence[int], num_envs: int) -> np.ndarray:
    """Stream keys for ``num_envs`` sub-envs: ``seed + i`` for an int, else the seeds given.

    Raises:
        ValueError: a negative or too large seed, or a list of the wrong length.
    """
    seeds = [seed + i for i in range(num_envs)] if isinstance(seed, (int, np.integer)) else list(seed)
    if len(seeds) != num_envs:
        raise ValueError(f"expected {num_envs} seeds (one per sub-env), got {len(seeds)}: {seeds}")
    for value in seeds:
        if not isinstance(value, (int, np.integer)) or not 0 <= value <= _MAX_SEED:
            raise ValueError(f"seeds must be integers in [0, 2**63), got {value!r}")
    return np.asarray(seeds, dtype=np.uint64)


def entropy_keys(num_envs: int) -> np.ndarray:
    """Fresh unpredictable stream keys, for a reset without a seed on an unseeded env."""
    base = int(np.random.SeedSequence().generate_state(1, dtype=np.uint64)[0]) & _MAX_SEED
    return seed_keys([(base + i) & _MAX_SEED for i in range(num_envs)], num_envs)
