"""Summary perturbations: controlled ways to make a summary worse, for comparison data.

The comparison data of the preference model pairs candidates from several sources
(docs/architecture.md, "The asset pipeline"); perturbations of the reference supply pairs whose difference is known
and targeted, one failure mode each, mirroring what RLHF summarisers get wrong:

================  =============================================================
``drop_fact``     a key fact's phrase is left out (lower recall)
``change_number`` one number is replaced by a plausible wrong one (a contradiction)
``invent_fact``   a clause with a name/place/number the post never states is added
``verbose``       filler and distractor details pad the summary to ~2x its length
``truncate``      the summary is cut mid-sentence (as at ``max_new_tokens``)
``repeat``        a clause, or the ending, is repeated (degenerate looping)
================  =============================================================

Each function takes the post (for its record), the summary to perturb and a generator,
and returns the perturbed text; they apply to any summary, not only the reference, so
they compose (:func:`sample_candidate` draws double perturbations).

Example:
    >>> import numpy as np
    >>> from rlhf_gym.envs.summarize.world import generate_post
    >>> post = generate_post(0)
    >>> perturb(post, post.reference, "truncate", np.random.default_rng(0)) != post.reference
    True
"""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np

from rlhf_gym.envs.summarize.gold_judge import normalize_tokens, record_tokens
from rlhf_gym.envs.summarize.world import (
    CITIES,
    MONTHS,
    NAMES,
    NUMBER_WORDS,
    TRAVEL_CITIES,
    Post,
)

__all__ = ["PERTURBATIONS", "Perturbation", "perturb", "sample_candidate"]

Perturbation = Callable[[Post, str, np.random.Generator], str]

_NUMBER_RE = re.compile(r"\d{1,3}(?:,\d{3})+(?!\d)|\d+")

_INVENTED_CLAUSES = (
    "my cousin {name} in {city} thinks I should",
    "{name} from work owes me ${n}",
    "already spent ${n} on it",
    "might move to {city} in {month}",
    "{name} said to wait until {month}",
    "{name} offered to lend me ${n}",
    "have {n} days to decide",
)
_VERBOSE_OPENERS = ("So basically,", "Long story short,", "Okay so to sum it all up,",
                    "To be completely honest with you,")
_VERBOSE_LINKS = ("and also", "and on a side note", "and not that it matters but",
                  "plus")
_VERBOSE_TAILS = ("which is honestly a lot to deal with", "if that makes any sense at all",
                  "and I really don't know what to think anymore")


def _pick(rng: np.random.Generator, options: tuple[str, ...] | list[str]) -> str:
    return options[int(rng.integers(len(options)))]


def _unused(rng: np.random.Generator, pool: tuple[str, ...], allowed: frozenset[str]) -> str:
    fresh = [v for v in pool if v.lower() not in allowed]
    return _pick(rng, fresh)


def _fresh_number(rng: np.random.Generator, allowed: frozenset[str], low: int, high: int
                  ) -> int:
    while True:
        n = int(rng.integers(low, high))
        if str(n) not in allowed:
            return n


def _splice_before_ask(summary: str, clause: str) -> str:
    """Insert ``clause`` as one more item before the ask (after the last ``;``)."""
    cut = summary.rfind(";")
    if cut < 0:
        cut = summary.rfind(",")
    if cut >= 0:
        return f"{summary[:cut]}, {clause}{summary[cut:]}"
    body = summary.rstrip()
    end = body[-1] if body and body[-1] in ".?!" else ""
    return f"{body[:len(body) - len(end)]}, {clause}{end}"


def _remove_span(summary: str, start: int, stop: int) -> str:
    """Remove ``summary[start:stop]`` with one of the separators around it."""
    before, after = summary[:start], summary[stop:]
    if after.startswith(", "):
        return before + after[2:]
    if before.endswith(", "):
        return before[:-2] + after
    if not before.strip():
        return " " + after.lstrip(" ,;")
    return re.sub(r"\s{2,}", " ", f"{before.rstrip()} {after.lstrip()}").rstrip()


def drop_fact(post: Post, summary: str, rng: np.random.Generator) -> str:
    """Leave out one key fact.

    Removes the phrase of one fact the summary states; if it states none verbatim,
    removes one clause (the text between commas or semicolons) instead.

    Example:
        >>> import numpy as np
        >>> from rlhf_gym.envs.summarize.world import generate_post
        >>> post = generate_post(0)
        >>> dropped = drop_fact(post, post.reference, np.random.default_rng(0))
        >>> sum(f.phrase in dropped for f in post.record.facts) == len(post.record.facts) - 1
        True
    """
    lower = summary.lower()
    spans = [(lower.find(f.phrase.lower()), len(f.phrase)) for f in post.record.facts]
    spans = [(start, start + n) for start, n in spans if start >= 0]
    if spans:
        start, stop = spans[int(rng.integers(len(spans)))]
        return _remove_span(summary, start, stop)
    clauses = [m for m in re.finditer(r"[^,;]+", summary) if m.group().strip()]
    if len(clauses) >= 2:
        # Keep the last clause: it carries the ask when the summary has one.
        m = clauses[int(rng.integers(len(clauses) - 1))]
        return _remove_span(summary, m.start(), m.end())
    words = summary.split()
    if len(words) >= 2:
        del words[int(rng.integers(len(words) - 1))]
        return " " + " ".join(words)
    return summary


