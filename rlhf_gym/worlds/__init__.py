"""The world kit: everything a world shares, so that a world is only its own content.

A world author writes a `World` subclass (its generator, gold judge, writer personas,
perturbations and card sections) and declares two names in its package::

    WORLD = MyWorld()
    TASK = Task.from_world(WORLD, Path(__file__).parent / "assets")
    SUITE_ENV = SuiteEnv.of(TASK, __name__)

The kit gives the rest: splits and per-id random streams (`Splits`), the shipped assets'
loaders (`TaskAssets`), simulated annotators (`rlhf_gym.worlds.annotators`), the build
recipe (`rlhf_gym.worlds.build`, ``rlhf-gym build-assets NAME``), the model card
(`rlhf_gym.worlds.card`), the headroom audit (`rlhf_gym.worlds.audit`, ``rlhf-gym audit
ENV``), the env assembly (`rlhf_gym.worlds.assembly`), registration by discovery
(`rlhf_gym.worlds.suite`) and the conformance tests every world passes.

This package's names are the kit's public surface, and the only ``rlhf_gym`` names a
world may import. The light ones load eagerly (numpy at most); the ones that need torch
load on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

from rlhf_gym.worlds.assets import TaskAssets
from rlhf_gym.worlds.suite import SuiteEnv
from rlhf_gym.worlds.task import BuildRequest, Task
from rlhf_gym.worlds.world import AnnotatorCalibration, AuditTargets, Perturbation, Sample, Splits, World, wins_against

_LAZY = {
    "BuildConfig": "rlhf_gym.worlds.build_config",
    "build_assets": "rlhf_gym.worlds.build",
    "AnnotatorPool": "rlhf_gym.worlds.annotators",
    "run_audit": "rlhf_gym.worlds.audit",
    "make_vector_env": "rlhf_gym.worlds.assembly",
    "make_env": "rlhf_gym.worlds.assembly",
    "TinyGPT2Size": "rlhf_gym.pipeline.tiny_models",
    "SFTConfig": "rlhf_gym.pipeline.sft",
    "PreferenceTrainingConfig": "rlhf_gym.pipeline.preference_training",
}

__all__ = [
    "AnnotatorCalibration", "AuditTargets", "BuildRequest", "Perturbation", "Sample", "Splits", "SuiteEnv", "Task",
    "TaskAssets", "World", "wins_against", *_LAZY,
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'rlhf_gym.worlds' has no attribute {name!r}")
