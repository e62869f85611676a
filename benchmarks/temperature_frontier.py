"""The gold score a policy gains by sampling colder, against the KL it costs: no training.

The env samples at temperature 0.7, and the summarisation policy's greedy summaries score
higher in gold than its samples (its most likely tokens copy the post best). Lowering the
temperature is therefore the cheapest way to buy gold, and a baseline any trained agent
should beat at the same KL: an RL run whose gold gain per nat is below this frontier has
learned less than "be more confident". For each temperature the policy's own samples are
scored by the env (proxy and gold), and the KL to the policy at the protocol temperature is
exact per token (summed over the vocabulary), summed over each response; greedy decoding's
is ``-log pi_ref(token)`` per token.

    python benchmarks/temperature_frontier.py --prompts 512
    python benchmarks/temperature_frontier.py --policy runs/ppo/final_policy
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import gymnasium as gym
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch
import tyro

import rlhf_gym  # noqa: F401
from rlhf_gym.agents.common import policy_path, protocol_temperature
from rlhf_gym.env.rollout import EpisodeBatch, collect_episodes
from rlhf_gym.lm.policy import CausalLMPolicy


@dataclass
class Config:
    env: str = "RLHF-Summarize-v0"  # registered env id
    policy: str | None = None  # causal LM; default: the env's SFT policy
    split: str = "valid"  # prompt split
    prompts: int = 512  # prompts, one sample each per temperature
    batch_prompts: int = 128  # episodes per rollout batch
    reference_temperature: float | None = None  # None: the task's protocol temperature (0.7)
    temperatures: tuple[float, ...] = (0.7, 0.6, 0.5, 0.4, 0.3, 0.0)  # 0 means greedy
    seed: int = 0
    threads: int = 2
    out: str = "runs/temperature_frontier"  # temperature_frontier.json and .png


@torch.no_grad()
def sequence_kl(batch: EpisodeBatch, policy: CausalLMPolicy, reference: CausalLMPolicy, width: int, greedy: bool) -> torch.Tensor:
    """(N,) KL(policy || reference) of each response, exact per token, summed over tokens."""
    ref_logp = torch.log_softmax(reference.response_logits(batch.input_ids, batch.attention_mask, width), -1)
    if greedy:  # a point mass on the argmax: KL = -log pi_ref(token)
        tokens = batch.input_ids[:, width:, None]
        per_token = -ref_logp.gather(-1, tokens).squeeze(-1)
    else:
        logp = torch.log_softmax(policy.response_logits(batch.input_ids, batch.attention_mask, width), -1)
        per_token = (logp.exp() * (logp - ref_logp)).sum(-1)
    return (per_token * batch.response_mask).sum(-1)


def frontier(config: Config) -> list[dict[str, float]]:
    """Gold, proxy, KL and length of the policy's samples at each temperature."""
    if config.prompts % config.batch_prompts != 0:
        raise ValueError(f"prompts ({config.prompts}) must be a multiple of batch_prompts ({config.batch_prompts})")
    env = gym.make_vec(config.env, num_envs=config.batch_prompts, split=config.split, autoreset_mode="disabled")
    path = policy_path(config.env, config.policy)
    reference = CausalLMPolicy.from_pretrained(path, temperature=protocol_temperature(config.env, config.reference_temperature)).eval()
    rows = []
    for temperature in config.temperatures:
        greedy = temperature == 0.0
        policy = CausalLMPolicy.from_pretrained(path, temperature=temperature if not greedy else 1.0).eval()
        gold, proxy, kl, length = [], [], [], []
        for start in range(0, config.prompts, config.batch_prompts):
            seed = config.seed * 1_000_003 + start  # same prompts at every temperature
            batch = collect_episodes(env, policy, seed=seed, generator=torch.Generator().manual_seed(seed), greedy=greedy)
            gold.append(batch.gold)
            proxy.append(batch.preference)
            kl.append(sequence_kl(batch, policy, reference, env.max_prompt_tokens, greedy))
            length.append(batch.response_lengths.float())
        row = {
            "temperature": temperature,
            "gold": torch.cat(gold).mean().item(),
            "proxy_reward": torch.cat(proxy).mean().item(),
            "kl": torch.cat(kl).mean().item(),
            "response_length": torch.cat(length).mean().item(),
        }
        print(
            f"T={'greedy' if greedy else temperature}: gold {row['gold']:.3f} proxy {row['proxy_reward']:+.3f} "
            f"KL {row['kl']:.2f} length {row['response_length']:.1f}",
            flush=True,
        )
        rows.append(row)
    return rows


def plot(rows: list[dict[str, float]], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot([r["kl"] for r in rows], [r["gold"] for r in rows], "o-")
    for r in rows:
        ax.annotate("greedy" if r["temperature"] == 0 else f"T={r['temperature']:g}", (r["kl"], r["gold"]), fontsize=8)
    ax.set_xlabel("KL to the policy at the protocol temperature (nats)")
    ax.set_ylabel("gold score")
    ax.set_title("Sampling colder: gold vs KL, no training")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(config: Config) -> None:
    torch.set_num_threads(config.threads)
    rows = frontier(config)
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "temperature_frontier.json").write_text(json.dumps({"config": vars(config), "rows": rows}, indent=2))
    plot(rows, out / "temperature_frontier.png")
    print(f"wrote {out / 'temperature_frontier.json'} and {out / 'temperature_frontier.png'}")


if __name__ == "__main__":
    main(tyro.cli(Config))