def change_number(post: Post, summary: str, rng: np.random.Generator) -> str:
    """Replace one number with a plausible wrong one that the post never states.

    Prefers the numbers of key facts; the new number keeps the old one's rounding and
    formatting (``$1,500`` may become ``$2,100``). A summary without digits gets a number
    word (``two weeks``) or, failing that, a number-bearing invented clause.

    Example:
        >>> import numpy as np
        >>> from rlhf_gym.envs.summarize.world import generate_post
        >>> post = generate_post(1)
        >>> changed = change_number(post, post.reference, np.random.default_rng(0))
        >>> changed != post.reference and len(changed.split()) == len(post.reference.split())
        True
    """
    allowed = record_tokens(post.record)
    fact_numbers = {t for f in post.record.facts for t in normalize_tokens(f.value)
                    if t.isdigit()}
    matches = list(_NUMBER_RE.finditer(summary))
    preferred = [m for m in matches if m.group().replace(",", "") in fact_numbers]
    candidates = preferred or matches
    if candidates:
        m = candidates[int(rng.integers(len(candidates)))]
        old = int(m.group().replace(",", ""))
        step = 1
        while old % (step * 10) == 0 and step < 1000 and old >= step * 10:
            step *= 10
        new = old
        for _ in range(100):
            delta = step * int(rng.integers(1, max(2, (old // 2) // step + 1)))
            new = old + delta if (old - delta <= 0 or rng.random() < 0.5) else old - delta
            if new > 0 and new != old and str(new) not in allowed:
                break
        else:
            new = _fresh_number(rng, allowed, old + 1, old * 3 + 10)
        text = f"{new:,}" if "," in m.group() or (new >= 10_000 and old >= 1_000) else str(new)
        return summary[:m.start()] + text + summary[m.end():]
    words = [(m, m.group().lower()) for m in re.finditer(r"[A-Za-z]+", summary)]
    numeric = [m for m, w in words if w in NUMBER_WORDS]
    if numeric:
        m = numeric[int(rng.integers(len(numeric)))]
        replacement = _unused(rng, NUMBER_WORDS[:11], allowed | {m.group().lower()})
        return summary[:m.start()] + replacement + summary[m.end():]
    n = _fresh_number(rng, allowed, 3, 500)
    return _splice_before_ask(summary, f"about {n} of them")


def invent_fact(post: Post, summary: str, rng: np.random.Generator) -> str:
    """Add a clause with a name, place, month or number that the post never states.

    Example:
        >>> import numpy as np
        >>> from rlhf_gym.envs.summarize.world import generate_post
        >>> post = generate_post(2)
        >>> invented = invent_fact(post, post.reference, np.random.default_rng(0))
        >>> len(invented.split()) > len(post.reference.split())
        True
    """
    allowed = record_tokens(post.record)
    clause = _pick(rng, _INVENTED_CLAUSES).format(
        name=_unused(rng, NAMES, allowed),
        city=_unused(rng, CITIES + TRAVEL_CITIES, allowed),
        month=_unused(rng, MONTHS, allowed),
        n=f"{_fresh_number(rng, allowed, 12, 900)}",
    )
    return _splice_before_ask(summary, clause)


def verbose(post: Post, summary: str, rng: np.random.Generator) -> str:
    """Pad the summary with filler and the post's irrelevant details (its distractors).

    Nothing added is false, so only brevity suffers; the ask stays at the end.

    Example:
        >>> import numpy as np
        >>> from rlhf_gym.envs.summarize.world import generate_post
        >>> post = generate_post(3)
        >>> padded = verbose(post, post.reference, np.random.default_rng(0))
        >>> len(padded.split()) > 1.5 * len(post.reference.split())
        True
    """
    distractors = list(post.record.distractors)
    order = rng.permutation(len(distractors))[:2]
    details = []
    for i in order:
        sentence = distractors[int(i)].rstrip(".!?")
        first = sentence.split(" ", 1)[0]
        keep_case = first == "I" or first.startswith("I'")
        details.append(sentence if keep_case else sentence[:1].lower() + sentence[1:])
    links = rng.permutation(len(_VERBOSE_LINKS))
    padding = " ".join(f"{_VERBOSE_LINKS[int(j)]} {d}," for j, d in zip(links, details))
    padding = f"{padding} {_pick(rng, _VERBOSE_TAILS)}".strip()
    body = summary.strip()
    if body:
        body = body[:1].lower() + body[1:] if not body[:1].isdigit() else body
    opened = f" {_pick(rng, _VERBOSE_OPENERS)} {body}"
    return _splice_before_ask(opened, padding)


def truncate(post: Post, summary: str, rng: np.random.Generator) -> str:
    """Cut the summary mid-sentence, keeping 30-80% of its words and no final stop.

    Example:
        >>> import numpy as np
        >>> from rlhf_gym.envs.summarize.world import generate_post
        >>> post = generate_post(4)
        >>> cut = truncate(post, post.reference, np.random.default_rng(0))
        >>> post.reference.startswith(cut) and cut[-1] not in ".?!"
        True
    """
    words = summary.split()
    if len(words) < 2:
        return ""
    low = max(1, int(np.ceil(0.3 * len(words))))
    high = max(low, int(0.8 * len(words)))
    kept = " ".join(words[: int(rng.integers(low, high + 1))]).rstrip(".?!")
    return (" " if summary.startswith(" ") else "") + kept


def repeat(post: Post, summary: str, rng: np.random.Generator) -> str:
    """Repeat a fact's clause in place, or loop the last few words, as degenerate LMs do.

    Example:
        >>> import numpy as np
        >>> from rlhf_gym.envs.summarize.world import generate_post
        >>> post = generate_post(5)
        >>> looped = repeat(post, post.reference, np.random.default_rng(0))
        >>> len(looped.split()) > len(post.reference.split())
        True
    """
    lower = summary.lower()
    # Only phrases of 3+ words: a shorter repeat creates no repeated trigram.
    spans = [(lower.find(f.phrase.lower()), len(f.phrase)) for f in post.record.facts
             if len(f.phrase.split()) >= 3]
    spans = [(start, start + n) for start, n in spans if start >= 0]
    if spans and rng.random() < 0.5:
        start, stop = spans[int(rng.integers(len(spans)))]
        return f"{summary[:stop]}, {summary[start:stop]}{summary[stop:]}"
    words = summary.split()
    if not words:
        return summary
    k = min(len(words), int(rng.integers(3, 7)))
    return summary.rstrip() + " " + " ".join(words[-k:])


PERTURBATIONS: dict[str, Perturbation] = {
    "drop_fact": drop_fact,
    "change_number": change_number,
    "invent_fact": invent_fact,
    "verbose": verbose,
    "truncate": truncate,
    "repeat": repeat,
}
"""Name -> ``f(post, summary, rng) -> perturbed summary``."""


def perturb(post: Post, summary: str, kind: str, rng: np.random.Generator) -> str:
    """Apply the perturbation named ``kind`` to ``summary``.

    Args:
        post: The post whose summary this is (its record guides the perturbation).
        summary: The summary to perturb (e.g. ``post.reference``).
        kind: A key of :data:`PERTURBATIONS`.
        rng: Source of randomness; the result is a function of its state.

    Returns:
        The perturbed summary.

    Raises:
        ValueError: If ``kind`` is not a known perturbation.

    Example:
        >>> import numpy as np
        >>> from rlhf_gym.envs.summarize.world import generate_post
        >>> post = generate_post(6)
        >>> perturb(post, post.reference, "repeat", np.random.default_rng(1)) != post.reference
        True
    """
    try:
        fn = PERTURBATIONS[kind]
    except KeyError:
        raise ValueError(
            f"unknown perturbation kind {kind!r}; known kinds: {', '.join(PERTURBATIONS)}"
        ) from None
    return fn(post, summary, rng)


def sample_candidate(post: Post, rng: np.random.Generator) -> tuple[str, str]:
    """Draw one comparison candidate: the reference, a perturbation, or two of them.

    The source is uniform over ``{"reference", each kind, "double"}``; ``"double"``
    applies two different kinds in random order. Two independent draws make a pair of
    the kind the annotators are calibrated on.

    Args:
        post: The post.
        rng: Source of randomness.

    Returns:
        ``(source, summary)``, ``source`` being ``"reference"``, a kind, or
        ``"kind1+kind2"``.

    Example:
        >>> import numpy as np
        >>> from rlhf_gym.envs.summarize.world import generate_post
        >>> source, text = sample_candidate(generate_post(0), np.random.default_rng(0))
        >>> source.split("+")[0] in {"reference", *PERTURBATIONS}
        True
    """
    kinds = list(PERTURBATIONS)
    choice = int(rng.integers(len(kinds) + 2))
    if choice == 0:
        return "reference", post.reference
    if choice <= len(kinds):
        kind = kinds[choice - 1]
        return kind, perturb(post, post.reference, kind, rng)
    first, second = (kinds[int(i)] for i in rng.permutation(len(kinds))[:2])
    text = perturb(post, perturb(post, post.reference, first, rng), second, rng)
    return f"{first}+{second}", text
