"""The procedurally generated TL;DR world: latent records, Reddit-style posts, references.

A post is rendered from a latent :class:`PostRecord`: who writes (an ``I (27F)`` persona),
the situation (job, housing, money, ...), 3-4 key facts carrying numbers and events, the
one question the author asks, and 1-4 distractor sentences that a good summary leaves
out. The record is the ground truth the gold judge (``gold_judge.py``) scores a summary
against; the rendered post is all a policy ever sees.

Each post also carries the TL;DR its author wrote (:attr:`Post.tldr`), in one of the
writer styles of :data:`STYLES`: complete and concise, vague, without the question, with
a distractor, rambling, or partial. Real Reddit TL;DRs vary like this; an SFT policy
trained on them inherits the spread, and RLHF's headroom is moving it toward the best
style it already writes (docs/architecture.md). The style shows in the first words of
the TL;DR, where an agent can learn the choice. :attr:`Post.reference` is always the
complete, concise summary: the gold judge's 1.0.

Why generated rather than Reddit TL;DR: it works offline, supplies an unbounded stream of
prompts, and, because every post comes from a known record, it has a gold judge, so
reward over-optimisation against a learned preference model can be measured.

Surface variety comes from several sentence templates per fact, per ask, per intro and
per title, random fact order, distractors interleaved at random positions and optional
connectives, so a tokenizer and a policy cannot get away with memorising one layout.

Everything is a pure function of ``post_id`` through its own ``numpy`` generator (never
the global RNG): the same id always gives the same post, on every machine.

Example:
    >>> post = generate_post(7)
    >>> prompt_text(post).startswith("SUBREDDIT: r/")
    True
    >>> post.reference == reference_summary(post.record)
    True
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from rlhf_gym.worlds import Splits

__all__ = [
    "ENTITY_VOCABULARY",
    "FACT_KINDS",
    "Fact",
    "NO_ASK_MARKER",
    "Post",
    "PostRecord",
    "SITUATIONS",
    "SPLITS",
    "STYLES",
    "STYLE_OPENERS",
    "STYLE_WEIGHTS",
    "generate_post",
    "persona_tag",
    "prompt_text",
    "reference_summary",
    "split_of",
    "styled_summary",
]

# ---------------------------------------------------------------------------------------
# Public constants
# ---------------------------------------------------------------------------------------

SITUATIONS: tuple[str, ...] = (
    "job",
    "housing",
    "relationship",
    "money",
    "health",
    "school",
    "family",
    "friendship",
    "travel",
    "pets",
)

SPLITS = Splits(
    {"train": (0, 10_000_000), "valid": (10_000_000, 10_100_000), "test": (10_100_000, 10_200_000)},
    salt=0x7D5E_2024,
)
"""The posts' disjoint id ranges and their salted per-post random streams."""

FACT_KINDS: tuple[str, ...] = ("number", "entity", "time", "event")
# The kinds a post's key facts are drawn from. Entities (names, places, organisations) and
# times (months, weekdays, spelled-out durations) are single tokens picked from small pools:
# the 2-layer SFT policy of the first build copied them right only 31% and 38% of the time
# (numbers, copied digit by digit: 86%), so they made its summaries unfaithful, and
# faithfulness is a capability RL cannot teach in a CPU budget. Their words stay checkable:
# a summary that names one invents it.
KEY_FACT_KINDS: tuple[str, ...] = ("number", "event")

STYLES: tuple[str, ...] = ("complete", "no_ask", "distractor", "rambling", "partial", "vague")
"""Writer styles of the TL;DRs the SFT policy learns from, best first (see :func:`styled_summary`)."""

STYLE_WEIGHTS: dict[str, float] = {
    "complete": 0.16, "no_ask": 0.14, "distractor": 0.14, "rambling": 0.18, "partial": 0.19,
    "vague": 0.19,
}
"""How often authors write each style. Sampling at T=0.7 sharpens the policy's choice at
each early token (the persona first, then ``here`` or a comma, then a fact or a distractor)
toward its likelier side, so the styles that open with the persona are set less common than
a flat mix would be; measured, the SFT policy's T=0.7 samples then spread over all six
styles with the complete one the most common (docs/architecture.md). Best-of-16 nearly
always holds a complete summary: the headroom is a choice the policy already makes."""

# Bodies outside these bounds are re-rendered with fewer/more distractors; they keep
# prompts in ~50-160 BPE tokens.
MIN_BODY_WORDS = 35
MAX_BODY_WORDS = 110

# ---------------------------------------------------------------------------------------
# Value pools. Every token of these pools is "checkable": the gold judge treats one that
# appears in a summary but not in the record as a hallucination, so no template text may
# use them (a test checks that the rendered post introduces none).
# ---------------------------------------------------------------------------------------

NAMES = (
    "Jake", "Megan", "Tyler", "Brianna", "Derek", "Kayla", "Marcus", "Priya", "Caleb",
    "Jenna", "Omar", "Lauren", "Trevor", "Alyssa", "Diego", "Hannah", "Connor", "Natalie",
    "Ethan", "Sofia",
)
SURNAMES = (
    "Patel", "Nguyen", "Kowalski", "Okafor", "Lindqvist", "Ramirez", "Brennan", "Hoffman",
    "Tanaka", "Castillo",
)
CITIES = (
    "Denver", "Austin", "Portland", "Chicago", "Seattle", "Phoenix", "Boston", "Atlanta",
    "Nashville", "Dallas", "Tampa", "Pittsburgh",
)
TRAVEL_CITIES = (
    "Lisbon", "Tokyo", "Montreal", "Prague", "Barcelona", "Vancouver", "Dublin", "Cancun",
    "Reykjavik", "Budapest",
)
COMPANIES = (
    "Amazon", "Costco", "Walmart", "Deloitte", "Oracle", "Kroger", "Verizon", "Accenture",
    "Comcast", "Boeing",
)
BANKS = ("Chase", "Citi", "Barclays", "Synchrony", "Navient", "Santander")
SCHOOLS = (
    "Purdue", "Rutgers", "Baylor", "Tulane", "Clemson", "Villanova", "Gonzaga", "Vanderbilt",
)
AIRLINES = ("JetBlue", "Ryanair", "Lufthansa", "Aeromexico", "Qantas", "WestJet", "Volaris")
PET_NAMES = (
    "Biscuit", "Mochi", "Waffles", "Nugget", "Pickles", "Ziggy", "Clementine", "Bandit",
    "Noodle", "Dumpling",
)
# "May" is left out on purpose: the word is too common to treat as a checkable entity.
MONTHS = (
    "January", "February", "March", "April", "June", "July", "August", "September",
    "October", "November", "December",
)
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")
DURATIONS = (
    "two weeks", "three weeks", "10 days", "six weeks", "two months", "three months",
    "5 days", "four months", "8 weeks",
)
NUMBER_WORDS = (
    "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
    "twelve", "twenty", "thirty", "forty", "fifty", "hundred", "thousand",
)

