"""The deep Summarize world: seven decisions per summary, each credited by the gold judge,
whose best options the writers take only as a minority and depend on the post.

The first Summarize world (`rlhf_gym.envs.summarize.definition`) had about one decision,
the writer style, chosen in the first words, and its best option was the SFT policy's
mode: greedy decoding scored 0.93 gold and best-of-16 closed 78% of the headroom. This
world keeps the generated posts, splits and fact-level judge of the first one and adds
what makes headroom deep (docs/architecture.md, "The deep Summarize world"):

========== ================================================ ==========================
decision   best option (what the gold judge credits)         depends on
========== ================================================ ==========================
format     the persona written the way the subreddit        the subreddit (4 house
           expects: ``27F,`` / ``[27F]`` / ``(27F)`` /      styles, a fixed hash of
           ``Me 27F:``                                      its name)
recall     every key fact (value exact plus its key words)  the post's facts
lead       the fact the post states first comes first       the post's fact order
ask        the author's question stated                     the post's question
constraint the detail the author asks readers to keep in     a "keep in mind" sentence
           mind (60% of posts) kept                         in the post
concise    no filler, length near the reference's           -
focus      none of the post's irrelevant sentences          the post's distractors
faithful   no invented or contradicted number or name       the post's facts
========== ================================================ ==========================

``total = (0.25 recall + 0.15 ask + 0.10 lead + 0.10 format + 0.10 constraint + 0.10
concise + 0.10 focus + 0.10 faithful) * repetition * (0.5 + 0.5 well_formed)``, with
``faithful`` = 1, 0.5 or 0 for no, one, or more invented or contradicted numbers and
names. The credits add, so RL can climb one decision at a time; loops multiply, as in the
first judge (`gold_judge.py`, whose components this judge reuses). Posts without a
constraint give its credit to any non-empty summary.

The writers (the SFT targets) are four personas, each getting one or two decisions right
and the rest mostly wrong, and all of them ignoring the subreddit's convention:

- ``thorough`` (the references): every fact, but newest fact first, padded with filler
  and usually a distractor, and the constraint (slipped in among the facts) only 30% of
  the time;
- ``brief``: focused and mostly concise, but one or two facts and rarely the question;
- ``questioner``: always the question, stated first, but one or two facts and usually
  padded;
- ``orderly``: leads with the post's first fact and keeps the constraint, but vague (one
  or two facts).

Each decision's best option is then taken by about a third of the writers' responses and
is never the mode (the lead's mode is the newest fact), so greedy and low-temperature
decoding do not find it; no writer takes them all, so references score about 0.5 and a
trained policy can beat them.
"""

from __future__ import annotations

import functools
import math
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from types import SimpleNamespace
from typing import Any

import numpy as np

from rlhf_gym.envs.summarize.gold_judge import LONG_DECAY, GoldBreakdown, gold_breakdown, normalize_tokens
from rlhf_gym.envs.summarize.perturbations import PERTURBATIONS
from rlhf_gym.envs.summarize.world import SPLITS, PostRecord, generate_post, persona_tag, prompt_text
from rlhf_gym.worlds import AnnotatorCalibration, AuditTargets, Perturbation, Sample, World

__all__ = [
    "CONSTRAINTS",
    "CHOICES",
    "DECISION_WEIGHTS",
    "FORMATS",
    "PERSONAS",
    "DeepBreakdown",
    "DeepRecord",
    "DeepSummarizeWorld",
    "Persona",
    "deep_breakdown",
    "format_convention",
]

# ---------------------------------------------------------------------------------------
# The post's conventions and details
# ---------------------------------------------------------------------------------------

FORMATS: tuple[str, ...] = ("plain", "bracket", "paren", "me")
"""How a summary writes the author's persona: ``27F,``, ``[27F]``, ``(27F)``, ``Me 27F:``."""

_FORMAT_SALT = b"rlhf-gym/summarize/format:"


def format_convention(subreddit: str) -> str:
    """The persona format the community of ``subreddit`` expects (a fixed hash of its name).

    Example:
        >>> format_convention("jobs") in FORMATS
        True
    """
    return FORMATS[zlib.crc32(_FORMAT_SALT + subreddit.encode()) % len(FORMATS)]


