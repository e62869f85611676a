"""Load a learned reward by hub id or path: one preference model, or a saved ensemble.

The one place that knows both kinds, so `PreferenceModel` and `PreferenceEnsemble` need
not import each other: the ensemble builds on the single model, and this loader on both.
"""

from __future__ import annotations

import os
from typing import Any

from rlhf_gym.rewards.preference_ensemble import PreferenceEnsemble, is_ensemble_folder
from rlhf_gym.rewards.preference_model import PreferenceModel


def load_reward_model(name_or_path: str | os.PathLike[str], **kwargs: Any) -> PreferenceModel:
    """A `PreferenceEnsemble` if the folder holds one (``ensemble.json``), else a `PreferenceModel`.

    ``kwargs`` go to ``from_pretrained`` (``device``, ``local_files_only``, ...; for an
    ensemble, to each member's).

    Raises:
        MissingArtifactError: the model, its tokenizer or an ensemble member is missing.
        ValueError: a malformed ``ensemble.json``.
    """
    if is_ensemble_folder(name_or_path):
        return PreferenceEnsemble.from_pretrained(name_or_path, **kwargs)
    return PreferenceModel.from_pretrained(name_or_path, **kwargs)


__all__ = ["load_reward_model"]
