"""The leaderboard protocol is derived from the task: its settings, its metric set, its ranking, its hash.

Each env's protocol hash is read from its committed submissions: a derivation that changed
one setting, the metric list, a post or an asset's hash would fail here.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

import rlhf_gym
from rlhf_gym.leaderboard.protocol import (
    BATCH_SIZE,
    METRICS,
    POSTS,
    RESET_SEED,
    SAMPLING_SEED,
    get_protocol,
    metric_set,
    protocol_of,
)

ENV = "RLHF-Summarize-v0"
SUBMISSIONS = sorted((Path(__file__).resolve().parents[2] / "leaderboard" / "submissions").glob("*.json"))
GOLD_METRICS = {"gold", "gold_change", "gold_change_sem", "win_rate"}
REFERENCE_METRICS = {"win_rate", "rouge_l", "bleu"}


def summarize_task(**changes):
    """The summarize task, with ``changes`` (a hand-made task: another env id keeps it out of the suite)."""
    return dataclasses.replace(rlhf_gym.get_task(ENV), **changes)


@pytest.mark.parametrize("env", ["RLHF-Summarize-v0", "RLHF-Dialogue-v0"])
def test_each_derived_protocol_has_the_hash_its_committed_submissions_carry(env):
    files = [json.loads(path.read_text(encoding="utf-8")) for path in SUBMISSIONS]
    mine = [data for data in files if data["env_id"] == env]
    committed = {data["protocol_hash"] for data in mine}
    versions = {data["protocol_version"] for data in mine}
    assert len(mine) >= 5 and len(committed) == 1 and len(versions) == 1, (committed, versions)
    protocol = get_protocol(env)
    assert protocol.hash == committed.pop() and protocol.version == versions.pop()


def test_the_derived_summarize_protocol_reports_every_common_metric_and_ranks_by_gold():
    protocol = get_protocol(ENV)
    assert protocol.metrics == METRICS  # summarize has a gold judge and references: every metric, in the hashed order
    assert protocol.ranked_by == "gold" and protocol.per_post_keys == ("gold", "sft_gold")
    assert get_protocol(ENV) is protocol  # derived once per process


def test_the_settings_come_from_the_task_and_the_rest_are_the_shared_defaults():
    task = summarize_task(name="terse", env_id="RLHF-Terse-v0", temperature=0.9, max_new_tokens=24)
    protocol = protocol_of(task)
    # the version's revision is the task's: 2 for the deep Summarize world
    assert (protocol.env_id, protocol.version, protocol.temperature, protocol.max_new_tokens) == ("RLHF-Terse-v0", "terse-test-v2", 0.9, 24)
    assert (protocol.split, protocol.posts, protocol.batch_size) == ("test", POSTS, BATCH_SIZE)
    assert (protocol.reset_seed, protocol.sampling_seed) == (RESET_SEED, SAMPLING_SEED)
    assert protocol.task is task and get_protocol(task) == protocol  # a task object is accepted directly
    summarize = get_protocol(ENV)
    assert (summarize.temperature, summarize.max_new_tokens) == (rlhf_gym.get_task(ENV).temperature, rlhf_gym.get_task(ENV).max_new_tokens)


def test_the_version_follows_the_task_protocol_revision():
    revised = protocol_of(summarize_task(name="terse", env_id="RLHF-Terse-v0", protocol_revision=3))
    assert revised.version == "terse-test-v3"
    assert revised.hash != protocol_of(summarize_task(name="terse", env_id="RLHF-Terse-v0")).hash
    with pytest.raises(ValueError, match="protocol_revision must be >= 1, got 0"):
        summarize_task(protocol_revision=0)


def test_a_task_without_a_gold_judge_has_no_gold_metrics_and_ranks_by_the_proxy():
    protocol = get_protocol(summarize_task(name="nogold", env_id="RLHF-NoGold-v0", gold_judge=None))
    assert not GOLD_METRICS & set(protocol.metrics)
    assert protocol.metrics == tuple(m for m in METRICS if m not in GOLD_METRICS)  # METRICS order kept
    assert {"rouge_l", "bleu", "proxy_reward", "kl"} <= set(protocol.metrics)  # it still has references
    assert not protocol.has_gold_judge and protocol.ranked_by == "proxy_reward"
    assert protocol.per_post_keys == ("proxy", "sft_proxy")


def test_a_task_without_references_has_no_reference_metrics():
    protocol = get_protocol(summarize_task(name="norefs", env_id="RLHF-NoRefs-v0", has_references=False))
    assert not REFERENCE_METRICS & set(protocol.metrics)
    assert {"gold", "gold_change", "gold_change_sem"} <= set(protocol.metrics) and protocol.ranked_by == "gold"
    bare = metric_set(gold_judge=False, references=False)
    assert bare == ("proxy_reward", "kl", "perplexity", "distinct_1", "distinct_2", "response_length", "eos_rate")


def test_the_metric_set_is_part_of_the_hash():
    protocol = get_protocol(ENV)
    without_gold = dataclasses.replace(protocol, metrics=metric_set(gold_judge=False, references=True))
    assert without_gold.hash != protocol.hash


def test_a_task_without_assets_or_a_test_split_and_an_unknown_env_have_no_protocol():
    with pytest.raises(KeyError, match="task 'bare' .* ships no assets, so it has no leaderboard protocol"):
        get_protocol(summarize_task(name="bare", env_id="RLHF-Bare-v0", assets=None))
    with pytest.raises(KeyError, match="has no 'test' split"):
        get_protocol(summarize_task(name="notest", env_id="RLHF-NoTest-v0", splits=("train", "valid")))
    with pytest.raises(KeyError, match="'Nope-v0' has no leaderboard protocol: it is not an env of the suite"):
        get_protocol("Nope-v0")


def test_the_dialogue_protocol_adds_its_worlds_metrics_after_the_common_ones():
    protocol = get_protocol("RLHF-Dialogue-v0")
    assert protocol.version == "dialogue-test-v1" and protocol.metrics[: len(METRICS)] == METRICS
    assert protocol.world_metrics == ("helpful_win_rate", "harmless_win_rate", "over_refusal", "harmful_compliance",
                                      "clarification_precision")
