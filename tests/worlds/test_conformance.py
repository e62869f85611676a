"""What every world of the suite must satisfy, checked on each world of `rlhf_gym.SUITE`.

A world joins the suite by declaring ``SUITE_ENV`` in its folder; these tests then run on
it with no edit here (the test ids are the env ids). They check the env against both
checkers, the world's splits and determinism, its gold judge and perturbations, the
calibration of its annotators, that its shipped card tells the truth (recomputed on a
subsample from the shipped models) and, once it declares them, the headroom audit's
thresholds.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env as gym_check_env
from hypothesis import given, settings
from hypothesis import strategies as st
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import rlhf_gym
from rlhf_gym.worlds import AnnotatorPool, Sample, Task, World
from rlhf_gym.worlds.annotators import scored_gold_agreement

ENV_IDS = [env.env_id for env in rlhf_gym.SUITE]
BAND = (0.65, 0.85)  # annotator-gold agreement of human labellers (~73-77% on TL;DR, Stiennon et al. 2020)


def _world(env_id: str) -> World:
    world = rlhf_gym.get_task(env_id).world
    assert world is not None, f"{env_id} has no World"
    return world


def _base(sample: Sample) -> str:
    """The response a perturbation damages: the reference, or the SFT target without one."""
    return sample.reference if sample.reference is not None else sample.sft_target


# Tolerance of a figure recomputed on a subsample ------------------------------------------
def subsample_tolerance(sd: float, n: int, population: int) -> float:
    """How far the mean of ``n`` of a card's ``population`` items may sit from the card's mean.

    Four standard errors of a mean of ``n`` drawn without replacement (finite-population
    correction) from items of spread ``sd``, plus ``1 / n``: one item's worth, for shares
    whose subsample happens to have no spread, and for near-ties that flip with the batch's
    padding width.
    """
    n = min(n, population)
    fpc = (population - n) / max(population - 1, 1)
    return 4.0 * sd * math.sqrt(fpc / n) + 1.0 / n


def share_tolerance(p: float, n: int, population: int) -> float:
    """`subsample_tolerance` of a share whose value over the whole population is ``p``."""
    return subsample_tolerance(math.sqrt(max(p * (1.0 - p), 0.0)), n, population)


def mean_tolerance(values: Sequence[float], population: int) -> float:
    """`subsample_tolerance` of a mean, its spread estimated from the subsample ``values``."""
    return subsample_tolerance(float(np.std(values, ddof=1)), len(values), population)


# The global random state ------------------------------------------------------------------
@contextmanager
def global_random_state_untouched() -> Iterator[None]:
    """Fail if the block changes numpy's, Python's or torch's global random state."""
    numpy_state, python_state, torch_state = np.random.get_state(), random.getstate(), torch.get_rng_state()
    yield
    after = np.random.get_state()
    assert after[0] == numpy_state[0] and np.array_equal(after[1], numpy_state[1]) and after[2:] == numpy_state[2:], \
        "numpy's global random state changed"
    assert random.getstate() == python_state, "Python's global random state changed"
    assert torch.equal(torch.get_rng_state(), torch_state), "torch's global random state changed"


# The env ----------------------------------------------------------------------------------
def test_env_passes_gymnasium_and_sb3_checkers(task: Task) -> None:
    env = gym.make(task.env_id)
    gym_check_env(env.unwrapped)
    sb3_check_env(env.unwrapped)
    obs, _ = env.reset(seed=0)
    assert obs["input_ids"].shape == (task.max_prompt_tokens + task.max_new_tokens,)
    env.close()


