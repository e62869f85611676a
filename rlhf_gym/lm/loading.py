"""Load Hugging Face components (tokenizers, models, datasets) by hub id or local path.

Every env component can be swapped for a real one by name. This module is the one place
that turns a name into an object, so that the failure a user meets is always one clear
line: which artifact is missing and how to supply it as a local folder, or why a
checkpoint is refused.

Checkpoints are untrusted: `rlhf-gym evaluate` and ``leaderboard verify`` load strangers'
policies, and ``gym.make(..., reward_model=...)`` a stranger's reward model. Loading one
must not run its code, so every model load here

- asks transformers for safetensors only (``use_safetensors=True``; pickled weights such as
  ``pytorch_model.bin`` can run arbitrary code when unpickled, even through
  ``torch.load(weights_only=True)`` on torch <= 2.5.1, CVE-2025-32434), and refuses a local
  folder holding only pickled weights before anything is read from it;
- refuses a config or tokenizer config with an ``auto_map`` (classes imported from Python
  files shipped with the checkpoint) unless the caller passed ``trust_remote_code=True``;
- returns float32 weights unless the caller asks for a ``dtype`` (transformers 5 defaults
  to ``dtype="auto"``, the dtype on disk, so an fp16 checkpoint would otherwise run in fp16
  on CPU).

docs/security.md describes what is refused and how to convert a checkpoint.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)
from transformers.utils import cached_file, try_to_load_from_cache
from transformers.utils import logging as hf_logging

# Weight files whose loading unpickles (torch.save, PyTorch Lightning, plain pickle), and
# sharded-pickle indexes (``pytorch_model.bin.index.json``).
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle", ".bin.index.json")
SAFETENSORS_SUFFIXES = (".safetensors", ".safetensors.index.json")
# The files whose ``auto_map`` makes transformers import Python shipped with a checkpoint.
REMOTE_CODE_CONFIGS = ("config.json", "tokenizer_config.json")
CONVERT_HINT = (
    "convert it to safetensors on a machine you trust (load it there, then "
    "`model.save_pretrained(dir, safe_serialization=True)`) and pass that folder"
)
REMOTE_CODE_HINT = (
    "pass trust_remote_code=True (to gym.make or the loader) only for a component you trust; "
    "the leaderboard never runs remote code"
)


class MissingArtifactError(FileNotFoundError):
    """A tokenizer, model or dataset could not be found locally or on the hub."""


class UnsafeCheckpointError(ValueError):
    """A checkpoint refused because loading it could run its code.

    Raised before anything from the checkpoint is unpickled or imported, for pickled
    weights without safetensors beside them, a remote-code ``auto_map`` when remote code
    was not allowed, or an ensemble member outside its ensemble folder. The message is one
    line naming the file or folder and the reason.
    """


def one_line(text: object) -> str:
    """``text`` with every run of whitespace (newlines included) collapsed to one space."""
    return " ".join(str(text).split())


def missing_artifact_message(kind: str, name_or_path: str, cause: BaseException) -> str:
    """Explain, in one line, which artifact is missing and how to supply it.

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
        f"the local folder DIR instead. Underlying error: {type(cause).__name__}: {one_line(cause)}"
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


