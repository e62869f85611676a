"""The gold judge: the true quality of a summary, scored against the post's latent record.

In the generated world the simulated annotators' preferences derive from this score, so
it plays the role human judgement plays in "Learning to summarize from human feedback"
(Stiennon et al., 2020): the learned preference model is a proxy of it, and reward
over-optimisation shows up as proxy reward rising while this score falls.

Components, each in [0, 1]:

- **recall**: mean credit over the record's key facts. A fact earns credit only if its
  value appears as whole tokens (numbers exactly: ``$1,500``, ``1500`` and ``1,500``
  match, ``150`` does not); it then earns 0.6 plus 0.4 times the fraction of its phrase's
  key words present (so ``"300"`` alone counts for less than ``"rent going up $300"``).
- **ask**: the fraction of the question's key words present (``should I break my
  lease?`` -> break, lease): the reader wants to know what the author asks.
- **well_formed**: 0 when empty; else 0.5 * (ends with ``.``, ``?`` or ``!``) + 0.5 *
  (no junk: non-ASCII or control characters such as newlines, prompt markers like
  ``TL;DR``/``POST:``, ``<|``, runs of three identical punctuation marks).
- **precision**: ``1 - 0.4 * n`` (floored at 0), with ``n`` the distinct hallucinated
  tokens: digit strings, names, places, organisations, months, weekdays and number words
  (:data:`~rlhf_gym.envs.summarize.world.ENTITY_VOCABULARY`) that the record does not
  contain, plus contradicted numbers: a number in a fact's context (the words around the
  value in its phrase, e.g. ``oldest of _ kids``) other than the fact's own, which catches
  numbers swapped between facts.
- **focus**: ``1 - 0.4 * k`` (floored at 0), with ``k`` the post's distractor sentences
  the summary repeats (half or more of a distractor's content words, at least two).
- **brevity**: 1 while the word count is 0.6-1.3 times the reference's; linear towards 0
  for shorter, ``exp(-(ratio - 1.3) / 0.7)`` for longer.
- **repetition**: ``1 - 2 * d`` (floored at 0), with ``d`` the fraction of repeated
  word trigrams.

``total = (0.6 * recall + 0.25 * ask + 0.15 * well_formed) * precision * focus *
(0.4 + 0.6 * brevity) * repetition``. Why this shape:

- What a summary *says* is additive: recall carries most weight because stating the key
  facts is the task; the question is the next thing a reader needs, and a clean ending the
  rest. A summary that states no fact scores at most 0.4, however short and clean.
- What a summary gets *wrong* multiplies: a hallucination, an irrelevant detail or a
  repeat devalues everything else the summary says, so they scale the content score
  rather than subtract a constant (which a long, otherwise good summary could absorb).
- Brevity multiplies with a floor of 0.4: length is a matter of style, so even a very long
  summary keeps part of its content score, but a policy that learns to pad (the length
  bias of the simulated annotators and so of the learned reward) pays for it in gold.
- With these weights a wrong number scores below leaving the fact out (both lose the
  fact's recall; the wrong one also costs precision 0.6 vs 1): a wrong number misleads
  the reader, an omission only fails to inform.

On the writer styles of :data:`~rlhf_gym.envs.summarize.world.STYLES` this gives, for a
faithful summary, on average: complete 1.0, no_ask 0.78, partial 0.58, distractor 0.54,
rambling 0.50, vague 0.14 (``docs/architecture.md`` has the measured table).

The judge is deterministic and depends only on the record and the summary text.

Example:
    >>> from rlhf_gym.envs.summarize.world import generate_post
    >>> post = generate_post(0)
    >>> gold_score(post.record, post.reference)
    1.0
    >>> gold_score(post.record, "")
    0.0
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from rlhf_gym.envs.summarize.world import (
    ENTITY_VOCABULARY,
    NO_ASK_MARKER,
    STYLE_OPENERS,
    STYLES,
    PostRecord,
    persona_tag,
    reference_summary,
)

__all__ = [
    "GoldBreakdown",
    "checkable_tokens",
    "gold_breakdown",
    "gold_score",
    "gold_scores",
    "normalize_tokens",
    "record_tokens",
    "style_shares",
    "summary_style",
]

# Weights and shape parameters of the score (see the module docstring for the reasons).
RECALL_WEIGHT = 0.6
ASK_WEIGHT = 0.25
WELL_FORMED_WEIGHT = 0.15
VALUE_CREDIT = 0.6  # credit for a fact's value alone; key words of its phrase add the rest
HALLUCINATION_PENALTY = 0.4  # per distinct hallucinated token
DISTRACTOR_PENALTY = 0.4  # per distractor sentence repeated in the summary
DISTRACTOR_MIN_WORDS = 2  # content words of a distractor that must appear to count it
BREVITY_FLOOR = 0.4
SHORT_RATIO, LONG_RATIO, LONG_DECAY = 0.6, 1.3, 0.7
REPETITION_N = 3
REPETITION_SLOPE = 2.0
ENDING_WEIGHT, CLEAN_WEIGHT = 0.5, 0.5

# Function words ignored when matching a phrase's or the ask's key words.
STOPWORDS = frozenset(
    "a an the i my me to of in on for at and or is are be was it with from should by s t "
    "this that them they their do per am".split()
)

_TOKEN_RE = re.compile(r"\d+|[a-z]+")
_THOUSANDS_RE = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")
_CLAUSE_BREAK_RE = re.compile(r"[.,;:?!\n]")
_JUNK_RE = re.compile(r"[^\x20-\x7e]|tl;?dr|subreddit:|title:|post:|<\||([^\w\s])\1\1",
                      re.IGNORECASE)


@dataclass(frozen=True)
class GoldBreakdown:
    """The gold judge's components for one summary, each in [0, 1].

    Attributes:
        recall: Mean credit over key facts (a number counts only if exactly right).
        ask: Fraction of the question's key words present.
        precision: 1 minus 0.4 per hallucinated or contradicted number/entity.
        hallucinated: how many distinct numbers/entities cost precision (invented, or
            contradicting the record).
        focus: 1 minus 0.4 per distractor sentence of the post repeated in the summary.
        off_topic: how many distractor sentences the summary repeats.
        brevity: 1 near the reference's length, decaying for longer or much shorter.
        repetition: 1 with no repeated word trigrams, lower with repeats.
        well_formed: The summary ends cleanly, no junk; 0 if empty.
        total: ``(0.6 recall + 0.25 ask + 0.15 well_formed) * precision * focus *
            (0.4 + 0.6 brevity) * repetition``.
    """

    recall: float
    ask: float
    precision: float
    hallucinated: int
    focus: float
    off_topic: int
    brevity: float
    repetition: float
    well_formed: float
    total: float


def normalize_tokens(text: str) -> list[str]:
    """Lower-cased word and number tokens, with thousands separators removed.

    Args:
        text: Any text.

    Returns:
        Tokens of letters or of digits; punctuation and ``$`` are dropped, ``27F`` splits
        into ``27`` and ``f``.

    Example:
        >>> normalize_tokens(" 27F, rent up $1,500 (Denver)!")
        ['27', 'f', 'rent', 'up', '1500', 'denver']
    """
    return _TOKEN_RE.findall(_THOUSANDS_RE.sub("", text.lower()))


def checkable_tokens(tokens: Sequence[str]) -> set[str]:
    """The tokens whose presence must be backed by the record: numbers and entities.

    Args:
        tokens: Output of :func:`normalize_tokens`.

    Returns:
        The digit tokens and the tokens in ``ENTITY_VOCABULARY``.

    Example:
        >>> sorted(checkable_tokens(normalize_tokens("moved to Denver in March for $900")))
        ['900', 'denver', 'march']
    """
    return {t for t in tokens if t.isdigit() or t in ENTITY_VOCABULARY}


@dataclass(frozen=True)
class _FactKey:
    value: tuple[str, ...]
    keywords: frozenset[str]
    # For a one-number value: the phrase's tokens just before and after it, so that
    # "rent going up 400" reads as a contradiction of "rent going up $300". One token a
    # side when the value has words on both sides, else up to two on the one side (a
    # lone "_ years" or "$_ in" would match unrelated numbers).
    context: tuple[tuple[str, ...], tuple[str, ...]] | None
    unit: tuple[str, ...] = ()  # what follows the digits inside the value: ("k",) in "$51k"


@dataclass(frozen=True)
class _RecordIndex:
    facts: tuple[_FactKey, ...]
    allowed: frozenset[str]
    ask_keywords: frozenset[str]
    distractor_keywords: tuple[frozenset[str], ...]
    target_words: int


def record_tokens(record: PostRecord) -> frozenset[str]:
    """The checkable tokens a record backs: those of its author, facts, ask and distractors.

    Args:
        record: The latent record.

    Returns:
        The set a summary's checkable tokens are checked against.

    Example:
        >>> from rlhf_gym.envs.summarize.world import generate_post
        >>> record = generate_post(1).record
        >>> all(t in record_tokens(record) for t in normalize_tokens(record.facts[0].value)
        ...     if t.isdigit())
        True
    """
    return _index(record).allowed


@functools.lru_cache(maxsize=8192)
def _index(record: PostRecord) -> _RecordIndex:
    facts = []
    for fact in record.facts:
        value = tuple(normalize_tokens(fact.value))
        phrase = normalize_tokens(fact.phrase)
        keywords = frozenset(phrase) - set(value) - STOPWORDS
        context = None
        digits = [t for t in value if t.isdigit()]
        if len(digits) == 1 and value[0] == digits[0] and _contains(phrase, value):
            # e.g. ("300",), or ("51", "k"): the unit is matched as part of the value, and the
            # context is the words around the whole value.
            at = phrase.index(digits[0])
            end = at + len(value)
            before, after = tuple(phrase[max(0, at - 2):at]), tuple(phrase[end:end + 2])
            if before and after:
                before, after = before[-1:], after[:1]
            context = (before, after) if before or after else None
        facts.append(_FactKey(value, keywords, context, tuple(value[1:]) if context else ()))
    texts = [record.author, record.ask, *record.distractors]
    texts += [text for fact in record.facts for text in (fact.value, fact.phrase)]
    allowed = frozenset(t for text in texts for t in checkable_tokens(normalize_tokens(text)))
    return _RecordIndex(
        facts=tuple(facts),
        allowed=allowed,
        ask_keywords=frozenset(normalize_tokens(record.ask)) - STOPWORDS,
        distractor_keywords=tuple(_content_words(d) for d in record.distractors),
        target_words=len(reference_summary(record).split()),
    )


def _contains(tokens: Sequence[str], span: Sequence[str]) -> bool:
    n = len(span)
    return n > 0 and any(tuple(tokens[i:i + n]) == tuple(span)
                         for i in range(len(tokens) - n + 1))


def _recall(index: _RecordIndex, tokens: list[str], present: set[str]) -> float:
    credits = []
    for fact in index.facts:
        if not _contains(tokens, fact.value):
            credits.append(0.0)
            continue
        found = len(fact.keywords & present) / len(fact.keywords) if fact.keywords else 1.0
        credits.append(VALUE_CREDIT + (1.0 - VALUE_CREDIT) * found)
    return float(np.mean(credits)) if credits else 1.0


def _contradicted(index: _RecordIndex, text: str) -> set[str]:
    """Numbers stated in a fact's context (its phrase's neighbouring words) but not its own.

    Catches wrong numbers that happen to be elsewhere in the record (swapped values),
    which the hallucination check alone would let through. Contexts do not reach across
    punctuation, so "... a 45. Tuition is" does not read as "$45 tuition".
    """
    wrong: set[str] = set()
    clauses = [normalize_tokens(c) for c in _CLAUSE_BREAK_RE.split(_THOUSANDS_RE.sub("", text))]
    for fact in index.facts:
        if fact.context is None:
            continue
        before, after = fact.context
        unit = len(fact.unit)
        for tokens in clauses:
            for i, token in enumerate(tokens):
                if (token.isdigit() and token != fact.value[0]
                        and tuple(tokens[max(0, i - len(before)):i]) == before
                        and tuple(tokens[i + 1:i + 1 + unit]) == fact.unit
                        and tuple(tokens[i + 1 + unit:i + 1 + unit + len(after)]) == after):
                    wrong.add(token)
    return wrong


def _brevity(n_words: int, target_words: int) -> float:
    if n_words == 0:
        return 0.0
    ratio = n_words / max(target_words, 1)
    if ratio < SHORT_RATIO:
        return ratio / SHORT_RATIO
    if ratio > LONG_RATIO:
        return math.exp(-(ratio - LONG_RATIO) / LONG_DECAY)
    return 1.0


def _repetition(tokens: list[str]) -> float:
    grams = [tuple(tokens[i:i + REPETITION_N]) for i in range(len(tokens) - REPETITION_N + 1)]
    if not grams:
        return 1.0
    repeated = 1.0 - len(set(grams)) / len(grams)
    return max(0.0, 1.0 - REPETITION_SLOPE * repeated)


# Common words that say nothing about what a distractor sentence is about.
_FILLER_WORDS = frozenset(
    "been have has had into out just get got also really lately again too very all about "
    "some which other day days week now right here there because what".split()
)


def _content_words(text: str) -> frozenset[str]:
    """Words of a sentence that say what it is about: no digits, stopwords or short words."""
    return frozenset(t for t in normalize_tokens(text)
                     if not t.isdigit() and len(t) > 2 and t not in STOPWORDS | _FILLER_WORDS)


def _ask(index: _RecordIndex, present: set[str]) -> float:
    if not index.ask_keywords:
        return 1.0
    return len(index.ask_keywords & present) / len(index.ask_keywords)


def _off_topic(index: _RecordIndex, present: set[str]) -> int:
    """How many of the post's distractor sentences the summary repeats."""
    return sum(
        1 for words in index.distractor_keywords
        if len(words & present) >= max(DISTRACTOR_MIN_WORDS, math.ceil(len(words) / 2))
    )