def _trajectory(env_id: str, seed: int, actions: np.ndarray) -> list[tuple[Any, ...]]:
    """Two episodes of ``gym.make(env_id)`` on the valid split, reset with ``seed`` and stepped
    with ``actions``: each step's observation and reward, and each episode's final info."""
    env = gym.make(env_id, split="valid", max_new_tokens=len(actions))
    steps: list[tuple[Any, ...]] = []
    obs, _ = env.reset(seed=seed)
    for _ in range(2):
        steps.append((obs["input_ids"].copy(), obs["attention_mask"].copy()))
        for action in actions:
            obs, reward, terminated, truncated, info = env.step(int(action))
            steps.append((obs["input_ids"].copy(), reward, terminated, truncated))
            if terminated or truncated:
                steps.append((info["prompt_index"], info["prompt_text"], info["response_text"], info["gold"],
                              info["preference"]))
                break
        obs, _ = env.reset()
    env.close()
    return steps


def _same(a: list[tuple[Any, ...]], b: list[tuple[Any, ...]]) -> bool:
    return len(a) == len(b) and all(
        len(x) == len(y) and all(np.array_equal(u, v) for u, v in zip(x, y)) for x, y in zip(a, b)
    )


def test_same_seed_same_trajectory_and_global_random_state_untouched(task: Task, world: World) -> None:
    """Fixed actions (never EOS, so each episode runs to its budget) in a seeded env: the
    same seed gives the same observations, rewards and prompts, another seed other prompts,
    and neither making the env (loading its models) nor its episodes draws from a global
    generator."""
    vocab, eos = len(task.tokenizer()), task.tokenizer().eos_token_id
    actions = np.random.default_rng(0).integers(0, vocab, size=6)
    actions[actions == eos] = (eos + 1) % vocab
    with global_random_state_untouched():
        first = _trajectory(task.env_id, 3, actions)
    assert _same(first, _trajectory(task.env_id, 3, actions))
    assert not _same(first, _trajectory(task.env_id, 4, actions))
    # Each episode ends after len(actions) steps, and its prompt is the world's valid item.
    ends = [step for step in first if len(step) == 5 and isinstance(step[1], str)]
    assert len(ends) == 2 and len(first) == 2 * (len(actions) + 2)
    start, _ = world.splits["valid"]
    for index, prompt_text, _, gold, _ in ends:
        sample = world.generate(start + int(index))
        assert prompt_text == sample.prompt
        assert 0.0 <= gold <= 1.0


# Splits and determinism -------------------------------------------------------------------
def test_splits_are_disjoint_and_split_of_agrees_with_ids(task: Task, world: World) -> None:
    splits = world.splits
    assert task.splits == splits.names and {"train", "valid", "test"} <= set(splits.names)
    spans = sorted(splits[name] for name in splits.names)
    for (_, stop), (start, _) in zip(spans, spans[1:]):
        assert stop <= start, spans
    for name in splits.names:
        start, stop = splits[name]
        size = stop - start
        for item_id in [*splits.ids(name, 3), *splits.ids(name, 3, offset=size - 3)]:
            assert splits.split_of(item_id) == name
            assert start <= item_id < stop
        assert len(task.prompt_source(name)) == size
        with pytest.raises(ValueError, match=name):
            splits.ids(name, 1, offset=size)
    for outside in (-1, max(stop for _, stop in spans)):
        with pytest.raises(ValueError, match=str(outside)):
            splits.split_of(outside)


def test_generate_is_a_pure_function_of_the_id(world: World) -> None:
    ids = [i for name in world.splits.names for i in world.splits.ids(name, 20)]
    with global_random_state_untouched():
        first = [world.generate(i) for i in ids]
        second = [world.generate(i) for i in ids]
        rng = np.random.default_rng(0)
        for sample in first[:10]:
            world.gold_scores([sample.record], [_base(sample)])
            world.comparison_candidates(sample, rng)
            for kind in world.perturbations:
                world.perturb(sample, _base(sample), kind, rng)
    for a, b, item_id in zip(first, second, ids):
        assert a.id == b.id == item_id
        assert (a.prompt, a.reference, a.sft_target) == (b.prompt, b.reference, b.sft_target)
        assert repr(a.record) == repr(b.record)
    assert len({s.prompt for s in first}) > 0.9 * len(first)  # ids give different items
    assert all(s.prompt and isinstance(s.sft_target, str) for s in first)
    assert all((s.reference is not None) == world.has_references for s in first)


