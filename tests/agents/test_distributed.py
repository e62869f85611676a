"""Data-parallel group agents: two gloo ranks on CPU against one process with the same total batch."""

from __future__ import annotations

import hashlib
import json
import multiprocessing as mp
import os
import queue as queue_module
import socket
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

from rlhf_gym.agents.common import latest_checkpoint, read_state
from rlhf_gym.agents.distributed import (
    JOIN_VARIABLE,
    Distributed,
    LaunchError,
    _join_tensors,
    _specs,
    _split_tensors,
    backend,
)
from rlhf_gym.agents.grpo import GRPOConfig
from rlhf_gym.agents.grpo import train as train_grpo
from rlhf_gym.agents.ppo import PPOConfig
from rlhf_gym.agents.ppo import train as train_ppo
from rlhf_gym.agents.rloo import RLOOConfig
from rlhf_gym.agents.rloo import train as train_rloo
from rlhf_gym.cli import main as cli_main
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


def _served_devices(backend: str) -> dict[str, str]:
    """The device types a process group's collectives accept, and the backend of each.

    NCCL all-reduces and broadcasts only CUDA tensors; gloo is our CPU backend. A mixed
    group (``cpu:gloo,cuda:nccl``) serves each device type with its own backend.
    """
    if ":" in backend:
        return dict(pair.split(":") for pair in backend.split(","))
    return {"nccl": {"cuda": "nccl"}, "gloo": {"cpu": "gloo"}}[backend]


@pytest.mark.parametrize("rank", [0, 1])
def test_every_collective_of_a_cuda_run_gets_a_tensor_its_backend_accepts(rank, monkeypatch):
    """A CUDA run's collectives, with torch.distributed replaced by a recorder of two equal ranks.

    The metrics, counts, run state and Adam's step counters are CPU tensors even on a GPU: a
    group of NCCL alone would refuse them.
    """
    joined: dict[str, str] = {}
    collectives: list[tuple[str, str]] = []

    def init_process_group(backend: str | None = None, **kwargs) -> None:
        joined["backend"] = backend

    def collective(name: str, reduce: bool):
        def run(tensor: torch.Tensor, *args, **kwargs) -> None:
            served = _served_devices(joined["backend"])
            assert tensor.device.type in served, f"{name} of a {tensor.device.type} tensor in a {joined['backend']!r} group"
            collectives.append((name, served[tensor.device.type]))
            if reduce:
                tensor.mul_(2)  # the sum over two ranks that hold the same tensor
        return run

    def broadcast_object_list(objects: list, src: int = 0, **kwargs) -> None:
        # torch pickles the objects into a tensor on the group's object device: CPU when served
        assert "cpu" in _served_devices(joined["backend"]), f"objects in a {joined['backend']!r} group"
        collectives.append(("broadcast_object_list", "objects"))
        if rank != 0:  # what rank 0 sends: its run state and the layout of its optimiser state
            objects[:] = [{"iteration": 7}, _split_tensors(optimizer.state_dict())[0]]

    monkeypatch.setattr(dist, "is_initialized", lambda: "backend" in joined)
    monkeypatch.setattr(dist, "init_process_group", init_process_group)
    monkeypatch.setattr(dist, "destroy_process_group", lambda: joined.clear())
    monkeypatch.setattr(dist, "get_backend", lambda group=None: joined["backend"])
    monkeypatch.setattr(dist, "all_reduce", collective("all_reduce", reduce=True))
    monkeypatch.setattr(dist, "broadcast", collective("broadcast", reduce=False))
    monkeypatch.setattr(dist, "broadcast_object_list", broadcast_object_list)
    monkeypatch.setattr(dist, "barrier", lambda *args, **kwargs: collectives.append(("barrier", "objects")))
    monkeypatch.setattr(torch.cuda, "set_device", lambda device: None)
    for name, value in dict(RANK=rank, LOCAL_RANK=rank, WORLD_SIZE=2, MASTER_ADDR="127.0.0.1", MASTER_PORT=29500).items():
        monkeypatch.setenv(name, str(value))

    world = Distributed.from_environment("cuda")
    assert world.active and world.rank == rank and world.device("cuda") == f"cuda:{rank}"
    assert world.mean({"proxy_reward": 0.25, "kl": 3.0}) == {"proxy_reward": 0.25, "kl": 3.0}
    assert world.sum(5.0) == 10.0
    assert world.all_sum(torch.tensor(3.0)).item() == 6.0
    mean, std = world.mean_std(torch.tensor([1.0, 2.0, 6.0]))  # the same three values on both ranks
    torch.testing.assert_close((mean, std), (torch.tensor(3.0), torch.tensor([1.0, 2.0, 6.0, 1.0, 2.0, 6.0]).std()))
    module = torch.nn.Linear(2, 2)
    optimizer = torch.optim.Adam(module.parameters())
    module(torch.ones(1, 2)).sum().backward()
    world.average_gradients(module.parameters())
    optimizer.step()  # Adam's state: a CPU step counter beside moments on the parameters' device
    assert world.broadcast_from_main({"iteration": 7}, [module], optimizer) == {"iteration": 7}
    world.barrier()
    world.close()
    assert {name for name, _ in collectives} == {"all_reduce", "broadcast", "broadcast_object_list", "barrier"}