# Refusing unsafe checkpoints ----------------------------------------------------------
def _read_json_object(path: Path) -> dict[str, Any] | None:
    """The JSON object in ``path``, or None if absent or unreadable (transformers then
    reports the broken file itself, as a missing artifact)."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _is_pickle(name: str) -> bool:
    return name.endswith(PICKLE_SUFFIXES)


def check_checkpoint(
    name_or_path: str | os.PathLike[str],
    *,
    weights: bool,
    trust_remote_code: bool = False,
    subfolder: str = "",
) -> None:
    """Refuse a local checkpoint whose loading could run its code; hub ids pass through.

    Reads only JSON and file names. A hub id is left to transformers (loaded with
    ``use_safetensors=True``; its refusals are translated by the loaders below).

    Args:
        name_or_path: the folder (or file) the user gave, or a hub id.
        weights: whether model weights will be loaded (False for a tokenizer).
        trust_remote_code: allow an ``auto_map`` (the caller trusts this checkpoint's code).
        subfolder: the ``subfolder`` passed to ``from_pretrained``, if any.

    Raises:
        UnsafeCheckpointError: ``name_or_path`` is a pickle file; or its folder holds
            pickled weights and no ``*.safetensors``; or its config names non-safetensors
            weights (``transformers_weights``); or an ``auto_map`` without
            ``trust_remote_code``.

    Example:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp())
        >>> _ = (folder / "pytorch_model.bin").write_bytes(b"not read")
        >>> try:
        ...     check_checkpoint(folder, weights=True)
        ... except UnsafeCheckpointError as error:
        ...     print("pickled weights" in str(error))
        True
    """
    path = Path(name_or_path)
    if path.is_file():
        if _is_pickle(path.name):
            raise UnsafeCheckpointError(
                f"refusing to load {path}: a pickled weight file can run arbitrary code when loaded; {CONVERT_HINT}"
            )
        return
    folder = path / subfolder
    if not folder.is_dir():
        return  # a hub id, or missing: transformers reports it
    if not trust_remote_code:
        for name in REMOTE_CODE_CONFIGS:
            config = _read_json_object(folder / name)
            if config is not None and config.get("auto_map"):
                auto_map = config["auto_map"]
                classes = sorted(auto_map) if isinstance(auto_map, dict) else auto_map
                raise UnsafeCheckpointError(
                    f"refusing remote code in {folder / name}: its auto_map {classes} would import and run Python "
                    f"files shipped with the checkpoint; {REMOTE_CODE_HINT}"
                )
    if not weights:
        return
    config = _read_json_object(folder / "config.json") or {}
    named = config.get("transformers_weights")
    if named is not None and not str(named).endswith(SAFETENSORS_SUFFIXES):
        raise UnsafeCheckpointError(
            f"refusing to load {folder / 'config.json'}: its transformers_weights {named!r} is not a safetensors "
            f"file, and pickled weights can run arbitrary code when loaded; {CONVERT_HINT}"
        )
    names = sorted(entry.name for entry in folder.iterdir() if entry.is_file())
    pickles = [name for name in names if _is_pickle(name)]
    if pickles and not any(name.endswith(SAFETENSORS_SUFFIXES) for name in names):
        raise UnsafeCheckpointError(
            f"refusing to load {folder / pickles[0]}: the folder holds pickled weights and no *.safetensors, and "
            f"unpickling can run arbitrary code; {CONVERT_HINT}"
        )


def _cached_pickled_weights(repo_id: str, kwargs: dict[str, Any]) -> str | None:
    """The path of a pickled weight file cached for hub repo ``repo_id`` with no safetensors
    cached beside it, or None.

    Offline, transformers reports a cached repo with pickled weights only as a generic "Can't
    load the model" (its safetensors conversion needs the network); the cache tells why.
    """
    found = {}
    for filename in ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json"):
        try:
            found[filename] = try_to_load_from_cache(
                repo_id, filename, cache_dir=kwargs.get("cache_dir"), revision=kwargs.get("revision")
            )
        except ValueError:  # not a valid repo id
            return None
    paths = {name: path for name, path in found.items() if isinstance(path, str)}
    if any(name.endswith(SAFETENSORS_SUFFIXES) for name in paths):
        return None
    return next(iter(paths.values()), None)


def _load_error(kind: str, name_or_path: str, error: OSError | ValueError, kwargs: dict[str, Any]) -> Exception:
    """Translate a transformers loading error into our one-line error."""
    message = str(error)
    if "trust_remote_code=True" in message:  # transformers' refusal of a hub repo's custom code
        return UnsafeCheckpointError(
            f"refusing remote code in the {kind} {name_or_path!r}: it needs Python files shipped with the "
            f"checkpoint to load; {REMOTE_CODE_HINT}"
        )
    if kwargs.get("use_safetensors") and isinstance(error, OSError) and not os.path.exists(name_or_path):
        pickled = _cached_pickled_weights(name_or_path, kwargs)
        if "cannot be loaded with `safetensors`" in message or pickled is not None:  # a hub repo with pickled weights only
            return UnsafeCheckpointError(
                f"refusing to load the {kind} {name_or_path!r}: it has no model.safetensors, only pickled weights "
                f"({Path(pickled).name if pickled else 'pytorch_model.bin'}), and unpickling can run arbitrary code; "
                f"{CONVERT_HINT}"
            )
    return MissingArtifactError(missing_artifact_message(kind, name_or_path, error))


def _from_pretrained(
    kind: str, loader: Any, name_or_path: str | os.PathLike[str], *, weights: bool, trust_remote_code: bool, **kwargs: Any
) -> Any:
    """``loader.from_pretrained`` behind `check_checkpoint`, safetensors-only and float32 by
    default for weights, with transformers' errors translated to one line."""
    name_or_path = os.fspath(name_or_path)
    check_checkpoint(name_or_path, weights=weights, trust_remote_code=trust_remote_code, subfolder=kwargs.get("subfolder") or "")
    if weights:
        if kwargs.get("use_safetensors", True) is not True:
            raise ValueError(f"use_safetensors must stay True: pickled weights are never loaded, got {kwargs['use_safetensors']!r}")
        kwargs["use_safetensors"] = True
        if kwargs.get("dtype") is None and kwargs.get("torch_dtype") is None:
            kwargs["dtype"] = torch.float32
    try:
        with quiet_progress():
            return loader.from_pretrained(name_or_path, trust_remote_code=trust_remote_code, **kwargs)
    except (OSError, ValueError) as error:  # HF raises OSError (missing) or ValueError (HFValidationError, remote code)
        raise _load_error(kind, name_or_path, error, kwargs) from error


