"""Rebuild every asset of a world from seeds: ``rlhf-gym build-assets NAME``.

The recipe, each step deterministic in ``BuildConfig.seed`` (docs/adding_a_world.md):

1. a byte-level BPE tokenizer trained on generated prompts, their SFT targets and
   references;
2. a tiny GPT-2 SFT policy trained on (prompt, SFT target) pairs, the targets written in
   the world's mixture of writer styles, so that its samples spread in quality and RL has
   headroom; its ``generation_config.json`` samples at the protocol temperature;
3. comparison data: for each prompt, candidates from the reference, SFT samples at several
   temperatures, perturbations and the world's own extra candidates (its writer personas),
   paired and labelled by the world's simulated annotators;
4. a preference model initialised from the SFT backbone (Stiennon et al. 2020) and trained
   with the Bradley–Terry loss (or an ensemble of such models, differing in minibatch
   order), its reward normalised so references score mean 0, std 1;
5. a model card (JSON and Markdown, `rlhf_gym.worlds.card`) with the figures that make the
   assets trustworthy (`rlhf_gym.worlds.figures`) and the headroom audit of the built
   assets (`rlhf_gym.worlds.audit`).

The build writes into a staging folder and swaps it in at the end (atomic); with
``reuse_policy`` it resumes from an earlier build's tokenizer and SFT policy.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm
from transformers import GenerationConfig, GPT2LMHeadModel

from rlhf_gym.atomic_dir import swap_in
from rlhf_gym.lm.loading import load_tokenizer
from rlhf_gym.lm.sampling import sample_completions
from rlhf_gym.pipeline.preference_training import (
    ComparisonGroup,
    PreferenceTrainingResult,
    train_preference_model_on_groups,
)
from rlhf_gym.pipeline.sft import train_sft
from rlhf_gym.pipeline.tiny_models import deepened_sequence_classifier, tiny_causal_lm
from rlhf_gym.pipeline.tokenizer_training import train_bpe_tokenizer
from rlhf_gym.rewards.preference_ensemble import PreferenceEnsemble
from rlhf_gym.rewards.preference_model import PreferenceModel
from rlhf_gym.worlds.annotators import AnnotatorPool, label_accuracy_ceiling, scored_gold_agreement
from rlhf_gym.worlds.audit import run_audit
from rlhf_gym.worlds.build_config import BuildConfig
from rlhf_gym.worlds.card import render_card
from rlhf_gym.worlds.figures import evaluation_figures, gold_judge_accuracy, preference_model_figures
from rlhf_gym.worlds.task import Task
from rlhf_gym.worlds.world import Sample, World

SFT_FIGURES = "sft_training.json"  # written next to the SFT policy, so a reused policy keeps them
REFERENCE, SAMPLE = "reference", "sft_sample"  # candidate sources besides perturbations and the world's own


def with_world_sizes(world: World, config: BuildConfig) -> BuildConfig:
    """``config`` with its unset token sizes taken from ``world``, so the build trains,
    samples and scores with the env's prompt block and response budget."""
    return replace(
        config,
        max_prompt_tokens=config.max_prompt_tokens if config.max_prompt_tokens is not None else world.max_prompt_tokens,
        max_new_tokens=config.max_new_tokens if config.max_new_tokens is not None else world.max_new_tokens,
    )


def write_generation_config(policy_dir: Path, tokenizer: Any, temperature: float, max_new_tokens: int) -> None:
    """Save the protocol's decoding into ``policy_dir/generation_config.json``: pure sampling
    at ``temperature`` (no top-k, no top-p), so ``generate()`` with the saved defaults
    samples as the benchmark does."""
    GenerationConfig(
        do_sample=True, temperature=temperature, top_k=0, top_p=1.0, max_new_tokens=max_new_tokens,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
    ).save_pretrained(policy_dir)


