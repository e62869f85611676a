"""Train the byte-level BPE tokenizer that an embedded task's models share.

Offline tasks cannot download GPT-2's tokenizer, so each one trains its own on text it
generates. The recipe is GPT-2's (Radford et al. 2019): byte-level pre-tokenisation, so
every string round-trips and nothing is ever unknown, and BPE merges learned on the
corpus (Sennrich et al. 2016). Two special tokens:

- ``<|endoftext|>``: EOS (and BOS, as in GPT-2). Nothing adds it automatically: the SFT
  data, the preference model's ``encode`` and the env append it where a response ends.
- ``<pad>``: padding, distinct from EOS, because sequence classifiers (and TRL) locate a
  row's last real token through ``pad_token_id``.

The returned tokenizer pads and truncates on the left, like ``rlhf_gym.lm.loading.load_tokenizer``
sets up every loaded tokenizer; both settings survive ``save_pretrained``.

Example:
    >>> tok = train_bpe_tokenizer(["the cat sat on the mat"] * 20, vocab_size=300)
    >>> tok.decode(tok(" the cat")["input_ids"])
    ' the cat'
    >>> tok.eos_token, tok.pad_token, tok.padding_side
    ('<|endoftext|>', '<pad>', 'left')
"""

from __future__ import annotations

from collections.abc import Iterable

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

from rlhf_gym.lm.loading import check_tokenizer

EOS_TOKEN = "<|endoftext|>"
PAD_TOKEN = "<pad>"
SPECIAL_TOKENS = (EOS_TOKEN, PAD_TOKEN)  # ids 0 and 1, in this order

# 256 byte symbols + the special tokens: the smallest vocabulary that can encode anything.
MIN_VOCAB_SIZE = 256 + len(SPECIAL_TOKENS)


def train_bpe_tokenizer(
    texts: Iterable[str], vocab_size: int = 2048, *, min_frequency: int = 2, split_digits: bool = False
) -> PreTrainedTokenizerFast:
    """Train a GPT-2-style byte-level BPE tokenizer on ``texts``.

    Training is deterministic: the same texts give the same vocabulary and merges. The
    vocabulary may stop short of ``vocab_size`` when the corpus has little lexical
    variety (no pair left that occurs ``min_frequency`` times).

    Args:
        texts: the training corpus, one document per string.
        vocab_size: the largest vocabulary, special tokens included; at least 258
            (the 256 byte symbols and the two special tokens).
        min_frequency: a pair is merged only if it occurs at least this often.
        split_digits: make every digit its own token (as LLaMA's tokenizer does), so that
            copying a number from the prompt is a digit-by-digit copy rather than a copy
            of arbitrary BPE chunks; small models copy numbers far more reliably this way.

    Returns:
        A fast tokenizer with EOS = BOS = ``<|endoftext|>`` (id 0), pad = ``<pad>`` (id 1),
        left padding and left truncation, adding no special tokens when encoding.

    Raises:
        ValueError: ``vocab_size`` or ``min_frequency`` is too small, or ``texts`` is empty.
    """
    if vocab_size < MIN_VOCAB_SIZE:
        raise ValueError(
            f"vocab_size must be >= {MIN_VOCAB_SIZE} (256 bytes + {len(SPECIAL_TOKENS)} special "
            f"tokens), got {vocab_size}"
        )
    if min_frequency < 1:
        raise ValueError(f"min_frequency must be >= 1, got {min_frequency}")
    corpus = list(texts)
    if not corpus or not any(corpus):
        raise ValueError(f"need at least one non-empty training text, got {len(corpus)} texts")

    # GPT-2's pipeline: no normaliser; ByteLevel pre-tokeniser with its regex split and
    # no added prefix space (so " cat" and "cat" stay distinct and decoding is exact).
    core = Tokenizer(models.BPE())
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    core.pre_tokenizer = (
        pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True), byte_level])
        if split_digits
        else byte_level
    )
    core.decoder = decoders.ByteLevel()
    # Byte-level post-processing only fixes offsets; it inserts no BOS/EOS.
    core.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=list(SPECIAL_TOKENS),
        # All 256 byte symbols are in the vocabulary even if the corpus lacks some, so
        # any text (non-ASCII included) encodes without an unknown token.
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    core.train_from_iterator(corpus, trainer=trainer, length=len(corpus))

    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core,
        eos_token=EOS_TOKEN,
        bos_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
        padding_side="left",
        truncation_side="left",
        # Decoding must invert encoding exactly (" ." must not become ".").
        clean_up_tokenization_spaces=False,
    )
    check_tokenizer(tokenizer, "trained BPE tokenizer")
    return tokenizer


__all__ = ["EOS_TOKEN", "PAD_TOKEN", "train_bpe_tokenizer"]
