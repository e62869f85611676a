"""The fixed evaluation protocol of each env, derived from its task, with a version and a content hash.

A protocol fixes what a leaderboard number means: the test posts, the sampling streams,
the decodings (the task's protocol temperature, and greedy), the response budget, the
metrics, and the shipped assets the metrics are computed with (the SFT policy that gains
are paired against, the preference model, the tokenizer). Its hash covers all of these, so
a result carries the exact protocol it was computed under: change a post, a setting or an
asset byte and the hash changes, and `validate` rejects the old submissions.

No env has a hand-written protocol: `protocol_of` derives one from any task of the suite
(`rlhf_gym.get_task`), so a new world gets its leaderboard protocol by being a world.

- the temperature and the response budget are the task's (``Task.temperature``,
  ``Task.max_new_tokens``); the split, the number of posts, the batch size and the seeds
  are the same for every task (`SPLIT`, `POSTS`, `BATCH_SIZE`, `RESET_SEED`,
  `SAMPLING_SEED`); the version is ``"<task name>-test-v<task.protocol_revision>"``;
- the metric set is what the env has (`metric_set`): the gold metrics only with a gold
  judge, the reference metrics only with reference responses (``win_rate`` needs both);
- a world may add metrics of its own (`World.protocol_metrics`, computed by
  `World.response_metrics`: Dialogue's over-refusal rate, say); they follow the common
  ones in the metric set and its hash (`Protocol.world_metrics`);
- a protocol with a gold judge ranks by gold; one without ranks by the proxy (the learned
  reward agents optimise), and the table says so (`Protocol.ranked_by`);
- the assets' identity comes from the task's assets object (``task.assets.hashes()``:
  sha256 of each shipped folder, `rlhf_gym.worlds.assets.TaskAssets`). An assets object
  that stands for a hub model would return its pinned revision from the same method; a
  task that ships no assets has no protocol (the SFT policy every gain is paired with is
  one of them).

A run with seed ``s`` samples with stream ``sampling_seed + s``; the posts are the same for
every seed, and the SFT policy is sampled with the same stream, so every gain is paired.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

import rlhf_gym

if TYPE_CHECKING:
    from rlhf_gym.env.vector_env import TokenVectorEnv
    from rlhf_gym.worlds.task import Task

METRICS = (
    "gold", "gold_change", "gold_change_sem", "win_rate", "proxy_reward", "kl", "rouge_l", "bleu",
    "perplexity", "distinct_1", "distinct_2", "response_length", "eos_rate",
)
"""Every metric a run can report, in the order a protocol lists them (and hashes them):
each one under each decoding, ``kl`` under sampling only. A protocol reports the subset its
env supports (`metric_set`)."""

METRIC_NEEDS: dict[str, tuple[str, ...]] = {
    "gold": ("a gold judge",), "gold_change": ("a gold judge",), "gold_change_sem": ("a gold judge",),
    "win_rate": ("a gold judge", "reference responses"),  # the gold judge scores the policy against the reference
    "rouge_l": ("reference responses",), "bleu": ("reference responses",),
}
"""What a metric needs of the env; a metric not listed needs nothing but the env itself."""

RANKINGS: dict[str, tuple[str, str]] = {"gold": ("gold", "sft_gold"), "proxy_reward": ("proxy", "sft_proxy")}
"""The metric a table ranks by -> the ``per_post`` keys of the policy's and the SFT policy's
scores behind its interval: gold with a gold judge, else the proxy reward."""

SPLIT = "test"
"""The prompts' split: never trained or tuned on."""
POSTS, BATCH_SIZE = 256, 64
RESET_SEED, SAMPLING_SEED = 40_000, 50_000
_SETTINGS = ("env_id", "version", "split", "posts", "batch_size", "reset_seed", "sampling_seed", "temperature", "max_new_tokens")
"""The fields hashed as the protocol's settings (the metric set and the assets are hashed beside them)."""