def test_perturbations_and_candidates_are_seeded(world: World) -> None:
    sample = world.samples("valid", 1)[0]
    for kind in world.perturbations:
        a = world.perturb(sample, _base(sample), kind, np.random.default_rng(5))
        assert a == world.perturb(sample, _base(sample), kind, np.random.default_rng(5))
    assert world.comparison_candidates(sample, np.random.default_rng(5)) == \
        world.comparison_candidates(sample, np.random.default_rng(5))
    with pytest.raises(ValueError, match="not_a_perturbation"):
        world.perturb(sample, _base(sample), "not_a_perturbation", np.random.default_rng(0))


# The gold judge ---------------------------------------------------------------------------
_SAMPLES = {env_id: _world(env_id).samples("valid", 20) for env_id in ENV_IDS}
_WORDS = {
    env_id: sorted({w for s in samples for text in (_base(s), s.sft_target) for w in text.split()})
    for env_id, samples in _SAMPLES.items()
}


def _assert_unit_interval(world: World, records: list[Any], texts: list[str]) -> None:
    scores = world.gold_scores(records, texts)
    assert isinstance(scores, np.ndarray) and scores.shape == (len(texts),) and scores.dtype == np.float64
    assert np.isfinite(scores).all() and (scores >= 0.0).all() and (scores <= 1.0).all(), (texts, scores)


@pytest.mark.parametrize("env_id", ENV_IDS)
@settings(max_examples=40, deadline=None)
@given(texts=st.lists(st.text(max_size=200), min_size=1, max_size=4), which=st.integers(0, 19))
def test_gold_of_any_text_is_in_the_unit_interval(env_id: str, texts: list[str], which: int) -> None:
    world, sample = _world(env_id), _SAMPLES[env_id][which]
    _assert_unit_interval(world, [sample.record] * len(texts), texts)


@pytest.mark.parametrize("env_id", ENV_IDS)
@settings(max_examples=40, deadline=None)
@given(data=st.data(), which=st.integers(0, 19))
def test_gold_of_a_mix_of_the_worlds_own_words_is_in_the_unit_interval(env_id: str, data: st.DataObject,
                                                                       which: int) -> None:
    """Near-misses a policy writes: the world's reference words, shuffled, repeated, cut."""
    words = st.lists(st.sampled_from(_WORDS[env_id]), max_size=60).map(lambda ws: " " + " ".join(ws))
    texts = data.draw(st.lists(words, min_size=1, max_size=4))
    world, sample = _world(env_id), _SAMPLES[env_id][which]
    _assert_unit_interval(world, [sample.record] * len(texts), texts)


def test_references_score_at_most_one_and_beat_the_empty_response(world: World) -> None:
    samples = world.samples("test", 64)
    base = world.gold_scores([s.record for s in samples], [_base(s) for s in samples])
    empty = world.gold_scores([s.record for s in samples], [""] * len(samples))
    assert (base <= 1.0).all() and (empty <= base).all() and empty.mean() < base.mean()


# Perturbations ----------------------------------------------------------------------------
_KINDS = [
    pytest.param(env_id, kind, id=f"{env_id}-{kind}")
    for env_id in ENV_IDS
    for kind in (sorted(_world(env_id).perturbations) or [None])
]