@pytest.mark.parametrize(
    "environment, match",
    [
        ({JOIN_VARIABLE: "yes"}, "RLHF_GYM_DISTRIBUTED must be 0 or 1, got 'yes'"),
        ({JOIN_VARIABLE: "1"}, "RLHF_GYM_DISTRIBUTED=1 needs torchrun's environment, but RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT are"),
        ({"WORLD_SIZE": "2"}, "WORLD_SIZE=2 needs torchrun's environment, but RANK, MASTER_ADDR, MASTER_PORT are not set"),
        ({"WORLD_SIZE": "2", "RANK": "1", "MASTER_ADDR": "h"}, "WORLD_SIZE=2 needs torchrun's environment, but MASTER_PORT is not set"),
    ],
)
def test_a_group_without_torchrun_s_environment_is_refused(environment, match, monkeypatch):
    for name in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", JOIN_VARIABLE):
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(LaunchError, match=match):
        Distributed.from_environment("cpu")


def test_a_data_parallel_run_needs_a_cpu_or_cuda_device():
    with pytest.raises(LaunchError, match="data-parallel runs need --device cpu or cuda, got 'mps'"):
        backend("mps")


@pytest.mark.parametrize("agent", ["ppo", "grpo"])
def test_the_cli_reports_a_bad_launch_in_one_line(agent, monkeypatch, tmp_path):
    monkeypatch.setenv(JOIN_VARIABLE, "true")
    with pytest.raises(SystemExit, match="^rlhf-gym train: RLHF_GYM_DISTRIBUTED must be 0 or 1, got 'true'$"):
        cli_main(["train", "--agent", agent, "--out", str(tmp_path / "run")])


def test_an_optimiser_state_splits_into_a_layout_and_tensors_and_back():
    module = torch.nn.Linear(2, 2)
    optimizer = torch.optim.Adam(module.parameters())
    module(torch.ones(1, 2)).sum().backward()
    optimizer.step()
    layout, tensors = _split_tensors(optimizer.state_dict())
    assert len(tensors) == 6 and [spec.index for spec in _specs(layout)] == list(range(6))
    restored = torch.optim.Adam(torch.nn.Linear(2, 2).parameters())
    restored.load_state_dict(_join_tensors(layout, [t.clone() for t in tensors]))
    for (a, b) in zip(optimizer.state.values(), restored.state.values()):
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


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


