"""The next-token distribution a causal LM gives at a `TokenVectorEnv` observation.

A policy, a reference policy or a mask model that reads the env's ``(N, L)`` buffer
without a KV cache needs the model's output at one column per row: the last real token,
column ``P + t - 1`` with ``t = attention_mask[:, P:].sum(-1)`` (see the layout table in
`rlhf_gym.env.vector_env.TokenVectorEnv`). This module is the one home of that read, shared
by the KL-to-reference reward wrapper (`rlhf_gym.env.kl_penalty`) and the SB3
adapters (``rlhf_gym.agents.sb3``).

Each row's real tokens are one contiguous block (left-padded prompt, then the response),
so the block can be moved to the right edge of a narrower buffer without changing what the
model computes: with position ids counted over real tokens
(`rlhf_gym.lm.layout.position_ids_from_attention_mask`), a causal model's output at the
last real token depends only on the real tokens before it, not on where padding sits.
Every row then ends at the last column, ``logits_to_keep=1`` projects one position per row
onto the vocabulary, and the buffer is only as wide as the longest real block in the
batch (padding to the right of the current token and columns that are padding in every
row are never computed).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import torch
from transformers import DynamicCache, PreTrainedModel

from rlhf_gym.lm.layout import position_ids_from_attention_mask


def current_positions(attention_mask: torch.Tensor, prompt_width: int) -> torch.Tensor:
    """Column of each row's last real token, ``P + t - 1``: (N,) int64.

    Example:
        >>> import torch
        >>> mask = torch.tensor([[0, 1, 1, 0, 0], [1, 1, 1, 1, 0]])  # P = 3; t = 0 and t = 1
        >>> current_positions(mask, prompt_width=3).tolist()
        [2, 3]
    """
    if not 1 <= prompt_width <= attention_mask.shape[-1]:
        raise ValueError(
            f"prompt_width must be in [1, {attention_mask.shape[-1]}] (the observation width), "
            f"got {prompt_width}"
        )
    generated = attention_mask[:, prompt_width:].long().sum(-1)  # (N,) t
    return prompt_width + generated - 1


def right_align(
    input_ids: torch.Tensor, attention_mask: torch.Tensor, prompt_width: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Move each row's real tokens to the right edge of a ``(N, W)`` buffer.

    ``W`` is the longest real block in the batch; shorter rows are left-padded (mask 0,
    token id 0). Accepts float ids (SB3's rollout buffer stores observations as float32;
    ids below 2**24 are exact in float32, so ``.long()`` recovers them).

    Args:
        input_ids: (N, L) token ids, int64 or exactly-integral floats.
        attention_mask: (N, L) 0/1.
        prompt_width: P, the width of the prompt block.

    Returns:
        input_ids (N, W) int64 and attention_mask (N, W) int64.

    Raises:
        ValueError: a row with no real token, or whose real tokens are not one block
            ending at ``P + t - 1`` (not a `TokenVectorEnv` observation).

    Example:
        >>> import torch
        >>> ids = torch.tensor([[9, 5, 6, 7, 9], [9, 9, 5, 9, 9]])
        >>> mask = torch.tensor([[0, 1, 1, 1, 0], [0, 0, 1, 0, 0]])
        >>> aligned_ids, aligned_mask = right_align(ids, mask, prompt_width=3)
        >>> aligned_ids.tolist(), aligned_mask.tolist()
        ([[5, 6, 7], [0, 0, 5]], [[1, 1, 1], [0, 0, 1]])
    """
    mask = attention_mask.long()
    current, num_real = _check_one_block(mask, prompt_width)
    return _right_align_checked(input_ids, current, num_real)


