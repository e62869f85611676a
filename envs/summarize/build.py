"""Rebuild every asset of RLHF-Summarize-v0 from seeds: ``rlhf-gym build-assets summarize``.

The recipe (docs/architecture.md, "The asset pipeline"), each step deterministic in ``BuildConfig.seed``:

1. a byte-level BPE tokenizer trained on generated posts, their authors' TL;DRs and
   references;
2. a tiny GPT-2 SFT policy trained on (post, author's TL;DR) pairs, the TL;DRs written in a
   mixture of writer styles (`world.STYLES`), so that its samples spread in quality and RL
   has headroom; its ``generation_config.json`` samples at the protocol temperature;
3. comparison data: for each post, candidates from the reference, SFT samples at several
   temperatures, summaries in two other writer styles and perturbations (dropped fact,
   changed number, invented fact, verbose, truncated, repeated), paired and labelled by the
   simulated annotators;
4. a preference model initialised from the SFT backbone (Stiennon et al. 2020) and trained
   with the Bradley–Terry loss (or an ensemble of such models, differing in minibatch
   order), its reward normalised so references score mean 0, std 1;
5. a model card (JSON and Markdown) with the figures that make the assets trustworthy.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm
from transformers import GenerationConfig, GPT2LMHeadModel

from rlhf_gym.atomic_dir import swap_in
from rlhf_gym.env.task import BuildRequest
from rlhf_gym.envs.summarize.annotators import (
    AnnotatorPool,
    label_accuracy_ceiling,
    scored_gold_agreement,
)
from rlhf_gym.envs.summarize.assets import ASSETS_DIR, TEMPERATURE
from rlhf_gym.envs.summarize.gold_judge import gold_breakdown, gold_scores, style_shares
from rlhf_gym.envs.summarize.perturbations import PERTURBATIONS, perturb
from rlhf_gym.envs.summarize.world import (
    SPLITS,
    STYLES,
    Post,
    generate_post,
    prompt_text,
    styled_summary,
)
from rlhf_gym.lm.loading import load_tokenizer
from rlhf_gym.lm.sampling import sample_completions
from rlhf_gym.pipeline.preference_training import (
    ComparisonGroup,
    PreferenceTrainingConfig,
    PreferenceTrainingResult,
    train_preference_model_on_groups,
)
from rlhf_gym.pipeline.sft import SFTConfig, train_sft
from rlhf_gym.pipeline.tiny_models import TinyGPT2Size, deepened_sequence_classifier, tiny_causal_lm
from rlhf_gym.pipeline.tokenizer_training import train_bpe_tokenizer
from rlhf_gym.rewards.preference_ensemble import PreferenceEnsemble
from rlhf_gym.rewards.preference_model import PreferenceModel

SFT_FIGURES = "sft_training.json"  # written next to the SFT policy, so a reused policy keeps them
REFERENCE, SAMPLE = "reference", "sft_sample"  # candidate sources besides the perturbation kinds
STYLE_PREFIX = "style_"  # source of a candidate written in another writer style: style_vague, ...
STYLE_CANDIDATES = 2  # per post: summaries in writer styles other than the reference's


@dataclass
class BuildConfig:
    """Sizes of the build; the defaults make the shipped assets (under an hour on 2 CPU cores;
    ``device`` trains and samples on a GPU instead)."""

    seed: int = 0  # every random choice of the build derives from it
    vocab_size: int = 2048  # BPE vocabulary (small enough for SB3's per-token heads)
    # One token per digit: copying a number from the post becomes copying digits one by one,
    # which a 2-layer policy learns (its whole-number BPE twin barely copied numbers at all).
    split_digits: bool = True
    tokenizer_posts: int = 5000  # posts (with TL;DRs and references) the tokenizer is trained on
    model_size: TinyGPT2Size = field(default_factory=lambda: TinyGPT2Size(2, 128, 4, 512))
    max_prompt_tokens: int = 224  # prompt block of the env; SFT and sampling use the same
    max_new_tokens: int = 64  # response budget of the env
    # (post, author's TL;DR) training pairs, one epoch: fresh posts cost nothing, so more data
    # rather than more epochs (docs/architecture.md has the faithfulness this buys).
    sft_posts: int = 150000
    sft: SFTConfig = field(default_factory=lambda: SFTConfig(epochs=1, batch_size=32, learning_rate=2e-3))
    # Posts whose candidates are paired for the preference data.
    comparison_posts: int = 8000
    # Labelled pairs per post, of the ~11 candidates' ~55 pairs. Labels cost nothing here,
    # and each candidate is scored once per step however many pairs it is in (InstructGPT).
    pairs_per_post: int = 36
    sample_temperatures: tuple[float, ...] = (0.7, 1.0)  # SFT samples per post, one each
    preference: PreferenceTrainingConfig = field(
        # batch_size counts prompt groups (~11 candidates, 36 pairs each; InstructGPT-style).
        default_factory=lambda: PreferenceTrainingConfig(epochs=4, batch_size=16, learning_rate=1e-3)
    )
    # Blocks the preference model adds on top of the SFT backbone it starts from. Measured on
    # the first world's data: 0 extra -> 0.619 valid accuracy vs annotators, 2 extra -> 0.605.
    preference_extra_layers: int = 0
    # Preference models trained alike, each on its own minibatch order (member i: seed + i),
    # and scored as one `PreferenceEnsemble` (mean of their normalised rewards; Coste et al.
    # 2024). Each member costs a full preference training run; one is the default.
    preference_members: int = 1
    valid_posts: int = 300  # valid-split posts for RM accuracy (pairs as in training)
    normalization_posts: int = 512  # train posts whose references fix the reward scale
    eval_posts: int = 512  # test-split posts for SFT vs reference gold scores
    threads: int = 2  # torch threads
    # Where the models train and sample ("cpu", "cuda", ...). Seeds fix every random choice on
    # any device; a GPU's floating-point order differs from the CPU's, so its models differ
    # in the last digits (and its runs of the same recipe varied by ~0.01 valid accuracy).
    device: str = "cpu"

    @classmethod
    def toy(cls) -> BuildConfig:
        """Seconds-scale build for tests: same pipeline, tiny sizes."""
        return cls(
            vocab_size=400,
            tokenizer_posts=200,
            model_size=TinyGPT2Size(1, 32, 2, 512),
            sft_posts=64,
            sft=SFTConfig(epochs=1, batch_size=16, learning_rate=2e-3),
            comparison_posts=24,
            pairs_per_post=3,
            preference=PreferenceTrainingConfig(epochs=1, batch_size=16, learning_rate=5e-4),
            preference_members=1,
            valid_posts=16,
            normalization_posts=16,
            eval_posts=16,
        )


def build_from_request(request: BuildRequest) -> None:
    """Run the recipe as ``rlhf-gym build-assets summarize`` asks: the default (or toy)
    sizes, with the request's overrides."""
    config = BuildConfig.toy() if request.toy else BuildConfig()
    config.device = request.device
    for name in ("comparison_posts", "preference_members"):
        value = getattr(request, name)
        if value is not None:
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
            setattr(config, name, value)
    build_assets(config, request.out, reuse_policy=request.reuse_policy)


