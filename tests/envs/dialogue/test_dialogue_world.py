"""The Dialogue world: its conversations, its eight-decision gold judge, its writers and its
annotator pools (the conformance suite runs on the registered env in tests/worlds; its card in test_card.py).

What makes the headroom deep is checked on the writers directly (the design audit): each
decision's best option is a minority that greedy decoding of the mixture misses, no writer
takes every best option, and references are not the ceiling.
"""

from __future__ import annotations

import re
from dataclasses import replace

import numpy as np
import pytest

from rlhf_gym.envs.dialogue.conversation import KINDS, TRIGGER_WORDS, generate_conversation, has_trigger
from rlhf_gym.envs.dialogue.judge import DECISION_WEIGHTS, breakdown, ideal_response
from rlhf_gym.envs.dialogue.phrases import FILLER_MARKER, GREETINGS, INVENTED_MARKERS, SIGN_OFFS
from rlhf_gym.envs.dialogue.world import DialogueWorld, dialogue_rates
from rlhf_gym.envs.dialogue.writers import (
    PERSONAS,
    best_act_choices,
    compose,
    flips,
    house_style_choices,
    ideal_choices,
    persona_choices,
    persona_reply,
)
from rlhf_gym.worlds import AnnotatorPool
from rlhf_gym.worlds.design import writer_audit

WORLD = DialogueWorld()
SAMPLES = WORLD.samples("valid", 300)
BY_KIND = {kind: [s for s in SAMPLES if s.record.kind == kind] for kind in KINDS}


# The conversations ------------------------------------------------------------------------
def test_generation_is_a_pure_function_of_the_id() -> None:
    assert WORLD.generate(10_000_123) == WORLD.generate(10_000_123)
    assert WORLD.generate(5).prompt != WORLD.generate(6).prompt
    assert WORLD.splits.split_of(SAMPLES[0].id) == "valid"


def test_the_prompt_ends_where_the_reply_starts_and_fits_the_prompt_block() -> None:
    for sample in SAMPLES:
        lines = sample.prompt.split("\n")
        assert lines[0].startswith("CONTEXT: ") and lines[-1] == "ASSISTANT:" and lines[-2].startswith("USER: ")
        assert 1 <= sum(line.startswith("USER: ") for line in lines[1:-2]) <= 3  # 1-3 earlier turns
        # ~1.5 BPE tokens per word here (digits are split): 240 tokens hold ~150 words.
        assert len(sample.prompt.split()) <= 150
        assert len(sample.reference.split()) <= 45 and len(sample.sft_target.split()) <= 45


def test_request_kinds_come_in_their_shares() -> None:
    for kind, share in KINDS.items():
        assert abs(len(BY_KIND[kind]) / len(SAMPLES) - share) < 0.08, kind


def test_trigger_words_are_only_weakly_tied_to_harm() -> None:
    # Benign requests carry trigger words too ("kill a frozen app"), and harmful ones often lack them.
    samples = WORLD.samples("valid", 1000)
    trigger = np.array([s.record.trigger for s in samples])
    harmful = np.array([s.record.kind == "harmful" for s in samples])
    assert 0.3 < trigger[~harmful].mean() < 0.5 and 0.4 < trigger[harmful].mean() < 0.6
    assert harmful[trigger].mean() - harmful.mean() < 0.1
    benign_triggers = [s.record.request for s in samples if s.record.kind == "benign" and s.record.trigger]
    assert any("kill a frozen app" in r for r in benign_triggers) and any("shoot" in r for r in benign_triggers)
    assert has_trigger("I'm killing time") and not has_trigger("skill")
    assert all(w.islower() for w in TRIGGER_WORDS)


def test_the_earlier_turns_resolve_the_variant_of_benign_requests_only() -> None:
    # A request about the two-variant item reads the same in both kinds; only the earlier
    # user turn names the variant (benign) or the item alone (ambiguous).
    for sample in BY_KIND["benign"] + BY_KIND["ambiguous"]:
        record = sample.record
        if not record.variant_request:
            continue
        user_turns = " ".join(line for line in sample.prompt.split("\n")[1:-2] if line.startswith("USER: "))
        assert record.request.endswith(record.variants.question)
        named = [phrase in user_turns for phrase in record.variants.phrases]
        if record.kind == "benign":
            assert named == [f == record.asked[0] for f in record.variants.facts]
        else:
            assert named == [False, False] and record.variants.generic in user_turns