def format_opener(tag: str, style: str) -> str:
    """The first words of a summary in persona format ``style`` (leading space)."""
    return {"plain": f" {tag},", "bracket": f" [{tag}]", "paren": f" ({tag})", "me": f" Me {tag}:"}[style]


def detect_format(tag: str, summary: str) -> str:
    """The persona format ``summary`` opens with, or ``"none"`` (wrong persona included)."""
    text = summary.strip()
    for style in FORMATS:
        if text.startswith(format_opener(tag, style).strip()):
            return style
    return "none"


@dataclass(frozen=True)
class Constraint:
    """A detail the author asks readers to keep in mind: ``clause`` in the post ("I can't
    relocate"), ``phrase`` in a summary, ``keywords`` what the gold judge looks for."""

    clause: str
    phrase: str
    keywords: frozenset[str]


def _constraint(clause: str, phrase: str, *keywords: str) -> Constraint:
    return Constraint(clause, phrase, frozenset(keywords))


# Key words that no fact, ask or distractor of the generator uses (a test checks), so a
# summary earns the credit only by keeping the detail.
CONSTRAINTS: tuple[Constraint, ...] = (
    _constraint("I can't relocate", "can't relocate", "relocate"),
    _constraint("I'm on a work visa", "on a work visa", "visa"),
    _constraint("I'm pregnant", "pregnant", "pregnant"),
    _constraint("I have a toddler at home", "have a toddler", "toddler"),
    _constraint("I'm still on probation at work", "on probation", "probation"),
    _constraint("I use a wheelchair", "use a wheelchair", "wheelchair"),
    _constraint("I'm in recovery", "in recovery", "recovery"),
    _constraint("I don't drive", "don't drive", "drive"),
    _constraint("I'm very introverted", "introverted", "introverted"),
    _constraint("I'm dyslexic", "dyslexic", "dyslexic"),
)
CONSTRAINT_SHARE = 0.6  # of posts that ask readers to keep a detail in mind
_CONSTRAINT_SENTENCES = (
    "Please keep in mind that {c}.",
    "Keep in mind {c}, so that matters.",
    "One thing to keep in mind: {c}.",
    "Please keep in mind {c} when you answer.",
)

FILLERS: tuple[str, ...] = (
    "and honestly it's a lot",
    "which is stressing me out",
    "and it's all so overwhelming",
    "and I'm exhausted by it all",
)
FILLER_MARKERS = frozenset({"honestly", "stressing", "overwhelming", "exhausted"})
"""One word of each filler; a summary containing any of them is padded."""


@dataclass(frozen=True)
class DeepRecord:
    """The latent record of a deep-world post: the first world's record, the subreddit's
    persona format and the detail to keep in mind (None in 40% of posts)."""

    base: PostRecord
    convention: str
    constraint: Constraint | None


def _insert_constraint(body: str, sentence: str, rng: np.random.Generator) -> str:
    """Put ``sentence`` after the post's first sentence or at its end (before a closing)."""
    first_stop = body.find(". ")
    if first_stop >= 0 and rng.random() < 0.5:
        return f"{body[:first_stop + 2]}{sentence} {body[first_stop + 2:]}"
    return f"{body} {sentence}"


# ---------------------------------------------------------------------------------------
# The gold judge
# ---------------------------------------------------------------------------------------

CONCISE_RATIO = 1.3  # words, relative to the ideal summary (plus a distractor), before concision costs

DECISION_WEIGHTS: dict[str, float] = {
    "recall": 0.25, "ask": 0.15, "lead": 0.10, "format": 0.10, "constraint": 0.10, "concise": 0.10, "focus": 0.10,
    "faithful": 0.10,
}
# Each invented or contradicted number or name halves the faithfulness credit's remainder
# of 1 (1, 0.5, 0): a credit like the others, not a multiplier of them. The tiny SFT policy
# miscopies about one number per summary, a capability one scalar per episode barely
# teaches (docs/architecture.md, "RLHF-Summarize-v0: a world RL can move"); as a multiplier
# (1 - 0.4 per error, the first judge's) it took about half of every credit RL earned.
FAITHFUL_PENALTY = 0.5
CHOICES: tuple[str, ...] = ("format", "recall", "lead", "ask", "concise", "focus", "constraint")
"""The decisions a writer chooses (the audit's per-decision check); faithfulness is not
one of them: no writer miscopies, only a model does."""


