"""The sizes of a world's asset build (`BuildConfig`): every flag of ``rlhf-gym build-assets NAME``.

A world sets its own in ``World.build_config``; the recipe that reads them is
`rlhf_gym.worlds.build`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rlhf_gym.pipeline.preference_training import PreferenceTrainingConfig
from rlhf_gym.pipeline.sft import SFTConfig
from rlhf_gym.pipeline.tiny_models import TinyGPT2Size


@dataclass
class BuildConfig:
    """Sizes of the build. The defaults make a world's shipped assets (under an hour on 2
    CPU cores; ``device`` trains and samples on a GPU instead); a world changes them in
    ``World.build_config`` and a user with ``rlhf-gym build-assets NAME --field value``."""

    seed: int = 0  # every random choice of the build derives from it
    vocab_size: int = 2048  # BPE vocabulary (small enough for SB3's per-token heads)
    # One token per digit: copying a number from the prompt becomes copying digits one by
    # one, which a 2-layer policy learns (its whole-number BPE twin barely copied numbers).
    split_digits: bool = True
    tokenizer_prompts: int = 5000  # prompts (with SFT targets and references) the tokenizer is trained on
    model_size: TinyGPT2Size = field(default_factory=lambda: TinyGPT2Size(2, 128, 4, 512))
    # The env's prompt block and response budget; SFT, sampling and the preference model use
    # the same. None: the world's (`World.max_prompt_tokens`, `World.max_new_tokens`).
    max_prompt_tokens: int | None = None
    max_new_tokens: int | None = None
    # (prompt, SFT target) training pairs, one epoch: fresh prompts cost nothing, so more
    # data rather than more epochs.
    sft_prompts: int = 150000
    sft: SFTConfig = field(default_factory=lambda: SFTConfig(epochs=1, batch_size=32, learning_rate=2e-3))
    comparison_prompts: int = 8000  # prompts whose candidates are paired for the preference data
    # Labelled pairs per prompt, of the ~11 candidates' ~55 pairs. Labels cost nothing here,
    # and each candidate is scored once per step however many pairs it is in (InstructGPT).
    pairs_per_prompt: int = 36
    sample_temperatures: tuple[float, ...] = (0.7, 1.0)  # SFT samples per prompt, one each
    preference: PreferenceTrainingConfig = field(
        # batch_size counts prompt groups (~11 candidates, 36 pairs each; InstructGPT-style).
        default_factory=lambda: PreferenceTrainingConfig(epochs=4, batch_size=16, learning_rate=1e-3)
    )
    # Blocks the preference model adds on top of the SFT backbone it starts from. Measured on
    # the first world's data: 0 extra -> 0.619 valid accuracy vs annotators, 2 extra -> 0.605.
    preference_extra_layers: int = 0
    # Preference models trained alike, each on its own minibatch order (member i: seed + i),
    # and scored as one `PreferenceEnsemble` (mean of their normalised rewards; Coste et al.
    # 2024). Each member costs a full preference training run; one is the default.
    preference_members: int = 1
    valid_prompts: int = 300  # valid-split prompts for RM accuracy (pairs as in training)
    normalization_prompts: int = 512  # train prompts whose references fix the reward scale
    eval_prompts: int = 512  # test-split prompts for SFT vs reference gold scores
    # Valid-split prompts of the card's headroom audit, 64 samples each (rlhf_gym.worlds.audit;
    # `rlhf-gym audit ENV --prompts N` reruns it).
    audit_prompts: int = 256
    threads: int = 2  # torch threads
    # Where the models train and sample ("cpu", "cuda", ...). Seeds fix every random choice on
    # any device; a GPU's floating-point order differs from the CPU's, so its models differ
    # in the last digits.
    device: str = "cpu"

    def __post_init__(self) -> None:
        for name in ("tokenizer_prompts", "sft_prompts", "comparison_prompts", "pairs_per_prompt", "preference_members",
                     "valid_prompts", "normalization_prompts", "eval_prompts", "audit_prompts", "max_prompt_tokens",
                     "max_new_tokens"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")

    @classmethod
    def toy(cls, **overrides: Any) -> BuildConfig:
        """Seconds-scale build for tests: same pipeline, tiny sizes."""
        return cls(**{
            "vocab_size": 400,
            "tokenizer_prompts": 200,
            "model_size": TinyGPT2Size(1, 32, 2, 512),
            "sft_prompts": 64,
            "sft": SFTConfig(epochs=1, batch_size=16, learning_rate=2e-3),
            "comparison_prompts": 24,
            "pairs_per_prompt": 3,
            "preference": PreferenceTrainingConfig(epochs=1, batch_size=16, learning_rate=5e-4),
            "preference_members": 1,
            "valid_prompts": 16,
            "normalization_prompts": 16,
            "eval_prompts": 16,
            "audit_prompts": 4,
            **overrides,
        })