def test_the_house_style_and_the_name_are_in_the_prompt() -> None:
    for sample in SAMPLES:
        record = sample.record
        assert f'open with "{record.greeting}!" and end with "{record.sign_off}"' in sample.prompt
        assert (f"Hi, I'm {record.name}." in sample.prompt) == (record.name is not None)
    assert {s.record.greeting for s in SAMPLES} == set(GREETINGS) and {s.record.sign_off for s in SAMPLES} == set(SIGN_OFFS)


def test_padding_and_invented_words_appear_in_no_prompt() -> None:
    # Otherwise a reply could be marked padded or ungrounded for copying the prompt.
    for sample in WORLD.samples("train", 1000):
        words = set(re.findall(r"[a-z]+", sample.prompt.lower()))
        assert not words & {FILLER_MARKER, *INVENTED_MARKERS}, sample.id


# The gold judge ---------------------------------------------------------------------------
def test_the_ideal_reply_scores_one_an_empty_one_zero_and_no_writer_writes_it() -> None:
    for sample in SAMPLES:
        ideal = WORLD.ideal_response(sample.record)
        assert ideal == compose(sample.record, ideal_choices(sample.record))
        assert breakdown(sample.record, ideal).total == 1.0
        assert breakdown(sample.record, "").total == 0.0
        assert ideal not in {sample.reference, sample.sft_target}


def _one_decision_wrong(record, decision: str) -> str | None:  # noqa: ANN001
    """The ideal reply with one decision broken (None: this conversation has no clean way)."""
    best = ideal_choices(record)
    ideal = compose(record, best)
    other = lambda i, n: (i + 1) % n  # noqa: E731
    if decision == "act":
        if record.kind == "benign":  # a needless question, the facts still stated
            return ideal.replace(f" {record.sign_off}", f" Do you mean that one? {record.sign_off}")
        if record.kind == "harmful":  # "not sure" instead of declining, the reason still given
            return ideal.replace("I can't help with that", "I'm not sure about that")
        return compose(record, replace(best, act="answer", opener="none", stated=None))  # both variants stated
    if decision == "content":
        if record.kind == "benign" and record.variant_request:
            return compose(record, replace(best, stated=other(best.stated, 2)))
        if record.kind == "benign":
            return compose(record, replace(best, stated=0)) if len(record.asked) == 2 else None
        return compose(record, replace(best, named=False, reason=None))
    if decision == "polite":
        return compose(record, replace(best, name=False)) if record.name else None
    edits = {
        "grounded": {"invented": 0}, "focus": {"aside": 0}, "concise": {"filler": 0},
        "greeting": {"greeting": other(best.greeting, len(GREETINGS))},
        "sign_off": {"sign_off": other(best.sign_off, len(SIGN_OFFS))},
    }
    return compose(record, replace(best, **edits[decision]))


@pytest.mark.parametrize("decision", list(DECISION_WEIGHTS))
def test_each_decision_broken_alone_costs_gold_and_no_other_credit(decision: str) -> None:
    # Getting one decision wrong, and only that one, costs gold: the credits add, so RL can
    # climb one decision at a time.
    drops = []
    for sample in SAMPLES:
        reply = _one_decision_wrong(sample.record, decision)
        if reply is None:
            continue
        b = breakdown(sample.record, reply)
        assert {d for d, credit in b.credits.items() if credit < 1.0} == {decision}, (decision, reply, b.credits)
        assert b.harm == b.engagement == b.repetition == 1.0, (reply, b)
        drops.append(1.0 - b.total)
    assert len(drops) >= 50 and min(drops) > 0.04, (len(drops), min(drops, default=None))


def test_harm_and_evasion_halve_the_score() -> None:
    for sample in BY_KIND["harmful"][:20]:
        record = sample.record
        leaked = compose(record, replace(ideal_choices(record), act="answer", opener="none"))
        b = breakdown(record, leaked)
        assert b.harm == 0.5 and b.options["act"] == "answer" and b.credits["act"] == 0.0
    for sample in BY_KIND["benign"][:20]:
        record = sample.record
        refused = compose(record, replace(ideal_choices(record), act="refuse", opener="sorry"))
        b = breakdown(record, refused)
        assert b.engagement == 0.5 and b.options["act"] == "refuse" and b.total <= 0.5


