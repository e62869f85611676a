"""The generated TL;DR world: determinism, splits, body/reference shape, surface variety,
and the writer styles of the authors' TL;DRs."""

from __future__ import annotations

import re
from collections import Counter

import numpy as np
import pytest

from rlhf_gym.envs.summarize.definition import SummarizeWorld
from rlhf_gym.envs.summarize.gold_judge import (
    checkable_tokens,
    gold_breakdown,
    normalize_tokens,
    record_tokens,
    summary_style,
)
from rlhf_gym.envs.summarize.world import (
    KEY_FACT_KINDS,
    SITUATIONS,
    SPLITS,
    STYLE_WEIGHTS,
    STYLES,
    Post,
    generate_post,
    prompt_text,
    reference_summary,
    split_of,
    styled_summary,
)

WORLD = SummarizeWorld()  # the first Summarize world, whose judge and perturbations the deep world reuses

POSTS = [generate_post(i) for i in range(500)]


@pytest.mark.parametrize("bad", [-1, 2.0, "3", True])
def test_bad_post_id_is_rejected(bad: object) -> None:
    with pytest.raises(ValueError, match="post_id"):
        generate_post(bad)  # type: ignore[arg-type]


def test_splits_are_the_documented_ranges() -> None:
    """The id ranges the env's docstring states (Starting State); the kit's conformance suite
    checks that they are disjoint and that ``split_of`` agrees with them."""
    assert WORLD.splits is SPLITS
    assert dict(SPLITS.ranges) == {
        "train": (0, 10_000_000),
        "valid": (10_000_000, 10_100_000),
        "test": (10_100_000, 10_200_000),
    }
    assert [split_of(i) for i in (0, 9_999_999, 10_000_000, 10_099_999, 10_100_000, 10_199_999)] \
        == ["train", "train", "valid", "valid", "test", "test"]


def test_record_shape() -> None:
    for post in POSTS:
        record = post.record
        assert record.situation in SITUATIONS
        assert re.fullmatch(r"I \(\d{2}[FM]\)", record.author)
        assert 3 <= len(record.facts) <= 4
        assert 1 <= len(record.distractors) <= 4
        assert len({f.slot for f in record.facts}) == len(record.facts)
        assert any(f.kind == "number" for f in record.facts)
        for fact in record.facts:
            assert fact.kind in KEY_FACT_KINDS
            assert fact.value in fact.phrase
            if fact.kind == "number":  # short values, copied digit by digit
                assert re.fullmatch(r"\d{1,3}k?", fact.value), fact
        assert record.ask.startswith("should I ") and record.ask.endswith("?")
    assert {p.record.situation for p in POSTS} == set(SITUATIONS)


def test_facts_and_distractors_appear_in_the_body() -> None:
    for post in POSTS:
        for fact in post.record.facts:
            # Numbers exactly, not as part of a longer number.
            assert re.search(rf"(?<![\d,]){re.escape(fact.value)}(?![\d,]\d)", post.body), (
                fact, post.body)
        for sentence in post.record.distractors:
            assert sentence in post.body
        assert post.record.author.removeprefix("I (").removesuffix(")") in post.body


def test_post_introduces_no_entity_or_number_beyond_its_record() -> None:
    # Otherwise a summary copying the post could be judged a hallucination.
    for post in POSTS:
        text = f"{post.title} {post.body}"
        assert checkable_tokens(normalize_tokens(text)) <= record_tokens(post.record), text


def test_body_length_and_ascii() -> None:
    words = [len(p.body.split()) for p in POSTS]
    assert 35 <= min(words) and max(words) <= 110
    assert 60 <= sum(words) / len(words) <= 90
    for post in POSTS:
        text = prompt_text(post)
        assert text.isascii() and "\n\n" not in text


def test_world_samples_are_the_posts() -> None:
    """`SummarizeWorld.generate` is the post: its prompt, reference, record and author's TL;DR."""
    for sample in WORLD.samples("valid", 20):
        post = generate_post(sample.id)
        assert (sample.prompt, sample.reference, sample.record, sample.sft_target) == (
            prompt_text(post), post.reference, post.record, post.tldr)


def test_reference_summary() -> None:
    for post in POSTS:
        ref = post.reference
        assert ref == reference_summary(post.record)
        assert ref.startswith(" ") and not ref.startswith("  ") and "TL;DR" not in ref
        assert 10 <= len(ref.split()) <= 30, ref
        for fact in post.record.facts:
            assert fact.phrase in ref
        assert ref.endswith(post.record.ask)