@pytest.mark.parametrize(("env_id", "kind"), _KINDS)
def test_each_perturbation_lowers_gold_on_average(env_id: str, kind: str | None) -> None:
    world = _world(env_id)
    if kind is None:
        pytest.skip(f"{env_id} declares no perturbations")
    samples = world.samples("valid", 50)
    rng = np.random.default_rng(0)
    records = [s.record for s in samples]
    before = world.gold_scores(records, [_base(s) for s in samples])
    perturbed = [world.perturb(s, _base(s), kind, rng) for s in samples]
    after = world.gold_scores(records, perturbed)
    assert all(isinstance(text, str) for text in perturbed)
    assert (after <= 1.0).all() and (after >= 0.0).all()
    assert after.mean() < before.mean(), (kind, before.mean(), after.mean())
    # It changes most responses (a perturbation that rarely applies is no perturbation).
    assert np.mean([p != _base(s) for p, s in zip(perturbed, samples)]) >= 0.5, kind


# Annotators -------------------------------------------------------------------------------
def _candidate_pairs(world: World, count: int, seed: int) -> tuple[list[float], list[float], list[int], list[int]]:
    """Gold scores and word counts of pairs of candidates the build's comparisons hold (the
    reference, the SFT target, perturbations of the reference, the world's own candidates),
    six random pairs per valid prompt; SFT samples are left out (they need the model)."""
    rng = np.random.default_rng(seed)
    gold_a, gold_b, words_a, words_b = [], [], [], []
    for sample in world.samples("valid", count):
        candidates = [_base(sample), sample.sft_target]
        candidates += [world.perturb(sample, _base(sample), kind, rng) for kind in sorted(world.perturbations)]
        candidates += [text for text, _ in world.comparison_candidates(sample, rng)]
        candidates = list(dict.fromkeys(candidates))
        if len(candidates) < 2:
            continue
        gold = world.gold_scores([sample.record] * len(candidates), candidates)
        for _ in range(6):
            a, b = rng.choice(len(candidates), size=2, replace=False)
            gold_a.append(float(gold[a]))
            gold_b.append(float(gold[b]))
            words_a.append(len(candidates[a].split()))
            words_b.append(len(candidates[b].split()))
    return gold_a, gold_b, words_a, words_b


def test_annotators_agree_with_gold_about_as_often_as_human_labellers(task: Task, world: World) -> None:
    pairs = _candidate_pairs(world, 300, seed=0)
    assert len(pairs[0]) >= 1000
    pool = AnnotatorPool.from_calibration(world.annotators, seed=0)
    agreement = scored_gold_agreement(pool, *pairs, rng=np.random.default_rng(1))
    assert BAND[0] <= agreement <= BAND[1], agreement
    # Not vacuous: the pairs differ in gold, so a noiseless, decisive pool always agrees.
    oracle = AnnotatorPool(temperature=1e-9, length_bias=0.0, noise=0.0)
    assert scored_gold_agreement(oracle, *pairs, rng=np.random.default_rng(1)) >= 0.99
    # And the build's own pairs (SFT samples among them) agreed in the band too.
    assert BAND[0] <= task.assets.card()["comparisons"]["annotator_gold_agreement"] <= BAND[1]


# The card, recomputed ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def card(task: Task) -> dict[str, Any]:
    card = task.assets.card()
    assert card["task"] == task.env_id
    return card


@pytest.fixture(scope="module")
def preference_model(task: Task):  # -> PreferenceModel
    return task.preference_model(torch.device("cpu"))


