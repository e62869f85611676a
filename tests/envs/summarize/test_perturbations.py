"""Perturbations change the summary in the way their name says, and lower its gold score."""

from __future__ import annotations

import numpy as np
import pytest

from rlhf_gym.envs.summarize.gold_judge import gold_breakdown, gold_score, normalize_tokens
from rlhf_gym.envs.summarize.perturbations import PERTURBATIONS, perturb, sample_candidate
from rlhf_gym.envs.summarize.world import generate_post

POSTS = [generate_post(i) for i in range(1000, 1150)]
REQUIRED = {"drop_fact", "change_number", "invent_fact", "verbose", "truncate", "repeat"}


def test_required_kinds_exist() -> None:
    assert REQUIRED <= set(PERTURBATIONS)


def test_unknown_kind_names_it_and_the_known_kinds() -> None:
    with pytest.raises(ValueError, match=r"'shuffle'.*drop_fact.*repeat"):
        perturb(POSTS[0], POSTS[0].reference, "shuffle", np.random.default_rng(0))


@pytest.mark.parametrize("kind", sorted(REQUIRED))
def test_each_kind_changes_and_worsens_the_reference(kind: str) -> None:
    rng = np.random.default_rng(0)
    for post in POSTS:
        perturbed = perturb(post, post.reference, kind, rng)
        assert perturbed != post.reference
        assert perturbed.isascii()
        assert gold_score(post.record, perturbed) < gold_score(post.record, post.reference)


@pytest.mark.parametrize("kind", sorted(REQUIRED))
def test_deterministic_given_the_generator_state(kind: str) -> None:
    post = POSTS[7]
    a = perturb(post, post.reference, kind, np.random.default_rng(5))
    b = perturb(post, post.reference, kind, np.random.default_rng(5))
    assert a == b


def test_each_kind_hits_its_component() -> None:
    rng = np.random.default_rng(1)
    for post in POSTS:
        ref = post.reference
        b = {kind: gold_breakdown(post.record, perturb(post, ref, kind, rng)) for kind in REQUIRED}
        assert b["drop_fact"].recall < 1.0 and b["drop_fact"].precision == 1.0
        assert b["change_number"].recall < 1.0 and b["change_number"].precision < 1.0
        assert b["invent_fact"].recall == 1.0 and b["invent_fact"].precision < 1.0
        assert b["verbose"].brevity < 1.0 and b["verbose"].precision == 1.0
        assert b["truncate"].well_formed < 1.0
        assert b["repeat"].repetition < 1.0 and b["repeat"].recall == 1.0


def test_change_number_keeps_everything_else() -> None:
    rng = np.random.default_rng(2)
    for post in POSTS:
        changed = perturb(post, post.reference, "change_number", rng)
        before, after = normalize_tokens(post.reference), normalize_tokens(changed)
        assert len(before) == len(after)
        diff = [(x, y) for x, y in zip(before, after) if x != y]
        assert len(diff) == 1 and diff[0][0].isdigit() and diff[0][1].isdigit()


def test_perturbations_apply_to_non_reference_text() -> None:
    rng = np.random.default_rng(3)
    post = POSTS[0]
    for kind in REQUIRED:
        for text in [" i think they should just relax.", " 12 cats", ""]:
            out = perturb(post, text, kind, rng)
            assert isinstance(out, str)
            if text.strip() and kind != "truncate":
                assert out != text


def test_sample_candidate_covers_every_source() -> None:
    rng = np.random.default_rng(4)
    sources = {sample_candidate(POSTS[i % len(POSTS)], rng)[0].split("+")[0] for i in range(300)}
    assert sources == {"reference", *PERTURBATIONS}
    doubles = [s for s, _ in (sample_candidate(POSTS[0], rng) for _ in range(200)) if "+" in s]
    assert doubles and all(len(set(s.split("+"))) == 2 for s in doubles)