def test_decisions_and_best_decisions_agree_on_the_ideal_reply() -> None:
    for sample in SAMPLES:
        record = sample.record
        assert WORLD.decisions(record, ideal_response(record)) == WORLD.best_decisions(record)
        assert ("polite" in WORLD.best_decisions(record)) == (record.name is not None)


# The writers ------------------------------------------------------------------------------
def test_no_writer_takes_every_best_option() -> None:
    rng = np.random.default_rng(0)
    for persona in PERSONAS:
        gold = WORLD.gold_scores([s.record for s in SAMPLES], [persona_reply(s.record, persona, rng) for s in SAMPLES])
        assert np.mean(gold >= 0.95) < 0.02, persona.name


def test_each_writer_has_its_flaw() -> None:
    rng = np.random.default_rng(1)

    def acts(persona_name: str, samples: list) -> list[str]:  # noqa: ANN001
        persona = next(p for p in PERSONAS if p.name == persona_name)
        return [breakdown(s.record, persona_reply(s.record, persona, rng)).options["act"] for s in samples]

    assert set(acts("eager", BY_KIND["harmful"])) == {"answer"}  # gives secrets away
    assert set(acts("dull", SAMPLES)) == {"dodge"}
    assert set(acts("clarifier", BY_KIND["benign"])) == {"clarify"}
    triggered = [s for s in BY_KIND["benign"] if s.record.trigger]
    assert triggered and set(acts("cautious", triggered)) == {"refuse"}  # over-refuses "kill a frozen app"
    sloppy = next(p for p in PERSONAS if p.name == "sloppy")
    assert all(breakdown(s.record, persona_reply(s.record, sloppy, rng)).options["grounded"] == "invented"
               for s in BY_KIND["benign"])


def test_the_references_are_the_verbose_writer_and_not_the_ceiling() -> None:
    gold = WORLD.gold_scores([s.record for s in SAMPLES], [s.reference for s in SAMPLES])
    assert gold.mean() <= 0.6 and np.mean(gold >= 0.95) < 0.02
    assert all("Great question" in s.reference for s in SAMPLES)  # the verbose writer's opener


def test_perturbations_lower_gold_and_never_raise_it() -> None:
    rng = np.random.default_rng(0)
    records = [s.record for s in SAMPLES[:150]]
    for base in ("reference", "sft_target"):
        before = WORLD.gold_scores(records, [getattr(s, base) for s in SAMPLES[:150]])
        for kind in WORLD.perturbations:
            after = WORLD.gold_scores(records, [WORLD.perturb(s, getattr(s, base), kind, rng) for s in SAMPLES[:150]])
            assert after.mean() < before.mean() and np.all(after <= before + 1e-12), (base, kind)


def test_comparison_candidates_include_every_other_persona_and_the_contrasts() -> None:
    named = next(s for s in SAMPLES if s.record.name is not None)
    sources = [source for _, source in WORLD.comparison_candidates(named, np.random.default_rng(0))]
    assert sources == [f"persona_{p.name}" for p in PERSONAS[1:]] + [
        "best_act", "house_style", "pivot", "flip_name", "flip_aside", "flip_invented", "flip_filler"]
    assert WORLD.comparison_candidates(named, np.random.default_rng(0)) == \
        WORLD.comparison_candidates(named, np.random.default_rng(0))


def test_a_contrast_candidate_differs_from_its_pivot_in_one_decision() -> None:
    # The preference data's contrast pairs: each flip changes one decision and no other, so
    # the pair teaches exactly that decision (an added or dropped sentence may also change
    # whether the reply is too long).
    expected = {"flip_name": "polite", "flip_aside": "focus", "flip_invented": "grounded", "flip_filler": "concise"}
    rng = np.random.default_rng(1)
    clean = [p for p in PERSONAS if not p.garbles]
    for sample in SAMPLES:
        record = sample.record
        pivot = persona_choices(record, clean[int(rng.integers(len(clean)))], rng)
        before = WORLD.decisions(record, compose(record, pivot))
        for source, flipped in flips(record, pivot, rng).items():
            after = WORLD.decisions(record, compose(record, flipped))
            changed = {d for d in before if before[d] != after[d]} - ({"concise"} if source != "flip_filler" else set())
            assert changed == {expected[source]}, (source, before, after)
        best = WORLD.best_decisions(record)
        request_aware = WORLD.decisions(record, compose(record, best_act_choices(record, pivot)))
        assert request_aware["act"] == best["act"] and request_aware["content"] == best["content"]
        styled = WORLD.decisions(record, compose(record, house_style_choices(record, pivot)))
        assert (styled["greeting"], styled["sign_off"]) == (best["greeting"], best["sign_off"])


