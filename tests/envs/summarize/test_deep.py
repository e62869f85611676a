"""The deep Summarize world: its posts, its seven-decision gold judge and its writers.

What makes the headroom deep is checked on the writers directly (the design audit): each
decision's best option is a minority that greedy decoding of the mixture misses, no
writer takes every best option, and references are not the ceiling.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from rlhf_gym.envs.summarize.deep import (
    CONSTRAINTS,
    DECISION_WEIGHTS,
    FILLER_MARKERS,
    FILLERS,
    FORMATS,
    PERSONAS,
    DeepSummarizeWorld,
    compose,
    deep_breakdown,
    detect_format,
    flip_focus,
    flip_lead,
    format_convention,
    persona_choices,
    persona_summary,
    render,
)
from rlhf_gym.envs.summarize.gold_judge import normalize_tokens
from rlhf_gym.envs.summarize.world import generate_post, persona_tag
from rlhf_gym.worlds.design import writer_audit

WORLD = DeepSummarizeWorld()
SAMPLES = WORLD.samples("valid", 300)


def test_generation_is_a_pure_function_of_the_id() -> None:
    assert WORLD.generate(10_000_123) == WORLD.generate(10_000_123)
    assert WORLD.generate(5).prompt != WORLD.generate(6).prompt


def test_the_post_states_the_constraint_and_only_then() -> None:
    with_constraint = [s for s in SAMPLES if s.record.constraint is not None]
    assert 0.5 < len(with_constraint) / len(SAMPLES) < 0.7
    for sample in SAMPLES:
        body = sample.prompt.split("\nPOST: ", 1)[1]
        if sample.record.constraint is None:
            assert "keep in mind" not in body.lower()
        else:
            assert sample.record.constraint.clause in body and "keep in mind" in body.lower()
            assert body.replace(sample.record.constraint.clause, "") != body


def test_the_constraint_and_filler_words_appear_nowhere_else_in_the_world() -> None:
    # Otherwise a summary could earn the constraint's credit, or count as padded, by
    # copying a fact, the ask or a distractor.
    reserved = {w for c in CONSTRAINTS for w in c.keywords} | FILLER_MARKERS
    for post_id in range(2000):
        record = generate_post(post_id).record
        words = set(normalize_tokens(" ".join([*(f.phrase for f in record.facts), record.ask, *record.distractors])))
        assert not words & reserved, (post_id, words & reserved)
    assert all(normalize_tokens(f)[-1:] and set(normalize_tokens(f)) & FILLER_MARKERS for f in FILLERS)


def test_the_format_convention_is_a_function_of_the_subreddit_and_uses_every_format() -> None:
    by_subreddit: dict[str, set[str]] = {}
    for sample in SAMPLES:
        by_subreddit.setdefault(sample.record.base.subreddit, set()).add(sample.record.convention)
    assert all(len(conventions) == 1 for conventions in by_subreddit.values())
    assert {c for cs in by_subreddit.values() for c in cs} == set(FORMATS)
    assert format_convention("jobs") == format_convention("jobs")


@pytest.mark.parametrize("style", FORMATS)
def test_detect_format_reads_the_opener_and_needs_the_right_persona(style: str) -> None:
    record = SAMPLES[0].record
    text = compose(record, style=style, facts=[0], distractor=None, distractor_at=0, filler=None,
                   constraint=False, ask=True)
    tag = persona_tag(record.base)
    assert detect_format(tag, text) == style
    assert detect_format("99Q", text) == "none"


def test_the_ideal_summary_scores_one_and_an_empty_one_zero() -> None:
    for sample in SAMPLES[:50]:
        assert deep_breakdown(sample.record, WORLD.ideal_summary(sample.record)).total == 1.0
        assert deep_breakdown(sample.record, "").total == 0.0


def _one_decision_wrong(record, decision: str, rng: np.random.Generator) -> str:  # noqa: ANN001
    n = len(record.base.facts)
    choices = dict(style=record.convention, facts=list(range(n)), distractor=None, distractor_at=n, filler=None,
                   constraint=True, ask=True)
    if decision == "format":
        choices["style"] = next(f for f in FORMATS if f != record.convention)
    elif decision == "recall":
        choices["facts"] = [0]
    elif decision == "lead":
        choices["facts"] = [n - 1, *range(n - 1)]
    elif decision == "ask":
        choices["ask"] = False
    elif decision == "constraint":
        choices["constraint"] = False
    elif decision == "concise":
        choices["filler"] = FILLERS[0]
    elif decision == "focus":
        choices["distractor"] = record.base.distractors[0]
    elif decision == "faithful":  # one number the post does not have, in a clause of no fact
        return compose(record, **choices).rstrip("?.") + "; it cost me $987?"
    return compose(record, **choices)


@pytest.mark.parametrize("decision", list(DECISION_WEIGHTS))
def test_each_decision_is_credited_on_its_own(decision: str) -> None:
    # Getting one decision wrong, and only that one, costs gold: the credits are additive,
    # so RL can climb one decision at a time.
    rng = np.random.default_rng(0)
    drops = []
    for sample in SAMPLES[:100]:
        record = sample.record
        if decision == "constraint" and record.constraint is None:
            continue
        breakdown = deep_breakdown(record, _one_decision_wrong(record, decision, rng))
        wrong = {d for d, credit in breakdown.credits.items() if credit < 1.0}
        assert wrong == {decision}, (decision, breakdown.credits)
        drops.append(1.0 - breakdown.total)
    assert np.min(drops) > 0.03 and np.mean(drops) <= DECISION_WEIGHTS[decision] + 1e-9


def test_decisions_and_best_decisions_agree_on_the_ideal_summary() -> None:
    for sample in SAMPLES[:50]:
        record = sample.record
        assert WORLD.decisions(record, WORLD.ideal_summary(record)) == WORLD.best_decisions(record)
        assert ("constraint" in WORLD.best_decisions(record)) == (record.constraint is not None)


def test_no_writer_takes_every_best_option() -> None:
    rng = np.random.default_rng(0)
    for persona in PERSONAS:
        gold = [WORLD.gold_scores([s.record], [persona_summary(s.record, persona, rng)])[0] for s in SAMPLES[:200]]
        assert np.mean(np.array(gold) >= 0.95) < 0.02, persona.name


def test_the_references_are_the_thorough_writer_and_not_the_ceiling() -> None:
    gold = WORLD.gold_scores([s.record for s in SAMPLES], [s.reference for s in SAMPLES])
    assert gold.mean() <= 0.6 and np.mean(gold >= 0.95) < 0.02
    assert all(deep_breakdown(s.record, s.reference).credits["recall"] == 1.0 for s in SAMPLES[:50])


def test_perturbations_lower_gold_on_average() -> None:
    rng = np.random.default_rng(0)
    for kind in WORLD.perturbations:
        records = [s.record for s in SAMPLES[:100]]
        before = WORLD.gold_scores(records, [s.reference for s in SAMPLES[:100]])
        after = WORLD.gold_scores(records, [WORLD.perturb(s, s.reference, kind, rng) for s in SAMPLES[:100]])
        assert after.mean() < before.mean(), kind


def test_comparison_candidates_include_every_other_persona_and_the_contrast_pairs() -> None:
    sample = SAMPLES[0]
    candidates = dict((source, text) for text, source in WORLD.comparison_candidates(sample, np.random.default_rng(0)))
    assert list(candidates) == [f"persona_{p.name}" for p in PERSONAS[1:]] + ["convention", "pivot", "flip_focus", "flip_lead"]
    assert detect_format(persona_tag(sample.record.base), candidates["convention"]) == sample.record.convention


@pytest.mark.parametrize("flip, decision", [(flip_focus, "focus"), (flip_lead, "lead")])
def test_a_contrast_candidate_differs_from_its_pivot_in_one_decision(flip, decision: str) -> None:  # noqa: ANN001
    # The preference data's contrast pairs: the pivot and its flip differ in the flipped
    # decision's option and in no other, so the pair teaches exactly that decision.
    rng = np.random.default_rng(1)
    for sample in SAMPLES[:200]:
        record = sample.record
        pivot = persona_choices(record, PERSONAS[int(rng.integers(len(PERSONAS)))], rng)
        before = WORLD.decisions(record, render(record, pivot))
        after = WORLD.decisions(record, render(record, flip(record, pivot, rng)))
        changed = {d for d in before if before[d] != after[d]}
        if decision == "focus":
            # Dropping a distractor also shortens a summary that was too long.
            changed.discard("concise")
        assert changed == {decision}, (decision, before, after)


def test_the_design_audit_finds_deep_headroom() -> None:
    # The writers alone (what the SFT policy imitates): every decision's best option is a
    # minority that greedy decoding misses, and best-of-n by the gold judge leaves headroom.
    audit = writer_audit(WORLD, prompts=96, draws=64, seed=0)
    for name, figures in audit["decisions"].items():
        assert figures["greedy_not_best"] >= 0.5, (name, figures)
        assert 0.1 <= figures["draws_best"] <= 0.45, (name, figures)
        assert figures["modal_not_best"] >= 0.5, (name, figures)
    closed = {row["n"]: row["headroom_closed"] for row in audit["best_of_n"]}
    assert closed[16] <= 0.5 and closed[64] <= 0.7
    assert audit["references"]["gold"] <= 0.6


def test_summaries_have_no_template_leftovers() -> None:
    rng = np.random.default_rng(0)
    for sample in SAMPLES[:100]:
        text = WORLD.write(sample, rng)
        assert not re.search(r"[{}]|  |,,|;;|\.\.", text), text
        assert text.startswith(" ") and text.rstrip()[-1] in ".?"



def test_the_question_stated_first_earns_the_same_credit() -> None:
    # The questioner opens with the question; the judge credits it wherever it stands and
    # still reads the lead from the first fact.
    for sample in SAMPLES[:100]:
        record = sample.record
        n = len(record.base.facts)
        text = compose(record, style=record.convention, facts=range(n), distractor=None, distractor_at=n, filler=None,
                       constraint=True, ask=True, ask_first=True)
        assert deep_breakdown(record, text).total == 1.0, text
