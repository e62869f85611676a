"""Fixtures shared by the kit's tests: one parameter per world of `rlhf_gym.SUITE`.

Every test that takes ``task`` (or ``world``) runs once per registered world, with the
env id as its test id, so a new world is checked by adding its folder: no list to edit.
"""

from __future__ import annotations

import pytest

import rlhf_gym
from rlhf_gym.worlds import Task, World

ENV_IDS = [env.env_id for env in rlhf_gym.SUITE]


@pytest.fixture(scope="module", params=ENV_IDS)
def task(request: pytest.FixtureRequest) -> Task:
    """The task of one world of the suite (its assets load lazily)."""
    return rlhf_gym.get_task(request.param)


@pytest.fixture(scope="module")
def world(task: Task) -> World:
    """The generated world behind ``task``."""
    assert task.world is not None, f"{task.env_id} is in SUITE but has no World"
    return task.world