ENTITY_VOCABULARY: frozenset[str] = frozenset(
    word.lower()
    for pool in (
        NAMES, SURNAMES, CITIES, TRAVEL_CITIES, COMPANIES, BANKS, SCHOOLS, AIRLINES,
        PET_NAMES, MONTHS, WEEKDAYS, NUMBER_WORDS,
    )
    for value in pool
    for word in value.split()
)
"""Lower-cased words whose presence in a summary must be backed by the record.

With digit tokens, these are what the gold judge checks for hallucinations: names,
places, organisations, months, weekdays and number words.
"""

# ---------------------------------------------------------------------------------------
# Records and posts
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fact:
    """One key fact of a post, as the reference summary states it.

    Attributes:
        slot: Name of the fact, unique within a record (e.g. ``"rent_increase"``).
        kind: ``"number"``, ``"entity"``, ``"time"`` or ``"event"``.
        value: The canonical value (e.g. ``"300"``, ``"Denver"``, ``"two weeks"``); it
            appears verbatim in the post's body.
        phrase: The concise phrase the reference summary uses; contains ``value``.
    """

    slot: str
    kind: str
    value: str
    phrase: str


@dataclass(frozen=True)
class PostRecord:
    """The latent record a post is rendered from: the ground truth for the gold judge.

    Attributes:
        post_id: The seed the record was generated from.
        subreddit: Subreddit name without ``r/``.
        author: Persona, e.g. ``"I (27F)"``.
        situation: One of :data:`SITUATIONS`.
        facts: 3-4 key facts, in the order the post mentions them.
        ask: The author's question as a short canonical phrase, e.g.
            ``"should I break my lease?"``.
        distractors: 1-4 irrelevant sentences, as rendered in the post.
    """

    post_id: int
    subreddit: str
    author: str
    situation: str
    facts: tuple[Fact, ...]
    ask: str
    distractors: tuple[str, ...]


@dataclass(frozen=True)
class Post:
    """A rendered post.

    Attributes:
        record: The latent record.
        title: The post title.
        body: The post body (plain ASCII, one paragraph).
        reference: Reference summary without the ``TL;DR:`` prefix, starting with one
            space, e.g. ``" 27F, rent going up $300, paying $2k now; should I move out?"``:
            complete and concise, the gold judge's 1.0.
        style: The writer style of :attr:`tldr`, one of :data:`STYLES`.
        tldr: The TL;DR the post's author wrote, in :attr:`style` (the SFT target).
    """

    record: PostRecord
    title: str
    body: str
    reference: str
    style: str = "complete"
    tldr: str = ""


# ---------------------------------------------------------------------------------------
# Templates
# ---------------------------------------------------------------------------------------

Drawer = Callable[[np.random.Generator], str]


@dataclass(frozen=True)
class _FactTemplate:
    """How one fact slot is drawn and rendered; templates use ``{v}`` and context keys."""

    slot: str
    kind: str
    draw: Drawer
    phrase: str
    sentences: tuple[str, ...]


@dataclass(frozen=True)
class _Situation:
    subreddits: tuple[str, ...]
    facts: tuple[_FactTemplate, ...]
    asks: tuple[str, ...]  # verb phrases completing "should I ..."
    backgrounds: tuple[str, ...]
    title_phrases: tuple[str, ...]


def _pick(rng: np.random.Generator, options: Sequence[Any]) -> Any:
    return options[int(rng.integers(len(options)))]


def _one_of(options: Sequence[str]) -> Drawer:
    return lambda rng: _pick(rng, options)


