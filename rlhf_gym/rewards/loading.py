"""Load a learned reward by hub id or path: one preference model, or a saved ensemble.

The one place that knows both kinds, so `PreferenceModel` and `PreferenceEnsemble` need
not import each other: the ensemble builds on the single model, and this loader on both.
"""

from __future__ import annotations

import os
from typing import Any

from rlhf_gym.rewards.preference_ensemble import PreferenceEnsemble, is_ensemble_folder
from rlhf_gym.rewards.preference_model import PreferenceModel


def load_reward_model(
    name_or_path: str | os.PathLike[str], revision: str | None = None, **kwargs: Any
) -> PreferenceModel:
    """A `PreferenceEnsemble` if the folder holds one (``ensemble.json``), else a `PreferenceModel`.

    Every model loads through `rlhf_gym.lm.loading`: safetensors only, float32, remote code
    refused unless ``trust_remote_code=True`` is among ``kwargs``.

    Args:
        name_or_path: hub id, preference-model folder or ensemble folder.
        revision: the hub branch, tag or commit of a single model (a local folder, and so an
            ensemble, has none).
        **kwargs: passed to ``from_pretrained`` (``device``, ``local_files_only``,
            ``trust_remote_code``, ...; for an ensemble, to each member's).

    Raises:
        MissingArtifactError: the model, its tokenizer or an ensemble member is missing.
        UnsafeCheckpointError: pickled weights only, remote code not allowed, or an
            ensemble member outside its folder.
        ValueError: a malformed ``ensemble.json``.
    """
    if is_ensemble_folder(name_or_path):
        return PreferenceEnsemble.from_pretrained(name_or_path, **kwargs)
    return PreferenceModel.from_pretrained(name_or_path, revision=revision, **kwargs)


__all__ = ["load_reward_model"]