def _well_formed(text: str) -> float:
    if not text:
        return 0.0
    ending = 1.0 if text[-1] in ".?!" else 0.0
    clean = 0.0 if _JUNK_RE.search(text) else 1.0
    return ENDING_WEIGHT * ending + CLEAN_WEIGHT * clean


def gold_breakdown(record: PostRecord, summary: str) -> GoldBreakdown:
    """Score ``summary`` against ``record`` and return every component.

    Args:
        record: The latent record of the post.
        summary: The text written after ``TL;DR:`` (leading space, truncation and trailing
            junk are all allowed; they are scored, not rejected).

    Returns:
        The :class:`GoldBreakdown`; ``total`` is the gold score.

    Example:
        >>> from rlhf_gym.envs.summarize.world import generate_post
        >>> post = generate_post(5)
        >>> b = gold_breakdown(post.record, post.reference + post.reference)
        >>> b.recall, b.repetition < 1.0, b.total < 1.0
        (1.0, True, True)
    """
    index = _index(record)
    text = summary.strip()
    tokens = normalize_tokens(text)
    present = set(tokens)
    recall = _recall(index, tokens, present)
    # A wrong number outside the record is both hallucinated and contradicting: count once.
    hallucinated = (checkable_tokens(tokens) - index.allowed) | _contradicted(index, text)
    precision = max(0.0, 1.0 - HALLUCINATION_PENALTY * len(hallucinated))
    off_topic = _off_topic(index, present)
    focus = max(0.0, 1.0 - DISTRACTOR_PENALTY * off_topic)
    brevity = _brevity(len(text.split()), index.target_words)
    repetition = _repetition(tokens)
    ask = _ask(index, present) if text else 0.0
    well_formed = _well_formed(text)
    content = RECALL_WEIGHT * recall + ASK_WEIGHT * ask + WELL_FORMED_WEIGHT * well_formed
    total = (content * precision * focus * (BREVITY_FLOOR + (1.0 - BREVITY_FLOOR) * brevity)
             * repetition)
    return GoldBreakdown(
        recall=recall,
        ask=ask,
        precision=precision,
        hallucinated=len(hallucinated),
        focus=focus,
        off_topic=off_topic,
        brevity=brevity,
        repetition=repetition,
        well_formed=well_formed,
        total=float(min(1.0, max(0.0, total))),
    )


