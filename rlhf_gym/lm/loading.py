"""Load Hugging Face components (tokenizers, models, datasets) by hub id or local path.

Every env component can be swapped for a real one by name. This module is the one place
that turns a name into an object, so that the failure a user meets offline is always the
same clear one: which artifact is missing and how to supply it as a local folder.
Remote code is never executed unless the caller opts in (`trust_remote_code=False`).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

from transformers import (
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)
from transformers.utils import logging as hf_logging


class MissingArtifactError(FileNotFoundError):
    """A tokenizer, model or dataset could not be found locally or on the hub."""


def missing_artifact_message(kind: str, name_or_path: str, cause: BaseException) -> str:
    """Explain which artifact is missing and how to supply it.

    Args:
        kind: what was being loaded, e.g. ``"tokenizer"`` or ``"preference model"``.
        name_or_path: the hub id or path the user gave.
        cause: the underlying loader error, quoted at the end.
    """
    if os.path.exists(name_or_path):
        where = f"the local path {name_or_path!r} exists but does not hold a loadable {kind}"
    else:
        where = (
            f"{name_or_path!r} is neither a local folder nor a hub id available in the "
            "Hugging Face cache (this machine may be offline)"
        )
    return (
        f"Could not load the {kind}: {where}. Download it on a connected machine "
        f"(`hf download {name_or_path} --local-dir DIR`, or `save_pretrained(DIR)`) and pass "
        f"the local folder DIR instead. Underlying error: {type(cause).__name__}: {cause}"
    )


@contextlib.contextmanager
def quiet_progress(enabled: bool = True) -> Iterator[None]:
    """Hide transformers' own progress bars ("Loading weights", "Writing model shards") inside
    the block, and restore the caller's setting after it (``enabled=False``: change nothing).

    Making an env loads its preference model; a thousand ``gym.make`` calls should not print
    two bars each.
    """
    if not enabled or not hf_logging.is_progress_bar_enabled():
        yield
        return
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.enable_progress_bar()


def _from_pretrained(kind: str, loader: Any, name_or_path: str, **kwargs: Any) -> Any:
    try:
        with quiet_progress():
            return loader.from_pretrained(name_or_path, **kwargs)
    except (OSError, ValueError) as error:  # HF raises OSError (missing) or HFValidationError
        raise MissingArtifactError(missing_artifact_message(kind, name_or_path, error)) from error


def load_tokenizer(
    name_or_path: str,
    *,
    trust_remote_code: bool = False,
    local_files_only: bool = False,
) -> PreTrainedTokenizerBase:
    """Load a tokenizer and set it up for token-level generation envs.

    The returned tokenizer pads on the left (the env left-pads prompts) and truncates on
    the left (a long prompt loses its beginning, never the task suffix such as
    ``"TL;DR:"``). It must define an EOS token; if it lacks a pad token, a distinct one is
    required because sequence classifiers locate the last token through ``pad_token_id``.

    Raises:
        MissingArtifactError: the tokenizer cannot be found.
        ValueError: the tokenizer has no EOS token, or its pad token equals EOS.
    """
    tokenizer = _from_pretrained(
        "tokenizer",
        AutoTokenizer,
        name_or_path,
        trust_remote_code=trust_remote_code,
        local_files_only=local_files_only,
    )
    check_tokenizer(tokenizer, name_or_path)
    tokenizer.padding_side = "left"
    tokenizer.truncation_side = "left"
    return tokenizer


def check_tokenizer(tokenizer: PreTrainedTokenizerBase, name: str = "tokenizer") -> None:
    """Raise ``ValueError`` unless the tokenizer has an EOS token and a distinct pad token."""
    if tokenizer.eos_token_id is None:
        raise ValueError(f"{name}: the tokenizer has no eos_token; set one (e.g. '</s>').")
    if tokenizer.pad_token_id is None:
        raise ValueError(
            f"{name}: the tokenizer has no pad_token; add a distinct one with "
            "`tokenizer.add_special_tokens({'pad_token': '<pad>'})` (pad must differ from EOS)."
        )
    if tokenizer.pad_token_id == tokenizer.eos_token_id:
        raise ValueError(
            f"{name}: pad_token_id == eos_token_id == {tokenizer.eos_token_id}; the env and "
            "sequence classifiers need a distinct pad token to find the last real token."
        )


def load_causal_lm(
    name_or_path: str,
    *,
    trust_remote_code: bool = False,
    local_files_only: bool = False,
    **kwargs: Any,
) -> PreTrainedModel:
    """Load an ``AutoModelForCausalLM`` (a policy) by hub id or local path, in eval mode."""
    model = _from_pretrained(
        "causal language model",
        AutoModelForCausalLM,
        name_or_path,
        trust_remote_code=trust_remote_code,
        local_files_only=local_files_only,
        **kwargs,
    )
    return model.eval()


def load_sequence_classifier(
    name_or_path: str,
    *,
    trust_remote_code: bool = False,
    local_files_only: bool = False,
    **kwargs: Any,
) -> PreTrainedModel:
    """Load an ``AutoModelForSequenceClassification`` (a preference model), in eval mode."""
    model = _from_pretrained(
        "preference model",
        AutoModelForSequenceClassification,
        name_or_path,
        trust_remote_code=trust_remote_code,
        local_files_only=local_files_only,
        **kwargs,
    )
    return model.eval()
