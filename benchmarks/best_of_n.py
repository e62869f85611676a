"""How much gold score can the preference model deliver? Best-of-n against the KL it costs.

Best-of-n sampling (Stiennon et al. 2020; Gao et al. 2023, "Scaling Laws for Reward Model
Overoptimization") is the simplest way to optimise a reward: sample n responses per
prompt from the policy and keep the one the proxy scores highest. Its KL to the policy is
known in closed form, at most ``log n - (n - 1) / n`` nats, so it maps out the gold score a
proxy can buy at each KL budget without any training. Picking by the gold judge instead
(the oracle) shows what a perfect preference model would buy. An RL run that reaches a
given KL with less gold than best-of-n at that KL is leaving reward on the table, or
exploiting the proxy where best-of-n only selects among honest samples.

The samples come from the env itself: ``group_size = n_max`` sub-envs share each prompt
(valid split by default), rolled out by the policy at the protocol temperature, so proxy
rewards and gold scores are exactly what an agent sees. For each n the ``n_max`` samples
of a prompt are split into ``n_max / n`` disjoint groups and the best of each group is
averaged (a lower-variance estimate than one group per prompt).

    python benchmarks/best_of_n.py --prompts 128 --n-max 16
    python benchmarks/best_of_n.py --policy runs/ppo/final_policy   # best-of-n on a trained policy
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import gymnasium as gym
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import tyro  # noqa: E402

import rlhf_gym  # noqa: E402, F401
from rlhf_gym.agents.common import policy_path, protocol_temperature  # noqa: E402
from rlhf_gym.env.rollout import collect_episodes  # noqa: E402
from rlhf_gym.lm.policy import CausalLMPolicy  # noqa: E402


@dataclass
class Config:
    env: str = "RLHF-Summarize-v0"  # registered env id
    policy: str | None = None  # causal LM to sample from; default: the env's SFT policy
    reward_model: str | None = None  # the proxy that picks (path, hub id or ensemble folder); default: the env's
    split: str = "valid"  # prompt split
    prompts: int = 128  # distinct prompts
    n_max: int = 16  # samples per prompt (a power of two)
    temperature: float | None = None  # sampling temperature; None: the task's protocol temperature (0.7)
    batch_prompts: int = 16  # prompts per rollout batch (batch_prompts * n_max episodes)
    seed: int = 0
    threads: int = 2
    out: str = "runs/best_of_n"  # best_of_n.json and best_of_n.png


def kl_bound(n: int) -> float:
    """Upper bound on KL(best-of-n || policy) in nats: ``log n - (n - 1) / n``.

    Example:
        >>> kl_bound(1), round(kl_bound(16), 3)
        (0.0, 1.835)
    """
    return math.log(n) - (n - 1) / n


def best_of_n_table(proxy: np.ndarray, gold: np.ndarray, ns: list[int]) -> list[dict[str, float]]:
    """Gold and proxy of the proxy-best and the gold-best of n, for each n.

    Args:
        proxy: (prompts, n_max) proxy rewards; ``gold`` the same samples' gold scores.
        ns: group sizes, each dividing ``n_max``.

    Returns:
        One row per n: ``n``, ``kl_bound``, ``gold`` (of the proxy's pick), ``proxy`` (its
        proxy reward), ``oracle_gold`` (the gold judge's pick).

    Example:
        >>> proxy = np.array([[0.0, 1.0, 2.0, 3.0]]); gold = np.array([[0.4, 0.3, 0.2, 0.1]])
        >>> [(r["n"], round(r["gold"], 3), round(r["oracle_gold"], 3)) for r in best_of_n_table(proxy, gold, [1, 2, 4])]
        [(1, 0.25, 0.25), (2, 0.2, 0.3), (4, 0.1, 0.4)]
    """
    if proxy.shape != gold.shape or proxy.ndim != 2:
        raise ValueError(f"proxy and gold must both be (prompts, n_max), got {proxy.shape} and {gold.shape}")
    rows = []
    for n in ns:
        if proxy.shape[1] % n:
            raise ValueError(f"n = {n} does not divide the {proxy.shape[1]} samples per prompt")
        groups = proxy.shape[1] // n
        p = proxy.reshape(-1, groups, n)
        g = gold.reshape(-1, groups, n)
        pick = p.argmax(-1)[..., None]
        rows.append({
            "n": n,
            "kl_bound": kl_bound(n),
            "gold": float(np.take_along_axis(g, pick, -1).mean()),
            "proxy": float(np.take_along_axis(p, pick, -1).mean()),
            "oracle_gold": float(g.max(-1).mean()),
        })
    return rows


def sample(config: Config) -> tuple[np.ndarray, np.ndarray]:
    """Proxy rewards and gold scores, (prompts, n_max) each, of env rollouts."""
    env = gym.make_vec(
        config.env, num_envs=config.batch_prompts * config.n_max, group_size=config.n_max,
        split=config.split, autoreset_mode="disabled",
        **({"reward_model": config.reward_model} if config.reward_model else {}),
    )
    path = policy_path(config.env, config.policy)
    policy = CausalLMPolicy.from_pretrained(path, temperature=protocol_temperature(config.env, config.temperature)).eval()
    proxy, gold = [], []
    for batch_index in range(math.ceil(config.prompts / config.batch_prompts)):
        seed = config.seed + batch_index
        batch = collect_episodes(env, policy, seed=seed, generator=torch.Generator().manual_seed(seed))
        proxy.append(batch.scores.reshape(-1, config.n_max).cpu().numpy())
        gold.append(batch.gold.reshape(-1, config.n_max).cpu().numpy())
        print(f"batch {batch_index + 1}: {proxy[-1].shape[0]} prompts x {config.n_max} samples")
    return np.concatenate(proxy)[: config.prompts], np.concatenate(gold)[: config.prompts]


def plot(rows: list[dict[str, float]], path: Path, title: str) -> None:
    kl = [r["kl_bound"] for r in rows]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(kl, [r["oracle_gold"] for r in rows], "o--", label="best of n by gold (oracle)")
    ax.plot(kl, [r["gold"] for r in rows], "o-", label="best of n by proxy")
    for r in rows:
        ax.annotate(f"n={r['n']}", (r["kl_bound"], r["gold"]), textcoords="offset points", xytext=(4, -12), fontsize=8)
    ax.set_xlabel("KL bound to the policy (nats)")
    ax.set_ylabel("gold score")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(config: Config) -> None:
    if config.n_max < 1 or config.n_max & (config.n_max - 1):
        raise ValueError(f"n_max must be a power of two, got {config.n_max}")
    torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    proxy, gold = sample(config)
    ns = [2**k for k in range(int(math.log2(config.n_max)) + 1)]
    rows = best_of_n_table(proxy, gold, ns)
    within = [np.corrcoef(p, g)[0, 1] for p, g in zip(proxy, gold) if p.std() > 0 and g.std() > 0]
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    result = {"config": vars(config), "within_prompt_correlation": float(np.mean(within)), "rows": rows}
    (out / "best_of_n.json").write_text(json.dumps(result, indent=2))
    plot(rows, out / "best_of_n.png", f"{config.env}, {config.split} split, {len(proxy)} prompts")
    print(f"mean within-prompt correlation of proxy and gold: {result['within_prompt_correlation']:.3f}")
    print("| n | KL bound | gold (proxy's pick) | proxy | gold (oracle's pick) |\n|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['n']} | {r['kl_bound']:.2f} | {r['gold']:.3f} | {r['proxy']:+.3f} | {r['oracle_gold']:.3f} |")
    print(f"wrote {out / 'best_of_n.json'} and {out / 'best_of_n.png'}")


if __name__ == "__main__":
    main(tyro.cli(Config))