def _launch_two_ranks(agent: str, settings: dict, rank_settings: dict[int, dict] | None = None) -> list[tuple[int, list[str], str | None]]:
    """Fork two ranks (they inherit the registered toy env) and return their sorted reports.

    ``rank_settings`` overrides settings of one rank (rank 1's own ``out``: a second machine).
    Once one rank has reported, the other has two minutes: ranks that disagree wait in a
    collective for ever, and the test fails instead.
    """
    context = mp.get_context("fork")
    queue = context.Queue()
    port = _free_port()
    overrides = rank_settings or {}
    ranks = [context.Process(target=_rank, args=(r, port, agent, {**settings, **overrides.get(r, {})}, queue)) for r in (0, 1)]
    for process in ranks:
        process.start()
    reports = []
    try:
        for timeout in (600, 120):
            reports.append(queue.get(timeout=timeout))
    except queue_module.Empty:
        pass
    finally:
        for process in ranks:
            process.join(timeout=10)
            if process.is_alive():
                process.terminate()
                process.join()
    reports.sort()
    assert [rank for rank, _, _ in reports] == [0, 1], f"a rank did not finish: {reports}"
    assert [error for _, _, error in reports] == [None, None], reports
    return reports


def _toy_settings(agent: str, env_id: str, toy_dir: Path, **overrides) -> dict:
    """A tiny run of ``agent`` with 8 episodes per batch. PPO samples each episode from its own
    draws (as its ranks do), the group agents always do."""
    settings = dict(
        env=env_id, policy=str(toy_dir / "policy"), total_steps=8 * 6 * 2, num_minibatches=2, learning_rate=1e-3,
        temperature=1.0, missing_eos_penalty=None, eval_episodes=8, eval_every=100, checkpoint_every=100,
        paired_posts=0, threads=1, seed=0,
    )
    settings.update(dict(num_envs=8, row_sampling=True, num_epochs=2) if agent == "ppo" else dict(num_prompts=4, group_size=2))
    return {**settings, **overrides}


def _policy_difference(a: Path, b: Path) -> float:
    """The largest entry of |a - b| over the policies saved in two run folders' ``final_policy``."""
    first = CausalLMPolicy.from_pretrained(a / "final_policy").model.state_dict()
    second = CausalLMPolicy.from_pretrained(b / "final_policy").model.state_dict()
    return max((first[k] - second[k]).abs().max().item() for k in first)


@pytest.mark.slow
@pytest.mark.parametrize(
    "agent, options",
    [("ppo", {}), ("rloo", {}), ("rloo", {"normalize_advantages": True}), ("grpo", {})],
    ids=["ppo", "rloo", "rloo-normalized", "grpo"],
)
def test_two_gloo_ranks_stay_identical_and_match_one_process(agent, options, register_toy_env, toy_dir, tmp_path):
    """With --normalize-advantages, RLOO whitens with the whole batch's mean and std (not each rank's)."""
    env_id = register_toy_env(f"Toy-DDP-{agent}{'-normalized' if options else ''}-v0")
    settings = _toy_settings(agent, env_id, toy_dir, **options)
    (_, digests_0, _), (_, digests_1, _) = _launch_two_ranks(agent, {**settings, "out": str(tmp_path / "ddp")})
    config_class, train = AGENTS[agent]
    single = train(config_class(**settings, out=str(tmp_path / "single")))
    # every update leaves the two ranks with bit-identical parameters
    updates_per_iteration = settings["num_minibatches"] * (2 if agent in ("ppo", "grpo") else 1)
    assert len(digests_0) == single["iterations"] * updates_per_iteration and digests_0 == digests_1
    difference = _policy_difference(tmp_path / "ddp", tmp_path / "single")
    single_model = CausalLMPolicy.from_pretrained(tmp_path / "single" / "final_policy").model.state_dict()
    initial = CausalLMPolicy.from_pretrained(toy_dir / "policy").model.state_dict()
    moved = max((single_model[k] - initial[k]).abs().max().item() for k in single_model)
    print(f"{agent} {options}: max |DDP - single| = {difference:.2e}, max |trained - initial| = {moved:.2e}")
    assert difference < TOLERANCE < moved, (difference, moved)
    ddp = json.loads((Path(tmp_path) / "ddp" / "summary.json").read_text())
    assert ddp["world_size"] == 2 and ddp["env_steps"] == single["env_steps"]