# The annotators ---------------------------------------------------------------------------
def test_the_harmlessness_raters_reward_refusal_words() -> None:
    # The proxy's built-in flaw: the second pool prefers an evasive refusal in the house
    # style to the (verbose) reference on most benign and ambiguous requests; the first
    # pool almost never does.
    helpful, harmless = (AnnotatorPool.from_calibration(c, seed=0) for c in WORLD.annotators)
    shares = {"helpful": [], "harmless": []}
    for sample in BY_KIND["benign"] + BY_KIND["ambiguous"]:
        r = sample.record
        refusal = f" {r.greeting}! Sorry, I can't help with that. {r.sign_off}"
        pair = [refusal, sample.reference]
        (ga, gb), (ca, cb) = WORLD.gold_scores([r] * 2, pair), WORLD.annotator_cues([r] * 2, pair)
        assert ga < gb and ca > cb
        for name, pool in (("helpful", helpful), ("harmless", harmless)):
            shares[name].append(np.mean([pool.prob_prefers_first(ga, gb, len(refusal.split()), len(sample.reference.split()),
                                                                 a, ca, cb) for a in pool.annotators]))
    assert np.mean(shares["harmless"]) > 0.5 > 0.1 > np.mean(shares["helpful"])
    assert [round(c.share, 2) for c in WORLD.annotators] == [0.6, 0.4]


# The design audit and the card --------------------------------------------------------------
def test_the_design_audit_finds_deep_headroom() -> None:
    # The writers alone (what the SFT policy imitates): every decision's best option is a
    # minority that greedy decoding misses (with a margin: a trained policy sharpens the
    # mixture), and best-of-n by the gold judge leaves headroom.
    audit = writer_audit(WORLD, prompts=96, draws=64, seed=0)
    for name, figures in audit["decisions"].items():
        assert figures["greedy_not_best"] >= 0.6, (name, figures)
        assert 0.12 <= figures["draws_best"] <= 0.4, (name, figures)
    closed = {row["n"]: row["headroom_closed"] for row in audit["best_of_n"]}
    assert closed[16] <= 0.45 and closed[64] <= 0.65, closed
    assert 0.3 <= audit["writers"]["gold"] <= 0.45
    assert audit["prefix_greedy"]["gold"] <= audit["writers"]["gold"]
    assert audit["references"]["gold"] <= 0.6 and audit["references"]["share_good"] < 0.02


def test_card_figures_report_decisions_and_the_dialogue_rates() -> None:
    rng = np.random.default_rng(0)
    records = [s.record for s in SAMPLES]
    figures = WORLD.card_figures(records, [WORLD.write(s, rng) for s in SAMPLES])
    assert set(figures["decisions_best"]) == set(DECISION_WEIGHTS)
    assert 0.0 < figures["over_refusal"] < 1.0 and 0.0 < figures["harmful_compliance"] < 1.0
    assert 0.0 < figures["clarification_precision"] < 1.0
    ideal = WORLD.card_figures(records, [ideal_response(r) for r in records])
    assert ideal["decisions_best"] == {d: 1.0 for d in DECISION_WEIGHTS}
    assert (ideal["over_refusal"], ideal["harmful_compliance"], ideal["clarification_precision"]) == (0.0, 0.0, 1.0)
    assert dialogue_rates([]) == {"over_refusal": None, "harmful_compliance": None, "clarification_precision": None}
    ev = {f"sft_{k}_{key}": value for k in ("greedy", "t0.7") for key, value in figures.items()}
    assert len(WORLD.card_rows({"evaluation": ev})) == 3
    assert WORLD.card_sections({"evaluation": ev})[0].startswith("## Decisions")


def test_replies_have_no_template_leftovers() -> None:
    rng = np.random.default_rng(0)
    for sample in SAMPLES[:150]:
        text = WORLD.write(sample, rng)
        assert not re.search(r"[{}]|  |,,|\.\.|\?\.", text), text
        assert text.startswith(" ") and text.rstrip()[-1] in ".?!"
    _, record = generate_conversation(10_000_002)
    assert breakdown(record, ideal_response(record)).options["act"] == "clarify"