def _amount(low: int, high: int, step: int) -> Drawer:
    """Amounts of at most two significant digits, thousands as ``k`` (``$370``, ``$4k``,
    ``$51k``), as Reddit posters often write them.

    Short values keep copying reliable: the 2-layer SFT policy copies a number digit by
    digit, and with 4-5 digit amounts (``$51,000``) it got the first digit right and
    guessed the rest (``$57,000``).
    """

    def draw(rng: np.random.Generator) -> str:
        value = step * int(rng.integers(low // step, high // step + 1))
        if value >= 1000:
            return f"{max(1, round(value / 1000))}k"
        magnitude = 10 ** max(0, len(str(value)) - 2)
        return str(max(1, round(value / magnitude)) * magnitude)

    return draw


def _count(low: int, high: int) -> Drawer:
    return lambda rng: str(int(rng.integers(low, high + 1)))


_F = _FactTemplate

_WORLD: dict[str, _Situation] = {
    "job": _Situation(
        subreddits=("jobs", "careerguidance", "work"),
        facts=(
            _F("company", "entity", _one_of(COMPANIES), "offer from {v}", (
                "I just got a job offer from {v}.",
                "A recruiter from {v} reached out and it turned into an actual offer.",
                "After a bunch of interviews, {v} made me an offer.",
                "{v} offered me a position on their operations team.",
            )),
            _F("offer_salary", "number", _amount(62_000, 130_000, 1_000), "new job pays ${v}", (
                "The new role pays ${v} a year.",
                "They offered ${v} as the base salary.",
                "The offer is ${v}, which is a big jump for me.",
                "Base pay would be ${v} before bonuses.",
            )),
            _F("current_salary", "number", _amount(35_000, 60_000, 1_000),
               "currently making ${v}", (
                "Right now I make ${v} a year.",
                "My current salary is ${v}.",
                "I'm currently making ${v} with no raise in sight.",
            )),
            _F("tenure", "number", _count(2, 12), "{v} years at current job", (
                "I've been at my current company for {v} years.",
                "I have put {v} years into this place.",
                "It's been {v} years at my current job and I like my team.",
            )),
            _F("boss", "event", _one_of(("cut my hours", "denied my raise",
                                          "took credit for my work", "yelled at me")),
               "boss {v}", (
                "Last month my boss {v}.",
                "To make things worse, my boss {v} recently.",
                "Things went downhill when my boss {v}.",
            )),
            _F("start_date", "time", _one_of(DURATIONS), "would start in {v}", (
                "They want me to start in {v}.",
                "The start date would be in {v}.",
                "If I accept, I would start in {v}.",
            )),
            _F("commute", "number", _count(25, 95), "{v} minute commute", (
                "The commute would be {v} minutes each way.",
                "My drive would be {v} minutes from my place.",
                "Each way would take about {v} minutes.",
            )),
        ),
        asks=("take the offer", "quit my job", "ask for a counteroffer",
              "negotiate a higher salary", "stay at my current job"),
        backgrounds=(
            "I work in logistics at a mid sized company.",
            "I've worked in retail most of my adult life.",
            "I do customer support, mostly remote.",
            "I'm an accountant at a small firm.",
            "I work the front desk at a busy clinic.",
        ),
        title_phrases=("torn about a job offer", "not sure about leaving my job",
                       "job offer vs staying put"),
    ),
    "housing": _Situation(
        subreddits=("Renting", "legaladvice", "Apartmentliving"),
        facts=(
            _F("rent_increase", "number", _amount(100, 650, 25), "rent going up ${v}", (
                "My landlord just told me the rent is going up ${v} a month.",
                "We got a notice that rent will increase by ${v} at renewal.",
                "Rent is going up ${v}, which is a lot for me.",
            )),
            _F("current_rent", "number", _amount(850, 2_600, 50), "paying ${v} now", (
                "Right now I pay ${v} a month.",
                "Currently my rent is ${v}.",
                "I already pay ${v} for a pretty small place.",
            )),
            _F("lease_end", "time", _one_of(MONTHS), "lease ends in {v}", (
                "My lease ends in {v}.",
                "Our lease is up in {v}.",
                "The current lease runs out in {v}.",
            )),
            _F("problem", "event", _one_of(("mold", "mice", "a leak", "roaches", "no heat")),
               "landlord ignoring {v}", (
                "There's {v} in the apartment and the landlord keeps ignoring it.",
                "I've reported {v} several times and nothing has been fixed.",
                "Maintenance keeps ignoring my requests about {v}.",
            )),
            _F("roommate", "entity", _one_of(NAMES), "roommate {v} moving out", (
                "My roommate {v} is moving out soon.",
                "{v}, my roommate, just said they are moving out.",
                "On top of everything, {v} (my roommate) is leaving.",
            )),
            _F("city", "entity", _one_of(CITIES), "apartment in {v}", (
                "I rent a small apartment in {v}.",
                "Housing in {v} is brutal right now.",
                "I live in an apartment in {v}.",
            )),
            _F("deposit", "number", _amount(500, 3_000, 100), "${v} deposit", (
                "The security deposit was ${v}.",
                "I paid a ${v} deposit when I moved in.",
                "They are holding ${v} of my money as a deposit.",
            )),
            _F("years_lived", "number", _count(2, 9), "lived here {v} years", (
                "I've lived here {v} years.",
                "I have been in this unit for {v} years.",
                "After {v} years here, I finally feel settled.",
            )),
        ),
        asks=("break my lease", "move out", "fight the rent increase", "withhold rent",
              "sign the renewal", "report my landlord"),
        backgrounds=(
            "I rent in an older building near downtown.",
            "This is my first apartment on my own.",
            "The building is old but the location is great.",
            "I moved here for work and don't know many people.",
        ),
        title_phrases=("landlord problems and a rent hike", "stuck in a bad lease",
                       "rent going up again"),
    ),
    "relationship": _Situation(
        subreddits=("relationships", "relationship_advice", "dating_advice"),
        facts=(
            _F("together", "number", _count(2, 12), "together {v} years", (
                "We've been together for {v} years.",
                "My {partner} and I have been dating for {v} years.",
                "We have {v} years together at this point.",
            )),
            _F("ex", "entity", _one_of(NAMES), "ex {v} reached out", (
                "Last week my ex, {v}, reached out out of nowhere.",
                "{v}, my ex, texted me asking to talk.",
                "Out of nowhere my ex {v} messaged me.",
            )),
            _F("behavior", "event", _one_of(("checking my phone", "ignoring my texts",
                                              "skipping date nights", "canceling plans")),
               "{partner} keeps {v}", (
                "Lately my {partner} keeps {v}.",
                "The main issue is that my {partner} keeps {v}.",
                "For a while now my {partner} has been {v}.",
            )),
            _F("move", "entity", _one_of(CITIES), "{partner} wants to move to {v}", (
                "My {partner} got a job in {v} and wants us to move.",
                "My {partner} wants us to relocate to {v}.",
                "There's talk of moving to {v} for my {partner}'s career.",
            )),
            _F("anniversary", "time", _one_of(MONTHS), "anniversary in {v}", (
                "Our anniversary is in {v}.",
                "We have our anniversary coming up in {v}.",
                "Our anniversary trip is planned for {v}.",
            )),
            _F("fights", "number", _count(2, 9), "fighting {v} times a week", (
                "We fight like {v} times a week now.",
                "Lately it's {v} arguments a week, minimum.",
                "We argue about {v} times a week.",
            )),
            _F("ring", "number", _amount(900, 6_000, 100), "saving for ${v} ring", (
                "I've been saving for a ring that costs ${v}.",
                "I already put ${v} toward a ring.",
                "There's a ${v} ring on layaway.",
            )),
        ),
        asks=("break up", "give them another chance", "confront my {partner}", "propose",
              "move with them"),
        backgrounds=(
            "We met through friends back in college.",
            "We live together in a small apartment.",
            "Things used to be really good between us.",
            "We met on an app and hit it off right away.",
        ),
        title_phrases=("not sure where my relationship is going",
                       "relationship feels off lately", "big decision with my {partner}"),
    ),
    "money": _Situation(
        subreddits=("personalfinance", "povertyfinance", "Debt"),
        facts=(
            _F("debt", "number", _amount(2_000, 35_000, 100), "${v} credit card debt", (
                "I have about ${v} in credit card debt.",
                "My credit cards add up to ${v}.",
                "Total card debt is sitting at ${v}.",
            )),
            _F("savings", "number", _amount(300, 15_000, 100), "${v} in savings", (
                "I have ${v} in savings.",
                "My emergency fund is ${v}.",
                "There's ${v} sitting in my savings account.",
            )),
            _F("income", "number", _amount(1_800, 6_500, 50), "take home ${v} a month", (
                "I take home ${v} a month.",
                "My monthly take home pay is ${v}.",
                "After taxes I bring in ${v} a month.",
            )),
            _F("bank", "entity", _one_of(BANKS), "loan offer from {v}", (
                "{v} offered me a consolidation loan.",
                "I got a loan offer from {v} in the mail.",
                "My bank, {v}, says I qualify for a loan.",
            )),
            _F("car_payment", "number", _amount(220, 780, 10), "${v} car payment", (
                "My car payment is ${v} a month.",
                "I'm stuck with a ${v} car payment.",
                "The car alone costs me ${v} monthly.",
            )),
            _F("apr", "number", _count(16, 31), "{v}% interest", (
                "The interest rate is {v}% and it's killing me.",
                "Those cards charge {v}% interest.",
                "I'm paying {v}% on the balance.",
            )),
            _F("due", "time", _one_of(WEEKDAYS), "bill due {v}", (
                "A big bill is due {v}.",
                "Rent and utilities are due {v}.",
                "I have a payment due {v}.",
            )),
        ),
        asks=("pay off the debt first", "consolidate my debt", "sell my car",
              "use my savings", "ask my family for help", "get a second job"),
        backgrounds=(
            "I'm trying to get my finances in order.",
            "I was never taught much about money growing up.",
            "I work full time but it never feels like enough.",
            "Budgeting has never been my strong suit.",
        ),
        title_phrases=("drowning in debt", "need help with a money decision",
                       "money is tight and I'm stressed"),
    ),
    "health": _Situation(
        subreddits=("AskDocs", "health", "ChronicPain"),
        facts=(
            _F("symptom", "event", _one_of(("migraines", "back pain", "insomnia",
                                             "chest tightness", "dizzy spells",
                                             "stomach pain")),
               "dealing with {v}", (
                "I've been dealing with {v} and it isn't getting better.",
                "The {v} started out mild but it's gotten worse.",
                "I keep having {v} almost every day.",
            )),
            _F("onset", "time", _one_of(DURATIONS), "started {v} ago", (
                "It all started {v} ago.",
                "This began about {v} ago.",
                "Symptoms showed up {v} ago.",
            )),
            _F("doctor", "entity", _one_of(SURNAMES), "Dr. {v} dismissed it", (
                "I saw Dr. {v} and they basically dismissed it.",
                "My doctor, Dr. {v}, said it was probably stress.",
                "Dr. {v} told me to just wait and see.",
            )),
            _F("weight", "number", _count(8, 40), "lost {v} pounds", (
                "I've lost {v} pounds without trying.",
                "I dropped {v} pounds since this started.",
                "Somehow I'm down {v} pounds.",
            )),
            _F("copay", "number", _amount(60, 450, 10), "specialist costs ${v}", (
                "A specialist visit would cost me ${v} out of pocket.",
                "Seeing a specialist is ${v} with my insurance.",
                "My insurance leaves me paying ${v} for a specialist.",
            )),
            _F("sleep", "number", _count(3, 5), "sleeping {v} hours a night", (
                "I'm sleeping maybe {v} hours a night.",
                "Most nights I get {v} hours of sleep.",
                "I barely sleep, around {v} hours.",
            )),
            _F("followup", "time", _one_of(WEEKDAYS), "follow up on {v}", (
                "My follow up is on {v}.",
                "I have a follow up appointment on {v}.",
                "They scheduled a follow up for {v}.",
            )),
        ),
        asks=("see a specialist", "go to the ER", "get a second opinion", "switch doctors",
              "wait it out"),
        backgrounds=(
            "I'm normally pretty healthy and active.",
            "I don't usually go to the doctor for anything.",
            "I have no major medical history.",
            "I work a desk job and try to stay active.",
        ),
        title_phrases=("doctor isn't taking me seriously", "health worries and no answers",
                       "worried about my symptoms"),
    ),
    "school": _Situation(
        subreddits=("college", "ApplyingToCollege", "GradSchool"),
        facts=(
            _F("midterm", "number", _count(38, 69), "{v} on the midterm", (
                "I got a {v} on my midterm.",
                "My midterm grade came back as a {v}.",
                "I bombed the midterm with a {v}.",
            )),
            _F("school", "entity", _one_of(SCHOOLS), "accepted to {v}", (
                "I just got accepted to {v}.",
                "{v} sent me an acceptance letter.",
                "I got into {v} off the waitlist.",
            )),
            _F("tuition", "number", _amount(9_000, 52_000, 500), "${v} tuition", (
                "Tuition there is ${v} a year.",
                "It would cost ${v} per year in tuition.",
                "Their tuition is ${v} after aid.",
            )),
            _F("deadline", "time", _one_of(WEEKDAYS), "decision due {v}", (
                "I have to decide by {v}.",
                "My decision is due {v}.",
                "The deadline to commit is {v}.",
            )),
            _F("failing", "number", _count(2, 4), "failing {v} classes", (
                "I'm failing {v} classes right now.",
                "Right now I'm failing {v} of my classes.",
                "I'm on track to fail {v} classes.",
            )),
            _F("professor", "entity", _one_of(SURNAMES), "Professor {v} ignoring my emails", (
                "Professor {v} won't answer my emails.",
                "I emailed Professor {v} and got nothing back.",
                "My advisor, Professor {v}, keeps ignoring my emails.",
            )),
            _F("work_hours", "number", _count(12, 38), "working {v} hours a week", (
                "I work {v} hours a week to pay rent.",
                "My job takes {v} hours every week.",
                "I'm working {v} hours a week on top of classes.",
            )),
        ),
        asks=("drop the class", "change my major", "take a gap year", "transfer schools",
              "retake the course"),
        backgrounds=(
            "I'm a sophomore studying biology.",
            "I'm the first in my family to go to college.",
            "I'm a junior majoring in economics.",
            "School has always come pretty easy to me until now.",
        ),
        title_phrases=("college decision stress", "struggling this semester",
                       "school is falling apart for me"),
    ),
    "family": _Situation(
        subreddits=("family", "raisedbynarcissists", "JUSTNOMIL"),
        facts=(
            _F("sibling_name", "entity", _one_of(NAMES), "{sibling} {v} getting married", (
                "My {sibling} {v} is getting married.",
                "{v}, my older {sibling}, just got engaged.",
                "My younger {sibling}, {v}, announced an engagement.",
            )),
            _F("wedding", "time", _one_of(MONTHS), "wedding in {v}", (
                "The wedding is in {v}.",
                "They set the wedding date for {v}.",
                "Everyone is flying in for the wedding in {v}.",
            )),
            _F("loan", "number", _amount(500, 12_000, 100), "parents want ${v}", (
                "My parents asked to borrow ${v} from me.",
                "My parents need ${v} and asked me for it.",
                "Now my parents want ${v} from me.",
            )),
            _F("distance", "number", _count(2, 9), "live {v} hours away", (
                "I live {v} hours away from them.",
                "Home is about {v} hours from me by car.",
                "I moved {v} hours away for work.",
            )),
            _F("parent_event", "event", _one_of(("read my diary", "insulted my partner",
                                                  "showed up unannounced",
                                                  "skipped my graduation")),
               "{parent} {v}", (
                "Last month my {parent} {v}.",
                "It started when my {parent} {v}.",
                "I'm still hurt that my {parent} {v}.",
            )),
            _F("siblings_count", "number", _count(3, 7), "oldest of {v} kids", (
                "I'm the oldest of {v} kids.",
                "I grew up as the oldest of {v} siblings.",
                "There are {v} of us kids and I'm the oldest.",
            )),
        ),
        asks=("skip the wedding", "lend them the money", "go no contact",
              "talk to my {parent}", "move back home"),
        backgrounds=(
            "My family has always been a bit complicated.",
            "I'm close with my family, mostly.",
            "Growing up, we never talked about feelings.",
            "My parents divorced when I was young.",
        ),
        title_phrases=("family drama before a wedding", "my {parent} crossed a line",
                       "family wants money from me"),
    ),
    "friendship": _Situation(
        subreddits=("friendship", "socialskills", "offmychest"),
        facts=(
            _F("friend", "entity", _one_of(NAMES), "best friend {v}", (
                "My best friend {v} has been acting weird.",
                "{v} has been my best friend since school.",
                "This is about my best friend, {v}.",
            )),
            _F("years", "number", _count(3, 22), "friends {v} years", (
                "We've been friends for {v} years.",
                "Our friendship goes back {v} years.",
                "I have known them for {v} years.",
            )),
            _F("incident", "event", _one_of(("stopped inviting me", "forgot my birthday",
                                              "ghosted me", "spread a rumor about me",
                                              "blocked me")),
               "friend {v}", (
                "Recently my friend {v}.",
                "A few weeks back my friend {v}.",
                "Out of nowhere my friend {v}.",
            )),
            _F("owed", "number", _amount(60, 950, 10), "owes me ${v}", (
                "They still owe me ${v} from last year.",
                "I lent them ${v} and never got it back.",
                "There's ${v} they borrowed and never repaid.",
            )),
            _F("trip", "time", _one_of(DURATIONS), "group trip in {v}", (
                "We have a group trip in {v}.",
                "There's a trip planned in {v}.",
                "The whole group is going away in {v}.",
            )),
            _F("group", "number", _count(4, 9), "group of {v} friends", (
                "We're part of a group of {v} friends.",
                "Our friend group has {v} people.",
                "There are {v} of us in the group chat.",
            )),
        ),
        asks=("confront my friend", "end the friendship", "ask for my money back",
              "skip the trip", "apologize first"),
        backgrounds=(
            "I don't have a huge social circle.",
            "I've always been the planner in my friend group.",
            "I'm pretty introverted, so my friends mean a lot to me.",
            "We met in high school and stayed close.",
        ),
        title_phrases=("best friend is acting strange", "friendship falling apart",
                       "friend group drama"),
    ),
    "travel": _Situation(
        subreddits=("travel", "solotravel", "TravelHacks"),
        facts=(
            _F("destination", "entity", _one_of(TRAVEL_CITIES), "trip to {v}", (
                "I've been planning a trip to {v}.",
                "I'm supposed to fly to {v} soon.",
                "The plan was a week in {v}.",
            )),
            _F("budget", "number", _amount(800, 6_000, 100), "${v} budget", (
                "My total budget is ${v}.",
                "I saved ${v} for this trip.",
                "I can spend about ${v} all in.",
            )),
            _F("departure", "time", _one_of(DURATIONS), "leaving in {v}", (
                "I'm supposed to leave in {v}.",
                "The flight is in {v}.",
                "Departure is in {v}.",
            )),
            _F("airline", "entity", _one_of(AIRLINES), "{v} cancelled my flight", (
                "{v} cancelled my flight with no explanation.",
                "My flight on {v} got cancelled.",
                "I just got an email that {v} cancelled my flight.",
            )),
            _F("nights", "number", _count(3, 14), "{v} night stay", (
                "I booked {v} nights at a small hotel.",
                "The hotel is booked for {v} nights.",
                "I have {v} nights reserved.",
            )),
            _F("companions", "number", _count(2, 6), "going with {v} friends", (
                "I'm going with {v} friends.",
                "There are {v} friends coming with me.",
                "I'm traveling with {v} friends.",
            )),
            _F("refund", "number", _amount(150, 950, 10), "${v} refund denied", (
                "They refused to refund the ${v} I paid.",
                "I'm out ${v} because they denied my refund.",
                "My ${v} refund request got denied.",
            )),
        ),
        asks=("rebook the flight", "cancel the trip", "travel alone", "dispute the charge",
              "go anyway"),
        backgrounds=(
            "I don't travel much, so this trip is a big deal.",
            "This is my first time traveling abroad.",
            "I've been looking forward to this trip all year.",
            "I booked everything months in advance.",
        ),
        title_phrases=("trip plans falling apart", "flight cancelled before a big trip",
                       "travel dilemma"),
    ),
    "pets": _Situation(
        subreddits=("{species}s", "AskVet", "pets"),
        facts=(
            _F("pet_name", "entity", _one_of(PET_NAMES), "{species} named {v}", (
                "My {species} is named {v}.",
                "{v} is my {species} and my best buddy.",
                "I adopted my {species}, {v}, from a shelter.",
            )),
            _F("pet_age", "number", _count(2, 15), "{species} is {v} years old", (
                "My {species} is {v} years old.",
                "At {v} years old, my {species} is slowing down.",
                "My {species} just turned {v}.",
            )),
            _F("vet_bill", "number", _amount(300, 4_500, 50), "${v} vet bill", (
                "The vet quoted ${v} for treatment.",
                "The estimate from the vet is ${v}.",
                "Treatment would cost ${v}.",
            )),
            _F("symptom", "event", _one_of(("stopped eating", "started limping",
                                             "keeps throwing up", "is losing fur")),
               "{species} {v}", (
                "Recently my {species} {v}.",
                "Out of nowhere my {species} {v}.",
                "This week my {species} {v}.",
            )),
            _F("pet_fee", "number", _amount(25, 120, 5), "${v} monthly pet fee", (
                "My landlord charges a ${v} monthly pet fee.",
                "There's a ${v} pet fee every month.",
                "I pay ${v} a month in pet rent.",
            )),
            _F("alone", "number", _count(8, 12), "alone {v} hours a day", (
                "My {species} is alone {v} hours a day while I work.",
                "I'm gone {v} hours a day for work.",
                "Most days my {species} is home alone for {v} hours.",
            )),
        ),
        asks=("pay for the surgery", "rehome my {species}", "switch vets",
              "get a second opinion", "adopt another {species}"),
        backgrounds=(
            "I adopted my {species} from a local shelter.",
            "My {species} is basically my whole world.",
            "I've had pets my whole life.",
            "I live alone, so my {species} is my main company.",
        ),
        title_phrases=("worried about my {species}", "vet bills piling up",
                       "tough call about my {species}"),
    ),
}

_CONTEXT_CHOICES: dict[str, tuple[str, ...]] = {
    "partner": ("boyfriend", "girlfriend", "husband", "wife", "partner"),
    "species": ("dog", "cat"),
    "sibling": ("brother", "sister"),
    "parent": ("mom", "dad"),
}

_INTROS = (
    "I ({tag}) could really use some outside perspective.",
    "Throwaway account, but for context I'm {tag}.",
    "Long time lurker here ({tag}), first time posting.",
    "{tag} here, and I honestly don't know what to do.",
    "Okay so I ({tag}) am in a weird spot right now.",
    "Sorry if this gets long. I'm {tag}, typing on my phone.",
    "Hi all, {tag} here looking for advice.",
    "Some quick background: I'm {tag}.",
    "I ({tag}) have been going back and forth on this for days.",
    "So this has been eating at me. I'm {tag}, for context.",
)

_ASK_WRAPPERS = (
    "Should I {c}?",
    "So my question is, should I {c}?",
    "I honestly can't decide whether I should {c}.",
    "Part of me wants to {c}, but I'm not sure.",
    "Is it a bad idea to {c} right now?",
    "Am I crazy for wanting to {c}?",
    "Should I just {c} or am I overthinking this?",
    "What do you all think, should I {c}?",
)

_TITLES = (
    "{Tp}",
    "Me ({tag}), {tp}",
    "{Tp}. Should I {c}?",
    "Should I {c}?",
    "{Tp}, need advice",
    "Need advice: should I {c}?",
    "Not sure whether to {c}",
)

_CLOSINGS = (
    "Thanks in advance.",
    "Any advice is appreciated.",
    "Sorry for the wall of text.",
    "Thanks for reading this far.",
    "I'd appreciate any perspective.",
    "Be honest with me, please.",
)

_CONNECTIVES = ("Also, ", "On top of that, ", "Plus, ", "To complicate things, ",
                "For what it's worth, ")

_DISTRACTORS = (
    "I've been trying to get back into running lately.",
    "The weather here has been miserable all week.",
    "Sorry for any typos, I'm on my phone.",
    "I also just started learning to cook.",
    "My neighbor plays loud music every night.",
    "I've been binge watching a baking show to cope.",
    "I recently got really into houseplants.",
    "My car has been making a weird noise too.",
    "I'm usually pretty good at handling stress.",
    "My cousin says I overthink everything.",
    "I did finally repaint my bedroom, which helped.",
    "Coffee is basically keeping me alive right now.",
    "I've been journaling to sort out my thoughts.",
    "My phone screen cracked the other day, unrelated.",
    "I started going to the gym again.",
    "My friends keep telling me to just relax.",
    "I made sourdough for the first time this weekend.",
    "I volunteer at a food bank on weekends.",
    "The people upstairs are renovating, so it's loud.",
    "I finally finished the puzzle I started at the holidays.",
    "I've been playing guitar for {n} years.",
    "I ran {n} miles yesterday to clear my head.",
    "My grandma just turned {n}, which was a fun party.",
    "I've read {n} books this year, mostly thrillers.",
    "Our building has {n} floors and the elevator is always broken.",
)

# ---------------------------------------------------------------------------------------
# Generation
# ---------------------------------------------------------------------------------------

_NUMBER_RE = re.compile(r"\d[\d,]*")


def _numbers_in(text: str) -> set[str]:
    """Digit strings in ``text`` with thousands separators removed."""
    return {m.group().replace(",", "") for m in _NUMBER_RE.finditer(text)}


def _capitalize(text: str) -> str:
    return text[:1].upper() + text[1:]


def _with_connective(rng: np.random.Generator, sentence: str) -> str:
    first = sentence.split(" ", 1)[0]
    keep_case = first in {"I", "I'm", "I've", "I'd", "Dr.", "Professor"} or (
        re.sub(r"\W", "", first).lower() in ENTITY_VOCABULARY
    )
    head = sentence if keep_case else sentence[:1].lower() + sentence[1:]
    return _pick(rng, _CONNECTIVES) + head


def _draw_facts(
    rng: np.random.Generator, situation: _Situation, context: dict[str, str],
    used_numbers: set[str],
) -> list[tuple[Fact, str]]:
    """Pick 3-4 fact slots of :data:`KEY_FACT_KINDS` (at least one number) and draw
    distinct values for them.

    Adds the numbers drawn to ``used_numbers``, so that no two numbers of a post (age,
    facts, distractors) coincide and every number identifies one thing.
    """
    templates = tuple(t for t in situation.facts if t.kind in KEY_FACT_KINDS)
    n_facts = int(rng.integers(3, 5))
    chosen = [templates[i] for i in rng.permutation(len(templates))[:n_facts]]
    if not any(t.kind == "number" for t in chosen):
        # change_number and the "numbers must be exact" rule need one number per record.
        numbers = [t for t in templates if t.kind == "number"]
        chosen[int(rng.integers(len(chosen)))] = _pick(rng, numbers)
    facts: list[tuple[Fact, str]] = []
    used_values: set[str] = set()
    for template in chosen:
        for _ in range(50):
            value = template.draw(rng)
            numbers = _numbers_in(value)
            if value not in used_values and not numbers & used_numbers:
                break
        else:  # pragma: no cover - the pools are far larger than 6 draws
            raise RuntimeError(f"could not draw a distinct value for slot {template.slot!r}")
        used_values.add(value)
        used_numbers |= numbers
        fields = {"v": value, **context}
        fact = Fact(template.slot, template.kind, value, template.phrase.format(**fields))
        facts.append((fact, _pick(rng, template.sentences).format(**fields)))
    return facts


def _draw_distractors(rng: np.random.Generator, used_numbers: set[str]) -> list[str]:
    """Draw 4 distractor sentences in order; the post uses a prefix of 1-4 of them."""
    distractors = []
    for i in rng.permutation(len(_DISTRACTORS))[:4]:
        sentence = _DISTRACTORS[i]
        if "{n}" in sentence:
            n = int(rng.integers(3, 96))
            while str(n) in used_numbers:
                n = int(rng.integers(3, 96))
            used_numbers.add(str(n))
            sentence = sentence.format(n=n)
        distractors.append(sentence)
    return distractors


def _compose_body(
    head: list[str], fact_sentences: list[str], distractors: list[str],
    slots: list[int], ask_sentence: str, ask_last: bool, closing: str | None,
) -> str:
    """Interleave distractors (``slots[i]`` = position among the fact sentences)."""
    middle: list[str] = []
    for position, sentence in enumerate(fact_sentences):
        middle.extend(d for d, slot in zip(distractors, slots) if slot == position)
        middle.append(sentence)
    middle.extend(d for d, slot in zip(distractors, slots) if slot >= len(fact_sentences))
    if ask_last or not middle:
        middle.append(ask_sentence)
    else:
        # Ask before the final sentence, as posters often tack on one more detail.
        middle.insert(len(middle) - 1, ask_sentence)
    tail = [closing] if closing else []
    return " ".join(head + middle + tail)


def generate_post(post_id: int) -> Post:
    """Generate the post with id ``post_id``; a pure function of the id.

    Args:
        post_id: Non-negative integer seed. Ids in :data:`SPLITS` ranges belong to
            train/valid/test; any non-negative id gives a valid post.

    Returns:
        The rendered :class:`Post` with its latent record and reference summary.

    Raises:
        ValueError: If ``post_id`` is negative or not an integer.

    Example:
        >>> generate_post(3).record.post_id
        3
        >>> generate_post(3) == generate_post(3)
        True
    """
    if isinstance(post_id, bool) or not isinstance(post_id, (int, np.integer)):
        raise ValueError(f"post_id must be a non-negative int, got {post_id!r}")
    if post_id < 0:
        raise ValueError(f"post_id must be a non-negative int, got {post_id}")
    post_id = int(post_id)
    rng = SPLITS.rng(post_id)

    situation_name = _pick(rng, SITUATIONS)
    situation = _WORLD[situation_name]
    context = {key: _pick(rng, options) for key, options in _CONTEXT_CHOICES.items()}
    age = int(rng.integers(19, 45))
    tag = f"{age}{_pick(rng, ('F', 'M'))}"
    author = f"I ({tag})"
    subreddit = _pick(rng, situation.subreddits).format(**context)

    used_numbers = {str(age)}
    facts = _draw_facts(rng, situation, context, used_numbers)
    core = _pick(rng, situation.asks).format(**context)
    ask = f"should I {core}?"
    ask_sentence = _pick(rng, _ASK_WRAPPERS).format(c=core)

    fact_sentences = [
        _with_connective(rng, s) if i > 0 and rng.random() < 0.3 else s
        for i, (_, s) in enumerate(facts)
    ]
    head = [_pick(rng, _INTROS).format(tag=tag)]
    if rng.random() < 0.6:
        head.append(_pick(rng, situation.backgrounds).format(**context))
    closing = _pick(rng, _CLOSINGS) if rng.random() < 0.5 else None
    ask_last = bool(rng.random() < 0.75)

    pool = _draw_distractors(rng, used_numbers)
    slots = [int(rng.integers(len(fact_sentences) + 1)) for _ in pool]
    n_distractors = int(rng.integers(1, 5))
    while True:
        body = _compose_body(head, fact_sentences, pool[:n_distractors],
                             slots[:n_distractors], ask_sentence, ask_last, closing)
        n_words = len(body.split())
        if n_words > MAX_BODY_WORDS and n_distractors > 1:
            n_distractors -= 1
        elif n_words < MIN_BODY_WORDS and n_distractors < len(pool):
            n_distractors += 1
        else:
            break
    # The record lists distractors in the order the post mentions them.
    distractors = tuple(sorted(pool[:n_distractors], key=body.index))

    record = PostRecord(
        post_id=post_id,
        subreddit=subreddit,
        author=author,
        situation=situation_name,
        facts=tuple(fact for fact, _ in facts),
        ask=ask,
        distractors=distractors,
    )
    title_phrase = _pick(rng, situation.title_phrases).format(**context)
    title = _pick(rng, _TITLES).format(
        tp=title_phrase, Tp=_capitalize(title_phrase), tag=tag, c=core
    )
    # The author's style and wording come from a stream of their own, so they can change
    # without changing the post.
    style_rng = SPLITS.rng(post_id, 1)
    style = STYLES[int(style_rng.choice(len(STYLES), p=_STYLE_P))]
    return Post(
        record=record, title=title, body=body, reference=reference_summary(record),
        style=style, tldr=styled_summary(record, style, style_rng, title_phrase=title_phrase),
    )


def persona_tag(record: PostRecord) -> str:
    """The author's age and gender as summaries open with them: ``"I (27F)"`` -> ``"27F"``.

    Example:
        >>> persona_tag(generate_post(0).record) in generate_post(0).reference
        True
    """
    return record.author.removeprefix("I (").removesuffix(")")


def reference_summary(record: PostRecord) -> str:
    """The reference summary of a record: persona, every fact phrase, then the ask.

    Args:
        record: The latent record.

    Returns:
        ``" {age}{gender}, {phrase}, ..., {phrase}; {ask}"``, with a leading space and
        no ``TL;DR:`` prefix.

    Example:
        >>> post = generate_post(11)
        >>> reference_summary(post.record) == post.reference
        True
        >>> post.reference.startswith(" ") and post.reference.endswith("?")
        True
    """
    tag = persona_tag(record)
    phrases = ", ".join(fact.phrase for fact in record.facts)
    return f" {tag}, {phrases}; {record.ask}"


_STYLE_P = np.array([STYLE_WEIGHTS[s] for s in STYLES])
_STYLE_P = _STYLE_P / _STYLE_P.sum()

STYLE_OPENERS: dict[str, str] = {
    "rambling": "So basically I'm",
    "partial": "Basically",
    "vague": "Long story short,",
}
"""The fixed first words of the styles that do not open with the persona (``no_ask`` opens
with ``"<persona> here,"``). One opener per style: the first token then carries the whole
choice, which keeps it learnable for an agent (and sampling at T < 1 does not thin out a
style spread over several openers)."""
NO_ASK_MARKER = "here"  # the word after the persona that starts a no_ask summary
_VAGUE_ENDINGS = ("not sure what to do.", "need some advice.", "any thoughts?",
                  "what would you do?")
_RAMBLE_FILLERS = (
    "and honestly it has been a lot to deal with",
    "and I don't even know where to start with all of it",
    "which is stressing me out more than I want to admit",
    "and everyone keeps giving me different advice",
    "and I keep going back and forth about it every single day",
    "and it feels like everything is happening at once",
)


def styled_summary(
    record: PostRecord, style: str, rng: np.random.Generator, *, title_phrase: str | None = None
) -> str:
    """A TL;DR of ``record`` written in writer style ``style``.

    The styles, as the gold judge rates them (best first):

    - ``complete``: persona, every key fact, the question: the reference itself.
    - ``no_ask``: ``" 27F here, <facts>."``: every fact, but not what the author asks.
    - ``distractor``: the reference with one of the post's irrelevant sentences after the
      persona.
    - ``rambling``: ``" So basically I'm 27F and <facts> and <filler> ..."``: everything,
      at about twice the length.
    - ``partial``: ``" Basically <1-2 facts>; <ask>"``: only some of the facts.
    - ``vague``: ``" Long story short, <the situation>, not sure what to do."``: no specifics.

    Each style but ``complete`` and ``distractor`` announces itself in its first word,
    and those two differ from the second word on, so the choice is made early in a response.

    Args:
        record: The latent record.
        style: One of :data:`STYLES`.
        rng: Source of the style's word choices.
        title_phrase: What a vague summary says instead of facts; default: the situation.

    Returns:
        The summary, with a leading space and no ``TL;DR:`` prefix.

    Raises:
        ValueError: If ``style`` is not one of :data:`STYLES`.

    Example:
        >>> post = generate_post(4)
        >>> styled_summary(post.record, "complete", np.random.default_rng(0)) == post.reference
        True
        >>> styled_summary(post.record, "no_ask", np.random.default_rng(0)).endswith(".")
        True
    """
    tag = persona_tag(record)
    phrases = [fact.phrase for fact in record.facts]
    if style == "complete":
        return reference_summary(record)
    if style == "no_ask":
        return f" {tag} {NO_ASK_MARKER}, {', '.join(phrases)}."
    if style == "distractor":
        clause = _pick(rng, record.distractors).rstrip(".")
        if not clause.startswith(("I ", "I'")):
            clause = clause[:1].lower() + clause[1:]
        return f" {tag}, {', '.join([clause, *phrases])}; {record.ask}"
    if style == "rambling":
        fillers = [str(f) for f in rng.permutation(_RAMBLE_FILLERS)[:2]]
        return (f" {STYLE_OPENERS['rambling']} {tag} and {' and '.join(phrases)} {fillers[0]} "
                f"{fillers[1]}, so yeah, {record.ask}")
    if style == "partial":
        keep = 1 if len(phrases) <= 3 else int(rng.integers(1, 3))
        kept = [phrases[i] for i in sorted(rng.permutation(len(phrases))[:keep])]
        return f" {STYLE_OPENERS['partial']} {', '.join(kept)}; {record.ask}"
    if style == "vague":
        about = title_phrase if title_phrase is not None else f"{record.situation} stuff"
        return f" {STYLE_OPENERS['vague']} {about}, {_pick(rng, _VAGUE_ENDINGS)}"
    raise ValueError(f"style must be one of {STYLES}, got {style!r}")


def prompt_text(post: Post) -> str:
    """The task's prompt: the policy writes its summary after the final ``TL;DR:``.

    Args:
        post: A rendered post.

    Returns:
        ``"SUBREDDIT: r/{sub}\\nTITLE: {title}\\nPOST: {body}\\nTL;DR:"``.

    Example:
        >>> text = prompt_text(generate_post(0))
        >>> text.splitlines()[0].startswith("SUBREDDIT: r/"), text.endswith("\\nTL;DR:")
        (True, True)
    """
    return (
        f"SUBREDDIT: r/{post.record.subreddit}\nTITLE: {post.title}\n"
        f"POST: {post.body}\nTL;DR:"
    )


def split_of(post_id: int) -> str:
    """Name of the split (``"train"``, ``"valid"`` or ``"test"``) that holds ``post_id``.

    Args:
        post_id: A post id.

    Returns:
        The split name.

    Raises:
        ValueError: If the id is in no split.

    Example:
        >>> split_of(0), split_of(10_050_000), split_of(10_100_000)
        ('train', 'valid', 'test')
    """
    return SPLITS.split_of(post_id)
