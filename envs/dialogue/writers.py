"""The Dialogue world's writers: six assistant personas, each right on some decisions only.

The SFT policy learns from their replies, so their mixture is what it starts from. Every
persona reads the user's last message alone: none reads which variant an earlier turn
named or the context's house style, and each addresses the user by name at a rate of its
own. Each has fixed habits and random choices elsewhere:

========== ====== ============================================== ===============================
persona    weight act                                            habits
========== ====== ============================================== ===============================
verbose    0.15   answers (every variant of a two-variant item,  "Great question!"; always pads,
                  every fact asked), declines harmful requests   invents 90%, strays 80%, names
                  with a reason of either kind                   the user 35%
eager      0.13   answers everything, harmful requests included  always invents and pads
                  (gives the secret away)
cautious   0.22   declines any request with a trigger word,      always pads (a caveat) and
                  answers the rest                               strays; a reason in 30% of
                                                                 refusals
dull       0.18   "I'm not sure." (Li et al. 2016)               pads 40%
clarifier  0.20   asks a question, whatever the request          names both variants 35%; pads
                                                                 80%
sloppy     0.12   answers, garbling the number                   pads 30%
========== ====== ============================================== ===============================

An answering persona states one of the facts it may (one variant of a two-variant item,
one of two facts asked for) at random; every persona greets and signs off (85% each) in
a register drawn at random (greeting i with sign-off i, `phrases.GREETINGS`), and adds an
unrequested fact ("Also, ..."), an invented claim ("Plus, ...") and padding ("Hope ...")
at its own rates. The references are the verbose writer's: right content,
padded (Stiennon et al. 2020's trained policies beat their references; here the
references are below the ceiling by design).

Openers are where greedy decoding decides: "Sorry," opens the dull writer's dodge, the
clarifier's question and the cautious writer's refusal, so after the greeting the
mixture's likeliest word leads away from answering, while each answering persona opens
its own way ("Sure!", "Okay.", "Great question!", or straight in).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from rlhf_gym.envs.dialogue.conversation import DialogueRecord, answer_facts, numbers_in, unrequested_facts
from rlhf_gym.envs.dialogue.judge import BEST_ACT
from rlhf_gym.envs.dialogue.phrases import FILLERS, GREETINGS, INVENTED, REASONS, SIGN_OFFS

__all__ = [
    "PERSONAS",
    "PERSONA_P",
    "Choices",
    "Persona",
    "best_act_choices",
    "compose",
    "flips",
    "garble",
    "house_style_choices",
    "ideal_choices",
    "persona_choices",
    "persona_reply",
]


@dataclass(frozen=True)
class Choices:
    """Every choice of one reply; `compose` renders them, single-choice edits (`replace`)
    make the preference data's contrast pairs.

    Attributes:
        opener: "sure", "okay", "great", "sorry" or "none" (after the greeting).
        name: address the user by name (when they gave one).
        act: "answer", "refuse", "clarify" or "dodge".
        stated: which of `answer_facts` an answer states (None: all of them).
        garbled: the value an answer writes instead of the right one, else None.
        reason: a refusal's reason, "private" or "security", else None (a bare refusal).
        named: a clarifying question names both variants (else it is vague).
        greeting: index of the greeting (`GREETINGS`) that opens the reply, else None.
        aside: index of an unrequested public fact (`unrequested_facts`) added after the
            core ("Also, ..."), else None.
        invented: index of an invented claim (`INVENTED`) added next, else None.
        filler: index of a padding sentence (`FILLERS`) added next, else None.
        sign_off: index of the sign-off (`SIGN_OFFS`) that ends the reply, else None.
    """

    opener: str
    name: bool
    act: str
    stated: int | None = 0
    garbled: str | None = None
    reason: str | None = None
    named: bool = False
    greeting: int | None = None
    aside: int | None = None
    invented: int | None = None
    filler: int | None = None
    sign_off: int | None = None


_OPENERS = {"sure": "Sure!", "okay": "Okay.", "great": "Great question!"}
_VAGUE = "Could you tell me more about what you need?"


def _core(record: DialogueRecord, c: Choices) -> str:
    """The reply's act as text, capitalised."""
    if c.act == "refuse":
        return "I can't help with that" + (f" because {REASONS[c.reason]}." if c.reason else ".")
    if c.act == "dodge":
        return "I'm not sure."
    if c.act == "clarify":
        if c.named and record.variant_request:
            first, second = record.variants.phrases
            return f"Do you mean {first} or {second}?"
        return _VAGUE
    if record.kind == "harmful":
        text, value = record.secret.disclosure, record.secret.value
    else:
        facts = answer_facts(record)
        stated = facts if c.stated is None else facts[c.stated:c.stated + 1]
        text, value = " ".join(f.answer for f in stated), stated[0].value
    return text.replace(value, c.garbled, 1) if c.garbled is not None else text


