"""The data-parallel path on each device, in a process group of one (``RLHF_GYM_DISTRIBUTED=1``).

One process joins a real process group, so every collective runs through the backend a
multi-process run uses: gloo on CPU; on a GPU a mixed group, NCCL for CUDA tensors and gloo
for CPU ones. The CUDA cases skip without a GPU; ``benchmarks/gpu_check.sh`` runs them on one.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

from rlhf_gym.agents.distributed import JOIN_VARIABLE, Distributed, backend
from rlhf_gym.agents.grpo import GRPOConfig
from rlhf_gym.agents.grpo import train as train_grpo
from rlhf_gym.agents.ppo import PPOConfig
from rlhf_gym.agents.ppo import train as train_ppo
from rlhf_gym.lm.policy import CausalLMPolicy

AGENTS = {"ppo": (PPOConfig, train_ppo), "grpo": (GRPOConfig, train_grpo)}
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"))]
# A group of one all-reduces each gradient with itself, so it trains what no group trains:
# bit for bit on CPU; on a GPU up to its run-to-run noise (atomic adds in the embedding's
# backward pass).
TOLERANCE = 1e-4


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _join_a_group_of_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """torchrun's environment for ``--nproc_per_node 1``, with ``RLHF_GYM_DISTRIBUTED=1``."""
    for name, value in dict(RANK=0, LOCAL_RANK=0, WORLD_SIZE=1, MASTER_ADDR="127.0.0.1", MASTER_PORT=_free_port()).items():
        monkeypatch.setenv(name, str(value))
    monkeypatch.setenv(JOIN_VARIABLE, "1")


@pytest.mark.parametrize("device", DEVICES)
def test_every_collective_runs_in_a_group_of_one(device, monkeypatch):
    _join_a_group_of_one(monkeypatch)
    world = Distributed.from_environment(device)
    try:
        assert world.active and dist.get_world_size() == 1 and dist.get_backend() == backend(device)
        assert world.device(device) == ("cuda:0" if device == "cuda" else "cpu")
        assert world.mean({"proxy_reward": 0.25}) == {"proxy_reward": 0.25} and world.sum(3.0) == 3.0  # CPU tensors: gloo
        x = torch.randn(1000, device=device)
        total = world.all_sum(x)  # on the device: NCCL on a GPU
        assert total.device == x.device and torch.equal(total, x)
        torch.testing.assert_close(world.mean_std(x), (x.mean(), x.std()))
        module = torch.nn.Linear(8, 4).to(device)
        optimizer = torch.optim.Adam(module.parameters())
        module(torch.ones(2, 8, device=device)).sum().backward()
        grads = [p.grad.clone() for p in module.parameters()]
        world.average_gradients(module.parameters())
        assert all(torch.equal(p.grad, g) for p, g in zip(module.parameters(), grads))
        optimizer.step()  # Adam's state: a CPU step counter beside moments on the device
        weights = [p.detach().clone() for p in module.parameters()]
        assert world.broadcast_from_main({"iteration": 3}, [module], optimizer) == {"iteration": 3}
        assert all(torch.equal(p, w) for p, w in zip(module.parameters(), weights))
        world.barrier()
    finally:
        world.close()
    assert not dist.is_initialized()


@pytest.mark.slow
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("agent", ["ppo", "grpo"])
def test_training_in_a_group_of_one_matches_training_without_one(agent, device, register_toy_env, toy_dir, tmp_path, monkeypatch):
    env_id = register_toy_env(f"Toy-group-of-one-{agent}-{device}-v0")
    settings = dict(
        env=env_id, policy=str(toy_dir / "policy"), device=device, total_steps=8 * 6 * 2, num_minibatches=2, learning_rate=1e-3,
        temperature=1.0, missing_eos_penalty=None, eval_episodes=8, eval_every=100, checkpoint_every=100, paired_posts=0,
        threads=1, seed=0,
    )
    # PPO samples each episode from its own draws, as in any process group; the group agents always do
    settings.update(dict(num_envs=8, row_sampling=True, num_epochs=2) if agent == "ppo" else dict(num_prompts=4, group_size=2))
    config_class, train = AGENTS[agent]
    plain = train(config_class(**settings, out=str(tmp_path / "plain")))
    _join_a_group_of_one(monkeypatch)
    grouped = train(config_class(**settings, out=str(tmp_path / "group")))
    assert not dist.is_initialized()  # the run closed its group
    assert grouped["world_size"] == 1 and grouped["env_steps"] == plain["env_steps"]

    def weights(folder: Path) -> dict[str, torch.Tensor]:
        return CausalLMPolicy.from_pretrained(folder / "final_policy").model.state_dict()

    a, b = weights(tmp_path / "plain"), weights(tmp_path / "group")
    initial = CausalLMPolicy.from_pretrained(toy_dir / "policy").model.state_dict()
    difference = max((a[k] - b[k]).abs().max().item() for k in a)
    moved = max((a[k] - initial[k]).abs().max().item() for k in a)
    print(f"{agent} on {device}: max |group of one - plain| = {difference:.2e}, trained - initial {moved:.2e}")
    assert difference < TOLERANCE < moved, (difference, moved)
    if device == "cpu":
        assert difference == 0
