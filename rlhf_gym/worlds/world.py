"""What a world is: a seeded generator, a gold judge and its writers (`World`).

A world author subclasses `World` and writes only what is about their task: ``generate``
(the prompt, the reference, the latent record and the SFT target of one id) and
``gold_scores`` (the true quality of responses), plus, optionally, extra comparison
candidates (its writer personas), perturbations, its own card figures and the decisions
it exposes to the headroom audit. Splits, the per-id random streams, assets, annotators,
the build, the card, the audit and the leaderboard protocol come from the kit
(``docs/adding_a_world.md``).

This module imports only numpy: a world's package imports it when ``import rlhf_gym``
registers the suite, and registering stays light.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # the build config loads torch; worlds name it only in annotations
    from rlhf_gym.worlds.build_config import BuildConfig


@dataclass(frozen=True)
class Splits:
    """Disjoint id ranges of a generated world and its salted per-id random streams.

    Each id is one prompt. ``rng(id)`` is the stream the world generates id ``id`` from;
    ``rng(id, k)`` is a second, independent stream of the same id (e.g. the author's style,
    so it can change without changing the prompt). The salt makes two worlds' streams of
    the same id unrelated.

    Args:
        ranges: split name -> half-open id range ``(start, stop)``; ranges must not overlap.
        salt: the world's salt, mixed into every stream.

    Example:
        >>> splits = Splits({"train": (0, 100), "test": (100, 110)}, salt=7)
        >>> splits.split_of(105), splits.ids("test", 3), len(splits["train"])
        ('test', [100, 101, 102], 2)
        >>> float(splits.rng(3).random()) == float(splits.rng(3).random())
        True
    """

    ranges: Mapping[str, tuple[int, int]]
    salt: int

    def __post_init__(self) -> None:
        spans = sorted((start, stop, name) for name, (start, stop) in self.ranges.items())
        for start, stop, name in spans:
            if not 0 <= start < stop:
                raise ValueError(f"split {name!r} must be a non-empty range of non-negative ids, got [{start}, {stop})")
        for (_, stop, first), (start, _, second) in zip(spans, spans[1:]):
            if start < stop:
                raise ValueError(f"splits {first!r} and {second!r} overlap")

    # A split reads like its id range: ``SPLITS["valid"]`` -> (start, stop).
    def __getitem__(self, split: str) -> tuple[int, int]:
        if split not in self.ranges:
            raise KeyError(f"unknown split {split!r}; use one of {tuple(self.ranges)}")
        return self.ranges[split]

    def __iter__(self) -> Iterator[str]:
        return iter(self.ranges)

    def __len__(self) -> int:
        return len(self.ranges)

    def items(self):  # noqa: ANN201 - the mapping's items, in declaration order
        return self.ranges.items()

    @property
    def names(self) -> tuple[str, ...]:
        """The split names, in declaration order."""
        return tuple(self.ranges)

    def split_of(self, item_id: int) -> str:
        """The split that holds ``item_id``.

        Raises:
            ValueError: the id is in no split (the message lists the ranges).
        """
        for name, (start, stop) in self.ranges.items():
            if start <= item_id < stop:
                return name
        ranges = ", ".join(f"{n}=[{a}, {b})" for n, (a, b) in self.ranges.items())
        raise ValueError(f"id {item_id} is in no split; the splits are {ranges}")

    def ids(self, split: str, count: int, offset: int = 0) -> list[int]:
        """The ``count`` ids of ``split`` after its first ``offset`` (a fixed, disjoint slice).

        Raises:
            ValueError: the split holds fewer than ``offset + count`` ids.
        """
        start, stop = self[split]
        if count < 0 or offset < 0 or offset + count > stop - start:
            raise ValueError(f"split {split!r} holds {stop - start} ids, asked for ids [{offset}, {offset + count})")
        return list(range(start + offset, start + offset + count))

    def rng(self, item_id: int, *stream: int) -> np.random.Generator:
        """The random stream of ``item_id`` (``stream`` picks an independent sub-stream)."""
        return np.random.default_rng([self.salt, int(item_id), *stream])


@dataclass(frozen=True)
class Sample:
    """One generated item of a world.

    Attributes:
        id: its id (`Splits` says which split holds it).
        prompt: the text the policy continues (ends where the response starts).
        reference: the world's reference response (None: the world has none).
        record: the latent record the gold judge scores against (any object).
        sft_target: the response the SFT policy learns to write for it (an author's,
            in the world's mixture of writer styles).
    """

    id: int
    prompt: str
    reference: str | None
    record: Any
    sft_target: str


Perturbation = Callable[[Sample, str, np.random.Generator], str]
"""``(sample, response, rng) -> a damaged copy of response`` that the gold judge scores lower."""


@dataclass(frozen=True)
class AnnotatorCalibration:
    """Pool means of a world's simulated annotators (`rlhf_gym.worlds.annotators`).

    Tune them so the pool's labels agree with the gold judge about as often as human
    labellers agree with each other on the real task (~70-77% on TL;DR).

    A world with several kinds of labeller (e.g. helpfulness and harmlessness raters, as in
    Bai et al. 2022) sets `World.annotators` to a tuple of calibrations, one per pool, each
    with its ``share`` of the annotators.

    Attributes:
        temperature: decisiveness of the Bradley-Terry choice on the gold margin (> 0).
        length_bias: gold points an annotator adds per extra word (a liking for length).
        noise: probability of a lapse, a coin-flip answer, in [0, 1].
        cue_bias: gold points an annotator adds per unit of the world's annotator cue
            (`World.annotator_cues`, e.g. refusal words), a surface feature the pool
            over-rewards as others do length; 0: the cue is ignored.
        share: this pool's share of the annotators when the world has several (> 0;
            shares are normalised).
    """

    temperature: float = 0.15
    length_bias: float = 0.005
    noise: float = 0.15
    cue_bias: float = 0.0
    share: float = 1.0

    def __post_init__(self) -> None:
        if not self.temperature > 0:
            raise ValueError(f"annotator temperature must be > 0, got {self.temperature}")
        if not 0.0 <= self.noise <= 1.0:
            raise ValueError(f"annotator noise must be in [0, 1], got {self.noise}")
        if not self.share > 0:
            raise ValueError(f"annotator pool share must be > 0, got {self.share}")


@dataclass(frozen=True)
class AuditTargets:
    """The headroom audit's thresholds a world declares it meets (``docs/adding_a_world.md``).

    None leaves a figure unchecked. The conformance suite asserts every declared target
    on the shipped assets.

    Attributes:
        max_low_temperature_gain: greedy and T=0.3 gold at most T=0.7 gold plus this.
        max_best_of_16_closed: best-of-16 by gold closes at most this share of (1 - SFT).
        max_best_of_64_closed: the same for best-of-64.
        sft_gold_range: SFT gold at the protocol temperature lies in this range.
        max_reference_gold: mean reference gold at most this.
        max_good_references: share of references at gold >= 0.95 at most this.
        min_greedy_not_best: for every decision the world exposes, the share of prompts
            whose greedy response misses the gold judge's best option is at least this
            (argmax_SFT != argmax_gold: greedy decoding does not find the best option).
    """

    max_low_temperature_gain: float | None = None
    max_best_of_16_closed: float | None = None
    max_best_of_64_closed: float | None = None
    sft_gold_range: tuple[float, float] | None = None
    max_reference_gold: float | None = None
    max_good_references: float | None = None
    min_greedy_not_best: float | None = None


GOLD_TIE = 1e-6
"""Gold scores this close are a tie: the env reports gold in float32, the judge in float64."""


def wins_against(scores: Sequence[float] | np.ndarray, reference_scores: Sequence[float] | np.ndarray) -> np.ndarray:
    """Per pair, 1 where ``scores`` beats ``reference_scores``, 0.5 for a tie (within
    `GOLD_TIE`), 0 for a loss: a win rate is the mean (the leaderboard's ``win_rate``, and
    a world's own win rates).

    Example:
        >>> wins_against(np.float32([0.6, 0.5, 0.3]), [0.5, 0.5, 0.4]).tolist()
        [1.0, 0.5, 0.0]
    """
    scores, reference_scores = np.asarray(scores, dtype=np.float64), np.asarray(reference_scores, dtype=np.float64)
    tie = np.abs(scores - reference_scores) <= GOLD_TIE
    return np.where(tie, 0.5, (scores > reference_scores).astype(np.float64))


class World:
    """Base class of every world: subclass it and write ``generate`` and ``gold_scores``.

    Class attributes a world sets:
        name: short task name (``rlhf-gym build-assets NAME``).
        env_id: the Gymnasium id, e.g. ``"RLHF-Summarize-v0"``.
        splits: its `Splits`.
        summary: one line for ``rlhf-gym envs``.
        temperature: the benchmark protocol's sampling temperature.
        max_prompt_tokens / max_new_tokens: the env's prompt block and response budget.
        dataset_template: how an external dataset's prompt column becomes prompt text.
        annotators: the calibration of its simulated annotators, or a tuple of them (one
            per pool, each with its share).
        has_references: whether `generate` gives reference responses.
        audit_targets: the audit thresholds it meets (None: none declared yet).
        protocol_metrics: the names of the world's own leaderboard metrics, which
            `response_metrics` computes (empty: only the common ones).

    Everything else has a default: no extra candidates, no perturbations, no extra card
    figures, no exposed decisions, no metrics of its own.
    """

    name: str = ""
    env_id: str = ""
    splits: Splits
    summary: str = ""
    temperature: float = 0.7
    max_prompt_tokens: int = 256
    max_new_tokens: int = 48
    dataset_template: str = "{}"
    annotators: AnnotatorCalibration | tuple[AnnotatorCalibration, ...] = AnnotatorCalibration()
    has_references: bool = True
    audit_targets: AuditTargets | None = None
    protocol_revision: int = 1  # the leaderboard protocol's "-test-vN": raise it when scores change meaning
    protocol_metrics: tuple[str, ...] = ()  # the world's own leaderboard metrics (`response_metrics`), in table order

    # What every world writes --------------------------------------------------------
    def generate(self, item_id: int) -> Sample:
        """The item with id ``item_id``: a pure function of the id (use ``splits.rng(id)``)."""
        raise NotImplementedError

    def gold_scores(self, records: Sequence[Any], responses: Sequence[str]) -> np.ndarray:
        """(n,) float64 in [0, 1]: the true quality of each response given its record."""
        raise NotImplementedError

    # Optional ------------------------------------------------------------------------
    def comparison_candidates(self, sample: Sample, rng: np.random.Generator) -> list[tuple[str, str]]:
        """Extra ``(response, source)`` candidates for the comparison data, beside the
        reference, the SFT samples and the perturbations: e.g. the world's writer personas.
        Draw only from ``rng`` (the build's stream)."""
        return []

    @property
    def perturbations(self) -> Mapping[str, Perturbation]:
        """Named perturbations (``kind -> function``). Each damages the response it is given
        in one known way and must lower its gold on average (the build perturbs references
        and SFT samples alike; the conformance suite checks the mean over valid samples)."""
        return {}

    def write(self, sample: Sample, rng: np.random.Generator) -> str:
        """One response drawn from the world's writer mixture for ``sample`` (what the SFT
        policy learns to imitate), every choice from ``rng``. The design audit
        (`rlhf_gym.worlds.design`, ``rlhf-gym audit ENV --writers``) draws many per prompt to
        measure the headroom before any asset is built."""
        raise NotImplementedError(f"{self.env_id} does not expose its writers (World.write)")

    def ideal_response(self, record: Any) -> str | None:
        """A response the gold judge scores 1.0 (None: the world does not write one); the
        README samples show it beside the references and the SFT policy's responses."""
        return None

    def annotator_cues(self, records: Sequence[Any], responses: Sequence[str]) -> np.ndarray:
        """(n,) float64: the surface cue of each response that annotators with a
        ``cue_bias`` over-reward (`AnnotatorCalibration`); the default is none (zeros)."""
        return np.zeros(len(responses), dtype=np.float64)

    def prompt_group(self, record: Any) -> str | None:
        """The group a prompt belongs to in the card's preference-model accuracy tables (e.g.
        Dialogue's request kind: benign, ambiguous, harmful); None: the world has no groups."""
        return None

    def card_figures(self, records: Sequence[Any], responses: Sequence[str]) -> dict[str, Any]:
        """The world's own figures of a set of responses, added to the card's evaluation per
        decoding (``sft_greedy_<key>``, ``sft_t0.7_<key>``)."""
        return {}

    def response_metrics(self, records: Sequence[Any], responses: Sequence[str], references: Sequence[str]
                         ) -> dict[str, float | None]:
        """The world's own leaderboard metrics of a policy's ``responses`` (one per record, with
        the reference response of each), one value per name of `protocol_metrics`; None
        where a metric has no case (a rate over requests of a kind the posts lack). The
        protocol reports them under each decoding beside the common metrics."""
        return {}

    def card_rows(self, card: Mapping[str, Any]) -> list[str]:
        """Markdown rows ``| figure | value |`` the world adds to the card's common table."""
        return []

    def card_sections(self, card: Mapping[str, Any]) -> list[str]:
        """Markdown lines of the world's own card sections (after the common table), each
        section ending with a blank line."""
        return []

    def decisions(self, record: Any, response: str) -> dict[str, str]:
        """The option ``response`` takes at each decision the world exposes (empty: none).

        The audit compares the SFT policy's greedy choice with `best_decisions`."""
        return {}

    def best_decisions(self, record: Any) -> dict[str, str]:
        """The gold judge's best option at each exposed decision."""
        return {}

    def best_option_shares(self, records: Sequence[Any], responses: Sequence[str]) -> dict[str, float]:
        """Per exposed decision, the share of ``responses`` that take the gold judge's best
        option (decisions a record does not have are skipped): a card figure."""
        shares: dict[str, list[float]] = {}
        for record, response in zip(records, responses, strict=True):
            best = self.best_decisions(record)
            for decision, option in self.decisions(record, response).items():
                if decision in best:
                    shares.setdefault(decision, []).append(float(option == best[decision]))
        return {d: float(np.mean(v)) for d, v in shares.items()}

    def decisions_section(self, card: Mapping[str, Any], responses: str, docs: str) -> list[str]:
        """The card section of the SFT policy's `best_option_shares` (stored by a world's
        `card_figures` as ``decisions_best``), greedy and at the protocol temperature; empty
        when the card has none. ``responses`` names them ("summaries"), ``docs`` the page."""
        ev = card["evaluation"]
        if "sft_t0.7_decisions_best" not in ev:
            return []
        decisions = list(ev["sft_t0.7_decisions_best"])
        return [
            f"## Decisions of the SFT policy's {responses} (test)",
            "",
            f"Share of {responses} that take the gold judge's best option at each decision; RL's",
            f"headroom is the rest ({docs}).",
            "",
            "| decoding | " + " | ".join(decisions) + " |",
            "|---|" + "---:|" * len(decisions),
            *[
                f"| {label} | " + " | ".join(f"{ev[f'{key}_decisions_best'].get(d, float('nan')):.2f}" for d in decisions) + " |"
                for label, key in (("greedy", "sft_greedy"), ("T=0.7", "sft_t0.7"))
            ],
            "",
        ]

    def build_config(self, toy: bool = False) -> BuildConfig:
        """The sizes of the asset build (``toy``: a seconds-scale build for tests)."""
        from rlhf_gym.worlds.build_config import BuildConfig

        return BuildConfig.toy() if toy else BuildConfig()  # its token sizes: the world's

    # Derived -------------------------------------------------------------------------
    def samples(self, split: str, count: int, offset: int = 0) -> list[Sample]:
        """The first ``count`` items of ``split`` after ``offset``."""
        return [self.generate(i) for i in self.splits.ids(split, count, offset)]

    def perturb(self, sample: Sample, response: str, kind: str, rng: np.random.Generator) -> str:
        """Apply perturbation ``kind`` (one of `perturbations`)."""
        perturbations = self.perturbations
        if kind not in perturbations:
            raise ValueError(f"unknown perturbation {kind!r}; {self.name} has {sorted(perturbations)}")
        return perturbations[kind](sample, response, rng)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.env_id})"