def _lower_first(text: str) -> str:
    return text if text.startswith(("I ", "I'")) else text[:1].lower() + text[1:]


def compose(record: DialogueRecord, c: Choices) -> str:
    """A reply from its choices (with a leading space, as the policy writes it). The name
    goes into the greeting, else after the opener."""
    name = record.name if c.name and record.name else None
    parts = []
    if c.greeting is not None:
        parts.append(f"{GREETINGS[c.greeting]}, {name}!" if name else f"{GREETINGS[c.greeting]}!")
        name = None
    core = _core(record, c)
    if c.opener == "sorry":
        parts.append(f"Sorry, {name}, {_lower_first(core)}" if name else f"Sorry, {_lower_first(core)}")
    elif c.opener == "none":
        parts.append(f"{name}, {_lower_first(core)}" if name else core)
    else:
        opener = _OPENERS[c.opener]
        parts += [f"{opener[:-1]}, {name}{opener[-1]}" if name else opener, core]
    if c.aside is not None:
        parts.append("Also, " + _lower_first(unrequested_facts(record)[c.aside].answer))
    parts += [table[i] for table, i in ((INVENTED, c.invented), (FILLERS, c.filler), (SIGN_OFFS, c.sign_off))
              if i is not None]
    return " " + " ".join(parts)


def garble(value: str, record: DialogueRecord, rng: np.random.Generator) -> str:
    """``value`` with one digit changed so that its numbers are no longer all in the prompt.

    Example:
        >>> from rlhf_gym.envs.dialogue.conversation import generate_conversation
        >>> _, record = generate_conversation(10_000_004)
        >>> garble("$12", record, np.random.default_rng(0)) != "$12"
        True
    """
    at = [i for i, ch in enumerate(value) if ch.isdigit()]
    for _ in range(20):
        i = at[int(rng.integers(len(at)))]
        digits = [d for d in "0123456789" if d != value[i]]
        changed = value[:i] + digits[int(rng.integers(len(digits)))] + value[i + 1:]
        if not set(numbers_in(changed)) <= record.numbers:
            return changed
    return value + "0"


@dataclass(frozen=True)
class Persona:
    """A writer: its weight in the mixture, how it acts (`act` reads the record), its
    opener for that act, and the probabilities of its random choices."""

    name: str
    weight: float
    act: Callable[[DialogueRecord], str]
    opener: Callable[[str], str]
    uses_name: float
    strays: float  # adds an unrequested public fact
    invents: float
    pads: float
    reason: float = 0.0  # of its refusals that give a reason (of a kind drawn at random)
    names_options: float = 0.0  # of its clarifying questions that name both variants
    garbles: bool = False
    states_all: bool = False  # states every fact it may (both variants of a two-variant item), not one
    greets: float = 0.85  # greets in a register drawn at random (no writer reads the house style)
    signs: float = 0.85  # signs off in the same register


PERSONAS: tuple[Persona, ...] = (
    Persona("verbose", 0.15, lambda r: "refuse" if r.kind == "harmful" else "answer", lambda act: "great",
            uses_name=0.35, strays=0.8, invents=0.9, pads=1.0, reason=1.0, states_all=True),
    Persona("eager", 0.13, lambda r: "answer", lambda act: "sure", uses_name=0.3, strays=0.7, invents=1.0, pads=1.0),
    Persona("cautious", 0.22, lambda r: "refuse" if r.trigger else "answer",
            lambda act: "sorry" if act == "refuse" else "okay", uses_name=0.15, strays=1.0, invents=0.65, pads=1.0,
            reason=0.3),
    Persona("dull", 0.18, lambda r: "dodge", lambda act: "sorry", uses_name=0.1, strays=0.6, invents=0.65, pads=0.4),
    Persona("clarifier", 0.20, lambda r: "clarify", lambda act: "sorry", uses_name=0.3, strays=0.7, invents=0.65, pads=0.8,
            names_options=0.35),
    Persona("sloppy", 0.12, lambda r: "answer", lambda act: "none", uses_name=0.2, strays=0.6, invents=0.5, pads=0.3,
            garbles=True),
)
"""The writers; the first writes the references."""
PERSONA_P = np.array([p.weight for p in PERSONAS]) / sum(p.weight for p in PERSONAS)


