"""The kit's asset recipe (`rlhf_gym.worlds.build`) on every world of the suite, at toy scale:
end to end, atomic, deterministic in its seed, resumable from an earlier build's policy, and
driven by ``rlhf-gym build-assets NAME`` whose flags are the `BuildConfig`'s fields.

A toy build takes about a minute on 2 busy cores, so the tests that build are slow; the
ones that interrupt a build or reject a flag before building are fast.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch

import rlhf_gym
from rlhf_gym.worlds import BuildConfig, Task, TaskAssets, build_assets
from rlhf_gym.worlds.assets import folder_hash

ENV_IDS = [env.env_id for env in rlhf_gym.SUITE]
MODEL_FILES = ("tokenizer/tokenizer.json", "sft_policy/model.safetensors", "preference_model/model.safetensors")


@pytest.fixture(autouse=True)
def keep_torch_threads() -> Iterator[None]:
    """The build sets torch's thread count from its config; give the other tests theirs back."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def toy_build(task: Task, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """One toy build of the world, written over a stale assets folder (which it must replace)."""
    assert task.world is not None
    threads = torch.get_num_threads()
    out = tmp_path_factory.mktemp(f"toy-{task.name}") / "assets"
    (out / "sft_policy").mkdir(parents=True)
    (out / "stale.txt").write_text("from an older build")
    card = build_assets(task.world, task.world.build_config(toy=True), out, progress=False)
    torch.set_num_threads(threads)
    return out, card


def without_timings(card: dict[str, Any]) -> dict[str, Any]:
    """The card minus wall-clock figures and the reuse note, which differ between equal builds."""
    card = {k: v for k, v in card.items() if k != "build_seconds"}
    card["sft"] = {k: v for k, v in card["sft"].items() if k not in ("seconds", "reused_from")}
    card["preference_model"] = {k: v for k, v in card["preference_model"].items() if k != "train_seconds"}
    return card


# End to end -------------------------------------------------------------------------------
@pytest.mark.slow
def test_toy_build_writes_loadable_assets_and_their_card(task: Task, toy_build: tuple[Path, dict[str, Any]]) -> None:
    out, card = toy_build
    world = task.world
    config = world.build_config(toy=True)
    for name in (*MODEL_FILES, "sft_policy/generation_config.json", "preference_model/reward_normalization.json",
                 "card.json", "card.md"):
        assert (out / name).is_file(), name
    # Atomic: the stale folder was replaced whole, and no staging or old folder is left beside it.
    assert not (out / "stale.txt").exists()
    assert sorted(p.name for p in out.parent.iterdir()) == ["assets"]
    # The card: as returned, its config the one asked for, its title from the env id.
    assert json.loads((out / "card.json").read_text()) == card
    assert card["task"] == task.env_id
    # Token sizes left unset come from the world: the env's prompt block and response budget.
    expected = {**asdict(config), "max_prompt_tokens": world.max_prompt_tokens, "max_new_tokens": world.max_new_tokens}
    assert card["config"] == json.loads(json.dumps(expected))
    markdown = (out / "card.md").read_text()
    assert markdown.splitlines()[0] == f"# {task.env_id} assets"
    assert f"rlhf-gym build-assets {task.name}" in markdown
    # Its figures are consistent with the toy sizes and the world.
    comparisons, preference = card["comparisons"], card["preference_model"]
    assert 0 < comparisons["train_pairs"] <= config.comparison_prompts * config.pairs_per_prompt
    assert 0 < comparisons["valid_pairs"] <= config.valid_prompts * config.pairs_per_prompt
    assert 0.5 <= comparisons["valid_label_accuracy_ceiling"] <= 1.0
    assert 0.0 <= preference["valid_accuracy_vs_annotators"] <= 1.0
    assert preference["members"] == 1 and card["evaluation"]["prompts"] == config.eval_prompts
    if world.has_references:
        assert set(preference["prefers_reference_over"]) == set(world.perturbations)
        for kind, figures in preference["prefers_reference_over"].items():
            assert figures["gold_drop"] > 0.0, kind  # each kind does damage
            assert f"| {kind} |" in markdown
    by_source = preference["valid_accuracy_by_source"]
    assert "sft_sample" in by_source and set(world.perturbations) & set(by_source)
    assert comparisons["valid_pairs"] <= sum(f["pairs"] for f in by_source.values()) <= 2 * comparisons["valid_pairs"]
    # The assets load through the kit and make the env.
    assets = TaskAssets(out, task.name)
    assert card["tokenizer"]["vocab_size"] == len(assets.tokenizer())
    assert set(assets.hashes()) == {"tokenizer", "sft_policy", "preference_model"}
    env = gym.make_vec(task.env_id, num_envs=2, tokenizer=str(out / "tokenizer"),
                       reward_model=str(out / "preference_model"), local_files_only=True)
    obs, _ = env.reset(seed=0)
    assert obs["input_ids"].shape == (2, world.max_prompt_tokens + world.max_new_tokens)
    env.close()


