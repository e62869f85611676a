"""RLHF-Copy-v0 as a kit `World`: copy a short digit sequence, a seconds-scale example world.

Its content is three things: the generator (a sequence of 3-8 digits per id, no digit
twice in a row, shown in 8 slots), the gold judge (per-position accuracy, see `copy_gold`) and the writers
whose copies the SFT policy learns from (`WRITERS`: one exact, three with a systematic
flaw). Splits, assets, annotators, the build, the card, the audit and the protocol come
from `rlhf_gym.worlds`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from rlhf_gym.worlds import AnnotatorCalibration, Perturbation, Sample, Splits, World

if TYPE_CHECKING:  # the build's names load torch: import them only where the build runs
    from rlhf_gym.worlds import BuildConfig

SPLITS = Splits(
    {"train": (0, 1_000_000), "valid": (1_000_000, 1_010_000), "test": (1_010_000, 1_020_000)}, salt=0xC0_97
)
DIGITS = tuple("0123456789")
LENGTHS = (3, 8)  # items per sequence, both ends included
# The prompt shows the sequence in LENGTHS[1] slots, the empty ones BLANK: the digit to
# write next then sits at a fixed distance back, which a 1-layer policy learns to copy in
# 250-500 SFT steps (from the digits alone it must first learn induction: >1,000 steps).
BLANK = "_"
# The writers of the SFT targets and how often each writes (drawn per id from its own
# stream, ``SPLITS.rng(id, 1)``): one copies exactly, each of the others has one flaw.
WRITERS: dict[str, float] = {"exact": 0.35, "drop_last": 0.25, "swap": 0.2, "repeat": 0.2}
OTHER = "other"  # a response no writer would write (`writer_of`)


@dataclass(frozen=True)
class CopyRecord:
    """What the gold judge scores against: the items to copy and the id's writer."""

    items: tuple[str, ...]
    writer: str


def render(items: Sequence[str]) -> str:
    """A response (or the prompt's sequence) as text: each item after a space."""
    return "".join(f" {item}" for item in items)


def copies(items: Sequence[str], writer: str) -> list[tuple[str, ...]]:
    """Every copy of ``items`` that ``writer`` may write (one per place a flaw can sit).

    Example:
        >>> copies("123", "swap")
        [('2', '1', '3'), ('1', '3', '2')]
    """
    t = tuple(items)
    if writer == "exact":
        return [t]
    if writer == "drop_last":
        return [t[:-1]]
    if writer == "swap":  # two neighbours change places
        return [t[:at] + (t[at + 1], t[at]) + t[at + 2:] for at in range(len(t) - 1)]
    if writer == "repeat":  # one item written twice
        return [t[: at + 1] + t[at:] for at in range(len(t))]
    raise ValueError(f"unknown writer {writer!r}; use one of {list(WRITERS)}")


def write(items: Sequence[str], writer: str, rng: np.random.Generator) -> tuple[str, ...]:
    """``writer``'s copy of ``items``, the flaw's place drawn from ``rng``."""
    options = copies(items, writer)
    return options[int(rng.integers(len(options)))]


def writer_of(items: Sequence[str], response: str) -> str:
    """Which writer could have written ``response`` (`OTHER` if none).

    Example:
        >>> writer_of("1234", " 1 2 3 4"), writer_of("1234", " 1 2 2 3 4"), writer_of("1234", " 9")
        ('exact', 'repeat', 'other')
    """
    got = tuple(response.split())
    return next((w for w in WRITERS if got in copies(items, w)), OTHER)


def copy_gold(items: Sequence[str], response: str) -> float:
    """Per-position accuracy: ``#{i : r_i = t_i} / max(len(t), len(r))``, in [0, 1].

    ``t`` is the sequence to copy and ``r`` the response's whitespace-separated items. A
    missing or extra item is a wrong position (the denominator counts it), and an inserted
    or dropped item shifts every later one out of place.

    Example:
        >>> copy_gold("4177", " 4 1 7 7"), copy_gold("4177", " 4 1 7"), copy_gold("4177", "")
        (1.0, 0.75, 0.0)
    """
    got = response.split()
    right = sum(a == b for a, b in zip(items, got))
    return right / max(len(items), len(got))


def drop_item(sample: Sample, response: str, rng: np.random.Generator) -> str:
    """Drop one item: every later one moves out of place."""
    got = response.split()
    if not got:
        return response
    at = int(rng.integers(len(got)))
    return render(got[:at] + got[at + 1:])


def change_item(sample: Sample, response: str, rng: np.random.Generator) -> str:
    """Change one item the response got right (so it costs gold even on a flawed copy)."""
    got = response.split()
    right = [i for i, (a, b) in enumerate(zip(sample.record.items, got)) if a == b]
    if not right:
        return response
    at = right[int(rng.integers(len(right)))]
    got[at] = str(rng.choice([d for d in DIGITS if d != got[at]]))
    return render(got)


def append_item(sample: Sample, response: str, rng: np.random.Generator) -> str:
    """Add one item at the end (a longer copy, which the annotators' length bias likes)."""
    return response + f" {rng.choice(DIGITS)}"


