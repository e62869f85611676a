"""The ``rlhf-gym`` command line: subcommands, --help at every level, the two --agent spellings, errors."""

from __future__ import annotations

import pytest

from rlhf_gym.agents import AGENTS
from rlhf_gym.cli import _agent_first, main


def _help(capsys, args: list[str]) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 0
    return capsys.readouterr().out


def test_top_level_help_lists_every_command(capsys):
    out = _help(capsys, ["--help"])
    for command in ("envs", "train", "build-assets"):
        assert command in out


def test_train_help_lists_every_agent(capsys):
    out = _help(capsys, ["train", "--help"])
    assert all(name in out for name in AGENTS)


@pytest.mark.parametrize("spelling", [["--agent", "ppo"], ["--agent=ppo"], ["ppo"]])
def test_both_agent_spellings_reach_the_agents_flags(capsys, spelling):
    out = _help(capsys, ["train", *spelling, "--help"])
    assert "--total-steps" in out and "--kl-coef" in out and "--value-learning-rate" in out


def test_an_sb3_agent_shows_its_own_defaults(capsys):
    out = _help(capsys, ["train", "--agent=sb3-a2c", "--help"])
    assert "runs/sb3-a2c" in out and "(default: a2c)" in out


def test_agent_flags_may_come_before_the_agent():
    args, name = _agent_first(["--env", "X", "--agent", "sb3-trpo", "--seed", "3"], AGENTS)
    assert name == "sb3-trpo" and args == ["sb3-trpo", "--env", "X", "--seed", "3"]
    args, name = _agent_first(["--seed", "3", "--agent=ppo"], AGENTS)
    assert name == "ppo" and args == ["ppo", "--seed", "3"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", "--agent", "bogus"], "unknown agent 'bogus'; choose one of: ppo, rloo, grpo, sb3-ppo"),
        (["train", "--agent=bogus"], "unknown agent 'bogus'"),
        (["train", "--agent"], "--agent needs a name"),
        (["train", "--agent", "sb3-a2c", "--algo", "ppo"], "--algo ppo conflicts with --agent sb3-a2c"),
        (["build-assets", "nope"], "unknown env or task 'nope'; the suite has: .*RLHF-Summarize-v0 \\(summarize\\)"),
    ],
)
def test_errors_name_the_bad_value(args, message):
    with pytest.raises(SystemExit, match=message):
        main(args)


def test_a_bad_flag_value_is_named_and_exits_nonzero(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--agent", "ppo", "--total-steps", "many"])
    assert exit_info.value.code != 0
    captured = capsys.readouterr()
    assert "--total-steps" in captured.err + captured.out and "many" in captured.err + captured.out


def test_envs_lists_the_suite(capsys):
    main(["envs"])
    out = capsys.readouterr().out
    assert "RLHF-Summarize-v0" in out and "rlhf_gym.registration:make_vector_env" in out
    # each world's card headline, read from its card
    from rlhf_gym.envs.dialogue import TASK

    card = TASK.assets.card()
    assert f"gold: SFT {card['evaluation']['sft_t0.7_gold']:.3f} at T=0.7" in out
    assert f"preference model {card['preference_model']['valid_accuracy_vs_annotators']:.3f} vs annotators" in out


@pytest.mark.parametrize("agent", ["ppo", "sb3-trpo"])
def test_a_resume_without_a_checkpoint_exits_with_one_line(agent, tmp_path):
    out = tmp_path / "nothing here"
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--agent", agent, "--out", str(out), "--resume"])
    message = str(exit_info.value.code)
    assert message == f"rlhf-gym train: --resume: {out} holds no checkpoint (no checkpoint/state.json); drop --resume to start a fresh run"


def test_a_fresh_run_into_a_used_folder_exits_with_one_line(tmp_path):
    (tmp_path / "summary.json").write_text("{}")
    with pytest.raises(SystemExit, match=f"^rlhf-gym train: {tmp_path} is not empty \\(summary.json\\): .*--overwrite") as exit_info:
        main(["train", "grpo", "--out", str(tmp_path)])
    assert "\n" not in str(exit_info.value.code)


@pytest.mark.parametrize("agent", ["ppo", "grpo"])
def test_a_pickled_reward_model_exits_with_one_line_and_is_never_unpickled(agent, tmp_path):
    """``--reward-model`` pointing at a pickle-only folder is refused by name, before any unpickling."""
    import pickle

    marker = tmp_path / "pwned"
    hostile = tmp_path / "hostile"
    hostile.mkdir()
    (hostile / "config.json").write_text('{"model_type": "gpt2"}')
    # A pickle whose load would write the marker file.
    (hostile / "pytorch_model.bin").write_bytes(pickle.dumps(_WritesOnLoad(str(marker))))
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--agent", agent, "--reward-model", str(hostile), "--total-steps", "64", "--out", str(tmp_path / "run")])
    message = str(exit_info.value.code)
    assert message.startswith("rlhf-gym train: refusing to load") and "pytorch_model.bin" in message and "\n" not in message
    assert not marker.exists()


class _WritesOnLoad:
    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        from pathlib import Path

        return Path(self.path).write_text, ("pwned",)


def test_run_folder_flags_are_listed(capsys):
    out = _help(capsys, ["train", "--agent", "rloo", "--help"])
    assert "--resume" in out and "--overwrite" in out and "--force" in out


def test_a_bare_agent_name_anywhere_is_moved_to_the_front():
    assert _agent_first(["--resume", "ppo", "--seed", "3"], AGENTS) == (["ppo", "--resume", "--seed", "3"], "ppo")