@pytest.mark.slow
def test_build_is_deterministic_and_resumable(task: Task, toy_build: tuple[Path, dict[str, Any]],
                                              tmp_path: Path) -> None:
    """A second toy build is byte-identical; a build that reuses the first one's tokenizer
    and SFT policy trains the same preference model."""
    first_dir, first = toy_build
    config = task.world.build_config(toy=True)
    second = build_assets(task.world, config, tmp_path / "again", progress=False)
    assert without_timings(second) == without_timings(first)
    for name in MODEL_FILES:
        assert (tmp_path / "again" / name).read_bytes() == (first_dir / name).read_bytes(), name

    reused = build_assets(task.world, config, tmp_path / "reused", reuse_policy=first_dir, progress=False)
    assert reused["sft"]["reused_from"] == str(first_dir)
    assert without_timings(reused) == without_timings(first)
    for name in MODEL_FILES:
        assert (tmp_path / "reused" / name).read_bytes() == (first_dir / name).read_bytes(), name


@pytest.mark.slow
def test_build_trains_an_ensemble_of_preference_models(task: Task, toy_build: tuple[Path, dict[str, Any]],
                                                       tmp_path: Path) -> None:
    """Two members: member 0 is the single model (same recipe and seed), member 1 saw another
    minibatch order; the env loads them as one `PreferenceEnsemble`."""
    single_dir, single = toy_build
    config = replace(task.world.build_config(toy=True), preference_members=2)
    card = build_assets(task.world, config, tmp_path / "two", reuse_policy=single_dir, progress=False)
    assert card["preference_model"]["members"] == 2
    assert card["preference_model"]["parameters"] == 2 * single["preference_model"]["parameters"]
    assert "(2 ensemble members" in (tmp_path / "two" / "card.md").read_text()
    folder = tmp_path / "two" / "preference_model"
    first, second = ((folder / f"member_{i}" / "model.safetensors").read_bytes() for i in (0, 1))
    assert first == (single_dir / "preference_model" / "model.safetensors").read_bytes()
    assert second != first
    env = gym.make_vec(task.env_id, num_envs=2, tokenizer=str(single_dir / "tokenizer"), reward_model=str(folder),
                       local_files_only=True)
    assert type(env.unwrapped.preference_model).__name__ == "PreferenceEnsemble"
    env.close()


# Atomic -----------------------------------------------------------------------------------
class Interrupted(BaseException):
    """Stands for Ctrl-C or a kill: not an `Exception`, so nothing on the way may swallow it."""


@pytest.mark.parametrize("existing", [True, False], ids=["over-old-assets", "fresh"])
def test_an_interrupted_build_leaves_the_old_assets_and_no_staging_folder(
    task: Task, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, existing: bool
) -> None:
    """Interrupted after the tokenizer and SFT policy are in the staging folder (copied from
    the shipped assets, so nothing trains): the old assets are untouched, or none appear."""
    import rlhf_gym.worlds.build as build

    out = tmp_path / "assets"
    if existing:
        (out / "preference_model").mkdir(parents=True)
        (out / "preference_model" / "model.safetensors").write_bytes(b"the old model")
        (out / "card.json").write_text("{}")
        before = folder_hash(out)
    staged: list[Path] = []

    def interrupt(*args: Any, **kwargs: Any) -> None:
        staged.extend(p for p in tmp_path.iterdir() if p.name.startswith(".assets-"))
        raise Interrupted

    monkeypatch.setattr(build, "comparison_pairs", interrupt)
    with pytest.raises(Interrupted):
        build_assets(task.world, task.world.build_config(toy=True), out, reuse_policy=task.assets_dir, progress=False)
    assert len(staged) == 1 and not staged[0].exists()  # the build had staged its policy, then removed it
    if existing:
        assert sorted(p.name for p in tmp_path.iterdir()) == ["assets"]
        assert folder_hash(out) == before
    else:
        assert list(tmp_path.iterdir()) == []