@dataclass(frozen=True)
class DeepBreakdown:
    """Each decision's credit in [0, 1], the multipliers and the total (module docstring)."""

    credits: dict[str, float]
    base: GoldBreakdown
    lead: str  # "first", "other" or "none": which fact the summary states first
    format: str
    padded: bool
    total: float


def _first_fact(record: PostRecord, tokens: list[str]) -> int | None:
    """Index (in post order) of the fact whose value the summary states first, if any."""
    best: tuple[int, int] | None = None
    for index, fact in enumerate(record.facts):
        value = normalize_tokens(fact.value)
        for start in range(len(tokens) - len(value) + 1):
            if tokens[start:start + len(value)] == value:
                if best is None or start < best[0]:
                    best = (start, index)
                break
    return None if best is None else best[1]


@functools.lru_cache(maxsize=4096)
def _length_allowance(record: DeepRecord) -> tuple[int, float]:
    """The ideal summary's words and the words allowed before concision costs, once per
    record (the judge scores many summaries of one post: the audit's 64 samples, a batch's group)."""
    ideal = len(DeepSummarizeWorld.ideal_summary(record).split())
    return ideal, CONCISE_RATIO * ideal + max(len(d.split()) for d in record.base.distractors)


def _not_too_long(n_words: int, record: DeepRecord) -> float:
    """1 up to 1.3 times the ideal summary's words plus the post's longest distractor, then
    decaying as the first judge's brevity does. Short summaries already lose recall, and a
    repeated distractor costs focus, so concision judges only padding."""
    ideal, allowed = _length_allowance(record)
    return 1.0 if n_words <= allowed else math.exp(-(n_words - allowed) / (LONG_DECAY * ideal))


def deep_breakdown(record: DeepRecord, summary: str) -> DeepBreakdown:
    """Score ``summary`` against ``record``: every decision's credit and the total.

    Example:
        >>> world = DeepSummarizeWorld()
        >>> sample = world.generate(0)
        >>> deep_breakdown(sample.record, world.ideal_summary(sample.record)).total
        1.0
        >>> deep_breakdown(sample.record, "").total
        0.0
    """
    base = gold_breakdown(record.base, summary)
    text = summary.strip()
    tokens = normalize_tokens(text)
    present = set(tokens)
    first = _first_fact(record.base, tokens)
    lead = "none" if first is None else ("first" if first == 0 else "other")
    style = detect_format(persona_tag(record.base), text)
    padded = bool(present & FILLER_MARKERS)
    if record.constraint is None:
        constraint = 1.0 if text else 0.0
    else:
        constraint = len(record.constraint.keywords & present) / len(record.constraint.keywords)
    credits = {
        "recall": base.recall,
        "ask": base.ask,
        "lead": float(lead == "first"),
        "format": float(style == record.convention),
        "constraint": constraint,
        "concise": 0.0 if padded else _not_too_long(len(text.split()), record),
        "focus": base.focus,
        "faithful": max(0.0, 1.0 - FAITHFUL_PENALTY * base.hallucinated),
    }
    content = sum(DECISION_WEIGHTS[k] * v for k, v in credits.items())
    total = content * base.repetition * (0.5 + 0.5 * base.well_formed) if text else 0.0
    return DeepBreakdown(credits, base, lead, style, padded, float(min(1.0, max(0.0, round(total, 12)))))


# ---------------------------------------------------------------------------------------
# The writers
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Persona:
    """A writer: how many facts (``"all"`` or ``"few"``: one or two), in which order
    (``"newest"``: the post's last-stated first; ``"post"``; ``"random"``), and the
    probabilities of stating the question, keeping the constraint, adding filler and
    repeating a distractor. The persona format is drawn uniformly: no writer reads the
    subreddit's convention."""

    name: str
    weight: float
    facts: str
    order: str
    ask: float
    constraint: float
    filler: float
    distractor: float
    constraint_inline: bool = False  # the constraint as one more item after a fact, not after the list
    ask_first: bool = False  # the question opens the summary (right after the persona)


