"""Language-model helpers every layer above builds on.

- `loading`: load tokenizers and models by hub id or path, offline-first, with clear errors;
- `layout`: the observation layout (left-padded prompt block, then the response) and its
  position ids;
- `policy`: `CausalLMPolicy`, a causal LM as a token-level policy: a KV-cached next-token
  step on the observation layout, response log-probs from a final observation, and the
  per-token KL to a reference;
- `observation_reader`: next-token outputs read from observations without a KV cache (for
  stateless readers: SB3 policies, the KL reward wrapper);
- `sampling`: batched, seeded text completions from prompt strings, through `policy`.
"""
