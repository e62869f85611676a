"""A world's model card as Markdown: the common figures every world reports, then the
world's own rows and sections (`World.card_rows`, `World.card_sections`).

The card's title comes from the env id; every figure comes from ``card.json``, written by
the build (`rlhf_gym.worlds.build`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rlhf_gym.worlds.assets import CARD_JSON, CARD_MARKDOWN
from rlhf_gym.worlds.world import World

if TYPE_CHECKING:
    from rlhf_gym.worlds.task import Task


def render_card(world: World, card: dict[str, Any]) -> str:
    """The model card of ``world``'s assets as Markdown."""
    ev, pm, cmp_ = card["evaluation"], card["preference_model"], card["comparisons"]
    t = f"t{world.temperature:g}"
    label = f"T={world.temperature:g}"
    example = ev["example"]
    has_references = "reference_gold" in ev
    lines = [
        f"# {card['task']} assets",
        "",
        f"Built by `rlhf-gym build-assets {world.name}` from seeds; every figure below is recomputed by the build.",
        "",
        "| figure | value |",
        "|---|---|",
        f"| tokenizer vocabulary | {card['tokenizer']['vocab_size']} |",
        f"| prompt tokens (mean / max) | {card['tokenizer']['prompt_tokens_mean']:.0f} / {card['tokenizer']['prompt_tokens_max']} |",
        f"| SFT policy parameters | {card['sft']['parameters']:,} |",
        f"| SFT final loss | {card['sft']['final_loss']:.3f} |",
        f"| comparison pairs (train / valid) | {cmp_['train_pairs']:,} / {cmp_['valid_pairs']:,} |",
        f"| annotator agreement with gold judge | {cmp_['annotator_gold_agreement']:.3f} |",
        f"| best possible accuracy vs annotators (valid; Bayes rate of their labels) | {cmp_['valid_label_accuracy_ceiling']:.3f} |",
        f"| gold judge as a reward model, accuracy vs annotators (valid; ties half) | {cmp_['valid_gold_judge_accuracy_vs_annotators']:.3f} |",  # noqa: E501
        f"| preference model accuracy vs annotators (valid) | {pm['valid_accuracy_vs_annotators']:.3f} |",
        f"| preference model accuracy vs gold (valid, no ties) | {pm['valid_accuracy_vs_gold']:.3f} |",
        f"| reward normalisation (mean, std of raw reference scores) | {pm['normalization']['mean']:.3f}, {pm['normalization']['std']:.3f} |",  # noqa: E501
    ]
    if has_references:
        lines += [
            f"| gold score: references (test) | {ev['reference_gold']:.3f} |",
            f"| gold score: SFT greedy / {label} (test) | {ev['sft_greedy_gold']:.3f} / {ev[f'sft_{t}_gold']:.3f} |",
            f"| proxy reward: references / SFT greedy / SFT {label} | {ev['reference_proxy']:.3f} / {ev['sft_greedy_proxy']:.3f} / {ev[f'sft_{t}_proxy']:.3f} |",  # noqa: E501
            f"| gold headroom (references − SFT {label}) | {ev[f'headroom_gold_{t}']:.3f} |",
        ]
    else:
        lines += [
            f"| gold score: SFT greedy / {label} (test) | {ev['sft_greedy_gold']:.3f} / {ev[f'sft_{t}_gold']:.3f} |",
            f"| proxy reward: SFT greedy / SFT {label} | {ev['sft_greedy_proxy']:.3f} / {ev[f'sft_{t}_proxy']:.3f} |",
        ]
    lines += [
        *world.card_rows(card),
        f"| preference model training | {pm['train_seconds']:.0f} s on {card['config']['device']}"
        + (f" ({pm['members']} ensemble members, mean of their rewards)" if pm.get("members", 1) > 1 else "")
        + " |",
        f"| build time | {card['build_seconds']:.0f} s |",
        *[f"| note | {note} |" for note in card.get("notes", [])],
        "",
        *world.card_sections(card),
        "## Where the preference model errs (valid pairs, by candidate source)",
        "",
        "Accuracy vs the annotators on the valid pairs that involve each kind of candidate,",
        "beside the gold judge's on the same pairs; the gap is what the model cannot judge.",
        "",
        "| candidate source | pairs | preference model | gold judge | gap |",
        "|---|---|---|---|---|",
        *[
            f"| {source} | {f['pairs']:,} | {f['preference_model']:.3f} | {f['gold_judge']:.3f} "
            f"| {f['gold_judge'] - f['preference_model']:+.3f} |"
            for source, f in pm["valid_accuracy_by_source"].items()
        ],
        "",
        *_by_group_section(pm.get("valid_accuracy_by_group") or {}),
    ]
    if pm["prefers_reference_over"]:
        lines += [
            "## Reference vs its perturbations (valid)",
            "",
            "Share of prompts whose reference each judge scores above one perturbation of it:",
            "where the preference model is near 0.5, it cannot see that damage, and RL can exploit it.",
            "",
            "| perturbation | preference model | gold judge | gold lost |",
            "|---|---|---|---|",
            *[
                f"| {kind} | {f['preference_model']:.2f} | {f['gold_judge']:.2f} | {f['gold_drop']:.2f} |"
                for kind, f in pm["prefers_reference_over"].items()
            ],
            "",
        ]
    lines += ["## Example (test split)", "", "```", example["prompt"], "```", ""]
    if has_references:
        lines.append(f"- reference:{example['reference']}  (gold {example['reference_gold']:.2f}, "
                     f"proxy {example['reference_proxy']:.2f})")
    lines += [
        f"- SFT greedy:{example['sft_greedy']}  (gold {example['sft_greedy_gold']:.2f}, proxy {example['sft_greedy_proxy']:.2f})",
        "",
    ]
    if "audit" in card:
        from rlhf_gym.worlds.audit import render_audit  # the audit's own table

        lines += ["## Headroom audit (valid split)", "", *render_audit(card["audit"]), ""]
    return "\n".join(lines)