def gold_score(record: PostRecord, summary: str) -> float:
    """The gold score of ``summary`` in [0, 1]: ``gold_breakdown(record, summary).total``.

    Args:
        record: The latent record of the post.
        summary: The text written after ``TL;DR:``.

    Returns:
        The score; the reference summary scores 1.0, an empty summary 0.0.

    Example:
        >>> from rlhf_gym.envs.summarize.world import generate_post
        >>> post = generate_post(2)
        >>> gold_score(post.record, post.reference) > gold_score(post.record, " I dunno.")
        True
    """
    return gold_breakdown(record, summary).total


def gold_scores(records: Sequence[PostRecord], summaries: Sequence[str]) -> np.ndarray:
    """Gold scores of a batch of (record, summary) pairs.

    Args:
        records: Latent records, one per summary.
        summaries: Summaries, aligned with ``records``.

    Returns:
        ``(N,)`` float64 array of scores.

    Raises:
        ValueError: If the two sequences differ in length.

    Example:
        >>> from rlhf_gym.envs.summarize.world import generate_post
        >>> posts = [generate_post(i) for i in range(3)]
        >>> gold_scores([p.record for p in posts], [p.reference for p in posts])
        array([1., 1., 1.])
    """
    if len(records) != len(summaries):
        raise ValueError(
            f"records and summaries must align, got {len(records)} records and "
            f"{len(summaries)} summaries"
        )
    return np.fromiter(
        (gold_score(r, s) for r, s in zip(records, summaries)), dtype=np.float64,
        count=len(records),
    )


