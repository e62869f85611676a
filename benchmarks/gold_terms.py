"""Where a summarisation policy loses gold: the gold judge's terms, averaged over its samples.

RLHF-Summarize-v0's gold score is a product, ``(0.6 recall + 0.25 ask + 0.15 well_formed) *
precision * focus * (0.4 + 0.6 brevity) * repetition``; precision loses 0.4 per invented or
contradicted number or entity, focus 0.4 per distractor repeated. A gold change alone does
not say which of these an agent moved; this benchmark does. For the references, the env's
SFT policy (sampled at the protocol temperature, and greedy) and any trained policies, it
samples the same valid posts with the same seed and prints each term's mean, the number of
hallucinated numbers/entities per summary (the faithfulness figure), the share of
summaries without any, and how the summaries spread over the writer styles.

    python benchmarks/gold_terms.py --prompts 512
    python benchmarks/gold_terms.py runs/ppo/final_policy --out runs/gold_terms
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import tyro
from transformers import AutoModelForCausalLM

from rlhf_gym.envs.summarize import TASK
from rlhf_gym.envs.summarize.gold_judge import gold_breakdown, style_shares
from rlhf_gym.envs.summarize.world import STYLES, PostRecord
from rlhf_gym.lm.sampling import sample_completions

TERMS = ("total", "recall", "ask", "precision", "hallucinated", "focus", "brevity", "repetition", "well_formed")
STYLE_NAMES = (*STYLES, "other")


@dataclass
class Config:
    policies: tyro.conf.Positional[list[str]] = field(default_factory=list)  # trained policies (folders or hub ids)
    split: str = "valid"  # post split
    prompts: int = 512  # posts, one summary each per row
    temperature: float = TASK.temperature  # sampling temperature of the SFT row and the trained policies (the protocol's)
    seed: int = 0  # seeds the sampling; every policy gets the same stream
    threads: int = 2
    out: str | None = None  # also write gold_terms.json here


def term_means(records: Sequence[PostRecord], summaries: Sequence[str]) -> dict[str, float]:
    """Mean of each gold term over the summaries, the share without hallucinations, and the
    share of each writer style (``style_<name>``).

    Example:
        >>> from rlhf_gym.envs.summarize.world import generate_post
        >>> posts = [generate_post(i) for i in range(3)]
        >>> means = term_means([p.record for p in posts], [p.reference for p in posts])
        >>> means["total"], means["hallucinated"], means["hallucination_free"]
        (1.0, 0.0, 1.0)
    """
    if len(records) != len(summaries) or not summaries:
        raise ValueError(f"need one summary per record, at least one; got {len(records)} records, {len(summaries)} summaries")
    breakdowns = [gold_breakdown(r, s) for r, s in zip(records, summaries, strict=True)]
    means = {term: float(np.mean([getattr(b, term) for b in breakdowns])) for term in TERMS}
    means["hallucination_free"] = float(np.mean([b.hallucinated == 0 for b in breakdowns]))
    means.update({f"style_{name}": share for name, share in style_shares(records, summaries).items()})
    return means


def main(config: Config) -> list[dict[str, float | str]]:
    torch.set_num_threads(config.threads)
    samples_ = TASK.world.samples(config.split, config.prompts)
    records, prompts = [s.record for s in samples_], [s.prompt for s in samples_]
    tokenizer = TASK.tokenizer()

    def samples(path: str | Path, temperature: float) -> list[str]:
        model = AutoModelForCausalLM.from_pretrained(path).eval()
        return sample_completions(
            model, tokenizer, prompts, max_new_tokens=TASK.max_new_tokens, temperature=temperature,
            seed=config.seed, max_prompt_tokens=TASK.max_prompt_tokens,
        )

    sft = TASK.policy_path()
    candidates = {"reference": [s.reference for s in samples_],
                  f"SFT policy, T={config.temperature}": samples(sft, config.temperature),
                  "SFT policy, greedy": samples(sft, 0.0)}
    candidates.update({f"{path}, T={config.temperature}": samples(path, config.temperature) for path in config.policies})
    rows: list[dict[str, float | str]] = [{"summaries": name, **term_means(records, texts)}
                                          for name, texts in candidates.items()]
    print(f"{config.prompts} {config.split} posts; gold = (0.6 recall + 0.25 ask + 0.15 well_formed) * precision "
          "* focus * (0.4 + 0.6 brevity) * repetition; precision = 1 - 0.4 per hallucinated number/entity")
    print("| summaries | gold | recall | ask | precision | hallucinated per summary | none hallucinated "
          "| focus | brevity | repetition | well-formed |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        print(f"| {row['summaries']} | {row['total']:.3f} | {row['recall']:.3f} | {row['ask']:.3f} | "
              f"{row['precision']:.3f} | {row['hallucinated']:.2f} | {row['hallucination_free']:.2f} | "
              f"{row['focus']:.3f} | {row['brevity']:.3f} | {row['repetition']:.3f} | {row['well_formed']:.3f} |")
    print("\nwriter styles (share of summaries)\n| summaries | " + " | ".join(STYLE_NAMES) + " |\n|---|"
          + "---:|" * len(STYLE_NAMES))
    for row in rows:
        print(f"| {row['summaries']} | " + " | ".join(f"{row['style_' + n]:.2f}" for n in STYLE_NAMES) + " |")
    if config.out:
        out = Path(config.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "gold_terms.json").write_text(json.dumps({"config": vars(config), "rows": rows}, indent=2))
    return rows


if __name__ == "__main__":
    main(tyro.cli(Config))
