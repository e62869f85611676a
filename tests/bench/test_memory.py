"""Memory: RSS readings, the child's own peak (not the parent's), the slope, and the part's error handling."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from rlhf_gym.bench import memory
from rlhf_gym.bench.memory import (
    FULL,
    QUICK,
    MemorySizes,
    env_rss_over_run,
    high_water_mib,
    main_job_command,
    peak_rss_of,
    resident_mib,
    rss_slope,
)

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


def test_this_process_has_a_resident_size_below_its_high_water_mark():
    rss, peak = resident_mib(), high_water_mib()
    assert 0 < rss <= peak


def test_the_peak_is_the_childs_own(tmp_path):
    allocate = "import time; b = bytearray(64 * 2**20); b[::4096] = b'x' * len(b[::4096]); time.sleep(0.6)"
    result = peak_rss_of([sys.executable, "-c", allocate], timeout=60, log_path=tmp_path / "log", poll_seconds=0.05)
    assert result["returncode"] == 0
    # at least what it touched, and not this process's RSS, which Linux carries into ru_maxrss across exec
    assert 64 <= result["peak_rss_mib"] < 64 + 64
    assert result["rss_samples"] and all(rss > 0 for _, rss in result["rss_samples"])


def test_a_child_past_its_timeout_is_stopped(tmp_path):
    with pytest.raises(TimeoutError, match="ran past"):
        peak_rss_of([sys.executable, "-c", "import time; time.sleep(60)"], timeout=0.3, log_path=tmp_path / "log", poll_seconds=0.05)


def test_the_slope_skips_the_warm_up():
    episodes = np.arange(0, 11_000, 1000)
    rss = 800 + 0.5 * episodes / 1000
    rss[0] = 300  # allocator pools fill in the first tenth
    assert rss_slope(episodes, rss) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="at least 2 RSS samples"):
        rss_slope([0, 10], [1, 2])


def test_the_main_job_is_the_readme_command():
    full = main_job_command(out="OUT", sizes=FULL, env_id="RLHF-Summarize-v0")
    assert full[1:3] == ["-m", "rlhf_gym.cli"] and full[3:6] == ["train", "--agent", "ppo"]
    assert full[full.index("--total-steps") + 1] == "40000" and "--paired-posts" not in full
    quick = main_job_command(out="OUT", sizes=QUICK, env_id="RLHF-Summarize-v0", threads=1)
    assert quick[quick.index("--paired-posts") + 1] == "0" and quick[quick.index("--threads") + 1] == "1"


def test_a_tiny_env_run_samples_rss_along_the_episodes():
    sizes = MemorySizes(total_steps=0, paired_posts=0, num_envs=4, episodes=32, samples=4)
    result = env_rss_over_run(sizes=sizes, env_id="RLHF-Summarize-v0", env_kwargs={"max_new_tokens": 4})
    episodes = [e for e, _ in result["samples"]]
    assert result["episodes"] >= 32 and episodes == sorted(episodes) and len(episodes) == 5
    assert result["max_mib"] >= max(result["first_mib"], result["last_mib"]) > 0
    assert isinstance(result["flat"], bool)


def test_a_failing_figure_is_recorded_and_the_other_still_runs(monkeypatch):
    def fail(**kwargs):
        raise RuntimeError("the main job exited with 1: boom")

    monkeypatch.setattr(memory, "main_job_peak", fail)
    monkeypatch.setattr(memory, "env_rss_over_run", lambda **kwargs: {
        "num_envs": 4, "episodes": 8, "first_mib": 1.0, "last_mib": 1.0, "max_mib": 1.0, "slope_mib_per_1k_episodes": 0.0,
        "flat": True})
    result = memory.measure_memory(quick=True, env_id="RLHF-Summarize-v0", log=lambda line: None)
    assert result["main_job"] == {"error": "RuntimeError: the main job exited with 1: boom"}
    assert [row["met"] for row in result["headline"]] == [True]