def write_generation_config(policy_dir: Path, tokenizer: Any, max_new_tokens: int) -> None:
    """Save the protocol's decoding into ``policy_dir/generation_config.json``: pure sampling
    at `TEMPERATURE` (no top-k, no top-p), so ``generate()`` with the saved defaults samples
    as the benchmark does."""
    GenerationConfig(
        do_sample=True, temperature=TEMPERATURE, top_k=0, top_p=1.0, max_new_tokens=max_new_tokens,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
    ).save_pretrained(policy_dir)


def split_posts(split: str, count: int, offset: int = 0) -> list[Post]:
    """The first ``count`` posts of a split after ``offset`` (a fixed, disjoint slice)."""
    start, stop = SPLITS[split]
    if offset + count > stop - start:
        raise ValueError(f"split {split!r} holds {stop - start} posts, asked for {offset + count}")
    return [generate_post(start + offset + i) for i in range(count)]


def build_assets(
    config: BuildConfig,
    out_dir: Path = ASSETS_DIR,
    *,
    reuse_policy: Path | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Run the whole recipe and write the assets to ``out_dir`` atomically.

    The new assets are written to a temporary sibling folder and swapped in at the end,
    so an interrupted build never leaves half-written assets behind.

    Args:
        config: sizes and seeds of the build.
        out_dir: where the assets go (by default into the installed package).
        reuse_policy: an earlier build's folder whose tokenizer and SFT policy are copied
            instead of retrained (steps 1-2), to iterate on the preference stage; the
            copied card figures are kept and the card records where they came from.
        progress: print stage lines and progress bars.

    Returns:
        The model card (also written to ``card.json`` and ``card.md``).
    """
    started = time.time()
    torch.set_num_threads(config.threads)
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".assets-", dir=out_dir.parent))
    log = _Log(progress)
    card: dict[str, Any] = {"task": "RLHF-Summarize-v0", "config": _jsonable(asdict(config))}

    if reuse_policy is None:
        log("training the tokenizer and the SFT policy")
    else:
        log(f"copying the tokenizer and SFT policy of {reuse_policy}")
    tokenizer, policy, card["tokenizer"], card["sft"] = build_policy(
        config, staging, reuse_policy=reuse_policy, progress=progress
    )

    # Comparison data
    log("sampling candidates and labelling comparisons")
    pool = AnnotatorPool(seed=config.seed)
    train_offset = config.tokenizer_posts + config.sft_posts
    train_pairs = comparison_pairs(
        split_posts("train", config.comparison_posts, offset=train_offset),
        policy, tokenizer, pool, config, seed=config.seed + 1, progress=progress,
    )
    valid_pairs = comparison_pairs(
        split_posts("valid", config.valid_posts),
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
        ),
        "valid_gold_judge_accuracy_vs_annotators": _gold_judge_accuracy(valid_pairs),
    }

    # Preference model (one, or an ensemble of members differing in minibatch order)
    norm_posts = split_posts("train", config.normalization_posts, offset=train_offset + config.comparison_posts)
    norm_prompts, norm_references = [prompt_text(p) for p in norm_posts], [p.reference for p in norm_posts]
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
            member_model.fit_normalization(norm_prompts, norm_references)
    preference_model = members[0] if len(members) == 1 else PreferenceEnsemble(members)
    preference_model.fit_normalization(norm_prompts, norm_references)
    preference_model.save_pretrained(staging / "preference_model")
    card["preference_model"] = {
        "members": len(members),
        "final_train_loss": float(np.mean([r.final_loss for r in train_results])),
        "train_seconds": round(sum(r.wall_time for r in train_results), 1),
        **preference_model_figures(preference_model, valid_pairs, config),
    }

    # Headroom: SFT vs references on the test split
    log("scoring SFT samples and references on the test split")
    card["evaluation"] = evaluation_figures(policy, tokenizer, preference_model, config)
    card["build_seconds"] = round(time.time() - started, 1)
    card["sizes_bytes"] = {
        name: sum(f.stat().st_size for f in (staging / name).rglob("*") if f.is_file())
        for name in ("tokenizer", "sft_policy", "preference_model")
    }
    (staging / "card.json").write_text(json.dumps(card, indent=2))
    (staging / "card.md").write_text(render_card(card))

    swap_in(staging, out_dir)
    log(f"assets written to {out_dir} in {card['build_seconds']} s")
    return card


def build_policy(
    config: BuildConfig, out_dir: Path, *, reuse_policy: Path | None = None, progress: bool = True
) -> tuple[Any, GPT2LMHeadModel, dict[str, Any], dict[str, Any]]:
    """Steps 1-2 of the recipe: the tokenizer and the SFT policy, written to
    ``out_dir/tokenizer`` and ``out_dir/sft_policy`` (or copied from ``reuse_policy``).

    The SFT policy learns from the authors' own TL;DRs (``Post.tldr``, a mixture of writer
    styles), not from the references: that spread of quality is RL's headroom.

    Returns:
        The tokenizer, the policy (on ``config.device``), and the card's tokenizer and SFT
        figures.
    """
    out_dir = Path(out_dir)
    corpus_posts = split_posts("train", config.tokenizer_posts)
    if reuse_policy is None:
        corpus = [prompt_text(p) + p.tldr + p.reference for p in corpus_posts]
        tokenizer = train_bpe_tokenizer(corpus, vocab_size=config.vocab_size, split_digits=config.split_digits)
        tokenizer.save_pretrained(out_dir / "tokenizer")
    else:
        for name in ("tokenizer", "sft_policy"):
            shutil.copytree(Path(reuse_policy) / name, out_dir / name)
    tokenizer = load_tokenizer(str(out_dir / "tokenizer"))
    lengths = [len(ids) for ids in tokenizer([prompt_text(p) for p in corpus_posts[:500]])["input_ids"]]
    tokenizer_figures = {
        "vocab_size": len(tokenizer),
        "prompt_tokens_mean": float(np.mean(lengths)),
        "prompt_tokens_max": int(np.max(lengths)),
    }
    if reuse_policy is None:
        sft_posts = split_posts("train", config.sft_posts, offset=config.tokenizer_posts)
        policy = tiny_causal_lm(tokenizer, config.model_size, seed=config.seed).to(config.device)
        sft_result = train_sft(
            policy,
            tokenizer,
            [prompt_text(p) for p in sft_posts],
            [p.tldr for p in sft_posts],
            _with_seed(config.sft, config.seed),
            progress=progress,
        )
        policy.save_pretrained(out_dir / "sft_policy")
        tokenizer.save_pretrained(out_dir / "sft_policy")
        write_generation_config(out_dir / "sft_policy", tokenizer, config.max_new_tokens)
        sft_figures = {
            "examples": config.sft_posts,
            "final_loss": sft_result.final_loss,
            "parameters": _num_parameters(policy),
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


def preference_model_figures(
    preference_model: PreferenceModel, valid_pairs: dict[str, Any], config: BuildConfig
) -> dict[str, Any]:
    """The card's figures of a trained (and normalised) preference model on the valid split.

    Args:
        preference_model: the model to judge.
        valid_pairs: `comparison_pairs` output for the valid posts.
        config: the build's sizes and seed (valid posts, perturbation seed).
    """
    chosen, rejected = _pair_scores(preference_model, valid_pairs)  # scored once, read twice
    valid_right = chosen > rejected
    vs_gold, untied = accuracy_vs_gold(chosen, rejected, valid_pairs)
    return {
        "valid_accuracy_vs_annotators": valid_right.float().mean().item(),
        "valid_accuracy_vs_gold": vs_gold,
        "valid_pairs_without_gold_tie": untied,
        "valid_accuracy_by_source": accuracy_by_source(valid_right, valid_pairs),
        "prefers_reference_over": perturbation_preferences(
            preference_model, split_posts("valid", config.valid_posts), seed=config.seed + 3
        ),
        "normalization": asdict(preference_model.normalization),
        "parameters": sum(_num_parameters(m.model) for m in getattr(preference_model, "members", [preference_model])),
    }


def evaluation_figures(
    policy: GPT2LMHeadModel, tokenizer: Any, preference_model: PreferenceModel, config: BuildConfig
) -> dict[str, Any]:
    """SFT samples vs references on the test split: gold and proxy scores, and the headroom."""
    eval_posts = split_posts("test", config.eval_posts)
    records = [p.record for p in eval_posts]
    prompts = [prompt_text(p) for p in eval_posts]
    reference_gold = gold_scores(records, [p.reference for p in eval_posts])
    figures: dict[str, Any] = {"posts": len(eval_posts), "reference_gold": float(reference_gold.mean())}
    for name, temperature in (("sft_greedy", 0.0), ("sft_t0.7", TEMPERATURE)):  # key names the shipped 0.7
        samples = sample_completions(
            policy, tokenizer, prompts,
            max_new_tokens=config.max_new_tokens, temperature=temperature,
            seed=config.seed, max_prompt_tokens=config.max_prompt_tokens,
        )
        figures[f"{name}_gold"] = float(gold_scores(records, samples).mean())
        figures[f"{name}_proxy"] = float(preference_model.score(prompts, samples).mean())
        # Faithfulness: invented or wrong numbers/entities per summary (issue bar: <= 0.25 at
        # the protocol temperature, <= 0.10 greedy); and how the samples spread over the styles.
        figures[f"{name}_hallucinated"] = float(np.mean([gold_breakdown(r, s).hallucinated for r, s in zip(records, samples)]))
        figures[f"{name}_styles"] = style_shares(records, samples)
        if temperature == 0.0:
            figures["example"] = {
                "prompt": prompts[0], "reference": eval_posts[0].reference, "sft_greedy": samples[0],
                "reference_gold": float(reference_gold[0]),
                "sft_greedy_gold": float(gold_scores(records[:1], samples[:1])[0]),
                "reference_proxy": float(preference_model.score(prompts[:1], [eval_posts[0].reference])[0]),
                "sft_greedy_proxy": float(preference_model.score(prompts[:1], samples[:1])[0]),
            }
    figures["reference_proxy"] = float(preference_model.score(prompts, [p.reference for p in eval_posts]).mean())
    figures["headroom_gold_t0.7"] = figures["reference_gold"] - figures["sft_t0.7_gold"]
    return figures


def comparison_pairs(
    posts: list[Post],
    policy: GPT2LMHeadModel,
    tokenizer: Any,
    pool: AnnotatorPool,
    config: BuildConfig,
    *,
    seed: int,
    progress: bool,
) -> dict[str, Any]:
    """Candidates per post (reference, SFT samples, perturbations, other writer styles),
    paired and labelled.

    Each pair also records its two candidates' sources (`REFERENCE`, `SAMPLE`, the
    perturbation kind or ``style_<name>``), which the card uses to say where the
    preference model errs.
    """
    rng = np.random.default_rng(seed)
    prompts = [prompt_text(p) for p in posts]
    samples_by_temperature = [
        sample_completions(
            policy, tokenizer, prompts,
            max_new_tokens=config.max_new_tokens, temperature=t, seed=seed + i,
            max_prompt_tokens=config.max_prompt_tokens, progress=f"SFT samples T={t}" if progress else None,
        )
        for i, t in enumerate(config.sample_temperatures)
    ]
    kinds = sorted(PERTURBATIONS)
    out: dict[str, Any] = {
        "groups": [], "prompts": [], "chosen": [], "rejected": [], "gold_chosen": [], "gold_rejected": [],
        "sources": [],  # (source of chosen, source of rejected) per pair
    }
    agreement_pairs = []
    for i, post in enumerate(tqdm(posts, desc="pairs", disable=not progress, leave=False)):
        bases = [post.reference] + [samples[i] for samples in samples_by_temperature]
        sources = {post.reference: REFERENCE}  # candidate text -> where it came from
        for sample in bases[1:]:
            sources.setdefault(sample, SAMPLE)
        for base in bases:
            for kind in rng.choice(kinds, size=2, replace=False):
                sources.setdefault(perturb(post, base, str(kind), rng), str(kind))
        # The writer styles the SFT policy learned, written faithfully: the pairs that teach
        # the preference model which style a reader wants.
        for style in rng.choice(STYLES[1:], size=STYLE_CANDIDATES, replace=False):
            sources.setdefault(styled_summary(post.record, str(style), rng), STYLE_PREFIX + str(style))
        candidates = list(sources)  # distinct texts, first source kept, order kept
        if len(candidates) < 2:
            continue
        golds = gold_scores([post.record] * len(candidates), candidates)
        words = [len(c.split()) for c in candidates]
        all_pairs = [(a, b) for a in range(len(candidates)) for b in range(a + 1, len(candidates))]
        picked = rng.choice(len(all_pairs), size=min(config.pairs_per_post, len(all_pairs)), replace=False)
        labelled = []
        for index in picked:
            a, b = all_pairs[int(index)]
            if rng.random() < 0.5:  # present the two in random order to the annotator
                a, b = b, a
            first_preferred, _annotator = pool.label_scored(
                float(golds[a]), float(golds[b]), words[a], words[b], rng
            )
            chosen, rejected = (a, b) if first_preferred else (b, a)
            labelled.append((chosen, rejected))
            out["prompts"].append(prompts[i])
            out["chosen"].append(candidates[chosen])
            out["rejected"].append(candidates[rejected])
            out["gold_chosen"].append(float(golds[chosen]))
            out["gold_rejected"].append(float(golds[rejected]))
            out["sources"].append((sources[candidates[chosen]], sources[candidates[rejected]]))
            agreement_pairs.append((float(golds[a]), float(golds[b]), words[a], words[b]))
        out["groups"].append(ComparisonGroup(prompts[i], tuple(candidates), tuple(labelled)))
    out["annotator_gold_agreement"] = scored_gold_agreement(
        pool, *zip(*agreement_pairs, strict=True), rng=np.random.default_rng(seed + 100)
    )
    return out


def prefers_chosen(preference_model: PreferenceModel, pairs: dict[str, Any]) -> torch.Tensor:
    """(pairs,) bool: the model scores the annotators' choice strictly higher (ties are errors)."""
    chosen, rejected = _pair_scores(preference_model, pairs)
    return chosen > rejected