def metric_set(*, gold_judge: bool, references: bool) -> tuple[str, ...]:
    """The metrics of an env with or without a gold judge and reference responses, in `METRICS` order.

    Example:
        >>> metric_set(gold_judge=True, references=True) == METRICS
        True
        >>> metric_set(gold_judge=False, references=True)[:3]
        ('proxy_reward', 'kl', 'rouge_l')
        >>> [m for m in METRICS if m not in metric_set(gold_judge=True, references=False)]
        ['win_rate', 'rouge_l', 'bleu']
    """
    has = {"a gold judge": gold_judge, "reference responses": references}
    return tuple(m for m in METRICS if all(has[need] for need in METRIC_NEEDS.get(m, ())))


def ranked_metric(metrics: tuple[str, ...] | list[str]) -> str:
    """The metric a protocol with these metrics ranks by: ``"gold"``, or ``"proxy_reward"`` without a gold judge.

    Example:
        >>> ranked_metric(METRICS), ranked_metric(metric_set(gold_judge=False, references=True))
        ('gold', 'proxy_reward')
    """
    return "gold" if "gold" in metrics else "proxy_reward"


@dataclass(frozen=True)
class Protocol:
    """One env's evaluation protocol (`protocol_of` derives it from the env's task).

    Attributes:
        env_id: the registered env.
        version: changes whenever anything below changes meaning (``"<task>-test-v<N>"``, N the task's ``protocol_revision``).
        split: the prompts' split (the test split: never trained or tuned on).
        posts: how many posts every run is evaluated on.
        batch_size: sub-envs per rollout batch (batch ``b`` resets with ``reset_seed + b * batch_size``).
        reset_seed: fixes the posts.
        sampling_seed: a run with seed ``s`` samples with ``sampling_seed + s`` (+ the batch offset).
        temperature: the sampled decoding's temperature (the task's protocol temperature).
        max_new_tokens: the response budget (the task's).
        metrics: what every run reports under each decoding (`metric_set`; ``kl`` under sampling only).
        task: the task the protocol was derived from (not compared: the fields above are the protocol).
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
    metrics: tuple[str, ...]
    task: Task = field(compare=False, repr=False)

    @property
    def has_gold_judge(self) -> bool:
        """Whether the env has a gold judge (then every gold metric is reported)."""
        return "gold" in self.metrics

    @property
    def world_metrics(self) -> tuple[str, ...]:
        """The metrics of the env's world, beyond the common `METRICS` (`World.protocol_metrics`)."""
        return tuple(m for m in self.metrics if m not in METRICS)

    @property
    def ranked_by(self) -> str:
        """The metric the table ranks by: ``"gold"``, or ``"proxy_reward"`` where the env has no gold judge."""
        return ranked_metric(self.metrics)

    @property
    def per_post_keys(self) -> tuple[str, str]:
        """The ``per_post`` keys a run records (the policy's and the SFT policy's score of each post)."""
        return RANKINGS[self.ranked_by]

    @cached_property
    def hash(self) -> str:
        """``sha256:<hex>`` of the settings, the metric set, the post ids and the shipped assets' identity.

        Computed once per protocol object: it builds the env to read the post ids and asks
        the task's assets for their identity (``task.assets.hashes()``: `TaskAssets` hashes
        each shipped folder's bytes; an assets object backed by a hub model would return its
        pinned revision instead).
        """
        settings = {name: getattr(self, name) for name in _SETTINGS}
        content = {"protocol": settings, "metrics": self.metrics, "post_ids": self.post_ids(), "assets": self.task.assets.hashes()}
        return "sha256:" + hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()

    def batch_seeds(self) -> list[int]:
        """The reset seed of each rollout batch."""
        return [self.reset_seed + b * self.batch_size for b in range(-(-self.posts // self.batch_size))]

    def make_env(self, device: str = "cpu") -> TokenVectorEnv:
        """The env the protocol evaluates in: ``batch_size`` sub-envs of the task on the split,
        no autoreset (`rlhf_gym.env.rollout.collect_episodes` runs whole batches)."""
        from rlhf_gym.worlds import make_vector_env

        return make_vector_env(self.batch_size, task=self.task, split=self.split, autoreset_mode="disabled",
                               max_new_tokens=self.max_new_tokens, device=device)

    def post_ids(self) -> list[int]:
        """The prompt index of each post of the protocol, in order."""
        env = self.make_env()
        ids: list[int] = []
        for seed in self.batch_seeds():
            _, info = env.reset(seed=seed)
            ids.extend(int(i) for i in info["prompt_index"])
        return ids[: self.posts]


PROTOCOLS: dict[str, Protocol] = {}
"""The protocols derived so far, by env id: `get_protocol` derives an env's protocol once and
keeps it here, so its hash is computed once per process. Nothing is written here by hand."""


def protocol_of(task: Task) -> Protocol:
    """The protocol of ``task``, derived from its declaration (see the module docstring).

    Raises:
        KeyError: the task ships no assets, or has no test split (one line, naming the task).
    """
    if task.assets is None:
        raise KeyError(f"task {task.name!r} ({task.env_id}) ships no assets, so it has no leaderboard protocol: the protocol "
                       "pairs every run with the shipped SFT policy and hashes the shipped assets")
    if SPLIT not in task.splits:
        raise KeyError(f"task {task.name!r} ({task.env_id}) has no {SPLIT!r} split (it has {', '.join(task.splits)}), "
                       "so it has no leaderboard protocol")
    return Protocol(
        env_id=task.env_id, version=f"{task.name}-test-v{task.protocol_revision}", split=SPLIT, posts=POSTS, batch_size=BATCH_SIZE,
        reset_seed=RESET_SEED, sampling_seed=SAMPLING_SEED, temperature=task.temperature, max_new_tokens=task.max_new_tokens,
        metrics=metric_set(gold_judge=task.gold_judge is not None, references=task.has_references) + world_metrics(task),
        task=task,
    )


def world_metrics(task: Task) -> tuple[str, ...]:
    """The metrics ``task``'s world adds to its protocol (`World.protocol_metrics`); none
    for a task made by hand (no world).

    Raises:
        KeyError: a world metric named like a common one (one line, naming it).
    """
    names = tuple(getattr(task.world, "protocol_metrics", ()) or ())
    clash = [name for name in names if name in METRICS or name.startswith("greedy_")]
    if clash:
        raise KeyError(f"task {task.name!r}: world metric {clash[0]!r} clashes with a common metric or column; rename it")
    return names


def get_protocol(env: str | Task) -> Protocol:
    """The protocol of an env of the suite (by id, derived once), or of a task object (derived each call).

    Raises:
        KeyError: ``env`` is not an env of the suite, or its task has no protocol (the
            message says which and why).
    """
    if not isinstance(env, str):
        return protocol_of(env)
    if env not in PROTOCOLS:
        suite = [entry.env_id for entry in rlhf_gym.SUITE]
        if env not in suite:
            raise KeyError(f"env {env!r} has no leaderboard protocol: it is not an env of the suite ({', '.join(suite)})")
        PROTOCOLS[env] = protocol_of(rlhf_gym.get_task(env))
    return PROTOCOLS[env]


def describe_needs(metric: str, metrics: tuple[str, ...] | list[str] | None = None) -> str:
    """What ``metric`` needs of the env, in words (for validation messages); with ``metrics``
    (a protocol's), only what an env with that metric set lacks.

    Example:
        >>> describe_needs("win_rate")
        'a gold judge and reference responses'
        >>> describe_needs("win_rate", metric_set(gold_judge=False, references=True))
        'a gold judge'
    """
    needs = METRIC_NEEDS.get(metric, ())
    if metrics is not None:  # an env has a need when the protocol reports a metric that needs only it
        needs = tuple(need for need in needs if not any(METRIC_NEEDS.get(m) == (need,) for m in metrics))
    return " and ".join(needs) or "nothing"