PERSONAS: tuple[Persona, ...] = (
    Persona("thorough", 0.25, "all", "newest", ask=0.10, constraint=0.3, filler=0.9, distractor=0.85,
            constraint_inline=True),
    Persona("brief", 0.25, "few", "newest", ask=0.10, constraint=0.10, filler=0.4, distractor=0.0),
    Persona("questioner", 0.25, "few", "newest", ask=1.0, constraint=0.15, filler=0.8, distractor=0.85, ask_first=True),
    Persona("orderly", 0.25, "few", "post", ask=0.10, constraint=0.9, filler=0.8, distractor=0.85),
)
_PERSONA_P = np.array([p.weight for p in PERSONAS]) / sum(p.weight for p in PERSONAS)
PERSONA_NAMES = tuple(p.name for p in PERSONAS)


def _clause(sentence: str) -> str:
    clause = sentence.rstrip(".")
    return clause if clause.startswith(("I ", "I'")) else clause[:1].lower() + clause[1:]


@dataclass(frozen=True)
class Choices:
    """Every choice a writer makes in one summary: persona ``style``, the facts (indices in
    post order, in the order written), the ``distractor`` and where it goes, ``filler``,
    the constraint (after the facts, or among them at ``constraint_at``) and the ask (at
    the end, or first when ``ask_first``). `compose` renders them; single-decision edits
    (`replace`) make the preference data's contrast pairs."""

    style: str
    facts: tuple[int, ...]
    distractor: str | None
    distractor_at: int
    filler: str | None
    constraint: bool
    ask: bool
    constraint_at: int | None = None
    ask_first: bool = False


def compose(
    record: DeepRecord, *, style: str, facts: Sequence[int], distractor: str | None, distractor_at: int,
    filler: str | None, constraint: bool, ask: bool, constraint_at: int | None = None, ask_first: bool = False,
) -> str:
    """A summary from its choices (the fields of `Choices`)."""
    items = [record.base.facts[i].phrase for i in facts]
    inline = constraint and record.constraint is not None and constraint_at is not None
    if inline:
        items.insert(min(constraint_at, len(items)), record.constraint.phrase)
    if distractor is not None:
        items.insert(min(distractor_at, len(items)), _clause(distractor))
    body = ", ".join(items)
    if filler is not None:
        body = f"{body} {filler}" if body else filler
    tail = []
    if constraint and record.constraint is not None and not inline:
        tail.append(record.constraint.phrase)
    if ask and not ask_first:
        tail.append(record.base.ask)
    text = "; ".join([body, *tail]) if body else "; ".join(tail)
    if not text.endswith("?"):
        text += "."
    if ask and ask_first:
        text = f"{record.base.ask} {text}" if text != "." else record.base.ask
    return f"{format_opener(persona_tag(record.base), style)} {text}"


def render(record: DeepRecord, choices: Choices) -> str:
    """`compose` from a `Choices`."""
    return compose(record, **{f: getattr(choices, f) for f in Choices.__dataclass_fields__})


def persona_choices(record: DeepRecord, persona: Persona, rng: np.random.Generator) -> Choices:
    """The choices ``persona`` makes for ``record`` (every one from ``rng``)."""
    n = len(record.base.facts)
    if persona.facts == "all":
        chosen = list(range(n))
    else:
        k = int(rng.integers(1, 3))
        # "post": the first fact and maybe the newest; else the newest one or two (a writer
        # in a hurry keeps what the post ended on).
        chosen = [0, n - 1][:k] if persona.order == "post" else list(range(n - k, n))
    if persona.order == "newest":  # the newest first, the rest as they come to mind
        chosen = [chosen[-1], *(chosen[int(i)] for i in rng.permutation(len(chosen) - 1))]
    elif persona.order == "random":
        chosen = [chosen[int(i)] for i in rng.permutation(len(chosen))]
    distractor = record.base.distractors[int(rng.integers(len(record.base.distractors)))] \
        if rng.random() < persona.distractor else None
    filler = FILLERS[int(rng.integers(len(FILLERS)))] if rng.random() < persona.filler else None
    return Choices(
        style=FORMATS[int(rng.integers(len(FORMATS)))], facts=tuple(chosen), distractor=distractor,
        distractor_at=len(chosen) + 1, filler=filler,
        constraint=bool(rng.random() < persona.constraint), ask=bool(rng.random() < persona.ask),
        constraint_at=int(rng.integers(1, len(chosen) + 1)) if persona.constraint_inline else None,
        ask_first=persona.ask_first,
    )


