"""`PromptTokenCache`: a prompt's token ids, tokenised once and reused while the prompt recurs.

Tokenising a prompt is the largest per-reset cost of `rlhf_gym.env.vector_env.TokenVectorEnv`'s
bookkeeping: a fast BPE tokenizer takes ~100 µs for a 500-character prompt, more than the
rest of a step's per-row work together. Prompts recur in ordinary use:

- the k sub-envs of a group (GRPO, RLOO, best-of-n) share each prompt;
- evaluation replays a fixed split, once per seed or checkpoint;
- a dataset prompt source is sampled with replacement, epoch after epoch.

So the env keeps the ids of recently seen prompts, keyed by the prompt's index in its
source, and checks the text on every hit: a source whose prompt at an index changes (a
prompt source swapped on the env) is tokenised anew, never served stale ids.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from transformers import PreTrainedTokenizerBase

from rlhf_gym.env.prompts import Prompt
from rlhf_gym.lm.layout import tokenize_left_truncated


class PromptTokenCache:
    """Left-truncated token ids of prompts, at most ``capacity`` of them (oldest evicted first).

    Args:
        tokenizer: the policy's tokenizer.
        max_tokens: keep at most the last ``max_tokens`` ids of each prompt (the prompt block).
        capacity: how many prompts to remember; 0 tokenises every prompt every time.

    ``hits`` and ``misses`` count prompts served from the cache and texts tokenised.
    """

    def __init__(self, tokenizer: PreTrainedTokenizerBase, max_tokens: int, capacity: int = 16384) -> None:
        if not isinstance(capacity, (int, np.integer)) or isinstance(capacity, bool) or capacity < 0:
            raise ValueError(f"capacity must be an integer >= 0 (0 turns the cache off), got {capacity!r}")
        self.tokenizer = tokenizer
        self.max_tokens = int(max_tokens)
        self.capacity = int(capacity)
        self._entries: dict[int, tuple[str, np.ndarray]] = {}  # prompt index -> (text, ids); insertion order = age
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def token_ids(self, prompts: Sequence[Prompt]) -> list[np.ndarray]:
        """Each prompt's ids (int64, at most ``max_tokens``), tokenising each distinct missing text once.

        Raises:
            ValueError: a prompt tokenises to no tokens (naming its index).
        """
        rows: list[np.ndarray | None] = [None] * len(prompts)
        missing: dict[str, list[int]] = {}  # text -> positions in `prompts` that need it
        for position, prompt in enumerate(prompts):
            entry = self._entries.get(prompt.index)
            if entry is not None and entry[0] == prompt.text:
                rows[position] = entry[1]
            else:
                missing.setdefault(prompt.text, []).append(position)
        self.hits += len(prompts) - sum(len(p) for p in missing.values())
        self.misses += len(missing)
        if missing:
            texts = list(missing)
            tokenised = tokenize_left_truncated(self.tokenizer, texts, self.max_tokens)
            empty = [prompts[missing[t][0]].index for t, ids in zip(texts, tokenised, strict=True) if not ids]
            if empty:
                raise ValueError(f"prompts {empty} tokenise to no tokens; a prompt needs at least one")
            for text, ids in zip(texts, tokenised, strict=True):
                array = np.asarray(ids, dtype=np.int64)
                array.flags.writeable = False  # shared between rows and calls
                for position in missing[text]:
                    rows[position] = array
                self._remember(prompts[missing[text][0]], array)
        return rows  # type: ignore[return-value]  # every position is filled above

    def _remember(self, prompt: Prompt, ids: np.ndarray) -> None:
        if self.capacity == 0:
            return
        self._entries.pop(prompt.index, None)
        if len(self._entries) >= self.capacity:
            del self._entries[next(iter(self._entries))]
        self._entries[prompt.index] = (prompt.text, ids)
