"""The README's "Write your own agent" example runs as a user would run it."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "reinforce.py"


def _load_example():
    spec = importlib.util.spec_from_file_location("reinforce_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_the_example_is_short_and_uses_only_public_names():
    source = EXAMPLE.read_text()
    assert len(source.splitlines()) <= 70
    imports = [line for line in source.splitlines() if line.startswith(("import ", "from "))]
    assert all("rlhf_gym." not in line for line in imports), imports  # top-level names only


@pytest.mark.slow
def test_reinforce_example_trains_for_a_few_iterations(capsys):
    example = _load_example()
    history = example.main(example.Args(iterations=3, num_envs=8, learning_rate=1e-4))
    assert len(history) == 3 and all(math.isfinite(v) for h in history for v in h.values())
    assert abs(history[0]["kl"]) < 1e-4  # the policy starts as the reference
    assert abs(history[2]["kl"]) > 1e-4  # the gradient steps moved it
    assert "iteration 2: reward=" in capsys.readouterr().out


def test_the_readme_shows_the_example_file_verbatim():
    readme = (EXAMPLE.parents[2] / "README.md").read_text()
    assert "```python\n" + EXAMPLE.read_text().rstrip("\n") + "\n```" in readme


MULTI_TURN = EXAMPLE.parent / "dialogue_multi_turn.py"


def test_the_multi_turn_dialogue_example_plays_every_user_turn_and_scores_the_last_reply(capsys):
    assert len(MULTI_TURN.read_text().splitlines()) <= 70
    spec = importlib.util.spec_from_file_location("multi_turn_example", MULTI_TURN)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    reply, proxy, gold = module.main(module.Args(conversation=1))
    printed = capsys.readouterr().out
    # conversation 1 has three user turns: the policy answered each, after the history so far
    assert printed.count("USER: ") == 3 and "USER: When does the screen turn off" in printed
    assert 0.0 <= gold <= 1.0 and math.isfinite(proxy) and reply in printed
    assert module.main(module.Args(conversation=1))[0] == reply  # seeded
