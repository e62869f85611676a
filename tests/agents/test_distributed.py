"""Data-parallel group agents: two gloo ranks on CPU against one process with the same total batch."""

from __future__ import annotations

import hashlib
import multiprocessing as mp
import os
import socket
from pathlib import Path

import pytest
import torch

from rlhf_gym.agents.distributed import Distributed
from rlhf_gym.agents.grpo import GRPOConfig
from rlhf_gym.agents.grpo import train as train_grpo
from rlhf_gym.agents.ppo import PPOConfig
from rlhf_gym.agents.ppo import train as train_ppo
from rlhf_gym.agents.rloo import RLOOConfig
from rlhf_gym.agents.rloo import train as train_rloo
from rlhf_gym.lm.policy import CausalLMPolicy

AGENTS = {"ppo": (PPOConfig, train_ppo), "rloo": (RLOOConfig, train_rloo), "grpo": (GRPOConfig, train_grpo)}
# Two ranks average two shard gradients where one process takes the gradient of the whole
# batch: equal in exact arithmetic, a few float32 roundings apart. Measured after three
# iterations at lr 1e-3 (1 Dec 2026): the final parameters differ by at most 1.5e-7 (PPO),
# 7.8e-8 (RLOO) and 1.2e-7 (GRPO), while training moved them by 1.2e-2, 5.8e-3 and 1.2e-2.
TOLERANCE = 1e-5


def test_a_world_of_one_is_a_no_op():
    single = Distributed()
    assert not single.active and single.is_main and single.shard(8) == (8, 0)
    grad = torch.nn.Parameter(torch.ones(3))
    grad.grad = torch.full((3,), 2.0)
    single.average_gradients([grad])
    assert torch.equal(grad.grad, torch.full((3,), 2.0)) and single.mean({"a": 1.5}) == {"a": 1.5}


def test_shards_are_the_rows_of_the_single_process_batch():
    shards = [Distributed(rank=r, world_size=4).shard(16) for r in range(4)]
    assert shards == [(4, 0), (4, 4), (4, 8), (4, 12)]
    with pytest.raises(ValueError, match="num_envs \\(10\\) must be divisible by the world size \\(4\\)"):
        Distributed(rank=0, world_size=4).shard(10)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _digest(optimizer: torch.optim.Optimizer) -> str:
    """A hash of every parameter the optimiser updates (policy and, for PPO, critic)."""
    tensors = [p.detach().cpu().numpy().tobytes() for group in optimizer.param_groups for p in group["params"]]
    return hashlib.sha256(b"".join(tensors)).hexdigest()


def _rank(rank: int, port: int, agent: str, settings: dict, queue) -> None:
    """One torchrun-like rank (forked): train, recording the parameters after every update."""
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    digests: list[str] = []
    step = torch.optim.Adam.step

    def recording_step(self, *args, **kwargs):
        result = step(self, *args, **kwargs)
        digests.append(_digest(self))
        return result

    torch.optim.Adam.step = recording_step
    try:
        config_class, train = AGENTS[agent]
        train(config_class(**settings))
        queue.put((rank, digests, None))
    except BaseException as error:  # report, so the test fails instead of hanging
        queue.put((rank, digests, repr(error)))


def _launch_two_ranks(agent: str, settings: dict) -> list[tuple[int, list[str], str | None]]:
    """Fork two ranks (they inherit the registered toy env) and return their sorted reports."""
    context = mp.get_context("fork")
    queue = context.Queue()
    port = _free_port()
    ranks = [context.Process(target=_rank, args=(r, port, agent, settings, queue)) for r in (0, 1)]
    for process in ranks:
        process.start()
    reports = sorted(queue.get(timeout=600) for _ in ranks)
    for process in ranks:
        process.join(timeout=60)
    assert [error for _, _, error in reports] == [None, None], reports
    return reports