def test_card_describes_the_shipped_assets(task: Task, world: World, card: dict[str, Any]) -> None:
    config = card["config"]
    assert (config["max_prompt_tokens"], config["max_new_tokens"]) == (world.max_prompt_tokens, world.max_new_tokens)
    assert card["tokenizer"]["vocab_size"] == len(task.tokenizer())
    assert card["preference_model"]["members"] == config["preference_members"]
    comparisons = card["comparisons"]
    # No scorer beats the Bayes rate of the labels; the gold judge comes close to it.
    # (Both accuracies are estimates over the valid pairs; the ceiling is an expectation.)
    ceiling = comparisons["valid_label_accuracy_ceiling"]
    noise = share_tolerance(ceiling, comparisons["valid_pairs"], 10**9)
    assert 0.5 < card["preference_model"]["valid_accuracy_vs_annotators"] <= ceiling + noise
    assert comparisons["valid_gold_judge_accuracy_vs_annotators"] <= ceiling + noise
    by_source = card["preference_model"]["valid_accuracy_by_source"]
    assert comparisons["valid_pairs"] <= sum(f["pairs"] for f in by_source.values()) <= 2 * comparisons["valid_pairs"]
    assert {"sft_sample", *(["reference"] if world.has_references else [])} <= set(by_source)
    if world.has_references:
        assert set(card["preference_model"]["prefers_reference_over"]) == set(world.perturbations)
    # The example is the test split's first item.
    first = world.samples("test", 1)[0]
    example = card["evaluation"]["example"]
    assert example["prompt"] == first.prompt and example["reference"] == first.reference
    if first.reference is not None:
        assert example["reference_gold"] == pytest.approx(float(world.gold_scores([first.record], [first.reference])[0]))


def test_reference_vs_perturbation_figures_are_recomputed_on_a_subsample(
    task: Task, world: World, card: dict[str, Any], preference_model
) -> None:
    """The card's ``prefers_reference_over``, recomputed with the shipped preference model on
    the first 32 of the card's valid prompts (the same build code, another perturbation draw)."""
    from rlhf_gym.worlds.figures import perturbation_preferences

    figures = card["preference_model"]["prefers_reference_over"]
    if not figures:
        pytest.skip(f"{task.env_id}: no references or no perturbations, so no such figures")
    population = card["config"]["valid_prompts"]
    n = min(32, population)
    samples = world.samples("valid", n)
    recomputed = perturbation_preferences(world, preference_model, samples, seed=card["config"]["seed"] + 3)
    assert set(recomputed) == set(figures)
    rng = np.random.default_rng(0)
    records = [s.record for s in samples]
    reference_gold = world.gold_scores(records, [s.reference for s in samples])
    for kind, expected in figures.items():
        for share in ("preference_model", "gold_judge"):
            tolerance = share_tolerance(expected[share], n, population)
            assert abs(recomputed[kind][share] - expected[share]) <= tolerance, (kind, share, recomputed[kind], expected)
        # The spread of one prompt's gold drop, from a fresh draw of the same perturbation.
        drops = reference_gold - world.gold_scores(records, [world.perturb(s, s.reference, kind, rng) for s in samples])
        assert abs(recomputed[kind]["gold_drop"] - expected["gold_drop"]) <= mean_tolerance(drops, population), kind
        assert recomputed[kind]["gold_drop"] > 0, kind  # each kind does damage


@pytest.mark.slow
def test_reference_vs_perturbation_figures_are_recomputed_exactly(
    task: Task, world: World, card: dict[str, Any], preference_model
) -> None:
    """The same figures on all the card's valid prompts with the build's seed: the build's
    own computation, so equal up to near-ties that flip with the batch's padding width."""
    from rlhf_gym.worlds.figures import perturbation_preferences

    figures = card["preference_model"]["prefers_reference_over"]
    if not figures:
        pytest.skip(f"{task.env_id}: no references or no perturbations, so no such figures")
    samples = world.samples("valid", card["config"]["valid_prompts"])
    recomputed = perturbation_preferences(world, preference_model, samples, seed=card["config"]["seed"] + 3)
    for kind, expected in figures.items():
        assert recomputed[kind] == pytest.approx(expected, abs=0.02), kind