def persona_summary(record: DeepRecord, persona: Persona, rng: np.random.Generator) -> str:
    """A summary of ``record`` written by ``persona`` (every choice from ``rng``)."""
    return render(record, persona_choices(record, persona, rng))


def flip_focus(record: DeepRecord, choices: Choices, rng: np.random.Generator) -> Choices:
    """``choices`` with the focus decision flipped: the distractor dropped, or one added."""
    if choices.distractor is not None:
        return replace(choices, distractor=None)
    return replace(choices, distractor=record.base.distractors[int(rng.integers(len(record.base.distractors)))])


def flip_lead(record: DeepRecord, choices: Choices, rng: np.random.Generator) -> Choices:
    """``choices`` with the lead decision flipped and the same number of facts: the post's
    first fact brought to the front (it replaces the lead when missing), or, when it
    already leads, moved behind the next fact (or swapped for the newest when alone)."""
    facts = list(choices.facts)
    n = len(record.base.facts)
    if facts and facts[0] == 0:
        if len(facts) > 1:
            facts[0], facts[1] = facts[1], facts[0]
        else:
            facts = [n - 1]
    elif 0 in facts:
        facts.remove(0)
        facts.insert(0, 0)
    else:
        facts[0] = 0
    return replace(choices, facts=tuple(facts))


# ---------------------------------------------------------------------------------------
# The world
# ---------------------------------------------------------------------------------------

_PERSONA_PREFIX = "persona_"  # source of a comparison candidate written by a persona
_STREAM_DETAILS, _STREAM_SFT, _STREAM_REFERENCE = 2, 3, 4  # per-post RNG streams of this world