def summary_style(record: PostRecord, summary: str) -> str:
    """Which writer style of :data:`~rlhf_gym.envs.summarize.world.STYLES` a summary is in.

    Read off its opening words (:data:`~rlhf_gym.envs.summarize.world.STYLE_OPENERS`) and,
    for summaries that start with the persona, whether it repeats one of the post's
    distractors. Used to see how a policy's samples spread
    over the styles and how RL moves that spread.

    Args:
        record: The latent record of the post.
        summary: The text written after ``TL;DR:``.

    Returns:
        A style name, or ``"other"`` for a summary that opens like none of them.

    Example:
        >>> import numpy as np
        >>> from rlhf_gym.envs.summarize.world import generate_post, styled_summary
        >>> post = generate_post(3)
        >>> [summary_style(post.record, styled_summary(post.record, s, np.random.default_rng(0)))
        ...  for s in STYLES] == list(STYLES)
        True
    """
    text = summary.strip()
    # Longest opener first: "So basically I'm" (rambling) before "Basically" (partial).
    for style, opener in sorted(STYLE_OPENERS.items(), key=lambda item: -len(item[1])):
        if text.startswith(opener):
            return style
    tag = persona_tag(record)
    if text.startswith(f"{tag} {NO_ASK_MARKER}"):
        return "no_ask"
    if not text.startswith(tag):
        return "other"
    present = set(normalize_tokens(text))
    if _off_topic(_index(record), present):
        return "distractor"
    return "complete"


def style_shares(records: Sequence[PostRecord], summaries: Sequence[str]) -> dict[str, float]:
    """Share of the summaries in each writer style (and ``"other"``), styles in order.

    Example:
        >>> from rlhf_gym.envs.summarize.world import generate_post
        >>> posts = [generate_post(i) for i in range(4)]
        >>> style_shares([p.record for p in posts], [p.reference for p in posts])["complete"]
        1.0
    """
    styles = [summary_style(r, s) for r, s in zip(records, summaries, strict=True)]
    return {name: styles.count(name) / max(len(styles), 1) for name in (*STYLES, "other")}
