"""The design audit (`rlhf_gym.worlds.design`): a world's writers measured without any model."""

from __future__ import annotations

import numpy as np
import pytest

from rlhf_gym.cli import main
from rlhf_gym.worlds import Sample, Splits, World
from rlhf_gym.worlds.design import prefix_greedy, writer_audit


def test_writer_audit_is_consistent_and_reproducible(world: World) -> None:
    figures = writer_audit(world, prompts=12, seed=3)
    golds = [b["gold"] for b in figures["best_of_n"]]
    assert figures["writers"]["gold"] <= golds[0] <= golds[1] <= golds[2] <= 1.0  # more draws, better picks
    assert [b["n"] for b in figures["best_of_n"]] == [4, 16, 64]
    assert 0.0 <= figures["prefix_greedy"]["gold"] <= 1.0
    assert writer_audit(world, prompts=12, seed=3) == figures
    assert writer_audit(world, prompts=12, seed=4)["writers"] != figures["writers"]
    for decision in figures["decisions"].values():
        assert 0.0 <= decision["draws_best"] <= 1.0 and 0.0 <= decision["greedy_not_best"] <= 1.0


def test_prefix_greedy_pools_shared_first_words() -> None:
    """The modal whole text is " x"; greedy follows " a", the first word most texts share."""
    texts = [" x", " x", " a b", " a c", " a d"]
    assert prefix_greedy(texts) == " a b"
    assert prefix_greedy([" a", " a b", " a"]) == " a"  # the end is a choice too


class _Parity(World):
    """A one-decision world whose writers answer "even" 30% of the time; the best answer
    depends on the prompt's number, which the writers ignore."""

    name, env_id = "parity", "Parity-v0"
    splits = Splits({"train": (0, 100), "valid": (100, 200), "test": (200, 300)}, salt=1)

    def generate(self, item_id: int) -> Sample:
        return Sample(item_id, f"{item_id}?", None, item_id % 2 == 0, " odd")

    def gold_scores(self, records, responses) -> np.ndarray:
        return np.array([float((r and s == " even") or (not r and s == " odd")) for r, s in zip(records, responses)])

    def write(self, sample: Sample, rng: np.random.Generator) -> str:
        return " even" if rng.random() < 0.3 else " odd"

    def decisions(self, record, response: str) -> dict[str, str]:
        return {"parity": response.strip()}

    def best_decisions(self, record) -> dict[str, str]:
        return {"parity": "even" if record else "odd"}


def test_writer_audit_measures_a_known_mixture() -> None:
    figures = writer_audit(_Parity(), prompts=64, seed=0)
    assert figures["writers"]["gold"] == pytest.approx(0.5, abs=0.05)  # half the prompts want the 30% answer
    assert figures["prefix_greedy"]["gold"] == 0.5  # greedy always says "odd"
    assert figures["decisions"]["parity"]["greedy_not_best"] == 0.5
    assert figures["decisions"]["parity"]["draws_best"] == pytest.approx(0.5, abs=0.05)
    assert "references" not in figures  # the world has none
    # Best-of-16 finds the right answer almost always: 1 - 0.7^16 on the "even" half.
    assert figures["best_of_n"][1]["gold"] == pytest.approx(0.5 + 0.5 * (1 - 0.7**16), abs=0.02)


def test_bad_requests_are_refused() -> None:
    with pytest.raises(ValueError, match="multiple of 64"):
        writer_audit(_Parity(), prompts=4, draws=100)
    plain = type("Plain", (_Parity,), {"write": World.write})()
    with pytest.raises(NotImplementedError, match="does not expose its writers"):
        writer_audit(plain, prompts=4)


def test_cli_prints_the_design_audit(capsys: pytest.CaptureFixture[str]) -> None:
    main(["audit", "RLHF-Copy-v0", "--writers", "--prompts", "8"])
    out = capsys.readouterr().out
    assert "| best-of-16 by gold |" in out and "prefix-greedy" in out
    with pytest.raises(SystemExit, match="needs a world and no --update-card"):
        main(["audit", "RLHF-Copy-v0", "--writers", "--update-card"])