@pytest.mark.slow
@pytest.mark.parametrize("agent", ["ppo", "rloo", "grpo"])
def test_two_gloo_ranks_stay_identical_and_match_one_process(agent, register_toy_env, toy_dir, tmp_path):
    env_id = register_toy_env(f"Toy-DDP-{agent}-v0")
    settings = dict(
        env=env_id, policy=str(toy_dir / "policy"), total_steps=8 * 6 * 2, num_minibatches=2, learning_rate=1e-3,
        temperature=1.0, missing_eos_penalty=None, eval_episodes=8, eval_every=100, checkpoint_every=100,
        paired_posts=0, threads=1, seed=0,
    )
    # 8 episodes per batch; PPO samples each from its own draws (as its ranks do), the group
    # agents always do.
    settings.update(dict(num_envs=8, row_sampling=True, num_epochs=2) if agent == "ppo" else dict(num_prompts=4, group_size=2))
    (_, digests_0, _), (_, digests_1, _) = _launch_two_ranks(agent, {**settings, "out": str(tmp_path / "ddp")})
    config_class, train = AGENTS[agent]
    single = train(config_class(**settings, out=str(tmp_path / "single")))
    # every update leaves the two ranks with bit-identical parameters
    updates_per_iteration = settings["num_minibatches"] * (2 if agent in ("ppo", "grpo") else 1)
    assert len(digests_0) == single["iterations"] * updates_per_iteration and digests_0 == digests_1
    ddp_model = CausalLMPolicy.from_pretrained(tmp_path / "ddp" / "final_policy").model.state_dict()
    single_model = CausalLMPolicy.from_pretrained(tmp_path / "single" / "final_policy").model.state_dict()
    difference = max((ddp_model[k] - single_model[k]).abs().max().item() for k in single_model)
    moved = max((single_model[k] - CausalLMPolicy.from_pretrained(toy_dir / "policy").model.state_dict()[k]).abs().max().item()
                for k in single_model)
    print(f"{agent}: max |DDP - single| = {difference:.2e}, max |trained - initial| = {moved:.2e}")
    assert difference < TOLERANCE < moved, (difference, moved)
    import json

    ddp = json.loads((Path(tmp_path) / "ddp" / "summary.json").read_text())
    assert ddp["world_size"] == 2 and ddp["env_steps"] == single["env_steps"]


@pytest.mark.slow
def test_the_readme_torchrun_command_runs_on_two_cpu_processes(tmp_path):
    """The single-node command of the README, at a toy budget, launched by torchrun itself."""
    import json
    import shutil
    import subprocess
    import sys

    torchrun = shutil.which("torchrun") or str(Path(sys.executable).with_name("torchrun"))
    out = tmp_path / "grpo-ddp"
    command = [
        torchrun, "--nproc_per_node", "2", "-m", "rlhf_gym.cli", "train", "--agent", "grpo", "--env", "RLHF-Summarize-v0",
        "--total-steps", "100", "--threads", "1", "--out", str(out),
        "--num-prompts", "2", "--group-size", "2", "--eval-episodes", "8", "--paired-posts", "8",
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["agent"] == "grpo" and summary["env_steps"] >= 100
    assert "done:" in result.stdout and result.stdout.count("done:") == 1  # rank 0 alone reports



@pytest.mark.slow
def test_a_two_rank_run_resumes_at_the_same_world_size(register_toy_env, toy_dir, tmp_path):
    """Two ranks stop, resume from rank 0's checkpoint, and end where one uninterrupted process ends."""
    env_id = register_toy_env("Toy-DDP-resume-v0")
    settings = dict(
        env=env_id, policy=str(toy_dir / "policy"), num_prompts=4, group_size=2, num_minibatches=2, learning_rate=1e-3,
        temperature=1.0, missing_eos_penalty=None, eval_episodes=8, eval_every=100, checkpoint_every=1,
        paired_posts=0, threads=1, seed=0,
    )
    steps = 8 * 6  # at most one iteration's worth of tokens
    _launch_two_ranks("grpo", {**settings, "out": str(tmp_path / "ddp"), "total_steps": 2 * steps})
    _launch_two_ranks("grpo", {**settings, "out": str(tmp_path / "ddp"), "total_steps": 3 * steps, "resume": True})
    straight = train_grpo(GRPOConfig(**settings, out=str(tmp_path / "single"), total_steps=3 * steps))
    import json

    resumed = json.loads((tmp_path / "ddp" / "summary.json").read_text())
    assert resumed["iterations"] == straight["iterations"] and resumed["env_steps"] == straight["env_steps"]
    a = CausalLMPolicy.from_pretrained(tmp_path / "ddp" / "final_policy").model.state_dict()
    b = CausalLMPolicy.from_pretrained(tmp_path / "single" / "final_policy").model.state_dict()
    assert max((a[k] - b[k]).abs().max().item() for k in a) < TOLERANCE
