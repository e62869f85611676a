"""RLHF-Summarize-v0 as a kit `World`: the generated posts, the gold judge, the writer
styles, the perturbations and the card's own sections, wired together.

Everything else (splits, assets, annotators, the build, the card's common figures, the
audit, the protocol) comes from `rlhf_gym.worlds`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from rlhf_gym.envs.summarize.gold_judge import gold_breakdown, gold_scores, style_shares, summary_style
from rlhf_gym.envs.summarize.perturbations import PERTURBATIONS
from rlhf_gym.envs.summarize.world import (
    SPLITS,
    STYLE_WEIGHTS,
    STYLES,
    PostRecord,
    generate_post,
    prompt_text,
    styled_summary,
)
from rlhf_gym.worlds import AnnotatorCalibration, Perturbation, Sample, World

STYLE_PREFIX = "style_"  # source of a candidate written in another writer style: style_vague, ...
STYLE_CANDIDATES = 2  # per post: summaries in writer styles other than the reference's
STYLE_PROBABILITIES = np.array([STYLE_WEIGHTS[s] for s in STYLES]) / sum(STYLE_WEIGHTS.values())


class SummarizeWorld(World):
    """TL;DR summaries of generated Reddit-style posts (see the package docstring)."""

    name = "summarize"
    env_id = "RLHF-Summarize-v0"
    splits = SPLITS
    summary = "TL;DR summarisation of generated Reddit-style posts; learned preference reward, gold judge."
    # The protocol's temperature (Huang et al. 2024 sample and score at 0.7 too); greedy is
    # the protocol's second setting.
    temperature = 0.7
    max_prompt_tokens = 224  # the longest generated prompts are ~220 tokens
    max_new_tokens = 64  # references: mean 35, max ~55 tokens
    dataset_template = "{}\nTL;DR:"
    # Calibrated for ~75% agreement with the gold judge, the agreement Stiennon et al. report
    # between human labellers on TL;DR (tests/envs/summarize/test_card.py checks it).
    annotators = AnnotatorCalibration(temperature=0.15, length_bias=0.005, noise=0.15)

    def generate(self, item_id: int) -> Sample:
        post = generate_post(item_id)
        return Sample(item_id, prompt_text(post), post.reference, post.record, post.tldr)

    def gold_scores(self, records: Sequence[PostRecord], responses: Sequence[str]) -> np.ndarray:
        return gold_scores(records, responses)

    def write(self, sample: Sample, rng: np.random.Generator) -> str:
        # An author's TL;DR: a writer style drawn with the authors' weights (vague ones name
        # the situation instead of the title's phrase, which only the rendered post knows).
        style = STYLES[int(rng.choice(len(STYLES), p=STYLE_PROBABILITIES))]
        return styled_summary(sample.record, style, rng)

    def comparison_candidates(self, sample: Sample, rng: np.random.Generator) -> list[tuple[str, str]]:
        # The writer styles the SFT policy learned, written faithfully: the pairs that teach
        # the preference model which style a reader wants.
        return [
            (styled_summary(sample.record, str(style), rng), STYLE_PREFIX + str(style))
            for style in rng.choice(STYLES[1:], size=STYLE_CANDIDATES, replace=False)
        ]

    @property
    def perturbations(self) -> Mapping[str, Perturbation]:
        return PERTURBATIONS  # each reads the sample's record and reference only

    def card_figures(self, records: Sequence[PostRecord], responses: Sequence[str]) -> dict[str, Any]:
        # Faithfulness (invented or wrong numbers/entities per summary) and how the
        # responses spread over the writer styles.
        return {
            "hallucinated": float(np.mean([gold_breakdown(r, s).hallucinated for r, s in zip(records, responses)])),
            "styles": style_shares(records, responses),
        }

    def card_rows(self, card: Mapping[str, Any]) -> list[str]:
        ev = card["evaluation"]
        return [
            f"| invented or wrong numbers/entities per summary: SFT greedy / T=0.7 (test) | "
            f"{ev['sft_greedy_hallucinated']:.3f} / {ev['sft_t0.7_hallucinated']:.3f} |",
        ]

    def card_sections(self, card: Mapping[str, Any]) -> list[str]:
        ev = card["evaluation"]
        return [
            "## Writer styles of the SFT policy's summaries (test)",
            "",
            "The SFT policy learned from TL;DRs in a mixture of writer styles; RL's headroom is the",
            "share of its samples outside the best one (`complete`).",
            "",
            "| decoding | " + " | ".join(ev["sft_t0.7_styles"]) + " |",
            "|---|" + "---:|" * len(ev["sft_t0.7_styles"]),
            *[
                f"| {label} | " + " | ".join(f"{share:.2f}" for share in ev[f"{key}_styles"].values()) + " |"
                for label, key in (("greedy", "sft_greedy"), ("T=0.7", "sft_t0.7"))
            ],
            "",
        ]

    def decisions(self, record: PostRecord, response: str) -> dict[str, str]:
        return {"writer style": summary_style(record, response)}

    def best_decisions(self, record: PostRecord) -> dict[str, str]:
        return {"writer style": STYLES[0]}
