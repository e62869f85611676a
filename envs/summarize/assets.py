"""The shipped assets of RLHF-Summarize-v0: tokenizer, SFT policy, preference model, card.

They are built by `rlhf_gym.envs.summarize.build` (``rlhf-gym build-assets summarize``)
and ship inside the package, so making the env trains nothing and needs no network.
Loaded components are cached: a thousand single envs share one tokenizer and one
preference model per device.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
from transformers import PreTrainedTokenizerBase

from rlhf_gym.lm.loading import MissingArtifactError, load_tokenizer
from rlhf_gym.rewards.loading import load_reward_model
from rlhf_gym.rewards.preference_model import PreferenceModel

# The sampling temperature of the benchmark protocol: agents sample and evaluate at it,
# the build writes it into the SFT policy's generation_config.json, and `TASK.temperature`
# carries it (Huang et al. 2024 sample and score at 0.7 too). Greedy decoding is the
# protocol's second setting.
TEMPERATURE = 0.7

ASSETS_DIR = Path(__file__).resolve().parent / "assets"
TOKENIZER_DIR = ASSETS_DIR / "tokenizer"
POLICY_DIR = ASSETS_DIR / "sft_policy"
PREFERENCE_MODEL_DIR = ASSETS_DIR / "preference_model"
CARD_JSON = ASSETS_DIR / "card.json"
CARD_MARKDOWN = ASSETS_DIR / "card.md"


def require(path: Path) -> Path:
    """Return ``path`` if it exists, else explain how to rebuild the assets."""
    if not path.exists():
        raise MissingArtifactError(
            f"the shipped asset {path} is missing; rebuild the assets with "
            "`rlhf-gym build-assets summarize` (or reinstall the package)"
        )
    return path


@lru_cache(maxsize=1)
def default_tokenizer() -> PreTrainedTokenizerBase:
    """The BPE tokenizer trained on the generated world (shared, read-only)."""
    return load_tokenizer(str(require(TOKENIZER_DIR)), local_files_only=True)


@lru_cache(maxsize=4)
def default_preference_model(device: torch.device) -> PreferenceModel:
    """The shipped preference model on ``device`` (one instance per device)."""
    return load_reward_model(require(PREFERENCE_MODEL_DIR), device=device, local_files_only=True)


def sft_policy_path() -> Path:
    """Folder of the shipped SFT policy (``AutoModelForCausalLM.from_pretrained`` loads it)."""
    return require(POLICY_DIR)


def model_card() -> dict[str, Any]:
    """The figures recorded when the assets were built."""
    return json.loads(require(CARD_JSON).read_text())
