"""Data-parallel training across processes, GPUs and machines with ``torch.distributed``.

    torchrun --nproc_per_node 2 -m rlhf_gym.agents.train --agent grpo --device cpu ...        # one machine
    torchrun --nnodes 2 --node_rank R --nproc_per_node 8 --rdzv_backend c10d \\
             --rdzv_endpoint HOST:29500 -m rlhf_gym.agents.train --agent grpo --device cuda ...  # two machines

Each process (rank) owns a shard of the batched env: ``num_envs / world_size`` sub-envs,
which are rows ``[rank * n, (rank + 1) * n)`` of the batch a single process would run. A
rank resets its shard with the single-process seed plus its row offset, so it draws those
rows' prompts, and samples with the whole batch's uniforms sliced to its rows
(`rlhf_gym.env.rollout.collect_episodes` with ``rows=``), so a rank's episodes are those
rows of the single-process batch. After each backward pass the gradients are averaged
across ranks in one flat bucket (what ``DistributedDataParallel`` does, without
overlapping communication with the backward pass), so every rank takes the same optimiser
step and the parameters stay identical. Metrics are averaged across ranks; only rank 0
writes logs, checkpoints and ``summary.json``.

NCCL on GPUs, gloo on CPUs; ``torchrun`` sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
``MASTER_ADDR`` and ``MASTER_PORT``. Without them this is a world of one and every call is
a no-op.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch._utils import _flatten_dense_tensors, _unflatten_dense_tensors


@dataclass(frozen=True)
class Distributed:
    """This process's place in the data-parallel world.

    Attributes:
        rank: 0 .. world_size - 1 (rank 0 writes the run folder).
        world_size: number of processes.
        local_rank: the rank on this machine (its GPU index).
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world_size > 1

    @classmethod
    def from_environment(cls, device: str) -> Distributed:
        """Join the process group ``torchrun`` describes (a world of one without it).

        ``device`` picks the backend: NCCL for CUDA (each rank on ``cuda:LOCAL_RANK``), gloo
        otherwise.
        """
        world_size = int(os.environ.get("WORLD_SIZE", "1"))
        if world_size <= 1:
            return cls()
        rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
        cuda = torch.device(device).type == "cuda"
        if not dist.is_initialized():
            if cuda:
                torch.cuda.set_device(local_rank)
            dist.init_process_group(backend="nccl" if cuda else "gloo")
        return cls(rank=rank, world_size=world_size, local_rank=local_rank)

    def device(self, device: str) -> str:
        """``cuda:LOCAL_RANK`` for a CUDA run, else ``device`` unchanged."""
        return f"cuda:{self.local_rank}" if self.active and torch.device(device).type == "cuda" else device

    def shard(self, num_envs: int) -> tuple[int, int]:
        """This rank's sub-envs of a ``num_envs`` batch: (how many, the first one's row).

        Raises:
            ValueError: ``num_envs`` does not split evenly over the ranks.
        """
        if num_envs % self.world_size != 0:
            raise ValueError(f"num_envs ({num_envs}) must be divisible by the world size ({self.world_size})")
        local = num_envs // self.world_size
        return local, self.rank * local

    def own_rows(self, rows: torch.Tensor, num_envs: int) -> torch.Tensor:
        """The rows of a ``num_envs`` batch's ``rows`` that this rank holds, as indices into its shard.

        Example:
            >>> Distributed(rank=1, world_size=2).own_rows(torch.tensor([7, 0, 4, 5]), 8).tolist()
            [3, 0, 1]
        """
        local, offset = self.shard(num_envs)
        return rows[(rows >= offset) & (rows < offset + local)] - offset

    def average_gradients(self, parameters: Iterable[torch.nn.Parameter]) -> None:
        """Replace each gradient by its mean over the ranks (one all-reduce of a flat bucket)."""
        if not self.active:
            return
        parameters = [p for p in parameters if p.requires_grad]
        for p in parameters:  # a rank with no rows in a minibatch contributes zeros
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        grads = [p.grad for p in parameters]
        flat = _flatten_dense_tensors(grads)
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        flat /= self.world_size
        for grad, synced in zip(grads, _unflatten_dense_tensors(flat, grads)):
            grad.copy_(synced)

    def mean(self, values: dict[str, float]) -> dict[str, float]:
        """The ranks' mean of each metric (NaN stays NaN when any rank has it)."""
        if not self.active or not values:
            return values
        tensor = torch.tensor(list(values.values()), dtype=torch.float64)
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return dict(zip(values, (tensor / self.world_size).tolist()))

    def all_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """The sum of a (no-grad) tensor over the ranks; the tensor itself in a world of one."""
        if not self.active:
            return tensor
        total = tensor.detach().clone()
        dist.all_reduce(total, op=dist.ReduceOp.SUM)
        return total

    def sum(self, value: float) -> float:
        """`all_sum` of a number."""
        return value if not self.active else float(self.all_sum(torch.tensor([value], dtype=torch.float64)).item())

    def barrier(self) -> None:
        if self.active:
            dist.barrier()

    def close(self) -> None:
        if self.active and dist.is_initialized():
            dist.destroy_process_group()


SINGLE = Distributed()
"""A world of one: every collective is the identity."""