def accuracy_vs_gold(
    chosen_scores: torch.Tensor, rejected_scores: torch.Tensor, pairs: dict[str, Any]
) -> tuple[float, int]:
    """Share of pairs the model orders as the gold judge does (gold ties dropped; model ties
    are errors), and how many pairs the gold judge does not tie.

    Args:
        chosen_scores, rejected_scores: (pairs,) the model's scores of each pair's responses.
        pairs: `comparison_pairs` output (its gold scores are read).
    """
    gold_chosen = torch.tensor(pairs["gold_chosen"], dtype=torch.float64)
    gold_rejected = torch.tensor(pairs["gold_rejected"], dtype=torch.float64)
    untied = gold_chosen != gold_rejected
    agrees = torch.where(gold_chosen > gold_rejected, chosen_scores > rejected_scores, rejected_scores > chosen_scores)
    return agrees[untied].float().mean().item(), int(untied.sum())


def _pair_scores(preference_model: PreferenceModel, pairs: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
    """Raw scores (on the CPU) of every pair's chosen and rejected response."""
    chosen = preference_model.raw_scores(pairs["prompts"], pairs["chosen"]).cpu()
    return chosen, preference_model.raw_scores(pairs["prompts"], pairs["rejected"]).cpu()


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
    preference_model: PreferenceModel, posts: list[Post], *, seed: int
) -> dict[str, dict[str, float]]:
    """Where the preference model can be fooled: reference vs each perturbation of it.

    For every perturbation kind, each post's reference is paired with one perturbation of
    it. The gold judge prefers the reference (``gold_drop`` > 0) unless the change happens
    to cost nothing; a preference model that scores the reference higher only about half
    the time cannot tell that kind of damage apart, and a policy trained on it is free to
    make that mistake.

    Returns:
        ``{kind: {"preference_model": share of posts whose reference it scores higher,
        "gold_judge": the same for the gold judge (ties count as not preferring),
        "gold_drop": mean gold score lost to the perturbation}}``.
    """
    rng = np.random.default_rng(seed)
    prompts = [prompt_text(p) for p in posts]
    records = [p.record for p in posts]
    references = [p.reference for p in posts]
    reference_scores = preference_model.raw_scores(prompts, references).cpu().numpy()
    reference_gold = gold_scores(records, references)
    figures = {}
    for kind in sorted(PERTURBATIONS):
        perturbed = [perturb(post, post.reference, kind, rng) for post in posts]
        scores = preference_model.raw_scores(prompts, perturbed).cpu().numpy()
        gold = gold_scores(records, perturbed)
        figures[kind] = {
            "preference_model": float(np.mean(reference_scores > scores)),
            "gold_judge": float(np.mean(reference_gold > gold)),
            "gold_drop": float(np.mean(reference_gold - gold)),
        }
    return figures


