"""The fixed evaluation protocol of each env, with a version and a content hash.

A protocol fixes what a leaderboard number means: the test posts, the sampling streams,
the decodings (the task's protocol temperature, and greedy), the response budget, and the
shipped assets the metrics are computed with (the SFT policy that gains are paired
against, the preference model, the tokenizer). Its hash covers all of these, so a result
carries the exact protocol it was computed under: change a post, a setting or an asset
byte and the hash changes, and `validate` rejects the old submissions.

A run with seed ``s`` samples with stream ``sampling_seed + s``; the posts are the same for
every seed, and the SFT policy is sampled with the same stream, so every gain is paired.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

import rlhf_gym

METRICS = (
    "gold", "gold_change", "gold_change_sem", "win_rate", "proxy_reward", "kl", "rouge_l", "bleu",
    "perplexity", "distinct_1", "distinct_2", "response_length", "eos_rate",
)
"""What every run reports under each decoding (``kl`` under sampling only)."""


@dataclass(frozen=True)
class Protocol:
    """One env's evaluation protocol.

    Attributes:
        env_id: the registered env.
        version: changes whenever anything below changes meaning.
        split: the prompts' split (the test split: never trained or tuned on).
        posts: how many posts every run is evaluated on.
        batch_size: sub-envs per rollout batch (batch ``b`` resets with ``reset_seed + b * batch_size``).
        reset_seed: fixes the posts.
        sampling_seed: a run with seed ``s`` samples with ``sampling_seed + s`` (+ the batch offset).
        temperature: the sampled decoding's temperature (the task's protocol temperature).
        max_new_tokens: the response budget.
    """

    env_id: str
    version: str
    split: str
    posts: int
    batch_size: int
    reset_seed: int
    sampling_seed: int
    temperature: float
    max_new_tokens: int

    @property
    def hash(self) -> str:
        """``sha256:<hex>`` of the settings, the post ids and the shipped assets' bytes."""
        return _content_hash(self)

    def batch_seeds(self) -> list[int]:
        """The reset seed of each rollout batch."""
        return [self.reset_seed + b * self.batch_size for b in range(-(-self.posts // self.batch_size))]


PROTOCOLS: dict[str, Protocol] = {
    "RLHF-Summarize-v0": Protocol(
        env_id="RLHF-Summarize-v0", version="summarize-test-v1", split="test", posts=256, batch_size=64,
        reset_seed=40_000, sampling_seed=50_000, temperature=0.7, max_new_tokens=64,
    ),
}


def get_protocol(env_id: str) -> Protocol:
    """The protocol of ``env_id``.

    Raises:
        KeyError: the env has no leaderboard protocol (the message lists those that do).
    """
    if env_id not in PROTOCOLS:
        raise KeyError(f"env {env_id!r} has no leaderboard protocol; protocols exist for: {', '.join(PROTOCOLS)}")
    protocol = PROTOCOLS[env_id]
    task_temperature = rlhf_gym.get_task(env_id).temperature
    if protocol.temperature != task_temperature:  # one home for the temperature: the task
        raise RuntimeError(f"protocol {protocol.version} samples at {protocol.temperature}, the task at {task_temperature}")
    return protocol


@lru_cache(maxsize=8)
def _content_hash(protocol: Protocol) -> str:
    import gymnasium as gym

    env = gym.make_vec(protocol.env_id, num_envs=protocol.batch_size, split=protocol.split, autoreset_mode="disabled",
                       max_new_tokens=protocol.max_new_tokens)
    post_ids = []
    for seed in protocol.batch_seeds():
        _, info = env.reset(seed=seed)
        post_ids.extend(int(i) for i in info["prompt_index"])
    task = rlhf_gym.get_task(protocol.env_id)
    assets = {name: _folder_hash(Path(path)) for name, path in (
        ("sft_policy", task.policy_path()),
        ("tokenizer", task.assets_dir / "tokenizer"),
        ("preference_model", task.assets_dir / "preference_model"),
    )}
    content = {"protocol": asdict(protocol), "metrics": METRICS, "post_ids": post_ids[: protocol.posts], "assets": assets}
    return "sha256:" + hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()


def _folder_hash(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(folder)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()