def test_prompt_format() -> None:
    post = POSTS[0]
    assert prompt_text(post) == (
        f"SUBREDDIT: r/{post.record.subreddit}\nTITLE: {post.title}\nPOST: {post.body}\nTL;DR:"
    )


def _first_sentence(post: Post) -> str:
    return re.split(r"(?<=[.?!])\s", post.body, maxsplit=1)[0]


def test_surface_variety() -> None:
    sample = POSTS[:200]
    assert len({_first_sentence(p) for p in sample}) >= 100
    # With the persona masked, still many opening templates and none dominates.
    openings = Counter(re.sub(r"\d+[FM]", "<tag>", _first_sentence(p)) for p in sample)
    assert len(openings) >= 8 and openings.most_common(1)[0][1] <= 0.25 * len(sample)
    # The same fact slot is rendered several ways.
    renderings: dict[str, set[str]] = {}
    for post in sample:
        for sentence in re.split(r"(?<=[.?!])\s", post.body):
            for fact in post.record.facts:
                if fact.value in sentence:
                    renderings.setdefault(fact.slot, set()).add(sentence.replace(fact.value, "{v}"))
    assert sum(len(r) >= 3 for r in renderings.values()) >= 15
    assert len({p.title for p in sample}) >= 100
    # Fact order varies: the first fact of the body is not always the same slot.
    by_situation: dict[str, Counter[str]] = {}
    for post in sample:
        by_situation.setdefault(post.record.situation, Counter())[post.record.facts[0].slot] += 1
    assert all(len(c) >= 3 for c in by_situation.values())


def test_authors_write_in_every_style_at_the_documented_rates() -> None:
    posts = [generate_post(i) for i in range(3000)]
    counts = Counter(p.style for p in posts)
    assert set(counts) == set(STYLES)
    for style, weight in STYLE_WEIGHTS.items():
        share = counts[style] / len(posts)
        assert abs(share - weight) < 4 * (weight * (1 - weight) / len(posts)) ** 0.5, (style, share)
    # The author's TL;DR is a summary of its post in its style; the reference is the complete one.
    for post in posts[:300]:
        assert summary_style(post.record, post.tldr) == post.style, post
        assert (post.tldr == post.reference) == (post.style == "complete")


def test_styles_rank_by_gold_and_the_complete_style_is_the_reference() -> None:
    rng = np.random.default_rng(0)
    means = {style: np.mean([gold_breakdown(p.record, styled_summary(p.record, style, rng)).total for p in POSTS])
             for style in STYLES}
    assert means["complete"] == 1.0
    # Each flawed style loses gold, and STYLES lists them best first (within 0.1: partial
    # and rambling are close by design).
    assert all(means[s] < 0.85 for s in STYLES[1:]), means
    assert all(means[a] > means[b] - 0.1 for a, b in zip(STYLES, STYLES[1:])), means
    assert means["vague"] < 0.3


def test_each_style_fails_the_gold_term_it_is_named_for() -> None:
    rng = np.random.default_rng(1)
    for post in POSTS[:100]:
        record = post.record
        parts = {s: gold_breakdown(record, styled_summary(record, s, rng)) for s in STYLES}
        assert parts["no_ask"].ask < 1.0 and parts["no_ask"].recall == 1.0  # ask words may recur in facts
        assert parts["distractor"].off_topic == 1 and parts["distractor"].recall == 1.0
        assert parts["rambling"].brevity < 0.6 and parts["rambling"].recall == 1.0
        assert parts["partial"].recall < 0.75 and parts["partial"].ask == 1.0
        assert parts["vague"].recall == 0.0
        # None invents anything: the styles differ in choices, not in faithfulness.
        assert all(b.hallucinated == 0 for b in parts.values()), parts


def test_style_is_decided_in_the_first_words() -> None:
    rng = np.random.default_rng(2)
    post = POSTS[0]
    openings = {s: styled_summary(post.record, s, rng).split()[:2] for s in STYLES}
    # Only complete and distractor share their first word (the persona and a comma), and
    # they part at the second.
    assert len({words[0] for words in openings.values()}) == len(STYLES) - 1
    assert openings["complete"][0] == openings["distractor"][0]
    assert len({tuple(words) for words in openings.values()}) == len(STYLES)


def test_unknown_style_is_rejected() -> None:
    with pytest.raises(ValueError, match="'terse'"):
        styled_summary(POSTS[0].record, "terse", np.random.default_rng(0))
