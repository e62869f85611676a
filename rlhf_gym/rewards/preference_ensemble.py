"""Several preference models scored as one: a reward-model ensemble.

Members trained alike but on different minibatch orders make different errors, so the
mean of their normalised rewards ranks pairs better than any one of them (on
RLHF-Summarize-v0: +0.01 accuracy vs the annotators, docs/preference_model.md), and a
conservative aggregate (the minimum) resists reward over-optimisation (Coste et al. 2024,
"Reward Model Ensembles Help Mitigate Overoptimization").

A `PreferenceEnsemble` is a `PreferenceModel` wherever rewards are read (the env, best-of-n,
the card's figures): ``raw_scores`` aggregates the members' normalised rewards, and the
ensemble's own `RewardNormalization` maps that to rewards with references at mean 0, std 1.
It is saved as a folder holding ``ensemble.json``, the normalisation and one ordinary
preference-model folder per member; `rlhf_gym.rewards.loading.load_reward_model` recognises it. Members
are trained one by one (``train_preference_model_on_groups``), never through the ensemble.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any, Literal

import torch

from rlhf_gym.lm.loading import MissingArtifactError, UnsafeCheckpointError
from rlhf_gym.rewards.preference_model import (
    NORMALIZATION_FILE,
    PreferenceModel,
    RewardNormalization,
)

ENSEMBLE_FILE = "ensemble.json"
AGGREGATES = ("mean", "min")
Aggregate = Literal["mean", "min"]


class PreferenceEnsemble(PreferenceModel):
    """The aggregate of several preference models' normalised rewards.

    Args:
        members: the preference models, each with its own normalisation fitted (so their
            rewards share a scale) and sharing one tokenizer vocabulary.
        aggregate: ``"mean"`` of the members' rewards, or their ``"min"`` (worst case).
        normalization: maps the aggregate to rewards; identity by default (call
            ``fit_normalization`` on reference responses).

    The inherited ``model``, ``tokenizer`` and ``max_length`` are the first member's: a
    critic initialised "from the preference model" starts from that member.
    """

    def __init__(
        self,
        members: Sequence[PreferenceModel],
        *,
        aggregate: Aggregate = "mean",
        normalization: RewardNormalization | None = None,
    ) -> None:
        if len(members) < 2:
            raise ValueError(f"an ensemble needs at least 2 members, got {len(members)}")
        if aggregate not in AGGREGATES:
            raise ValueError(f"aggregate must be one of {AGGREGATES}, got {aggregate!r}")
        if any(isinstance(m, PreferenceEnsemble) for m in members):
            raise ValueError("ensemble members must be single preference models, not ensembles")
        vocab_sizes = {len(m.tokenizer) for m in members}
        if len(vocab_sizes) != 1:
            raise ValueError(f"ensemble members must share one tokenizer, got vocabulary sizes {sorted(vocab_sizes)}")
        first = members[0]
        super().__init__(
            first.model,
            first.tokenizer,
            normalization=normalization,
            max_length=first.max_length,
            batch_size=first.batch_size,
            device=first.device,
        )
        self.members = list(members)
        self.aggregate = aggregate

    @torch.no_grad()
    def raw_scores(self, prompts: Sequence[str], responses: Sequence[str]) -> torch.Tensor:
        """(B,) float32: the members' normalised rewards, aggregated (before this
        ensemble's own normalisation)."""
        rewards = torch.stack([m.score(prompts, responses).to(self.device) for m in self.members])
        return rewards.mean(dim=0) if self.aggregate == "mean" else rewards.min(dim=0).values

    def forward_encoded(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError("an ensemble is not trained as one model: train each member, then combine them")

    def forward_groups(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        raise NotImplementedError("an ensemble is not trained as one model: train each member, then combine them")

    def save_pretrained(self, directory: str | os.PathLike[str]) -> None:
        """Write ``ensemble.json``, the normalisation and one folder per member."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        names = [f"member_{i}" for i in range(len(self.members))]
        for name, member in zip(names, self.members, strict=True):
            member.save_pretrained(directory / name)
        (directory / ENSEMBLE_FILE).write_text(json.dumps({"aggregate": self.aggregate, "members": names}, indent=2))
        (directory / NORMALIZATION_FILE).write_text(json.dumps(asdict(self.normalization)))

    @classmethod
    def from_pretrained(  # type: ignore[override]
        cls, name_or_path: str | os.PathLike[str], **member_kwargs: Any
    ) -> PreferenceEnsemble:
        """Load an ensemble folder; ``member_kwargs`` go to each member's ``from_pretrained``.

        Every member must be a sub-folder of the ensemble folder (`member_folder`): an
        ``ensemble.json`` from a stranger must not point the loader anywhere else.

        Raises:
            MissingArtifactError: ``ensemble.json`` or a member folder is missing.
            UnsafeCheckpointError: a member path leaves the ensemble folder.
            ValueError: ``ensemble.json`` is malformed.
        """
        directory = Path(name_or_path)
        spec_file = directory / ENSEMBLE_FILE
        if not spec_file.is_file():
            raise MissingArtifactError(f"no {ENSEMBLE_FILE} in {directory}: not a preference-model ensemble")
        try:
            spec = json.loads(spec_file.read_text())
        except ValueError as error:
            raise ValueError(f"{spec_file} is not valid JSON: {error}") from error
        if not isinstance(spec, dict) or not isinstance(spec.get("members"), list):
            raise ValueError(f"{spec_file} must hold {{'aggregate': ..., 'members': [folder, ...]}}, got {spec!r}")
        folders = [member_folder(directory, name) for name in spec["members"]]  # all checked before any loads
        members = [PreferenceModel.from_pretrained(folder, **member_kwargs) for folder in folders]
        stats_file = directory / NORMALIZATION_FILE
        normalization = RewardNormalization(**json.loads(stats_file.read_text())) if stats_file.is_file() else None
        return cls(members, aggregate=spec.get("aggregate", "mean"), normalization=normalization)


def member_folder(directory: str | os.PathLike[str], name: object) -> Path:
    """The folder of the ensemble member ``name`` (an entry of ``ensemble.json``), checked
    to lie inside ``directory``.

    Symlinks are resolved first, so neither ``..``, an absolute path nor a link pointing out
    reaches a folder outside the ensemble.

    Raises:
        ValueError: ``name`` is not a non-empty string, or names ``directory`` itself.
        UnsafeCheckpointError: the member is outside ``directory``, or ``name`` is absolute.
        MissingArtifactError: the member folder does not exist.

    Example:
        >>> import tempfile
        >>> root = Path(tempfile.mkdtemp())
        >>> (root / "member_0").mkdir()
        >>> member_folder(root, "member_0") == (root / "member_0").resolve()
        True
    """
    spec_file = Path(directory) / ENSEMBLE_FILE
    if not isinstance(name, str) or not name:
        raise ValueError(f"{spec_file}: each member must be a folder name (a non-empty string), got {name!r}")
    root = Path(directory).resolve()
    folder = (root / name).resolve()
    if folder == root:
        raise ValueError(f"{spec_file}: member {name!r} is the ensemble folder itself; members must be sub-folders of it")
    if Path(name).is_absolute() or not folder.is_relative_to(root):
        raise UnsafeCheckpointError(
            f"refusing ensemble member {name!r} in {spec_file}: it resolves to {folder}, outside the ensemble "
            f"folder {root}; members must be sub-folders of it"
        )
    if not folder.is_dir():
        raise MissingArtifactError(f"ensemble member folder {folder} (member {name!r} of {spec_file}) is missing")
    return folder


def is_ensemble_folder(name_or_path: str | os.PathLike[str]) -> bool:
    """Whether a local folder holds a saved `PreferenceEnsemble`."""
    return (Path(name_or_path) / ENSEMBLE_FILE).is_file()