def build_assets(
    world: World,
    config: BuildConfig,
    out_dir: Path,
    *,
    reuse_policy: Path | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Run the whole recipe for ``world`` and write the assets to ``out_dir`` atomically.

    The new assets are written to a temporary sibling folder and swapped in at the end,
    so an interrupted build never leaves half-written assets behind.

    Args:
        world: the world to build.
        config: sizes and seeds of the build.
        out_dir: where the assets go (a world's shipped ones: ``TASK.assets_dir``).
        reuse_policy: an earlier build's folder whose tokenizer and SFT policy are copied
            instead of retrained (steps 1-2), to iterate on the preference stage; the
            copied card figures are kept and the card records where they came from.
        progress: print stage lines and progress bars.

    Returns:
        The model card (also written to ``card.json`` and ``card.md``).
    """
    started = time.time()
    config = with_world_sizes(world, config)
    torch.set_num_threads(config.threads)
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".assets-", dir=out_dir.parent))
    try:
        card = _build_into(world, config, staging, reuse_policy=reuse_policy, progress=progress, started=started)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    swap_in(staging, out_dir)
    if progress:
        print(f"[build-assets {time.time() - started:7.1f}s] assets written to {out_dir} in {card['build_seconds']} s",
              flush=True)
    return card


def _build_into(
    world: World, config: BuildConfig, staging: Path, *, reuse_policy: Path | None, progress: bool, started: float
) -> dict[str, Any]:
    log = _Log(progress, started)
    card: dict[str, Any] = {"task": world.env_id, "config": _jsonable(asdict(config))}

    if reuse_policy is None:
        log("training the tokenizer and the SFT policy")
    else:
        log(f"copying the tokenizer and SFT policy of {reuse_policy}")
    tokenizer, policy, card["tokenizer"], card["sft"] = build_policy(
        world, config, staging, reuse_policy=reuse_policy, progress=progress
    )

    # Comparison data
    log("sampling candidates and labelling comparisons")
    pool = AnnotatorPool.from_calibration(world.annotators, seed=config.seed)
    train_offset = config.tokenizer_prompts + config.sft_prompts
    train_pairs = comparison_pairs(
        world, world.samples("train", config.comparison_prompts, offset=train_offset),
        policy, tokenizer, pool, config, seed=config.seed + 1, progress=progress,
    )
    valid_pairs = comparison_pairs(
        world, world.samples("valid", config.valid_prompts),
        policy, tokenizer, pool, config, seed=config.seed + 2, progress=progress,
    )
    card["comparisons"] = {
        "train_pairs": len(train_pairs["chosen"]),
        "valid_pairs": len(valid_pairs["chosen"]),
        "annotator_gold_agreement": train_pairs["annotator_gold_agreement"],
        # What the preference model's accuracy vs annotators (below) is bounded by.
        "valid_label_accuracy_ceiling": label_accuracy_ceiling(
            pool, valid_pairs["gold_chosen"], valid_pairs["gold_rejected"],
            [len(s.split()) for s in valid_pairs["chosen"]], [len(s.split()) for s in valid_pairs["rejected"]],
            valid_pairs["cue_chosen"], valid_pairs["cue_rejected"],
        ),
        "valid_gold_judge_accuracy_vs_annotators": gold_judge_accuracy(valid_pairs),
    }

    # Preference model (one, or an ensemble of members differing in minibatch order)
    norm_samples = world.samples("train", config.normalization_prompts, offset=train_offset + config.comparison_prompts)
    norm_prompts = [s.prompt for s in norm_samples]
    # The reward scale: references score mean 0, std 1 (a world without references: SFT targets).
    norm_responses = [s.reference if s.reference is not None else s.sft_target for s in norm_samples]
    members, train_results = [], []
    for member in range(config.preference_members):
        log(f"training preference model {member + 1} of {config.preference_members} (Bradley-Terry)")
        member_model, result = train_preference_member(
            config, staging / "sft_policy", tokenizer, train_pairs["groups"], member, progress=progress
        )
        members.append(member_model)
        train_results.append(result)
    if len(members) > 1:
        for member_model in members:  # each member's rewards on the references' scale first
            member_model.fit_normalization(norm_prompts, norm_responses)
    preference_model = members[0] if len(members) == 1 else PreferenceEnsemble(members)
    preference_model.fit_normalization(norm_prompts, norm_responses)
    preference_model.save_pretrained(staging / "preference_model")
    card["preference_model"] = {
        "members": len(members),
        "final_train_loss": float(np.mean([r.final_loss for r in train_results])),
        "train_seconds": round(sum(r.wall_time for r in train_results), 1),
        **preference_model_figures(world, preference_model, valid_pairs, config),
    }

    # Headroom: SFT vs references on the test split
    log("scoring SFT samples and references on the test split")
    card["evaluation"] = evaluation_figures(world, policy, tokenizer, preference_model, config)
    # After every model is trained: the audit loads the staged models afresh and samples from
    # generators of its own, so it draws nothing from the models' random streams.
    log("auditing the headroom (valid split)")
    card["audit"] = run_audit(
        Task.from_world(world, staging), prompts=config.audit_prompts, seed=config.seed, device=config.device,
        progress=progress,
    )
    card["build_seconds"] = round(time.time() - started, 1)
    card["sizes_bytes"] = {
        name: sum(f.stat().st_size for f in (staging / name).rglob("*") if f.is_file())
        for name in ("tokenizer", "sft_policy", "preference_model")
    }
    (staging / "card.json").write_text(json.dumps(card, indent=2))
    (staging / "card.md").write_text(render_card(world, card))
    return card


def build_policy(
    world: World, config: BuildConfig, out_dir: Path, *, reuse_policy: Path | None = None, progress: bool = True
) -> tuple[Any, GPT2LMHeadModel, dict[str, Any], dict[str, Any]]:
    """Steps 1-2 of the recipe: the tokenizer and the SFT policy, written to
    ``out_dir/tokenizer`` and ``out_dir/sft_policy`` (or copied from ``reuse_policy``).

    The SFT policy learns from the world's SFT targets (a mixture of writer styles), not
    from the references: that spread of quality is RL's headroom.

    Returns:
        The tokenizer, the policy (on ``config.device``), and the card's tokenizer and SFT
        figures.
    """
    out_dir = Path(out_dir)
    corpus_samples = world.samples("train", config.tokenizer_prompts)
    if reuse_policy is None:
        corpus = [s.prompt + s.sft_target + (s.reference or "") for s in corpus_samples]
        tokenizer = train_bpe_tokenizer(corpus, vocab_size=config.vocab_size, split_digits=config.split_digits)
        tokenizer.save_pretrained(out_dir / "tokenizer")
    else:
        for name in ("tokenizer", "sft_policy"):
            shutil.copytree(Path(reuse_policy) / name, out_dir / name)
    tokenizer = load_tokenizer(str(out_dir / "tokenizer"))
    lengths = [len(ids) for ids in tokenizer([s.prompt for s in corpus_samples[:500]])["input_ids"]]
    tokenizer_figures = {
        "vocab_size": len(tokenizer),
        "prompt_tokens_mean": float(np.mean(lengths)),
        "prompt_tokens_max": int(np.max(lengths)),
    }
    if reuse_policy is None:
        sft_samples = world.samples("train", config.sft_prompts, offset=config.tokenizer_prompts)
        policy = tiny_causal_lm(tokenizer, config.model_size, seed=config.seed).to(config.device)
        sft_result = train_sft(
            policy,
            tokenizer,
            [s.prompt for s in sft_samples],
            [s.sft_target for s in sft_samples],
            _with_seed(config.sft, config.seed),
            progress=progress,
        )
        policy.save_pretrained(out_dir / "sft_policy")
        tokenizer.save_pretrained(out_dir / "sft_policy")
        write_generation_config(out_dir / "sft_policy", tokenizer, world.temperature, config.max_new_tokens)
        sft_figures = {
            "examples": config.sft_prompts,
            "final_loss": sft_result.final_loss,
            "parameters": num_parameters(policy),
            "seconds": round(sft_result.wall_time, 1),
        }
        (out_dir / "sft_policy" / SFT_FIGURES).write_text(json.dumps(sft_figures, indent=2))
    else:
        policy = GPT2LMHeadModel.from_pretrained(out_dir / "sft_policy").to(config.device)
        sft_figures = json.loads((out_dir / "sft_policy" / SFT_FIGURES).read_text())
        sft_figures["reused_from"] = str(reuse_policy)
    policy.eval()
    return tokenizer, policy, tokenizer_figures, sft_figures


def train_preference_member(
    config: BuildConfig,
    sft_dir: Path,
    tokenizer: Any,
    groups: list[ComparisonGroup],
    member: int,
    *,
    progress: bool = True,
) -> tuple[PreferenceModel, PreferenceTrainingResult]:
    """Preference model ``member`` of the build: the SFT backbone in ``sft_dir`` plus a scalar
    head, trained with Bradley–Terry on ``groups`` in minibatch order ``seed + member``.

    Member 0 is the single-model build's preference model. Members are independent, so they
    can be trained in separate processes (on one GPU, side by side) and combined afterwards
    with `PreferenceEnsemble`, as the build does after training them one by one. Its
    normalisation is left to the caller.
    """
    backbone = deepened_sequence_classifier(sft_dir, config.preference_extra_layers, seed=config.seed)
    model = PreferenceModel(
        backbone, tokenizer, max_length=config.max_prompt_tokens + config.max_new_tokens + 1, device=config.device
    )
    result = train_preference_model_on_groups(
        model, groups, _with_seed(config.preference, config.seed + member), progress=progress
    )
    return model, result


def comparison_pairs(
    world: World,
    samples: list[Sample],
    policy: GPT2LMHeadModel,
    tokenizer: Any,
    pool: AnnotatorPool,
    config: BuildConfig,
    *,
    seed: int,
    progress: bool,
) -> dict[str, Any]:
    """Candidates per prompt (reference, SFT samples, two perturbations of each, the world's
    own candidates), paired and labelled by ``pool``.

    Each pair also records its two candidates' sources (`REFERENCE`, `SAMPLE`, the
    perturbation kind or the world's source name), which the card uses to say where the
    preference model errs, and their annotator cues (`World.annotator_cues`).
    """
    rng = np.random.default_rng(seed)
    prompts = [s.prompt for s in samples]
    samples_by_temperature = [
        sample_completions(
            policy, tokenizer, prompts,
            max_new_tokens=config.max_new_tokens, temperature=t, seed=seed + i,
            max_prompt_tokens=config.max_prompt_tokens, progress=f"SFT samples T={t}" if progress else None,
        )
        for i, t in enumerate(config.sample_temperatures)
    ]
    kinds = sorted(world.perturbations)
    out: dict[str, Any] = {
        "groups": [], "prompts": [], "chosen": [], "rejected": [], "gold_chosen": [], "gold_rejected": [],
        "sources": [],  # (source of chosen, source of rejected) per pair
        "cue_chosen": [], "cue_rejected": [],  # the world's annotator cue of each (World.annotator_cues)
        "prompt_groups": [],  # the prompt's group per pair (World.prompt_group; None: no groups)
    }
    agreement_pairs = []
    for i, sample in enumerate(tqdm(samples, desc="pairs", disable=not progress, leave=False)):
        sources: dict[str, str] = {}  # candidate text -> where it came from (first source kept)
        if sample.reference is not None:
            sources[sample.reference] = REFERENCE
        bases = list(sources) + [texts[i] for texts in samples_by_temperature]
        for text in bases:
            sources.setdefault(text, SAMPLE)
        if kinds:
            for base in bases:
                for kind in rng.choice(kinds, size=min(2, len(kinds)), replace=False):
                    sources.setdefault(world.perturb(sample, base, str(kind), rng), str(kind))
        for text, source in world.comparison_candidates(sample, rng):
            sources.setdefault(text, source)
        candidates = list(sources)  # distinct texts, order kept
        if len(candidates) < 2:
            continue
        golds = world.gold_scores([sample.record] * len(candidates), candidates)
        words = [len(c.split()) for c in candidates]
        cues = np.asarray(world.annotator_cues([sample.record] * len(candidates), candidates), dtype=np.float64)
        all_pairs = [(a, b) for a in range(len(candidates)) for b in range(a + 1, len(candidates))]
        picked = rng.choice(len(all_pairs), size=min(config.pairs_per_prompt, len(all_pairs)), replace=False)
        labelled = []
        for index in picked:
            a, b = all_pairs[int(index)]
            if rng.random() < 0.5:  # present the two in random order to the annotator
                a, b = b, a
            first_preferred, _annotator = pool.label_scored(float(golds[a]), float(golds[b]), words[a], words[b], rng,
                                                            float(cues[a]), float(cues[b]))
            chosen, rejected = (a, b) if first_preferred else (b, a)
            labelled.append((chosen, rejected))
            out["prompts"].append(prompts[i])
            out["chosen"].append(candidates[chosen])
            out["rejected"].append(candidates[rejected])
            out["gold_chosen"].append(float(golds[chosen]))
            out["gold_rejected"].append(float(golds[rejected]))
            out["sources"].append((sources[candidates[chosen]], sources[candidates[rejected]]))
            out["cue_chosen"].append(float(cues[chosen]))
            out["cue_rejected"].append(float(cues[rejected]))
            out["prompt_groups"].append(world.prompt_group(sample.record))
            agreement_pairs.append((float(golds[a]), float(golds[b]), words[a], words[b], float(cues[a]), float(cues[b])))
        out["groups"].append(ComparisonGroup(prompts[i], tuple(candidates), tuple(labelled)))
    gold_a, gold_b, words_a, words_b, cue_a, cue_b = zip(*agreement_pairs, strict=True)
    out["annotator_gold_agreement"] = scored_gold_agreement(
        pool, gold_a, gold_b, words_a, words_b, rng=np.random.default_rng(seed + 100), cue_a=cue_a, cue_b=cue_b
    )
    return out


class _Log:
    def __init__(self, enabled: bool, start: float) -> None:
        self.enabled = enabled
        self.start = start

    def __call__(self, message: str) -> None:
        if self.enabled:
            print(f"[build-assets {time.time() - self.start:7.1f}s] {message}", flush=True)


def _with_seed(config: Any, seed: int) -> Any:
    return type(config)(**{**asdict(config), "seed": seed})


def num_parameters(model: torch.nn.Module) -> int:
    """Number of parameters of ``model``."""
    return sum(p.numel() for p in model.parameters())


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value
