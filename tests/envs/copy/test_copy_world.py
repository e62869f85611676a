"""The Copy world's own content: its gold judge, its writers, its generator, and a toy build
that runs end to end. What every world must pass is the conformance suite's job."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rlhf_gym.envs.copy import TASK, WORLD
from rlhf_gym.envs.copy.world import BLANK, LENGTHS, OTHER, WRITERS, copies, copy_gold, render, writer_of
from rlhf_gym.worlds import Task, build_assets, make_vector_env

ITEMS = tuple("41727")


@pytest.mark.parametrize(
    ("response", "gold"),
    [
        (" 4 1 7 2 7", 1.0),  # exact
        ("4 1  7 2 7 ", 1.0),  # spacing does not matter, items do
        (" 4 1 7 2", 4 / 5),  # the last item dropped
        (" 4 1 7 2 7 7", 5 / 6),  # one extra item at the end
        (" 4 1 2 7", 2 / 5),  # a middle item dropped: the later ones are out of place
        (" 1 4 7 2 7", 3 / 5),  # two neighbours swapped
        (" 4 1 7 2 7 4 1 7 2 7", 1 / 2),  # the copy written twice
        ("", 0.0),
        (" 7 2 7 1 4", 1 / 5),  # reversed: only the middle item is in place
        (" four one", 0.0),
    ],
)
def test_gold_is_per_position_accuracy(response: str, gold: float) -> None:
    assert copy_gold(ITEMS, response) == pytest.approx(gold)


def test_gold_scores_a_batch_in_unit_range() -> None:
    samples = WORLD.samples("valid", 50)
    rng = np.random.default_rng(0)
    noise = [render(rng.choice(list("0123456789"), size=int(rng.integers(0, 12)))) for _ in samples]
    for responses in ([s.reference for s in samples], [s.sft_target for s in samples], noise):
        gold = WORLD.gold_scores([s.record for s in samples], responses)
        assert gold.shape == (50,) and gold.dtype == np.float64
        assert np.all((gold >= 0.0) & (gold <= 1.0))
    assert np.all(WORLD.gold_scores([s.record for s in samples], [s.reference for s in samples]) == 1.0)


def test_each_writer_has_its_own_flaw() -> None:
    n = len(ITEMS)
    assert copies(ITEMS, "exact") == [ITEMS]
    assert copies(ITEMS, "drop_last") == [ITEMS[:-1]]
    # Adjacent items always differ, so every swap and every repeat is a visible flaw.
    assert len(set(copies(ITEMS, "swap"))) == n - 1 and ITEMS not in copies(ITEMS, "swap")
    assert {len(c) for c in copies(ITEMS, "repeat")} == {n + 1}
    golds = {w: [copy_gold(ITEMS, render(c)) for c in copies(ITEMS, w)] for w in WRITERS}
    assert golds["exact"] == [1.0] and golds["drop_last"] == [pytest.approx((n - 1) / n)]
    assert golds["swap"] == [pytest.approx((n - 2) / n)] * (n - 1)
    assert max(golds["repeat"]) == pytest.approx(n / (n + 1)) and min(golds["repeat"]) == pytest.approx(1 / (n + 1))
    with pytest.raises(ValueError, match="unknown writer 'typo'"):
        copies(ITEMS, "typo")


def test_sft_targets_follow_the_writer_mixture() -> None:
    samples = WORLD.samples("train", 2000)
    for s in samples:
        assert writer_of(s.record.items, s.sft_target) == s.record.writer
        assert copy_gold(s.record.items, s.sft_target) < 1.0 or s.record.writer == "exact"
    shares = {w: np.mean([s.record.writer == w for s in samples]) for w in WRITERS}
    for writer, weight in WRITERS.items():
        assert shares[writer] == pytest.approx(weight, abs=0.04), writer
    assert writer_of(ITEMS, " 9 9") == OTHER


def test_prompts_show_the_sequence_in_fixed_slots() -> None:
    for s in WORLD.samples("test", 300):
        items = s.record.items
        assert LENGTHS[0] <= len(items) <= LENGTHS[1]
        assert all(a != b for a, b in zip(items, items[1:]))  # no digit twice in a row
        assert s.prompt == f"COPY:{render(items)}{render([BLANK] * (LENGTHS[1] - len(items)))}\nOUT:"
        assert s.reference == render(items)


def test_generate_is_a_pure_function_of_the_id() -> None:
    state = np.random.get_state()
    first, again = WORLD.generate(1_000_123), WORLD.generate(1_000_123)
    assert first == again
    assert np.random.get_state()[1].tolist() == state[1].tolist()  # the global stream is untouched
    assert len({WORLD.generate(i).prompt for i in range(100)}) > 90


def test_comparison_candidates_come_from_the_other_writers() -> None:
    rng = np.random.default_rng(0)
    for sample in WORLD.samples("train", 100):
        candidates = WORLD.comparison_candidates(sample, rng)
        sources = [source for _, source in candidates]
        assert len(candidates) == 2 and len(set(sources)) == 2
        assert f"writer_{sample.record.writer}" not in sources
        for text, source in candidates:
            assert writer_of(sample.record.items, text) == source.removeprefix("writer_")


def test_change_item_costs_gold_even_on_a_flawed_copy() -> None:
    rng = np.random.default_rng(0)
    for sample in WORLD.samples("valid", 100):
        before = copy_gold(sample.record.items, sample.sft_target)
        after = copy_gold(sample.record.items, WORLD.perturb(sample, sample.sft_target, "change_item", rng))
        assert after < before or before == 0.0


def test_card_figures_and_decisions() -> None:
    samples = WORLD.samples("test", 40)
    records = [s.record for s in samples]
    exact = WORLD.card_figures(records, [s.reference for s in samples])
    assert exact["exact_copy"] == 1.0 and exact["writers"]["exact"] == 1.0
    written = WORLD.card_figures(records, [s.sft_target for s in samples])
    assert sum(written["writers"].values()) == pytest.approx(1.0) and written["writers"][OTHER] == 0.0
    assert written["exact_copy"] == written["writers"]["exact"] < 1.0
    sample = samples[0]
    assert WORLD.decisions(sample.record, sample.reference) == WORLD.best_decisions(sample.record) == {"writer": "exact"}


def test_the_longest_prompt_and_copy_fit_the_env() -> None:
    tokenizer = TASK.tokenizer()
    items = tuple("0123456789"[: LENGTHS[1]])
    prompt = f"COPY:{render(items)}\nOUT:"
    assert len(tokenizer(prompt)["input_ids"]) <= WORLD.max_prompt_tokens
    longest = max(copies(items, "repeat"), key=len)
    assert len(tokenizer(render(longest))["input_ids"]) + 1 <= WORLD.max_new_tokens  # + EOS
    assert len(tokenizer(" 7")["input_ids"]) == 1  # one item, one action


def test_toy_build_runs_end_to_end(tmp_path) -> None:
    card = build_assets(WORLD, WORLD.build_config(toy=True), tmp_path, progress=False)
    assert set(card["evaluation"]["sft_t0.7_writers"]) == {*WRITERS, OTHER}
    assert set(card["preference_model"]["prefers_reference_over"]) == set(WORLD.perturbations)
    task = Task.from_world(WORLD, tmp_path)
    env = make_vector_env(4, task=task, split="valid")
    env.reset(seed=0)
    generator = torch.Generator().manual_seed(0)
    rewards, golds, finished = [], [], torch.zeros(4, dtype=torch.bool)
    for _ in range(WORLD.max_new_tokens):  # every episode ends within the budget
        actions = torch.randint(len(task.tokenizer()), (4,), generator=generator)
        _, reward, terminated, truncated, info = env.step(actions)
        done = terminated | truncated
        rewards += reward[done].tolist()
        if bool(done.any()):  # same-step autoreset: the finished episodes' info is under final_info
            episodes = info["final_info"]
            golds += episodes["gold"][episodes["_gold"]].tolist()
        finished |= done
    assert bool(finished.all())
    assert len(golds) == len(rewards) >= 4
    assert np.all(np.isfinite(rewards))
    assert all(0.0 <= g <= 1.0 for g in golds)
