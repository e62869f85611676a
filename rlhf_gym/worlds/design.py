"""The design audit: a world's headroom measured on its writers alone, before any asset is built.

The SFT policy learns to imitate the world's writer mixture, so the mixture already says
most of what the headroom audit (`rlhf_gym.worlds.audit`) will find on the trained
policy, and it costs no training: seconds instead of an hour's build. For the first N
valid prompts, `writer_audit` draws ``draws`` responses per prompt from the world's
writers (`World.write`) and reports:

- the writers' mean gold (what the SFT policy approaches sampled at T = 1; sampling at
  the protocol's T < 1 sharpens it toward each decision's modal option);
- the gold of the mixture's **prefix-greedy** response (`prefix_greedy`): word by word,
  the most common next word among the draws that share the words chosen so far. This is
  what greedy decoding of a policy that learned the mixture writes, and it is not the
  modal whole response: options that share their first words pool their mass there (the
  first Summarize world's three persona-first styles out-voted each other opener, and
  greedy SFT wrote the best style 98% of the time though it was the mixture's mode for
  no prompt);
- best-of-n by the gold judge for n = 4, 16, 64 over the draws, with the analytic KL and
  the share of the headroom (1 − writers' gold) it closes;
- per decision the world exposes: the share of prompts whose prefix-greedy response does
  not take the gold judge's best option (argmax_SFT != argmax_gold, predicted), the share
  whose modal option among the draws is not the best, and the share of draws taking the
  best option (the target p ~ 0.2-0.3);
- the references' mean gold and the share at gold >= 0.95.

It is a design tool, not a certificate: a tiny SFT policy imitates the mixture
imperfectly, and only the audit of the built assets counts for shipping. Run it with
``rlhf-gym audit ENV --writers``.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from rlhf_gym.worlds.audit import BEST_OF_N, GOOD_REFERENCE, SPLIT, best_of_n, best_of_n_kl, headroom_closed, mean_and_se
from rlhf_gym.worlds.world import World


def writer_audit(world: World, *, prompts: int = 256, draws: int = 64, seed: int = 0) -> dict[str, Any]:
    """The design audit of ``world`` on the first ``prompts`` valid prompts (module docstring).

    Args:
        world: a world whose `World.write` draws from its writer mixture.
        prompts: how many valid prompts.
        draws: writer responses per prompt; a multiple of 64 so every best-of-n uses
            disjoint groups.
        seed: the draws' seed (prompt ``i`` draws from ``default_rng([seed, i])``).

    Raises:
        ValueError: bad ``prompts`` or ``draws``, or a world without ``write``.
    """
    if prompts < 1 or draws < max(BEST_OF_N) or draws % max(BEST_OF_N):
        raise ValueError(f"need prompts >= 1 and draws a multiple of {max(BEST_OF_N)}, got {prompts} and {draws}")
    samples = world.samples(SPLIT, prompts)
    responses = [[world.write(s, rng) for _ in range(draws)]
                 for i, s in enumerate(samples) for rng in [np.random.default_rng([seed, i])]]
    gold = np.stack([world.gold_scores([s.record] * draws, texts) for s, texts in zip(samples, responses, strict=True)])
    writers_gold, writers_se = mean_and_se(gold.mean(axis=1))
    greedy = [prefix_greedy(texts) for texts in responses]
    greedy_gold, greedy_se = mean_and_se(world.gold_scores([s.record for s in samples], greedy))
    figures: dict[str, Any] = {
        "world": world.env_id, "split": SPLIT, "prompts": prompts, "draws": draws, "seed": seed,
        "writers": {"gold": writers_gold, "gold_se": writers_se},
        "prefix_greedy": {"gold": greedy_gold, "gold_se": greedy_se},
        "best_of_n": [],
    }
    for n in BEST_OF_N:
        picked, picked_se = mean_and_se(best_of_n(gold, gold, n))
        figures["best_of_n"].append({
            "n": n, "kl": best_of_n_kl(n), "gold": picked, "gold_se": picked_se,
            "headroom_closed": headroom_closed(picked, writers_gold),
        })
    if all(s.reference is not None for s in samples):
        reference_gold = world.gold_scores([s.record for s in samples], [s.reference for s in samples])
        mean, se = mean_and_se(reference_gold)
        figures["references"] = {"gold": mean, "gold_se": se, "share_good": float(np.mean(reference_gold >= GOOD_REFERENCE))}
    figures["decisions"] = decision_shares(world, samples, responses, greedy)
    return figures


def prefix_greedy(texts: list[str]) -> str:
    """The greedy response of the empirical mixture ``texts``: word by word, the most common
    next word (or the end) among the texts that share the words chosen so far; ties go to
    the word seen first.

    Example:
        >>> prefix_greedy([" a b", " a c", " a c", " d e", " d f"])
        ' a c'
    """
    pool = [text.split() for text in texts]
    chosen: list[str] = []
    while pool:
        nexts = Counter(words[len(chosen)] if len(words) > len(chosen) else None for words in pool)
        word = nexts.most_common(1)[0][0]
        if word is None:
            break
        chosen.append(word)
        pool = [words for words in pool if len(words) >= len(chosen) and words[len(chosen) - 1] == word]
    leading = " " if texts and texts[0].startswith(" ") else ""
    return leading + " ".join(chosen)


def decision_shares(
    world: World, samples: list, responses: list[list[str]], greedy: list[str]
) -> dict[str, dict[str, Any]]:
    """Per exposed decision: the share of prompts whose prefix-greedy response, and whose
    modal writer option, is not the best, and the share of draws taking the best option
    (empty: the world exposes none)."""
    taken = [[world.decisions(s.record, text) for text in texts] for s, texts in zip(samples, responses, strict=True)]
    best = [world.best_decisions(s.record) for s in samples]
    names = list(dict.fromkeys(name for b in best for name in b))  # a decision may exist for some prompts only
    figures = {}
    for name in names:
        rows = [i for i, b in enumerate(best) if name in b]
        modal = {i: Counter(choice[name] for choice in taken[i]).most_common(1)[0][0] for i in rows}
        figures[name] = {
            "prompts": len(rows),
            "greedy_not_best": float(np.mean([world.decisions(samples[i].record, greedy[i])[name] != best[i][name] for i in rows])),
            "modal_not_best": float(np.mean([modal[i] != best[i][name] for i in rows])),
            "draws_best": float(np.mean([c[name] == best[i][name] for i in rows for c in taken[i]])),
        }
    return figures


def render_writer_audit(figures: dict[str, Any]) -> list[str]:
    """The design audit as Markdown lines."""
    w = figures["writers"]
    lines = [
        f"Writers of {figures['world']} on the first {figures['prompts']} {figures['split']} prompts, "
        f"{figures['draws']} draws each (seed {figures['seed']}); ± one standard error over prompts.",
        "",
        "| | gold | headroom closed | KL (nats) |",
        "|---|---|---|---|",
        f"| writers (≈ SFT at T=1) | {w['gold']:.3f} ± {w['gold_se'] or 0:.3f} | | |",
        f"| prefix-greedy (≈ SFT greedy) | {figures['prefix_greedy']['gold']:.3f} ± {figures['prefix_greedy']['gold_se'] or 0:.3f} | | |",
        *[f"| best-of-{b['n']} by gold | {b['gold']:.3f} ± {b['gold_se'] or 0:.3f} | "
          f"{b['headroom_closed'] if b['headroom_closed'] is None else format(b['headroom_closed'], '.0%')} | {b['kl']:.3f} |"
          for b in figures["best_of_n"]],
    ]
    if "references" in figures:
        r = figures["references"]
        lines.append(f"| references | {r['gold']:.3f} ± {r['gold_se'] or 0:.3f} | share ≥ {GOOD_REFERENCE}: {r['share_good']:.0%} | |")
    if figures["decisions"]:
        lines += ["", "| decision | prefix-greedy misses the best | modal option is not the best | draws taking the best |",
                  "|---|---|---|---|"]
        lines += [f"| {name} | {d['greedy_not_best']:.2f} | {d['modal_not_best']:.2f} | {d['draws_best']:.2f} |"
                  for name, d in figures["decisions"].items()]
    return lines