def test_reference_figures_are_recomputed_on_a_subsample(
    task: Task, world: World, card: dict[str, Any], preference_model
) -> None:
    """References of the first 64 test prompts, scored now: gold and the normalised proxy
    (references are the normalisation's anchor: mean ~0, std ~1) match the card."""
    evaluation = card["evaluation"]
    if "reference_gold" not in evaluation:
        pytest.skip(f"{task.env_id} has no references")
    population = evaluation["prompts"]
    samples = world.samples("test", min(64, population))
    prompts, references = [s.prompt for s in samples], [s.reference for s in samples]
    gold = world.gold_scores([s.record for s in samples], references)
    proxy = preference_model.score(prompts, references).double().cpu().numpy()
    assert abs(gold.mean() - evaluation["reference_gold"]) <= mean_tolerance(gold, population)
    assert abs(proxy.mean() - evaluation["reference_proxy"]) <= mean_tolerance(proxy, population)
    assert abs(proxy.mean()) < 0.5 and 0.5 < proxy.std() < 2.0


@pytest.fixture(scope="module")
def sft_outputs(task: Task, world: World, card: dict[str, Any]) -> dict[str, Any]:
    """The shipped SFT policy's responses to the card's first 64 test prompts, greedy and at
    the protocol temperature, decoded as the build decodes them (same seed, one batch)."""
    from rlhf_gym.lm.sampling import sample_completions

    samples = world.samples("test", min(64, card["evaluation"]["prompts"]))
    prompts = [s.prompt for s in samples]
    policy = task.sft_policy("cpu").model.eval()
    config = card["config"]
    outputs = {
        name: sample_completions(
            policy, task.tokenizer(), prompts, max_new_tokens=config["max_new_tokens"], temperature=temperature,
            seed=config["seed"], max_prompt_tokens=config["max_prompt_tokens"],
        )
        for name, temperature in (("sft_greedy", 0.0), (f"sft_t{world.temperature:g}", world.temperature))
    }
    return {"samples": samples, "prompts": prompts, **outputs}


@pytest.mark.slow
def test_sft_evaluation_figures_are_recomputed_on_a_subsample(
    world: World, card: dict[str, Any], preference_model, sft_outputs: dict[str, Any]
) -> None:
    """Gold and proxy of greedy SFT and of SFT at the protocol temperature on 64 of the
    card's test prompts: each within the subsample's tolerance of the card's figure."""
    evaluation, population = card["evaluation"], card["evaluation"]["prompts"]
    records = [s.record for s in sft_outputs["samples"]]
    for name in ("sft_greedy", f"sft_t{world.temperature:g}"):
        outputs = sft_outputs[name]
        gold = world.gold_scores(records, outputs)
        proxy = preference_model.score(sft_outputs["prompts"], outputs).double().cpu().numpy()
        assert abs(gold.mean() - evaluation[f"{name}_gold"]) <= mean_tolerance(gold, population), (name, gold.mean())
        assert abs(proxy.mean() - evaluation[f"{name}_proxy"]) <= mean_tolerance(proxy, population), (name, proxy.mean())
    # The card's example is the first prompt's greedy response, and its gold is the judge's.
    example = evaluation["example"]
    assert example["sft_greedy_gold"] == pytest.approx(float(world.gold_scores(records[:1], [example["sft_greedy"]])[0]))
    key = f"t{world.temperature:g}"
    if "reference_gold" in evaluation:
        assert evaluation[f"headroom_gold_{key}"] == pytest.approx(evaluation["reference_gold"] - evaluation[f"sft_{key}_gold"])