def _right_align_checked(
    input_ids: torch.Tensor, current: torch.Tensor, num_real: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """`right_align` for rows already checked: their current columns and real-token counts."""
    width = int(num_real.max())
    columns = torch.arange(width, device=current.device)
    source = current[:, None] - (width - 1) + columns[None, :]  # (N, W) column read from
    valid = columns[None, :] >= (width - num_real)[:, None]  # (N, W) real-token slots
    ids = input_ids.long().gather(1, source.clamp(min=0)) * valid
    return ids, valid.long()


def _check_one_block(mask: torch.Tensor, prompt_width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Each row's current column and number of real tokens, (N,) each; raises on a bad layout."""
    current = current_positions(mask, prompt_width)  # (N,)
    num_real = mask.sum(-1)  # (N,)
    first_real = mask.argmax(-1)  # (N,) first column with mask 1
    if bool((num_real == 0).any()):
        rows = torch.nonzero(num_real == 0).flatten().tolist()
        raise ValueError(f"observation rows {rows[:8]} have no real token (attention_mask all 0)")
    broken = first_real + num_real - 1 != current
    if bool(broken.any()):
        rows = torch.nonzero(broken).flatten().tolist()
        raise ValueError(
            f"observation rows {rows[:8]} do not hold one block of real tokens ending at column "
            f"P + t - 1 (P = {prompt_width}); is prompt_width the env's max_prompt_tokens?"
        )
    return current, num_real


def shared_prefix_hosts(
    input_ids: torch.Tensor, attention_mask: torch.Tensor, prompt_width: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """For each row, a row of the batch that contains it as a prefix, and how much longer it is.

    Two observations of the same episode share the prompt block and the earlier one's
    response is a prefix of the later one's. A causal model's output at the earlier row's
    current token is then its output at the matching column of the later row, so one
    forward over the later row serves both. SB3 update minibatches hold several steps of
    the same episode (A2C's holds all of them), which is where this saves forwards.

    Every row gets the longest row that contains it (ties: the lowest index), so hosts are
    rows that no other row contains, and every host is its own host.

    Args:
        input_ids: (N, L) observation token ids (int64, or exactly-integral floats).
        attention_mask: (N, L) observation mask; responses start at column ``prompt_width``.
        prompt_width: P, the env's ``max_prompt_tokens``.

    Returns:
        host (N,) int64, the row to read, and offset (N,) int64 ``>= 0``, how many tokens
        the host's current position lies beyond this row's.

    Example:
        >>> import torch
        >>> ids = torch.tensor([[7, 1, 0, 0], [7, 1, 2, 0], [7, 3, 0, 0], [7, 1, 2, 0]])
        >>> mask = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 0], [1, 1, 0, 0], [1, 1, 1, 0]])
        >>> host, offset = shared_prefix_hosts(ids, mask, prompt_width=1)
        >>> host.tolist(), offset.tolist()
        ([1, 1, 2, 1], [1, 0, 0, 0])
    """
    mask = attention_mask.long()
    ids = input_ids.long() * mask  # padding reads as 0 whatever the buffer holds there
    generated = mask[:, prompt_width:].sum(-1)  # (N,) t
    prompt_block = torch.cat([ids[:, :prompt_width], mask[:, :prompt_width]], dim=1)
    _, prompt_group = torch.unique(prompt_block, dim=0, return_inverse=True)  # (N,)
    responses = ids[:, prompt_width:]  # (N, T) response tokens left-aligned, then 0
    n = ids.shape[0]
    host = torch.arange(n, device=ids.device)
    columns = torch.arange(responses.shape[1], device=ids.device)
    groups, sizes = torch.unique(prompt_group, return_counts=True)
    for group in groups[sizes > 1].tolist():  # a prompt seen once has only itself to share with
        rows = torch.nonzero(prompt_group == group).flatten()
        r, t = responses[rows], generated[rows]  # (n_g, T), (n_g,)
        # contains[a, b]: row b's response starts with row a's whole response.
        same_or_beyond = (r[:, None, :] == r[None, :, :]) | (columns >= t[:, None])[:, None, :]
        contains = same_or_beyond.all(-1) & (t[None, :] >= t[:, None])
        # Among containing rows prefer the longest, then the lowest index.
        preference = t[None, :] * (n + 1) + (n - rows)[None, :]
        best = torch.where(contains, preference, torch.full_like(preference, -1)).argmax(-1)
        host[rows] = rows[best]
    return host, generated[host] - generated


def next_token_outputs(
    model: PreTrainedModel,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    prompt_width: int,
    *,
    vocab_size: int | None = None,
    output_hidden: bool = False,
    share_prefixes: bool = True,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The model's next-token logits at each row's current position, and its last hidden state.

    One forward over the right-aligned buffer (see the module docstring); the logits come
    from the model's own head (so logit scaling or soft-capping of any architecture
    applies), un-tempered. With ``share_prefixes``, rows that are a prefix of another row
    (earlier steps of the same episode, `shared_prefix_hosts`) are read from that row's
    forward instead of getting their own: the same outputs (up to float summation order)
    from fewer rows.

    Args:
        model: an ``AutoModelForCausalLM`` that accepts ``position_ids`` and ``logits_to_keep``.
        input_ids: (N, L) observation token ids (int64, or float32 from an SB3 buffer).
        attention_mask: (N, L) observation mask.
        prompt_width: P, the env's ``max_prompt_tokens``.
        vocab_size: keep the first ``vocab_size`` logits, the env's ``len(tokenizer)``:
            models may pad their embedding matrix beyond the tokenizer (Pythia has 50304
            rows for 50277 tokens), and ids past the tokenizer are not valid actions.
        output_hidden: also return the last hidden state at that position.
        share_prefixes: forward only the rows no other row contains.

    Returns:
        logits (N, V) float32 (V = ``vocab_size`` or the model's), and hidden (N, d)
        (``hidden_states[-1]``, after the final layer norm for GPT-2 and Llama-style
        models) or None.
    """
    if share_prefixes:
        current, num_real = _check_one_block(attention_mask.long(), prompt_width)
        host, offset = shared_prefix_hosts(input_ids, attention_mask, prompt_width)
        forwarded, row_of_host = torch.unique(host, return_inverse=True)  # hosts; each row's host
        ids, mask = _right_align_checked(input_ids[forwarded], current[forwarded], num_real[forwarded])
    else:
        ids, mask = right_align(input_ids, attention_mask, prompt_width)
        row_of_host = torch.arange(ids.shape[0], device=ids.device)
        offset = torch.zeros_like(row_of_host)
    keep = int(offset.max()) + 1 if offset.numel() else 1  # columns from the right to project
    out = model(
        input_ids=ids,
        attention_mask=mask,
        position_ids=position_ids_from_attention_mask(mask),
        logits_to_keep=keep,
        output_hidden_states=output_hidden,
        use_cache=False,
    )
    logits = _keep_vocab(out.logits[row_of_host, keep - 1 - offset].float(), vocab_size)  # (N, V)
    hidden = out.hidden_states[-1][row_of_host, -1 - offset] if output_hidden else None  # (N, d)
    return logits, hidden


def _keep_vocab(logits: torch.Tensor, vocab_size: int | None) -> torch.Tensor:
    """The first ``vocab_size`` logits (the tokenizer's ids; models may pad their head)."""
    if vocab_size is None:
        return logits
    if vocab_size > logits.shape[-1]:
        raise ValueError(
            f"vocab_size {vocab_size} exceeds the model's {logits.shape[-1]} output logits; "
            "the policy and the env's tokenizer do not match"
        )
    return logits[:, :vocab_size]


class PromptCache:
    """The prompt block's keys and values, computed once per prompt and reused every step.

    A stateless reader of the observation (an SB3 policy during a rollout) re-encodes the
    whole context at every step, yet the prompt block, most of the context, is the same
    at every step of an episode. This cache forwards each distinct prompt block once and
    keeps its keys and values and its outputs at the last prompt column; a step then
    forwards only the response columns on top of them. The outputs equal
    `next_token_outputs`' to float precision.

    Entries hold for one set of weights: the cache is keyed on the parameters' in-place
    version counters and empties itself when any changes (an optimiser step,
    ``load_state_dict``). Use it only without gradients: cached tensors are detached.

    Args:
        max_prompts: distinct prompts kept (least recently used ones are dropped).
    """

    def __init__(self, max_prompts: int = 512) -> None:
        if max_prompts < 1:
            raise ValueError(f"max_prompts must be >= 1, got {max_prompts}")
        self.max_prompts = int(max_prompts)
        self._entries: OrderedDict[bytes, _PromptEntry] = OrderedDict()
        self._weights_version: tuple[int, ...] | None = None
        self.prompt_forwards = 0  # prompt blocks forwarded so far (a cache miss each)

    @torch.no_grad()
    def outputs(
        self,
        model: PreTrainedModel,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        prompt_width: int,
        *,
        vocab_size: int | None = None,
        output_hidden: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """What `next_token_outputs` returns, from cached prompts plus the response columns."""
        mask = attention_mask.long()
        current, _ = _check_one_block(mask, prompt_width)
        ids = input_ids.long() * mask
        # An optimiser step bumps a parameter's version; assigning ``.data`` (TRPO's line
        # search) replaces its storage.
        version = tuple(v for p in model.parameters() for v in (p._version, p.data_ptr()))
        if version != self._weights_version:
            self._entries.clear()
            self._weights_version = version
        entries = self._lookup(model, ids[:, :prompt_width], mask[:, :prompt_width])
        logits = torch.stack([e.logits for e in entries])  # (N, V) at the last prompt column
        hidden = torch.stack([e.hidden for e in entries]) if output_hidden else None
        generated = current - (prompt_width - 1)  # (N,) t
        rows = torch.nonzero(generated > 0).flatten()
        if rows.numel():
            t = generated[rows]
            width = int(t.max())
            cache = DynamicCache()
            for layer in range(len(entries[0].keys)):
                cache.update(
                    torch.stack([entries[i].keys[layer] for i in rows.tolist()]),
                    torch.stack([entries[i].values[layer] for i in rows.tolist()]),
                    layer,
                )
            response_mask = mask[rows, prompt_width : prompt_width + width]
            prompt_mask = mask[rows, :prompt_width]
            columns = torch.arange(width, device=ids.device)
            out = model(
                input_ids=ids[rows, prompt_width : prompt_width + width],
                attention_mask=torch.cat([prompt_mask, response_mask], dim=1),
                position_ids=prompt_mask.sum(-1, keepdim=True) + columns[None, :],
                cache=cache,
                output_hidden_states=output_hidden,
                use_cache=False,
            )
            logits[rows] = out.logits[torch.arange(rows.numel()), t - 1].float()
            if hidden is not None:
                hidden[rows] = out.hidden_states[-1][torch.arange(rows.numel()), t - 1]
        return _keep_vocab(logits, vocab_size), hidden

    def _lookup(self, model: PreTrainedModel, prompt_ids: torch.Tensor, prompt_mask: torch.Tensor) -> list[_PromptEntry]:
        """Each row's entry, forwarding the prompt blocks not cached yet in one batch."""
        keys = [row.cpu().numpy().tobytes() for row in torch.cat([prompt_ids, prompt_mask], dim=1)]
        missing = list(dict.fromkeys(k for k in keys if k not in self._entries))
        if missing:
            first_row = {k: i for i, k in reversed(list(enumerate(keys)))}
            rows = torch.tensor([first_row[k] for k in missing], device=prompt_ids.device)
            out = model(
                input_ids=prompt_ids[rows],
                attention_mask=prompt_mask[rows],
                position_ids=position_ids_from_attention_mask(prompt_mask[rows]),
                output_hidden_states=True,
                use_cache=True,
                logits_to_keep=1,
            )
            self.prompt_forwards += len(missing)
            for j, key in enumerate(missing):
                self._entries[key] = _PromptEntry(
                    keys=[layer.keys[j] for layer in out.cache.layers],
                    values=[layer.values[j] for layer in out.cache.layers],
                    logits=out.logits[j, -1].float(),
                    hidden=out.hidden_states[-1][j, -1],
                )
        for key in keys:
            self._entries.move_to_end(key)
        entries = [self._entries[k] for k in keys]
        while len(self._entries) > self.max_prompts:
            self._entries.popitem(last=False)
        return entries


def next_token_reader(cache_prompts: bool) -> Callable[..., tuple[torch.Tensor, torch.Tensor | None]]:
    """`next_token_outputs`, or a new `PromptCache`'s ``outputs`` (for no-grad readers of
    a frozen or rarely updated model: a reference, a mask model)."""
    return PromptCache().outputs if cache_prompts else next_token_outputs


@dataclass
class _PromptEntry:
    keys: list[torch.Tensor]  # per layer (heads, P, head_dim)
    values: list[torch.Tensor]
    logits: torch.Tensor  # (V,) at the last prompt column
    hidden: torch.Tensor  # (d,) last hidden state there
