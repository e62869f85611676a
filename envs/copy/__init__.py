"""RLHF-Copy-v0: copy a short digit sequence; the kit's seconds-scale example world.

## Description
The prompt shows 3–8 digits (no digit twice in a row) in 8 slots, the empty ones ``_``,
and the policy copies the digits after ``"OUT:"``, one digit per step. The SFT policy
learned from copies written by four writers, one drawn per prompt: one copies exactly
(35%), the others drop the last digit (25%), swap two neighbours (20%) or write one digit
twice (20%). The reward is a learned preference model trained on comparisons labelled by
simulated annotators who like longer copies a little; a gold judge scores every copy
exactly. The world exists to show and test the kit (``docs/adding_a_world.md``): its
assets build in seconds to a minute, and it is shallow (greedy SFT copies at gold 0.93,
T=0.7 at 0.77, references are perfect), so it declares no audit targets.

## Action Space
``Discrete(V)``: the next token id, ``V = len(tokenizer)`` (274 for the shipped BPE).

## Observation Space
``Dict(input_ids=Box(0, V-1, (L,), int64), attention_mask=Box(0, 1, (L,), int64))`` with
``L = max_prompt_tokens + max_new_tokens`` (24 + 16):

| columns | ``input_ids`` | ``attention_mask`` |
|---|---|---|
| ``[0, 24)`` | the prompt, left-padded with ``<pad>`` | 0 on padding, 1 on the prompt |
| ``[24, 24 + t)`` | the ``t`` tokens written so far | 1 |
| ``[24 + t, L)`` | ``<pad>`` | 0 |

The prompt text is ``"COPY: 4 1 7 2 _ _ _ _\\nOUT:"`` (13 tokens); the reference is ``" 4 1 7 2"``.

## Rewards
0 until the last step; then the preference model's score of (prompt, copy), normalised so
that references score mean 0 and std 1, minus ``missing_eos_penalty`` when the copy was
cut at ``max_new_tokens`` (off by default). With ``reward="gold"`` the gold judge's score
in [0, 1] is the reward instead (an oracle run). The last step's info reports ``gold``.

## Starting State
A sequence drawn from the split's id range (train ``[0, 10^6)``, valid
``[10^6, 10^6 + 10^4)``, test ``[10^6 + 10^4, 10^6 + 2·10^4)``).

## Episode End
1. Termination: the policy writes the EOS token ``<|endoftext|>``.
2. Truncation: ``max_new_tokens`` tokens without EOS.

## Arguments
Those of every world of the suite (see ``RLHF-Summarize-v0``); this world's defaults:

| name | type | default | meaning |
|---|---|---|---|
| ``split`` | str | ``"train"`` | ``"train"``, ``"valid"`` or ``"test"`` sequences |
| ``dataset`` | str, path or PromptSource | None | a dataset of 8-slot columns (``"4 1 7 _ _ _ _ _"``); no gold judge |
| ``template`` | str | ``"COPY: {}\\nOUT:"`` | how a dataset's prompt column becomes a prompt |
| ``tokenizer``, ``reward_model`` | str, path or object | shipped | the policy's tokenizer and the learned reward |
| ``max_prompt_tokens`` | int | 24 | prompt block (prompts are 13 tokens) |
| ``max_new_tokens`` | int | 16 | copy budget (the longest writer copy is 9 tokens) |
| ``reward`` | str | ``"preference"`` | ``"gold"``: the gold judge is the reward (an oracle run) |
| ``device``, ``missing_eos_penalty``, ``text_in_info``, ``trust_remote_code``, ``local_files_only`` | | | as in every world |

>>> import gymnasium as gym, rlhf_gym
>>> env = gym.make("RLHF-Copy-v0")
>>> obs, info = env.reset(seed=0)
>>> obs["input_ids"].shape
(40,)

## Vectorized Environment
``gym.make_vec("RLHF-Copy-v0", num_envs=N, device=...)`` returns the batched
`rlhf_gym.env.vector_env.TokenVectorEnv`; the single env is its N=1 numpy view.

## Preference Model
A 1-layer GPT-2 (d=64) with a scalar head, initialised from the SFT policy and trained
with the Bradley–Terry loss on 4,800 labelled pairs: 0.59 accuracy against the annotators
(their labels' Bayes rate is 0.73), 0.63 against the gold judge. It sees length better
than digits: it scores a reference with one digit appended above the reference itself
most of the time, so best-of-n by the proxy lowers gold (``assets/card.md``).

## Gold Judge
Per-position accuracy, ``#{i : r_i = t_i} / max(len(t), len(r))`` over whitespace-separated
items (`rlhf_gym.envs.copy.world.copy_gold`): 1 for an exact copy, 0 for an empty one; a
missing or extra digit costs its position and shifts the later ones.

## Tokenizer
Byte-level BPE trained on the generated world (274 tokens, from a 300-token budget): a digit with its
leading space is one token. EOS ``<|endoftext|>``, pad ``<pad>``.

## Version History
- v0: initial release.
"""

from __future__ import annotations

from pathlib import Path

from rlhf_gym.envs.copy.world import CopyWorld
from rlhf_gym.worlds import SuiteEnv, Task

WORLD = CopyWorld()
TASK = Task.from_world(WORLD, Path(__file__).resolve().parent / "assets")
SUITE_ENV = SuiteEnv.of(TASK, __name__)

__all__ = ["SUITE_ENV", "TASK", "WORLD"]
