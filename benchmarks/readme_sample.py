"""A README sample of a world: one prompt, the ideal response, the reference, greedy SFT and
SFT samples at the protocol temperature, each with gold, proxy and the decisions it misses.

    python benchmarks/readme_sample.py --env RLHF-Dialogue-v0 --index 1

Prompt ``index`` of the test split; seed 0 fixes the samples. The ``ideal`` row is the
world's `World.ideal_response` where it writes one (Summarize and Dialogue do).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import tyro

import rlhf_gym
from rlhf_gym.lm.sampling import sample_completions


@dataclass
class Config:
    env: str = "RLHF-Dialogue-v0"
    index: int = 0  # the test split's n-th prompt
    samples: int = 8  # SFT samples at the protocol temperature
    seed: int = 0


def sample_rows(config: Config) -> tuple[str, list[dict[str, object]]]:
    """The prompt text and one row per response: label, text, gold, proxy, decisions missed."""
    task = rlhf_gym.get_task(config.env)
    world, tokenizer = task.world, task.tokenizer()
    (prompt,) = task.prompt_source("test").get_many([config.index])
    model = task.sft_policy("cpu").model
    sizes = {"max_new_tokens": task.max_new_tokens, "max_prompt_tokens": task.max_prompt_tokens, "seed": config.seed}
    greedy = sample_completions(model, tokenizer, [prompt.text], temperature=0.0, **sizes)
    sampled = sample_completions(model, tokenizer, [prompt.text] * config.samples, temperature=task.temperature, **sizes)
    labelled = [("SFT greedy", greedy[0])] + [(f"SFT, T={task.temperature:g}", s) for s in sampled]
    if task.has_references:
        labelled.insert(0, ("reference", prompt.reference))
    ideal = world.ideal_response(prompt.record)  # None: the world writes none
    if ideal is not None:
        labelled.insert(0, ("ideal", ideal))
    proxy = task.preference_model(torch.device("cpu")).score([prompt.text] * len(labelled), [text for _, text in labelled])
    gold = world.gold_scores([prompt.record] * len(labelled), [text for _, text in labelled])
    best = world.best_decisions(prompt.record)
    rows = []
    for (label, text), g, p in zip(labelled, gold, proxy.tolist()):
        options = world.decisions(prompt.record, text)
        rows.append({"label": label, "text": text.strip(), "gold": float(g), "proxy": float(p),
                     "missed": [d for d in best if options.get(d) != best[d]]})
    return prompt.text, rows


def main(config: Config) -> None:
    text, rows = sample_rows(config)
    print("```\n" + text + "\n```\n\n| | response | gold | proxy | decisions missed |\n|---|---|---:|---:|---|")
    for row in rows:
        print(f"| {row['label']} | {row['text']} | {row['gold']:.2f} | {row['proxy']:+.2f} | {', '.join(row['missed'])} |")


if __name__ == "__main__":
    main(tyro.cli(Config))