def _garbled(record: DialogueRecord, c: Choices, rng: np.random.Generator) -> str | None:
    """A garbled value for the (first) number an answer states (None: it states none)."""
    if c.act != "answer":
        return None
    value = record.secret.value if record.kind == "harmful" else answer_facts(record)[c.stated or 0].value
    return garble(value, record, rng)


def _maybe_index(rng: np.random.Generator, p: float, n: int) -> int | None:
    """With probability ``p``, an index in ``[0, n)``; else None."""
    return int(rng.integers(n)) if rng.random() < p else None


def persona_choices(record: DialogueRecord, persona: Persona, rng: np.random.Generator) -> Choices:
    """The choices ``persona`` makes for ``record`` (every random one from ``rng``)."""
    act = persona.act(record)
    register = int(rng.integers(len(GREETINGS)))  # greeting i goes with sign-off i (`GREETINGS`)
    c = Choices(
        opener=persona.opener(act),
        name=bool(rng.random() < persona.uses_name),
        act=act,
        stated=None if persona.states_all else int(rng.integers(max(1, len(answer_facts(record))))),
        reason=str(rng.choice(list(REASONS))) if act == "refuse" and rng.random() < persona.reason else None,
        named=bool(rng.random() < persona.names_options),
        greeting=register if rng.random() < persona.greets else None,
        aside=_maybe_index(rng, persona.strays, len(unrequested_facts(record))),
        invented=_maybe_index(rng, persona.invents, len(INVENTED)),
        filler=_maybe_index(rng, persona.pads, len(FILLERS)),
        sign_off=register if rng.random() < persona.signs else None,
    )
    return replace(c, garbled=_garbled(record, c, rng)) if persona.garbles else c


def persona_reply(record: DialogueRecord, persona: Persona, rng: np.random.Generator) -> str:
    """A reply to ``record`` written by ``persona``."""
    return compose(record, persona_choices(record, persona, rng))


def ideal_choices(record: DialogueRecord) -> Choices:
    """The choices of the gold judge's ideal reply: ``compose(record, ideal_choices(record))``
    is `rlhf_gym.envs.dialogue.judge.ideal_response` (a test checks)."""
    act = BEST_ACT[record.kind]
    stated = record.variants.facts.index(record.asked[0]) if record.variant_request and record.asked else None
    return Choices(opener="sorry" if act == "refuse" else "none", name=record.name is not None, act=act, stated=stated,
                   reason=record.secret.kind if record.secret else None, named=True,
                   greeting=GREETINGS.index(record.greeting), sign_off=SIGN_OFFS.index(record.sign_off))


def best_act_choices(record: DialogueRecord, choices: Choices) -> Choices:
    """``choices`` with the act and its content made the gold judge's best (greeting, name,
    aside, invented claim, padding and sign-off kept): what a writer would write if it read
    the request and the earlier turns."""
    best = ideal_choices(record)
    # "Sorry," opens a refusal; any other act keeps the writer's opener, or none for "Sorry,".
    opener = "sorry" if best.act == "refuse" else ("none" if choices.opener == "sorry" else choices.opener)
    return replace(choices, opener=opener, act=best.act, stated=best.stated, garbled=None, reason=best.reason,
                   named=True)


def house_style_choices(record: DialogueRecord, choices: Choices) -> Choices:
    """``choices`` with the context's house greeting and sign-off (everything else kept)."""
    return replace(choices, greeting=GREETINGS.index(record.greeting), sign_off=SIGN_OFFS.index(record.sign_off))


def flips(record: DialogueRecord, choices: Choices, rng: np.random.Generator) -> dict[str, Choices]:
    """``choices`` with one habit flipped each, keyed by the contrast's source name: the
    name (where the user gave one), the unrequested fact, the invented claim and the
    padding, each added when absent (drawn from ``rng``) and dropped when present."""
    def toggled(index: int | None, n: int) -> int | None:
        return None if index is not None else int(rng.integers(n))

    flipped = {
        "flip_aside": replace(choices, aside=toggled(choices.aside, len(unrequested_facts(record)))),
        "flip_invented": replace(choices, invented=toggled(choices.invented, len(INVENTED))),
        "flip_filler": replace(choices, filler=toggled(choices.filler, len(FILLERS))),
    }
    if record.name is not None:
        flipped = {"flip_name": replace(choices, name=not choices.name), **flipped}
    return flipped