def update_card(task: Task, audit: dict[str, Any]) -> Path:
    """Write ``audit`` into the task's assets card (``card.json`` under ``"audit"``) and
    re-render ``card.md``; returns the card's folder.

    Raises:
        ValueError: the task has no world or no assets card.
    """
    if task.world is None or task.assets is None:
        raise ValueError(f"task {task.name!r} has no world with an assets card to update")
    card = task.assets.card()
    card["audit"] = audit
    folder = task.assets.folder
    (folder / CARD_JSON).write_text(json.dumps(card, indent=2))  # as the build writes it
    (folder / CARD_MARKDOWN).write_text(render_card(task.world, card))
    return folder


def _by_group_section(by_group: dict[str, Any]) -> list[str]:
    """The card's preference-model accuracy by prompt group (`World.prompt_group`) and, per
    candidate source, within each group: preference model / gold judge (pairs)."""
    if not by_group:
        return []
    groups = list(by_group)
    sources = sorted({source for f in by_group.values() for source in f["by_source"]})

    def cell(f: dict[str, Any] | None) -> str:
        return "–" if f is None else f"{f['preference_model']:.2f} / {f['gold_judge']:.2f} ({f['pairs']:,})"

    return [
        "## Where the preference model errs, by prompt group (valid pairs)",
        "",
        "Accuracy vs the annotators, preference model / gold judge (pairs), on the valid pairs of",
        "each group of prompts, overall and by the candidate sources involved.",
        "",
        "| candidate source | " + " | ".join(groups) + " |",
        "|---|" + "---|" * len(groups),
        "| all | " + " | ".join(cell(by_group[g]) for g in groups) + " |",
        *[f"| {source} | " + " | ".join(cell(by_group[g]["by_source"].get(source)) for g in groups) + " |" for source in sources],
        "",
    ]


def card_line(card: dict[str, Any], temperature: float) -> str:
    """A card's headline figures in one line (``rlhf-gym envs`` prints it under each env).

    Example:
        >>> card = {"evaluation": {"sft_t0.7_gold": 0.318, "sft_greedy_gold": 0.209, "reference_gold": 0.497},
        ...         "preference_model": {"valid_accuracy_vs_annotators": 0.715},
        ...         "comparisons": {"annotator_gold_agreement": 0.739}, "build_seconds": 2308}
        >>> card_line(card, 0.7)
        'gold: SFT 0.318 at T=0.7, 0.209 greedy, references 0.497; preference model 0.715 vs annotators (agreement 0.739); build 38 min'
    """
    evaluation, pm = card["evaluation"], card["preference_model"]
    parts = [f"gold: SFT {evaluation[f'sft_t{temperature:g}_gold']:.3f} at T={temperature:g}, "
             f"{evaluation['sft_greedy_gold']:.3f} greedy"]
    if evaluation.get("reference_gold") is not None:
        parts[0] += f", references {evaluation['reference_gold']:.3f}"
    parts.append(f"preference model {pm['valid_accuracy_vs_annotators']:.3f} vs annotators "
                 f"(agreement {card['comparisons']['annotator_gold_agreement']:.3f})")
    parts.append(f"build {card['build_seconds'] / 60:.0f} min")
    return "; ".join(parts)
