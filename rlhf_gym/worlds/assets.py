"""One world's shipped assets folder: tokenizer, SFT policy, preference model, card.

The kit's build recipe (`rlhf_gym.worlds.build`) writes the folder; `TaskAssets` finds and
loads what is in it, so making an env trains nothing and needs no network::

    assets/
      tokenizer/          tokenizer.json and its config
      sft_policy/         a GPT-2 causal LM (safetensors) with generation_config.json
      preference_model/   a sequence classifier with its reward normalisation
      card.json, card.md  the figures the build recomputed

The tokenizer is one shared object (tokenizers are not trained online). The preference
model is loaded once per device and handed out as a **read-only view**: its parameters are
frozen (eval mode, no gradients), so a thousand single envs share it and no env's reward
can drift because another caller trains it. A caller that wants to train a
reward model asks for its own copy (``preference_model(device, trainable=True)``).

Loading is lazy: constructing a `TaskAssets` touches no file and imports no torch.
"""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedTokenizerBase

    from rlhf_gym.rewards.preference_model import PreferenceModel

TOKENIZER, SFT_POLICY, PREFERENCE_MODEL = "tokenizer", "sft_policy", "preference_model"
CARD_JSON, CARD_MARKDOWN = "card.json", "card.md"
HASHED_PARTS = (SFT_POLICY, TOKENIZER, PREFERENCE_MODEL)
"""The parts whose bytes a leaderboard protocol's hash covers."""


class TaskAssets:
    """The assets folder of one task, and cached loaders of what it holds.

    Args:
        folder: the assets folder.
        task_name: the task, for the rebuild hint of a missing asset.

    Example:
        >>> from pathlib import Path
        >>> assets = TaskAssets(Path("/nowhere"), "summarize")
        >>> assets.tokenizer_dir.name, assets.policy_dir.name
        ('tokenizer', 'sft_policy')
    """

    def __init__(self, folder: Path, task_name: str) -> None:
        self.folder = Path(folder)
        self.task_name = task_name
        self._lock = threading.Lock()
        self._tokenizer: PreTrainedTokenizerBase | None = None
        self._preference_models: dict[str, PreferenceModel] = {}

    @property
    def tokenizer_dir(self) -> Path:
        return self.folder / TOKENIZER

    @property
    def policy_dir(self) -> Path:
        return self.folder / SFT_POLICY

    @property
    def preference_model_dir(self) -> Path:
        return self.folder / PREFERENCE_MODEL

    def require(self, path: Path) -> Path:
        """Return ``path`` if it exists, else explain how to rebuild the assets.

        Raises:
            MissingArtifactError: the asset is missing (the message names the command).
        """
        if not path.exists():
            from rlhf_gym.lm.loading import MissingArtifactError

            raise MissingArtifactError(
                f"the shipped asset {path} is missing; rebuild the assets with "
                f"`rlhf-gym build-assets {self.task_name}` (or reinstall the package)"
            )
        return path

    def tokenizer(self) -> PreTrainedTokenizerBase:
        """The shipped tokenizer (one shared object)."""
        with self._lock:
            if self._tokenizer is None:
                from rlhf_gym.lm.loading import load_tokenizer

                self._tokenizer = load_tokenizer(str(self.require(self.tokenizer_dir)), local_files_only=True)
            return self._tokenizer

    def preference_model(self, device: torch.device | str = "cpu", *, trainable: bool = False) -> PreferenceModel:
        """The shipped preference model on ``device``.

        Args:
            device: where it lives.
            trainable: False (default): the shared read-only view (frozen parameters, eval
                mode). True: a fresh copy of your own to train.
        """
        import torch

        from rlhf_gym.rewards.loading import load_reward_model

        device = torch.device(device)
        if trainable:
            return load_reward_model(self.require(self.preference_model_dir), device=device, local_files_only=True)
        with self._lock:
            key = str(device)
            if key not in self._preference_models:
                model = load_reward_model(self.require(self.preference_model_dir), device=device, local_files_only=True)
                self._preference_models[key] = read_only(model)
            return self._preference_models[key]

    def policy_path(self) -> Path:
        """Folder of the shipped SFT policy (``AutoModelForCausalLM.from_pretrained`` loads it)."""
        return self.require(self.policy_dir)

    def card(self) -> dict[str, Any]:
        """The figures recorded when the assets were built (``card.json``)."""
        return json.loads(self.require(self.folder / CARD_JSON).read_text())

    def hashes(self) -> dict[str, str]:
        """sha256 of each hashed part's files (names and bytes, in sorted order)."""
        return {name: folder_hash(self.require(self.folder / name)) for name in HASHED_PARTS}


def read_only(model: Any) -> Any:
    """Freeze a reward model in place (eval mode, no parameter requires gradients); returns it.

    A loss built on it has nothing to differentiate, so training the shared view fails at
    ``backward()`` instead of silently changing every env's reward. Copies of it
    (``copy.deepcopy``, e.g. a critic initialised from it) stay frozen until their owner
    calls ``requires_grad_(True)``.
    """
    members = getattr(model, "members", None) or [model]
    for member in members:
        inner = getattr(member, "model", member)
        inner.eval()
        inner.requires_grad_(False)
    return model


def folder_hash(folder: Path) -> str:
    """sha256 hex of a folder's files: each relative path and its bytes, in sorted order."""
    digest = hashlib.sha256()
    for path in sorted(p for p in Path(folder).rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(folder)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()
