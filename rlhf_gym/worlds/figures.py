"""The figures a world's model card reports, computed by the build and recomputable by tests.

- `preference_model_figures`: the preference model's accuracy on valid pairs against the
  annotators and against the gold judge, by candidate source, and reference vs each
  perturbation;
- `evaluation_figures`: SFT samples (greedy and at the protocol temperature) against
  references on the test split, gold and proxy, plus the world's own figures;
- the helpers they share (`accuracy_vs_gold`, `accuracy_by_source`, ...).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from rlhf_gym.lm.sampling import sample_completions
from rlhf_gym.rewards.preference_model import PreferenceModel
from rlhf_gym.worlds.world import Sample, World

if TYPE_CHECKING:
    from rlhf_gym.worlds.build_config import BuildConfig


def prefers_chosen(preference_model: PreferenceModel, pairs: dict[str, Any]) -> torch.Tensor:
    """(pairs,) bool: the model scores the annotators' choice strictly higher (ties are errors)."""
    chosen, rejected = pair_scores(preference_model, pairs)
    return chosen > rejected


def pair_scores(preference_model: PreferenceModel, pairs: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
    """Raw scores (on the CPU) of every pair's chosen and rejected response."""
    chosen = preference_model.raw_scores(pairs["prompts"], pairs["chosen"]).cpu()
    return chosen, preference_model.raw_scores(pairs["prompts"], pairs["rejected"]).cpu()


def accuracy_vs_gold(
    chosen_scores: torch.Tensor, rejected_scores: torch.Tensor, pairs: dict[str, Any]
) -> tuple[float, int]:
    """Share of pairs the model orders as the gold judge does (gold ties dropped; model ties
    are errors), and how many pairs the gold judge does not tie.

    Args:
        chosen_scores, rejected_scores: (pairs,) the model's scores of each pair's responses.
        pairs: `rlhf_gym.worlds.build.comparison_pairs` output (its gold scores are read).
    """
    gold_chosen = torch.tensor(pairs["gold_chosen"], dtype=torch.float64)
    gold_rejected = torch.tensor(pairs["gold_rejected"], dtype=torch.float64)
    untied = gold_chosen != gold_rejected
    agrees = torch.where(gold_chosen > gold_rejected, chosen_scores > rejected_scores, rejected_scores > chosen_scores)
    return agrees[untied].float().mean().item(), int(untied.sum())


def accuracy_by_source(model_right: torch.Tensor, pairs: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Accuracy vs the annotators' labels of the pairs that involve each candidate source.

    A pair counts under both of its candidates' sources (once if they share one). Set
    beside the gold judge's accuracy on the same pairs, it shows which kinds of candidate
    the preference model cannot judge: the gap is what it loses there.

    Args:
        model_right: (pairs,) bool, whether the preference model agrees with each label.
        pairs: `comparison_pairs` output (its ``sources`` and gold scores are read).

    Returns:
        ``{source: {"pairs": count, "preference_model": accuracy (ties count as errors),
        "gold_judge": accuracy (gold ties count half)}}``, sources sorted by name.
    """
    model_right = np.asarray(model_right)
    gold_c, gold_r = np.asarray(pairs["gold_chosen"]), np.asarray(pairs["gold_rejected"])
    gold_right = (gold_c > gold_r) + 0.5 * (gold_c == gold_r)
    figures = {}
    for source in sorted({s for both in pairs["sources"] for s in both}):
        involved = np.array([source in both for both in pairs["sources"]])
        figures[source] = {
            "pairs": int(involved.sum()),
            "preference_model": float(model_right[involved].mean()),
            "gold_judge": float(gold_right[involved].mean()),
        }
    return figures


def perturbation_preferences(
    world: World, preference_model: PreferenceModel, samples: list[Sample], *, seed: int
) -> dict[str, dict[str, float]]:
    """Where the preference model can be fooled: reference vs each perturbation of it.

    For every perturbation kind, each prompt's reference is paired with one perturbation of
    it. The gold judge prefers the reference (``gold_drop`` > 0) unless the change happens
    to cost nothing; a preference model that scores the reference higher only about half
    the time cannot tell that kind of damage apart, and a policy trained on it is free to
    make that mistake.

    Returns:
        ``{kind: {"preference_model": share of prompts whose reference it scores higher,
        "gold_judge": the same for the gold judge (ties count as not preferring),
        "gold_drop": mean gold score lost to the perturbation}}``; empty when the world has
        no references or no perturbations.
    """
    if not world.perturbations or any(s.reference is None for s in samples):
        return {}
    rng = np.random.default_rng(seed)
    prompts = [s.prompt for s in samples]
    records = [s.record for s in samples]
    references = [s.reference for s in samples]
    reference_scores = preference_model.raw_scores(prompts, references).cpu().numpy()
    reference_gold = world.gold_scores(records, references)
    figures = {}
    for kind in sorted(world.perturbations):
        perturbed = [world.perturb(s, s.reference, kind, rng) for s in samples]
        scores = preference_model.raw_scores(prompts, perturbed).cpu().numpy()
        gold = world.gold_scores(records, perturbed)
        figures[kind] = {
            "preference_model": float(np.mean(reference_scores > scores)),
            "gold_judge": float(np.mean(reference_gold > gold)),
            "gold_drop": float(np.mean(reference_gold - gold)),
        }
    return figures


def gold_judge_accuracy(pairs: dict[str, Any]) -> float:
    """The gold judge used as a reward model against the annotator labels (gold ties count half)."""
    chosen, rejected = np.asarray(pairs["gold_chosen"]), np.asarray(pairs["gold_rejected"])
    return float(np.mean(chosen > rejected) + 0.5 * np.mean(chosen == rejected))


def accuracy_by_group(model_right: torch.Tensor, pairs: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """`accuracy_by_source` within each prompt group (`World.prompt_group`, e.g. Dialogue's
    request kind): ``{group: {"pairs", "preference_model", "gold_judge", "by_source": {...}}}``,
    groups sorted by name; empty when the world has no groups."""
    groups = pairs.get("prompt_groups") or []
    if not groups or all(g is None for g in groups):
        return {}
    model_right, figures = np.asarray(model_right), {}
    gold_c, gold_r = np.asarray(pairs["gold_chosen"]), np.asarray(pairs["gold_rejected"])
    gold_right = (gold_c > gold_r) + 0.5 * (gold_c == gold_r)
    for group in sorted({g for g in groups if g is not None}):
        inside = np.array([g == group for g in groups])
        subset = {key: [v for v, keep in zip(pairs[key], inside, strict=True) if keep]
                  for key in ("sources", "gold_chosen", "gold_rejected")}
        figures[group] = {
            "pairs": int(inside.sum()),
            "preference_model": float(model_right[inside].mean()),
            "gold_judge": float(gold_right[inside].mean()),
            "by_source": accuracy_by_source(model_right[inside], subset),
        }
    return figures


def preference_model_figures(
    world: World, preference_model: PreferenceModel, valid_pairs: dict[str, Any], config: BuildConfig
) -> dict[str, Any]:
    """The card's figures of a trained (and normalised) preference model on the valid split.

    Args:
        world: the world (its valid prompts and perturbations).
        preference_model: the model to judge.
        valid_pairs: `comparison_pairs` output for the valid prompts.
        config: the build's sizes and seed (valid prompts, perturbation seed).
    """
    chosen, rejected = pair_scores(preference_model, valid_pairs)  # scored once, read twice
    valid_right = chosen > rejected
    vs_gold, untied = accuracy_vs_gold(chosen, rejected, valid_pairs)
    return {
        "valid_accuracy_vs_annotators": valid_right.float().mean().item(),
        "valid_accuracy_vs_gold": vs_gold,
        "valid_pairs_without_gold_tie": untied,
        "valid_accuracy_by_source": accuracy_by_source(valid_right, valid_pairs),
        "valid_accuracy_by_group": accuracy_by_group(valid_right, valid_pairs),
        "prefers_reference_over": perturbation_preferences(
            world, preference_model, world.samples("valid", config.valid_prompts), seed=config.seed + 3
        ),
        "normalization": asdict(preference_model.normalization),
        "parameters": sum(
            sum(p.numel() for p in m.model.parameters()) for m in getattr(preference_model, "members", [preference_model])
        ),
    }


def evaluation_figures(
    world: World, policy: torch.nn.Module, tokenizer: Any, preference_model: PreferenceModel, config: BuildConfig
) -> dict[str, Any]:
    """SFT samples vs references on the test split: gold and proxy scores, the world's own
    figures (``sft_<decoding>_<key>``), an example, and the headroom."""
    samples = world.samples("test", config.eval_prompts)
    records = [s.record for s in samples]
    prompts = [s.prompt for s in samples]
    has_references = all(s.reference is not None for s in samples)
    figures: dict[str, Any] = {"prompts": len(samples)}
    if has_references:
        reference_gold = world.gold_scores(records, [s.reference for s in samples])
        figures["reference_gold"] = float(reference_gold.mean())
    protocol_key = f"sft_t{world.temperature:g}"
    for name, temperature in (("sft_greedy", 0.0), (protocol_key, world.temperature)):
        outputs = sample_completions(
            policy, tokenizer, prompts,
            max_new_tokens=config.max_new_tokens, temperature=temperature,
            seed=config.seed, max_prompt_tokens=config.max_prompt_tokens,
        )
        figures[f"{name}_gold"] = float(world.gold_scores(records, outputs).mean())
        figures[f"{name}_proxy"] = float(preference_model.score(prompts, outputs).mean())
        for key, value in world.card_figures(records, outputs).items():
            figures[f"{name}_{key}"] = value
        if temperature == 0.0:
            figures["example"] = {
                "prompt": prompts[0], "reference": samples[0].reference, "sft_greedy": outputs[0],
                "reference_gold": float(reference_gold[0]) if has_references else None,
                "sft_greedy_gold": float(world.gold_scores(records[:1], outputs[:1])[0]),
                "reference_proxy": (
                    float(preference_model.score(prompts[:1], [samples[0].reference])[0]) if has_references else None
                ),
                "sft_greedy_proxy": float(preference_model.score(prompts[:1], outputs[:1])[0]),
            }
    if has_references:
        figures["reference_proxy"] = float(preference_model.score(prompts, [s.reference for s in samples]).mean())
        figures[f"headroom_gold_t{world.temperature:g}"] = figures["reference_gold"] - figures[f"{protocol_key}_gold"]
    return figures
