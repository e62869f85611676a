"""The runtime environment: what ``gym.make`` and ``gym.make_vec`` return, and its inputs.

- `vector_env`: `TokenVectorEnv`, the batched token env on any torch device (the core);
- `single_env`: `TokenEnv`, its N=1 numpy view for ``gym.make``;
- `prompts`: prompt sources (a world's generated posts, a Hugging Face dataset);
- `seeding`: per-sub-env seed streams;
- `rollout`: episode-synchronous rollouts of a `CausalLMPolicy` (``collect_episodes``)
  and the paired comparison of two policies on the same posts;
- `kl_penalty`: `KLRewardWrapper`, the KL-to-reference reward for agents that only see
  rewards.
"""