class DeepSummarizeWorld(World):
    """TL;DR summaries of generated Reddit-style posts, with seven decisions per summary
    (see the module docstring)."""

    name = "summarize"
    env_id = "RLHF-Summarize-v0"
    splits = SPLITS
    summary = "TL;DR summarisation of generated Reddit-style posts; learned preference reward, gold judge."
    temperature = 0.7
    max_prompt_tokens = 240  # the longest generated prompts are ~230 tokens
    max_new_tokens = 64  # the writers' longest summaries are ~60 tokens
    dataset_template = "{}\nTL;DR:"
    annotators = AnnotatorCalibration(temperature=0.055, length_bias=0.005, noise=0.05)
    protocol_revision = 2  # summarize-test-v2: the first world's scores are not comparable
    audit_targets = AuditTargets(
        max_low_temperature_gain=0.05, max_best_of_16_closed=0.5, max_best_of_64_closed=0.7,
        sft_gold_range=(0.25, 0.5), max_reference_gold=0.6, max_good_references=0.02, min_greedy_not_best=0.5,
    )

    def generate(self, item_id: int) -> Sample:
        post = generate_post(item_id)
        rng = SPLITS.rng(item_id, _STREAM_DETAILS)
        constraint = CONSTRAINTS[int(rng.integers(len(CONSTRAINTS)))] if rng.random() < CONSTRAINT_SHARE else None
        if constraint is not None:
            sentence = _CONSTRAINT_SENTENCES[int(rng.integers(len(_CONSTRAINT_SENTENCES)))].format(c=constraint.clause)
            post = replace(post, body=_insert_constraint(post.body, sentence, rng))
        record = DeepRecord(post.record, format_convention(post.record.subreddit), constraint)
        reference = persona_summary(record, PERSONAS[0], SPLITS.rng(item_id, _STREAM_REFERENCE))
        sft_target = self.write_record(record, SPLITS.rng(item_id, _STREAM_SFT))
        return Sample(item_id, prompt_text(post), reference, record, sft_target)

    def gold_scores(self, records: Sequence[DeepRecord], responses: Sequence[str]) -> np.ndarray:
        return np.array([deep_breakdown(r, s).total for r, s in zip(records, responses, strict=True)], dtype=np.float64)

    def write_record(self, record: DeepRecord, rng: np.random.Generator) -> str:
        """A summary from the writer mixture (a persona drawn with its weight)."""
        return persona_summary(record, PERSONAS[int(rng.choice(len(PERSONAS), p=_PERSONA_P))], rng)

    def write(self, sample: Sample, rng: np.random.Generator) -> str:
        return self.write_record(sample.record, rng)

    @staticmethod
    def ideal_summary(record: DeepRecord) -> str:
        """The gold judge's 1.0: every decision's best option (no writer writes it)."""
        return compose(record, style=record.convention, facts=range(len(record.base.facts)), distractor=None,
                       distractor_at=0, filler=None, constraint=True, ask=True)

    def ideal_response(self, record: DeepRecord) -> str:
        return self.ideal_summary(record)

    def comparison_candidates(self, sample: Sample, rng: np.random.Generator) -> list[tuple[str, str]]:
        # One summary by each persona other than the references' (the pairs that teach the
        # preference model each decision), plus contrast candidates: a persona's summary
        # with one decision flipped, for the decisions whose option no writer ties to the
        # rest of its summary (without them the convention shows up only by chance, and the
        # distractor and the lead ride along with the writer's other choices).
        record = sample.record
        candidates = [(persona_summary(record, p, rng), _PERSONA_PREFIX + p.name) for p in PERSONAS[1:]]
        pivot = persona_choices(record, PERSONAS[int(rng.integers(len(PERSONAS)))], rng)
        candidates.append((render(record, replace(pivot, style=record.convention)), "convention"))
        candidates.append((render(record, pivot), "pivot"))
        candidates.append((render(record, flip_focus(record, pivot, rng)), "flip_focus"))
        candidates.append((render(record, flip_lead(record, pivot, rng)), "flip_lead"))
        return candidates

    @property
    def perturbations(self) -> Mapping[str, Perturbation]:
        # The first world's perturbations read a post's record and reference: hand them ours.
        def wrapped(function: Any) -> Perturbation:
            def perturb(sample: Sample, response: str, rng: np.random.Generator) -> str:
                return function(SimpleNamespace(record=sample.record.base, reference=sample.reference), response, rng)
            perturb.__doc__ = function.__doc__
            return perturb

        return {kind: wrapped(function) for kind, function in PERTURBATIONS.items()}

    # The audit and the card -------------------------------------------------------------
    def decisions(self, record: DeepRecord, response: str) -> dict[str, str]:
        b = deep_breakdown(record, response)
        options = {
            "format": b.format,
            "recall": "all facts" if b.credits["recall"] >= 0.999 else ("no fact" if b.credits["recall"] == 0 else "some facts"),
            "lead": b.lead,
            "ask": "asked" if b.credits["ask"] >= 0.999 else "not asked",
            "concise": "padded" if b.padded else ("concise" if b.credits["concise"] >= 0.999 else "too long"),
            "focus": "focused" if b.credits["focus"] >= 0.999 else "distractor",
        }
        if record.constraint is not None:
            options["constraint"] = "kept" if b.credits["constraint"] >= 0.5 else "dropped"
        return options

    def best_decisions(self, record: DeepRecord) -> dict[str, str]:
        best = {"format": record.convention, "recall": "all facts", "lead": "first", "ask": "asked",
                "concise": "concise", "focus": "focused"}
        if record.constraint is not None:
            best["constraint"] = "kept"
        return best

    def card_figures(self, records: Sequence[DeepRecord], responses: Sequence[str]) -> dict[str, Any]:
        return {"decisions_best": self.best_option_shares(records, responses)}

    def card_sections(self, card: Mapping[str, Any]) -> list[str]:
        return self.decisions_section(card, "summaries", 'docs/architecture.md, "The deep Summarize world"')
