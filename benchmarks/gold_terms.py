"""Where a summarisation policy loses gold: the gold judge's terms, averaged over its samples.

RLHF-Summarize-v0's gold score (`rlhf_gym.envs.summarize.deep.deep_breakdown`) credits
eight decisions, ``(0.25 recall + 0.15 ask + 0.10 lead + 0.10 format + 0.10 constraint +
0.10 concise + 0.10 focus + 0.10 faithful)``, times ``repetition * (0.5 + 0.5
well_formed)``; the faithfulness credit is 1, 0.5 or 0 for no, one, or more invented or
contradicted numbers and names. A gold change alone does not say which decision an agent
moved; this benchmark does. For the references, the env's SFT policy (sampled at the
protocol temperature, and greedy) and any trained policies, it samples the same valid
posts with the same seed and prints each decision's mean credit, the multipliers, the
number of hallucinated numbers/entities per summary (the faithfulness figure) and the
share of summaries without any.

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
from rlhf_gym.envs.summarize.deep import DECISION_WEIGHTS, DeepRecord, deep_breakdown
from rlhf_gym.lm.sampling import sample_completions

DECISIONS = tuple(DECISION_WEIGHTS)
MULTIPLIERS = ("repetition", "well_formed")


@dataclass
class Config:
    policies: tyro.conf.Positional[list[str]] = field(default_factory=list)  # trained policies (folders or hub ids)
    split: str = "valid"  # post split
    prompts: int = 512  # posts, one summary each per row
    temperature: float = TASK.temperature  # sampling temperature of the SFT row and the trained policies (the protocol's)
    seed: int = 0  # seeds the sampling; every policy gets the same stream
    threads: int = 2
    out: str | None = None  # also write gold_terms.json here


def term_means(records: Sequence[DeepRecord], summaries: Sequence[str]) -> dict[str, float]:
    """Mean gold, mean credit of each decision, mean of each multiplier, hallucinated
    numbers/entities per summary and the share without any.

    Example:
        >>> from rlhf_gym.envs.summarize import WORLD
        >>> samples = WORLD.samples("valid", 3)
        >>> means = term_means([s.record for s in samples], [WORLD.ideal_summary(s.record) for s in samples])
        >>> means["total"], means["hallucinated"], means["hallucination_free"], means["lead"]
        (1.0, 0.0, 1.0, 1.0)
    """
    if len(records) != len(summaries) or not summaries:
        raise ValueError(f"need one summary per record, at least one; got {len(records)} records, {len(summaries)} summaries")
    breakdowns = [deep_breakdown(r, s) for r, s in zip(records, summaries, strict=True)]
    means = {"total": float(np.mean([b.total for b in breakdowns]))}
    means.update({d: float(np.mean([b.credits[d] for b in breakdowns])) for d in DECISIONS})
    means.update({m: float(np.mean([getattr(b.base, m) for b in breakdowns])) for m in MULTIPLIERS})
    means["hallucinated"] = float(np.mean([b.base.hallucinated for b in breakdowns]))
    means["hallucination_free"] = float(np.mean([b.base.hallucinated == 0 for b in breakdowns]))
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
    print(f"{config.prompts} {config.split} posts; gold = (" + " + ".join(f"{w:.2f} {d}" for d, w in DECISION_WEIGHTS.items())
          + ") * repetition * (0.5 + 0.5 well_formed)")
    columns = [*DECISIONS, *MULTIPLIERS]
    print("| summaries | gold | " + " | ".join(columns) + " | hallucinated per summary | none hallucinated |\n|---|"
          + "---:|" * (len(columns) + 3))
    for row in rows:
        print(f"| {row['summaries']} | {row['total']:.3f} | " + " | ".join(f"{row[c]:.3f}" for c in columns)
              + f" | {row['hallucinated']:.2f} | {row['hallucination_free']:.2f} |")
    if config.out:
        out = Path(config.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "gold_terms.json").write_text(json.dumps({"config": vars(config), "rows": rows}, indent=2))
    return rows


if __name__ == "__main__":
    main(tyro.cli(Config))
