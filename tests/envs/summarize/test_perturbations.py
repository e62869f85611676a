"""Summarize's perturbations change a summary in the way their name says, and each lowers the
gold score of every reference (the kit's conformance suite checks only the average)."""

from __future__ import annotations

import numpy as np
import pytest

from rlhf_gym.envs.summarize.definition import SummarizeWorld
from rlhf_gym.envs.summarize.gold_judge import gold_breakdown, gold_score, normalize_tokens
from rlhf_gym.envs.summarize.perturbations import PERTURBATIONS, sample_candidate

WORLD = SummarizeWorld()  # the first Summarize world, whose judge and perturbations the deep world reuses

POSTS = WORLD.samples("train", 150, offset=1000)
REQUIRED = {"drop_fact", "change_number", "invent_fact", "verbose", "truncate", "repeat"}


def test_required_kinds_exist() -> None:
    assert REQUIRED <= set(PERTURBATIONS)


@pytest.mark.parametrize("kind", sorted(REQUIRED))
def test_each_kind_changes_and_worsens_the_reference(kind: str) -> None:
    rng = np.random.default_rng(0)
    for post in POSTS:
        perturbed = WORLD.perturb(post, post.reference, kind, rng)
        assert perturbed != post.reference
        assert perturbed.isascii()
        assert gold_score(post.record, perturbed) < gold_score(post.record, post.reference)


def test_each_kind_hits_its_component() -> None:
    rng = np.random.default_rng(1)
    for post in POSTS:
        ref = post.reference
        b = {kind: gold_breakdown(post.record, WORLD.perturb(post, ref, kind, rng)) for kind in REQUIRED}
        assert b["drop_fact"].recall < 1.0 and b["drop_fact"].precision == 1.0
        assert b["change_number"].recall < 1.0 and b["change_number"].precision < 1.0
        assert b["invent_fact"].recall == 1.0 and b["invent_fact"].precision < 1.0
        assert b["verbose"].brevity < 1.0 and b["verbose"].precision == 1.0
        assert b["truncate"].well_formed < 1.0
        assert b["repeat"].repetition < 1.0 and b["repeat"].recall == 1.0


def test_change_number_keeps_everything_else() -> None:
    rng = np.random.default_rng(2)
    for post in POSTS:
        changed = WORLD.perturb(post, post.reference, "change_number", rng)
        before, after = normalize_tokens(post.reference), normalize_tokens(changed)
        assert len(before) == len(after)
        diff = [(x, y) for x, y in zip(before, after) if x != y]
        assert len(diff) == 1 and diff[0][0].isdigit() and diff[0][1].isdigit()


NON_REFERENCE_TEXTS = [" i think they should just relax.", " 12 cats", " one more thing. and then?"]


def test_perturbations_apply_to_non_reference_text() -> None:
    rng = np.random.default_rng(3)
    post = POSTS[0]
    for kind in REQUIRED - {"truncate"}:  # truncate has its own test below
        for text in NON_REFERENCE_TEXTS:
            out = WORLD.perturb(post, text, kind, rng)
            assert out != text, (kind, text)
            assert out.isascii()
    for text in NON_REFERENCE_TEXTS:
        for kind in ("change_number", "invent_fact"):
            assert gold_breakdown(post.record, WORLD.perturb(post, text, kind, rng)).hallucinated >= 1
        assert len(WORLD.perturb(post, text, "repeat", rng).split()) > len(text.split())
        assert len(WORLD.perturb(post, text, "verbose", rng).split()) > 1.5 * len(text.split())


def _check_truncation(post, text: str, cut: str) -> None:
    """``cut`` keeps the first 30-80% of ``text``'s words, without a final stop."""
    words, kept = text.split(), cut.split()
    assert text.startswith(cut), (text, cut)
    assert 0.3 * len(words) <= len(kept) <= 0.8 * len(words) < len(words), (text, cut)
    assert kept[:-1] == words[: len(kept) - 1]
    assert kept[-1] == words[len(kept) - 1].rstrip(".?!")
    assert cut[-1] not in ".?!"
    assert gold_breakdown(post.record, cut).well_formed < 1.0
    assert gold_score(post.record, cut) < gold_score(post.record, text)


def test_truncate_keeps_a_strict_prefix_of_the_words() -> None:
    rng = np.random.default_rng(6)
    lengths = set()
    for post in POSTS:
        cut = WORLD.perturb(post, post.reference, "truncate", rng)
        _check_truncation(post, post.reference, cut)
        lengths.add(len(cut.split()) / len(post.reference.split()))
    assert min(lengths) < 0.45 and max(lengths) > 0.65  # the cut point varies
    for text in NON_REFERENCE_TEXTS:
        _check_truncation(POSTS[0], text, WORLD.perturb(POSTS[0], text, "truncate", rng))


@pytest.mark.parametrize("text", ["", "   ", " single.", "word"])
def test_truncate_cuts_a_summary_of_under_two_words_to_nothing(text: str) -> None:
    assert WORLD.perturb(POSTS[0], text, "truncate", np.random.default_rng(0)) == ""


def test_perturbations_of_an_empty_summary() -> None:
    rng = np.random.default_rng(7)
    for post in POSTS[:30]:
        out = {kind: WORLD.perturb(post, "", kind, rng) for kind in REQUIRED}
        # Nothing to drop, cut or repeat: the summary stays empty, and scores zero.
        for kind in ("drop_fact", "truncate", "repeat"):
            assert out[kind] == "", (kind, out[kind])
            assert gold_score(post.record, out[kind]) == 0.0
        # The others add text: a number or fact the post never states ...
        for kind in ("change_number", "invent_fact"):
            assert out[kind].strip() and out[kind].isascii()
            assert gold_breakdown(post.record, out[kind]).hallucinated >= 1, out[kind]
        # ... or filler and the post's distractors, nothing false.
        padded = gold_breakdown(post.record, out["verbose"])
        assert padded.hallucinated == 0 and padded.off_topic >= 1, out["verbose"]


def test_sample_candidate_covers_every_source() -> None:
    rng = np.random.default_rng(4)
    sources = {sample_candidate(POSTS[i % len(POSTS)], rng)[0].split("+")[0] for i in range(300)}
    assert sources == {"reference", *PERTURBATIONS}
    doubles = [s for s, _ in (sample_candidate(POSTS[0], rng) for _ in range(200)) if "+" in s]
    assert doubles and all(len(set(s.split("+"))) == 2 for s in doubles)