@pytest.mark.slow
def test_ppo_early_stop_decides_as_one_process_when_a_rank_holds_no_rows_of_a_minibatch(register_toy_env, toy_dir, tmp_path,
                                                                                         monkeypatch):
    """Minibatches of one episode: each lies on one rank, so each rank skips half of every epoch's.

    The epoch's approx KL must still be the mean over that epoch's minibatches (each a mean
    over its tokens, wherever they are), as one process computes it. The threshold sits
    between the mean of epochs 0 and 1 together and epoch 1's own mean, so one process stops
    after epoch 1, and a rank that mixed in epoch 0's values would run on.
    """
    env_id = register_toy_env("Toy-DDP-early-stop-v0")
    settings = _toy_settings("ppo", env_id, toy_dir, num_envs=4, num_minibatches=4, total_steps=1, checkpoint_every=1)

    def first_approx_kl(num_epochs: int) -> float:
        """The logged approx KL of one iteration of ``num_epochs`` epochs: the mean over their minibatches."""
        out = tmp_path / f"calibration-{num_epochs}"
        train_ppo(PPOConfig(**{**settings, "num_epochs": num_epochs, "out": str(out)}))
        return read_state(latest_checkpoint(out))["history"][0]["approx_kl"]

    epoch_0 = first_approx_kl(1)
    both = first_approx_kl(2)  # (epoch_0 + epoch_1) / 2
    epoch_1 = 2 * both - epoch_0
    assert epoch_0 < both < epoch_1, (epoch_0, epoch_1)  # the policy moves away over the epochs
    threshold = (both + epoch_1) / 2
    settings.update(num_epochs=3, target_approx_kl=threshold)

    steps: list[int] = []
    step = torch.optim.Adam.step
    monkeypatch.setattr(torch.optim.Adam, "step", lambda self, *a, **k: (steps.append(1), step(self, *a, **k))[1])
    train_ppo(PPOConfig(**settings, out=str(tmp_path / "single")))
    monkeypatch.undo()
    assert len(steps) == 2 * 4, f"one process should stop after epoch 1 (8 updates), took {len(steps)}"
    (_, digests_0, _), (_, digests_1, _) = _launch_two_ranks("ppo", {**settings, "out": str(tmp_path / "ddp")})
    assert len(digests_0) == len(digests_1) == len(steps) and digests_0 == digests_1
    assert _policy_difference(tmp_path / "ddp", tmp_path / "single") < TOLERANCE


@pytest.mark.slow
def test_the_readme_torchrun_command_runs_on_two_cpu_processes(tmp_path):
    """The single-node command of the README, at a toy budget, launched by torchrun itself."""
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
@pytest.mark.parametrize("agent", ["ppo", "grpo"])
def test_a_two_rank_run_resumes_from_rank_0s_disk_alone(agent, register_toy_env, toy_dir, tmp_path):
    """Two ranks stop, resume, and end where one uninterrupted process ends, although rank 1
    (another machine) sees only empty folders: rank 0 reads the checkpoint and broadcasts."""
    env_id = register_toy_env(f"Toy-DDP-resume-{agent}-v0")
    settings = _toy_settings(agent, env_id, toy_dir, checkpoint_every=1, out=str(tmp_path / "ddp"))
    steps = 8 * 6  # at most one iteration's worth of tokens
    _launch_two_ranks(agent, {**settings, "total_steps": 2 * steps}, rank_settings={1: {"out": str(tmp_path / "rank1-first")}})
    _launch_two_ranks(agent, {**settings, "total_steps": 3 * steps, "resume": True},
                      rank_settings={1: {"out": str(tmp_path / "rank1-resumed")}})
    assert latest_checkpoint(tmp_path / "ddp") is not None
    for folder in ("rank1-first", "rank1-resumed"):  # rank 1 neither wrote nor found anything there
        assert not (tmp_path / folder).exists() or not any((tmp_path / folder).iterdir())
    config_class, train = AGENTS[agent]
    straight = train(config_class(**{**settings, "out": str(tmp_path / "single"), "total_steps": 3 * steps}))
    resumed = json.loads((tmp_path / "ddp" / "summary.json").read_text())
    assert resumed["iterations"] == straight["iterations"] > 2 and resumed["env_steps"] == straight["env_steps"]
    assert _policy_difference(tmp_path / "ddp", tmp_path / "single") < TOLERANCE