# The CLI ----------------------------------------------------------------------------------
@pytest.mark.slow
def test_cli_builds_with_a_config_flag(task: Task, toy_build: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    """``rlhf-gym build-assets NAME --toy --comparison-prompts 10 --reuse-policy DIR --out DIR``:
    the flag lands in the card's config and sizes the comparison data."""
    from rlhf_gym.cli import main

    policy_dir, _ = toy_build
    out = tmp_path / "assets"
    main(["build-assets", task.name, "--toy", "--comparison-prompts", "10", "--reuse-policy", str(policy_dir),
          "--out", str(out)])
    card = json.loads((out / "card.json").read_text())
    toy = task.world.build_config(toy=True)
    assert card["config"]["comparison_prompts"] == 10 != toy.comparison_prompts
    assert card["config"]["valid_prompts"] == toy.valid_prompts  # the other fields keep the world's toy sizes
    assert 0 < card["comparisons"]["train_pairs"] <= 10 * toy.pairs_per_prompt
    assert card["sft"]["reused_from"] == str(policy_dir)
    assert (out / "sft_policy" / "model.safetensors").read_bytes() == \
        (policy_dir / "sft_policy" / "model.safetensors").read_bytes()


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--comparison-prompts", "0"], "comparison_prompts must be >= 1, got 0"),
        (["--preference-members", "0"], "preference_members must be >= 1, got 0"),
        (["--comparison-prompts", "ten"], "ten"),
        (["--device", "gpu0"], "'gpu0' is not a torch device"),
    ],
    ids=["zero-prompts", "zero-members", "not-a-number", "bad-device"],
)
def test_cli_rejects_a_bad_flag_value_without_a_traceback(
    task: Task, tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str], message: str
) -> None:
    from rlhf_gym.cli import main

    with pytest.raises(SystemExit) as exited:
        main(["build-assets", task.name, "--toy", *flags, "--out", str(tmp_path / "x")])
    assert exited.value.code not in (0, None)
    printed = capsys.readouterr()
    said = printed.out + printed.err + (exited.value.code if isinstance(exited.value.code, str) else "")
    assert message in said and "Traceback" not in said
    assert not (tmp_path / "x").exists()


def test_cli_names_the_tasks_when_the_task_is_unknown() -> None:
    from rlhf_gym.cli import main

    with pytest.raises(SystemExit, match="unknown env or task 'nope'") as exited:
        main(["build-assets", "nope", "--toy"])
    for env in rlhf_gym.SUITE:
        assert env.task_name in str(exited.value.code)
    with pytest.raises(SystemExit, match="usage: rlhf-gym build-assets TASK"):
        main(["build-assets"])


def test_build_config_rejects_a_non_positive_size() -> None:
    with pytest.raises(ValueError, match="eval_prompts must be >= 1, got 0"):
        BuildConfig.toy(eval_prompts=0)


# Annotator pools and cues in the comparison data -------------------------------------------
def test_comparison_pairs_label_with_the_worlds_pools_and_cues() -> None:
    """A world with two pools, one of which over-rewards a cue (here: the digit 7, for a copy
    world): the pairs record each response's cue, and their labels choose the cued response
    more often than one unbiased pool's labels do; a world without a cue records zeros.
    Uses the copy world's shipped policy (nothing trains)."""
    from rlhf_gym.envs.copy.world import CopyWorld
    from rlhf_gym.worlds import AnnotatorCalibration, AnnotatorPool
    from rlhf_gym.worlds.build import comparison_pairs

    plain_annotators = AnnotatorCalibration(temperature=0.2, length_bias=0.03, noise=0.2)

    class Sevens(CopyWorld):
        annotators = plain_annotators

        def annotator_cues(self, records, responses):  # noqa: ANN001, ANN201 - the World hook
            return np.array([text.split().count("7") for text in responses], dtype=np.float64)

    class CuedSevens(Sevens):
        annotators = (replace(plain_annotators, share=0.5),
                      AnnotatorCalibration(temperature=0.2, length_bias=0.0, noise=0.0, cue_bias=1.0, share=0.5))

    task = rlhf_gym.get_task("RLHF-Copy-v0")
    policy, tokenizer = task.sft_policy("cpu").model.eval(), task.tokenizer()
    config = replace(CopyWorld().build_config(toy=True), max_prompt_tokens=24, max_new_tokens=16, pairs_per_prompt=12)

    def pairs_of(world: CopyWorld, prompts: int) -> dict[str, Any]:
        pool = AnnotatorPool.from_calibration(world.annotators, seed=0)
        return comparison_pairs(world, world.samples("valid", prompts), policy, tokenizer, pool, config, seed=3,
                                progress=False)

    def cued_share(pairs: dict[str, Any]) -> float:
        cue_c, cue_r = np.array(pairs["cue_chosen"]), np.array(pairs["cue_rejected"])
        differ = cue_c != cue_r
        return float(np.mean(cue_c[differ] > cue_r[differ]))

    cued, unbiased = pairs_of(CuedSevens(), 40), pairs_of(Sevens(), 40)
    assert cued["cue_chosen"] == Sevens().annotator_cues([], cued["chosen"]).tolist()
    assert cued["cue_rejected"] == Sevens().annotator_cues([], cued["rejected"]).tolist()
    assert cued_share(cued) > cued_share(unbiased) + 0.1
    assert cued["annotator_gold_agreement"] < unbiased["annotator_gold_agreement"]
    plain = pairs_of(CopyWorld(), 8)
    assert plain["cue_chosen"] == plain["cue_rejected"] == [0.0] * len(plain["chosen"])