def find_file(
    name_or_path: str | os.PathLike[str],
    filename: str,
    *,
    revision: str | None = None,
    local_files_only: bool = False,
    cache_dir: str | os.PathLike[str] | None = None,
) -> Path | None:
    """The local path of ``filename`` beside a checkpoint (in its folder, or fetched from its
    hub repo into the cache), or None if the checkpoint has no such file.

    For small side files that transformers does not load itself, such as a preference
    model's reward normalisation.
    """
    try:
        found = cached_file(
            os.fspath(name_or_path), filename, revision=revision, local_files_only=local_files_only, cache_dir=cache_dir,
            _raise_exceptions_for_missing_entries=False, _raise_exceptions_for_connection_errors=False,
        )
    except (OSError, ValueError):  # an invalid repo id, a gated repo: the model load reports it
        return None
    return Path(found) if found else None


def load_tokenizer(
    name_or_path: str,
    *,
    revision: str | None = None,
    trust_remote_code: bool = False,
    local_files_only: bool = False,
    cache_dir: str | os.PathLike[str] | None = None,
) -> PreTrainedTokenizerBase:
    """Load a tokenizer and set it up for token-level generation envs.

    The returned tokenizer pads on the left (the env left-pads prompts) and truncates on
    the left (a long prompt loses its beginning, never the task suffix such as
    ``"TL;DR:"``). It must define an EOS token; if it lacks a pad token, a distinct one is
    required because sequence classifiers locate the last token through ``pad_token_id``.

    Args:
        name_or_path: hub id or local folder.
        revision: the hub branch, tag or commit (ignored for a local folder).
        trust_remote_code: allow a tokenizer class shipped as Python with the checkpoint.
        local_files_only: never reach the hub.
        cache_dir: the Hugging Face cache to use instead of the default one.

    Raises:
        MissingArtifactError: the tokenizer cannot be found.
        UnsafeCheckpointError: it needs remote code and ``trust_remote_code`` is False.
        ValueError: the tokenizer has no EOS token, or its pad token equals EOS.
    """
    tokenizer = _from_pretrained(
        "tokenizer",
        AutoTokenizer,
        name_or_path,
        weights=False,
        trust_remote_code=trust_remote_code,
        revision=revision,
        local_files_only=local_files_only,
        cache_dir=cache_dir,
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
    revision: str | None = None,
    trust_remote_code: bool = False,
    local_files_only: bool = False,
    **kwargs: Any,
) -> PreTrainedModel:
    """Load an ``AutoModelForCausalLM`` (a policy) by hub id or local path, in eval mode.

    Safetensors weights only, float32 unless ``dtype`` is given (see the module docstring).

    Args:
        name_or_path: hub id or local folder.
        revision: the hub branch, tag or commit (ignored for a local folder).
        trust_remote_code: allow model classes shipped as Python with the checkpoint.
        local_files_only: never reach the hub.
        **kwargs: passed to ``from_pretrained`` (``dtype``, ``attn_implementation``, ...).

    Raises:
        MissingArtifactError: the model cannot be found.
        UnsafeCheckpointError: pickled weights only, or remote code not allowed.
    """
    model = _from_pretrained(
        "causal language model",
        AutoModelForCausalLM,
        name_or_path,
        weights=True,
        trust_remote_code=trust_remote_code,
        revision=revision,
        local_files_only=local_files_only,
        **kwargs,
    )
    return model.eval()


def load_sequence_classifier(
    name_or_path: str,
    *,
    revision: str | None = None,
    trust_remote_code: bool = False,
    local_files_only: bool = False,
    **kwargs: Any,
) -> PreTrainedModel:
    """Load an ``AutoModelForSequenceClassification`` (a preference model), in eval mode.

    Same arguments, checks and errors as `load_causal_lm`.
    """
    model = _from_pretrained(
        "preference model",
        AutoModelForSequenceClassification,
        name_or_path,
        weights=True,
        trust_remote_code=trust_remote_code,
        revision=revision,
        local_files_only=local_files_only,
        **kwargs,
    )
    return model.eval()
