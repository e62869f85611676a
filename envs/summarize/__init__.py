"""RLHF-Summarize-v0: TL;DR summarisation of generated Reddit-style posts.

## Description
The policy reads a Reddit-style post and writes a short summary after ``"TL;DR:"``, one
token per step, as in "Learning to summarize from human feedback" (Stiennon et al. 2020)
and "The N+ Implementation Details of RLHF with PPO" (Huang et al. 2024). The posts are
generated from latent records (who writes, the situation, 3–4 key facts with numbers and
events, one question, distractor sentences, and in 60% of posts a detail the author asks
readers to keep in mind), so a **gold judge** knows the true quality of every summary.

The gold judge credits eight decisions, each on its own
(`rlhf_gym.envs.summarize.deep`): the persona written the way the subreddit expects,
every key fact, the post's first fact leading, the question, the detail to keep in
mind, no filler, no distractor, and no invented number or name. The shipped SFT policy learned from summaries by four
writer personas, each right on one or two of the first seven and wrong on the rest, none of which
reads the subreddit's convention: every decision's best option is a minority of its
samples and not its greedy choice, so decoding alone does not find it, and the
references (the thorough writer's) are not the ceiling. The reward is a **learned
preference model** trained on comparisons labelled by noisy, length-biased simulated
annotators: a proxy of the gold judge, so reward over-optimisation (proxy up, gold down)
is measurable.

## Action Space
``Discrete(V)``: the next token id, ``V = len(tokenizer)`` (1,909 for the shipped BPE).

## Observation Space
``Dict(input_ids=Box(0, V-1, (L,), int64), attention_mask=Box(0, 1, (L,), int64))`` with
``L = max_prompt_tokens + max_new_tokens`` (240 + 64):

| columns | ``input_ids`` | ``attention_mask`` |
|---|---|---|
| ``[0, 240)`` | the prompt, left-padded with ``<pad>`` | 0 on padding, 1 on the prompt |
| ``[240, 240 + t)`` | the ``t`` tokens written so far | 1 |
| ``[240 + t, L)`` | ``<pad>`` | 0 |

The prompt text is ``"SUBREDDIT: r/...\\nTITLE: ...\\nPOST: ...\\nTL;DR:"``.

## Rewards
0 until the last step; then the preference model's score of (post, summary), normalised
so that reference summaries score mean 0 and std 1, minus ``missing_eos_penalty`` when the
summary was cut at ``max_new_tokens`` without EOS (off by default). With ``reward="gold"``
the gold judge's score in [0, 1] replaces the preference model's: an oracle run, the
ceiling an agent's learning reaches when the reward is the true preference. Gold lies in
[0, 1], while the normalised proxy spreads over several units across the SFT policy's
samples (references score mean 0, std 1; SFT samples at T=0.7 about -0.4 on average):
scale a KL coefficient to match (the oracle runs use ``kl_coef=0.01``). ``reward_model`` may
be any `rlhf_gym.rewards.reward_model.RewardModel` (its score replaces the preference
model's), and ``reward`` any registered scorer name or a `RewardModel` whose score is the
reward (see `TokenVectorEnv`, "Rewards"). The info of the last step reports ``proxy`` (the
reward model's score, whatever ``reward`` is; ``preference`` is a deprecated alias with the
same values), ``penalty``, ``gold`` (the gold judge's score in [0, 1]; NaN with a
``dataset``, which has no gold judge: ``has_gold_judge`` and ``metadata["has_gold_judge"]``
say which), ``response_length``, ``prompt_index``, ``prompt_text`` and ``response_text``.

## Starting State
A post drawn from the split's id range by the env's seeded stream (train: ids
``[0, 10^7)``, valid: ``[10^7, 10^7 + 10^5)``, test: ``[10^7 + 10^5, 10^7 + 2·10^5)``).

## Episode End
1. Termination: the policy writes the EOS token ``<|endoftext|>``.
2. Truncation: ``max_new_tokens`` tokens without EOS.

## Arguments
| name | type | default | meaning |
|---|---|---|---|
| ``split`` | str | ``"train"`` | ``"train"``, ``"valid"`` or ``"test"`` posts |
| ``dataset`` | str, path or PromptSource | None | a Hugging Face dataset instead of the generated posts (no gold judge then) |
| ``prompt_column``, ``reference_column``, ``template`` | str | ``"prompt"``, None, ``"{}\\nTL;DR:"`` | how dataset rows become prompts |
| ``tokenizer`` | str, path or tokenizer | shipped BPE | the policy's tokenizer |
| ``reward_model`` | str, path or RewardModel | shipped model | the learned reward (or a saved ``PreferenceEnsemble``) |
| ``device`` | str | ``"cpu"`` | where tensors and the preference model live |
| ``max_prompt_tokens`` | int | 240 | prompt block width (the longest generated prompts are ~230 tokens) |
| ``max_new_tokens`` | int | 64 | summary budget (the writers' longest summaries are ~60 tokens) |
| ``reward`` | str or RewardModel | ``"preference"`` | a registered scorer; ``"gold"``: the gold judge's score is the reward (an oracle) |
| ``missing_eos_penalty`` | float or None | None | subtracted from truncated summaries |
| ``text_in_info`` | bool | True | decoded texts in ``info`` |
| ``trust_remote_code`` | bool | False | allow hub code when loading by name |
| ``local_files_only`` | bool | False | never contact the hub |
| ``autoreset_mode``, ``group_size`` | | SAME_STEP, 1 | vector env only, see `TokenVectorEnv` |

>>> import gymnasium as gym, rlhf_gym
>>> env = gym.make("RLHF-Summarize-v0")
>>> obs, info = env.reset(seed=0)
>>> obs["input_ids"].shape
(304,)

## Vectorized Environment
``gym.make_vec("RLHF-Summarize-v0", num_envs=N, device=...)`` returns the batched
`rlhf_gym.env.vector_env.TokenVectorEnv` (torch tensors on ``device``, all three autoreset
modes, ``group_size``); the single env is its N=1 numpy view.

## Preference Model
A 2-layer GPT-2 (d=128) with a scalar head, initialised from the SFT policy and trained
with the Bradley–Terry loss on ≥50k annotator-labelled comparisons; see
``assets/card.md`` for its accuracy against annotators and the gold judge.

## Gold Judge
`rlhf_gym.envs.summarize.deep.deep_breakdown`: ``(0.25 recall + 0.15 ask + 0.10 lead +
0.10 format + 0.10 constraint + 0.10 concise + 0.10 focus + 0.10 faithful) × repetition ×
(0.5 + 0.5 well_formed)``, in [0, 1]. Recall needs each fact's number exact; the
faithfulness credit is 1, 0.5 or 0 for no, one, or more invented or contradicted numbers
and names. The ideal summary scores 1.0; the references about 0.55.

## Tokenizer
Byte-level BPE (1,909 tokens, from a 2,048-token budget) trained on the generated world, one token per digit; EOS
``<|endoftext|>``, pad ``<pad>``.

## Version History
- v0: initial release.
- v0, reward seam (rewards unchanged): info gains ``proxy``, the learned reward's score;
  ``preference`` holds the same values and goes in the next version. ``gold`` is NaN,
  instead of absent, when there is no gold judge. ``reward_model`` and ``reward`` accept
  any ``RewardModel``, and ``reward`` any registered scorer name.
- v0, deep world (protocol ``summarize-test-v2``): the posts may ask readers to keep a
  detail in mind, the gold judge credits eight decisions, and the SFT policy, preference
  model and tokenizer were rebuilt from four writer personas; the prompt block grew to
  240 tokens. Scores of the first world (``summarize-test-v1``) are not comparable.
"""

from __future__ import annotations

from pathlib import Path

from rlhf_gym.envs.summarize.deep import DeepSummarizeWorld
from rlhf_gym.worlds import SuiteEnv, Task

WORLD = DeepSummarizeWorld()
TASK = Task.from_world(WORLD, Path(__file__).resolve().parent / "assets")
SUITE_ENV = SuiteEnv.of(TASK, __name__)

__all__ = ["SUITE_ENV", "TASK", "WORLD"]