@pytest.mark.slow
def test_preference_model_accuracy_is_recomputed_on_a_subsample(
    task: Task, world: World, card: dict[str, Any], preference_model
) -> None:
    """Valid comparisons rebuilt by the build's own code (`comparison_pairs`, the card's
    seed and sizes) on its first 24 valid prompts; the shipped model's accuracy against the
    annotators and the gold judge is within the subsample's tolerance of the card's. Pairs
    of one prompt are not independent: the tolerance uses the spread over prompts."""
    from rlhf_gym.worlds.build import comparison_pairs
    from rlhf_gym.worlds.figures import accuracy_vs_gold, pair_scores

    config = card["config"]
    build = replace(
        world.build_config(), seed=config["seed"], pairs_per_prompt=config["pairs_per_prompt"],
        sample_temperatures=tuple(config["sample_temperatures"]), max_new_tokens=config["max_new_tokens"],
        max_prompt_tokens=config["max_prompt_tokens"],
    )
    population = config["valid_prompts"]
    n = min(24, population)
    pool = AnnotatorPool.from_calibration(world.annotators, seed=config["seed"])
    pairs = comparison_pairs(world, world.samples("valid", n), task.sft_policy("cpu").model.eval(), task.tokenizer(), pool,
                             build, seed=config["seed"] + 2, progress=False)
    chosen, rejected = pair_scores(preference_model, pairs)
    right = (chosen > rejected).numpy()
    per_prompt = [right[[p == prompt for p in pairs["prompts"]]].mean() for prompt in dict.fromkeys(pairs["prompts"])]
    expected = card["preference_model"]
    assert abs(right.mean() - expected["valid_accuracy_vs_annotators"]) <= mean_tolerance(per_prompt, population)
    gold_chosen, gold_rejected = np.asarray(pairs["gold_chosen"]), np.asarray(pairs["gold_rejected"])
    untied = gold_chosen != gold_rejected
    agrees = np.where(gold_chosen > gold_rejected, right, (rejected > chosen).numpy())
    vs_gold, _ = accuracy_vs_gold(chosen, rejected, pairs)
    assert vs_gold == pytest.approx(agrees[untied].mean())
    per_prompt_gold = [agrees[untied & [p == prompt for p in pairs["prompts"]]].mean()
                       for prompt in dict.fromkeys(pairs["prompts"])]
    assert abs(vs_gold - expected["valid_accuracy_vs_gold"]) <= mean_tolerance(per_prompt_gold, population)


# The headroom audit -----------------------------------------------------------------------
def test_card_audit_meets_the_declared_targets(task: Task, world: World, card: dict[str, Any]) -> None:
    """A world that declares `AuditTargets` ships the audit of its assets in its card, and
    every declared threshold holds on it."""
    if world.audit_targets is None:
        pytest.skip(f"{task.env_id} declares no audit targets yet")
    audit = pytest.importorskip("rlhf_gym.worlds.audit")
    assert "audit" in card, f"{task.env_id} declares audit targets: run `rlhf-gym audit {task.env_id}` into its card"
    assert card["audit"]["task"] == task.env_id
    checks = audit.check_targets(card["audit"], world.audit_targets)
    assert checks, "targets declared but none checked"
    failed = [check for check in checks if not check[3]]
    assert not failed, failed


@pytest.mark.slow
def test_card_audit_is_recomputed_on_a_subsample(task: Task, world: World, card: dict[str, Any]) -> None:
    """The audit rerun on 16 valid prompts (the card's seed and batch size): each decoding's
    gold and proxy is within the subsample's tolerance of the card's audit."""
    if world.audit_targets is None:
        pytest.skip(f"{task.env_id} declares no audit targets yet")
    audit = pytest.importorskip("rlhf_gym.worlds.audit")
    shipped = card.get("audit")
    assert shipped is not None, f"{task.env_id} declares audit targets but its card has no audit"
    n, population = 16, shipped["prompts"]
    rerun = audit.run_audit(task, prompts=n, seed=shipped["seed"], batch_size=shipped["batch_size"], progress=False)
    expected = {row["temperature"]: row for row in shipped["decodings"]}
    assert set(expected) == {row["temperature"] for row in rerun["decodings"]}
    for row in rerun["decodings"]:
        for figure in ("gold", "proxy"):
            if figure not in row:
                continue
            card_row = expected[row["temperature"]]
            # The card's standard error is over its prompts: back to one prompt's spread.
            sd = (card_row.get(f"{figure}_se") or 0.0) * math.sqrt(population)
            assert abs(row[figure] - card_row[figure]) <= subsample_tolerance(sd, n, population), (figure, row, card_row)