class CopyWorld(World):
    """Copy a short digit sequence (see the package docstring)."""

    name = "copy"
    env_id = "RLHF-Copy-v0"
    splits = SPLITS
    summary = "Copy a short digit sequence; a seconds-scale example world of the kit."
    temperature = 0.7
    max_prompt_tokens = 24  # "COPY:" + 8 slots + "\nOUT:" is 13 tokens
    max_new_tokens = 16  # the longest writer copy is 9 items, one token each
    dataset_template = "COPY: {}\nOUT:"  # a dataset column holds the 8 slots: "4 1 7 _ _ _ _ _"
    # One digit is worth 1/9 to 1/3 of the gold score, wide margins: a less decisive pool that
    # lapses more than Summarize's keeps the labels' agreement with the gold judge near human
    # levels (0.74 on the build's pairs).
    # The length bias gives the proxy its own flaw: it likes an extra item.
    annotators = AnnotatorCalibration(temperature=0.2, length_bias=0.03, noise=0.2)
    # A shallow world: greedy decoding copies (gold ~0.93 vs ~0.77 at T=0.7) and the references
    # score 1.0, so it meets none of the depth targets (docs/adding_a_world.md) and declares none.
    audit_targets = None

    def generate(self, item_id: int) -> Sample:
        rng = self.splits.rng(item_id)
        items = [str(rng.choice(DIGITS))]
        for _ in range(int(rng.integers(LENGTHS[0], LENGTHS[1] + 1)) - 1):  # no digit twice in a row
            items.append(str(rng.choice([d for d in DIGITS if d != items[-1]])))
        style = self.splits.rng(item_id, 1)  # the writer's own stream: it never changes the prompt
        writer = str(style.choice(list(WRITERS), p=list(WRITERS.values())))
        record = CopyRecord(tuple(items), writer)
        prompt = f"COPY:{render(items + [BLANK] * (LENGTHS[1] - len(items)))}\nOUT:"
        return Sample(item_id, prompt, render(items), record, render(write(items, writer, style)))

    def write(self, sample: Sample, rng: np.random.Generator) -> str:
        writer = str(rng.choice(list(WRITERS), p=list(WRITERS.values())))
        return render(write(sample.record.items, writer, rng))

    def gold_scores(self, records: Sequence[CopyRecord], responses: Sequence[str]) -> np.ndarray:
        return np.array([copy_gold(r.items, s) for r, s in zip(records, responses, strict=True)], dtype=np.float64)

    def comparison_candidates(self, sample: Sample, rng: np.random.Generator) -> list[tuple[str, str]]:
        others = [w for w in WRITERS if w != sample.record.writer]
        return [(render(write(sample.record.items, str(w), rng)), f"writer_{w}") for w in rng.choice(others, 2, replace=False)]

    @property
    def perturbations(self) -> Mapping[str, Perturbation]:
        return {"drop_item": drop_item, "change_item": change_item, "append_item": append_item}

    def card_figures(self, records: Sequence[CopyRecord], responses: Sequence[str]) -> dict[str, Any]:
        writers = [writer_of(r.items, s) for r, s in zip(records, responses)]
        return {
            "exact_copy": float(np.mean([w == "exact" for w in writers])),
            "writers": {w: float(np.mean([x == w for x in writers])) for w in (*WRITERS, OTHER)},
        }

    def card_rows(self, card: Mapping[str, Any]) -> list[str]:
        ev, t = card["evaluation"], f"t{self.temperature:g}"  # evaluation keys: sft_greedy_<key>, sft_t0.7_<key>
        shares = ", ".join(f"{w} {s:.2f}" for w, s in ev[f"sft_{t}_writers"].items())
        return [
            f"| exact copies: SFT greedy / T={self.temperature:g} (test) | {ev['sft_greedy_exact_copy']:.3f} / "
            f"{ev[f'sft_{t}_exact_copy']:.3f} |",
            f"| SFT T={self.temperature:g} samples by writer (test) | {shares} |",
        ]

    def decisions(self, record: CopyRecord, response: str) -> dict[str, str]:
        return {"writer": writer_of(record.items, response)}

    def best_decisions(self, record: CopyRecord) -> dict[str, str]:
        return {"writer": "exact"}

    def build_config(self, toy: bool = False) -> BuildConfig:
        from rlhf_gym.worlds import BuildConfig, PreferenceTrainingConfig, SFTConfig, TinyGPT2Size

        # 258 tokens is the byte-level floor; a digit with its space is one token (" 4"), so
        # one item is one action. n_positions 48 covers the 24 + 16 + EOS columns.
        sizes = {"vocab_size": 300, "split_digits": False, "max_prompt_tokens": self.max_prompt_tokens,
                 "max_new_tokens": self.max_new_tokens}
        if toy:
            return BuildConfig.toy(**sizes, model_size=TinyGPT2Size(1, 32, 2, 48))
        # Copying appears between 250 and 500 SFT steps of a 1-layer, d=64 policy (d=32: not by
        # 750): 500 steps of 32 make it a reliable copier whose samples still spread over the writers.
        return BuildConfig(
            **sizes, tokenizer_prompts=500, model_size=TinyGPT2Size(1, 64, 4, 48), sft_prompts=16000,
            sft=SFTConfig(epochs=1, batch_size=32, learning_rate=3e-3), comparison_prompts=400, pairs_per_prompt=12,
            preference=PreferenceTrainingConfig(epochs=2, batch_size=16, learning_rate=1e-3),
            valid_prompts=200, normalization_prompts=256, eval_prompts=256, audit_prompts=64,
        )