def _gold_judge_accuracy(pairs: dict[str, Any]) -> float:
    """The gold judge used as a reward model against the annotator labels (gold ties count half)."""
    chosen, rejected = np.asarray(pairs["gold_chosen"]), np.asarray(pairs["gold_rejected"])
    return float(np.mean(chosen > rejected) + 0.5 * np.mean(chosen == rejected))


def render_card(card: dict[str, Any]) -> str:
    """The model card as Markdown."""
    ev, pm, cmp_ = card["evaluation"], card["preference_model"], card["comparisons"]
    example = ev["example"]
    return "\n".join(
        [
            "# RLHF-Summarize-v0 assets",
            "",
            "Built by `rlhf-gym build-assets summarize` from seeds; every figure below is recomputed by the build.",
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
            f"| gold score: references (test) | {ev['reference_gold']:.3f} |",
            f"| gold score: SFT greedy / T=0.7 (test) | {ev['sft_greedy_gold']:.3f} / {ev['sft_t0.7_gold']:.3f} |",
            f"| proxy reward: references / SFT greedy / SFT T=0.7 | {ev['reference_proxy']:.3f} / {ev['sft_greedy_proxy']:.3f} / {ev['sft_t0.7_proxy']:.3f} |",  # noqa: E501
            f"| gold headroom (references − SFT T=0.7) | {ev['headroom_gold_t0.7']:.3f} |",
            f"| invented or wrong numbers/entities per summary: SFT greedy / T=0.7 (test) | "
            f"{ev['sft_greedy_hallucinated']:.3f} / {ev['sft_t0.7_hallucinated']:.3f} |",
            f"| preference model training | {pm['train_seconds']:.0f} s on {card['config']['device']}"
            + (f" ({pm['members']} ensemble members, mean of their rewards)" if pm.get("members", 1) > 1 else "")
            + " |",
            f"| build time | {card['build_seconds']:.0f} s |",
            *[f"| note | {note} |" for note in card.get("notes", [])],
            "",
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
            "## Reference vs its perturbations (valid)",
            "",
            "Share of posts whose reference each judge scores above one perturbation of it:",
            "where the preference model is near 0.5, it cannot see that damage, and RL can exploit it.",
            "",
            "| perturbation | preference model | gold judge | gold lost |",
            "|---|---|---|---|",
            *[
                f"| {kind} | {f['preference_model']:.2f} | {f['gold_judge']:.2f} | {f['gold_drop']:.2f} |"
                for kind, f in pm["prefers_reference_over"].items()
            ],
            "",
            "## Example (test split)",
            "",
            "```",
            example["prompt"],
            "```",
            "",
            f"- reference:{example['reference']}  (gold {example['reference_gold']:.2f}, proxy {example['reference_proxy']:.2f})",
            f"- SFT greedy:{example['sft_greedy']}  (gold {example['sft_greedy_gold']:.2f}, proxy {example['sft_greedy_proxy']:.2f})",
            "",
        ]
    )


class _Log:
    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.start = time.time()

    def __call__(self, message: str) -> None:
        if self.enabled:
            print(f"[build-assets {time.time() - self.start:7.1f}s] {message}", flush=True)


def _with_seed(config: Any, seed: int) -> Any:
    return type(config)(**{**asdict(config), "seed": seed})


def _num_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value
