"""Data-parallel training across processes, GPUs and machines with ``torch.distributed``.

    torchrun --nproc_per_node 2 -m rlhf_gym.cli train --agent grpo --device cpu ...        # one machine
    torchrun --nnodes 2 --node_rank R --nproc_per_node 8 --rdzv_backend c10d \\
             --rdzv_endpoint HOST:29500 -m rlhf_gym.cli train --agent grpo --device cuda ...  # two machines

(``-m rlhf_gym.cli train`` is the ``rlhf-gym train`` command; ``torchrun`` needs a module or
a script to launch.)

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

**Backends.** A CPU run joins a gloo group. A CUDA run joins a mixed group,
``cpu:gloo,cuda:nccl`` (`backend`): each collective goes to the backend of its tensor's
device, so the gradients (on the GPU) go through NCCL, while the metrics, token counts,
run state and Adam's step counters (small CPU tensors and objects) go through gloo. NCCL
alone accepts only CUDA tensors; no tensor is copied between devices to suit a backend.

**Resume.** Only rank 0 writes the run folder, and on several machines only rank 0's disk
holds it. So rank 0 alone reads the checkpoint, and `broadcast_from_main` sends its run
state, model weights and optimiser state to the other ranks. They never read their own
``--out`` folder.

**A world of one.** ``torchrun`` sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
``MASTER_ADDR`` and ``MASTER_PORT``. Without them, or with ``WORLD_SIZE=1``, this is a
world of one and every collective is the identity, with no process group. With
``RLHF_GYM_DISTRIBUTED=1`` a ``torchrun --nproc_per_node 1`` process joins a process group
of one and runs every collective, so that a single GPU exercises NCCL
(``benchmarks/gpu_check.sh``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch._utils import _flatten_dense_tensors, _unflatten_dense_tensors

JOIN_VARIABLE = "RLHF_GYM_DISTRIBUTED"
"""Set to 1 to join a process group even in a world of one (``torchrun --nproc_per_node 1``)."""


class LaunchError(ValueError):
    """The launch does not fit a data-parallel run: torchrun's environment, or the device (the CLI prints it and exits)."""


def backend(device: str) -> str:
    """The process-group backend of a run on ``device``.

    gloo on CPU; on CUDA a mixed group in which CUDA tensors go through NCCL and CPU
    tensors (metrics, counts, objects) through gloo.

    Raises:
        LaunchError: a device that is neither CPU nor CUDA.

    Example:
        >>> backend("cpu"), backend("cuda:1")
        ('gloo', 'cpu:gloo,cuda:nccl')
    """
    kind = torch.device(device).type
    if kind not in ("cpu", "cuda"):
        raise LaunchError(f"data-parallel runs need --device cpu or cuda, got {device!r}")
    return "cpu:gloo,cuda:nccl" if kind == "cuda" else "gloo"


def _joins_a_world_of_one() -> bool:
    value = os.environ.get(JOIN_VARIABLE, "0")
    if value not in ("0", "1"):
        raise LaunchError(f"{JOIN_VARIABLE} must be 0 or 1, got {value!r}")
    return value == "1"


@dataclass(frozen=True)
class Distributed:
    """This process's place in the data-parallel world.

    Attributes:
        rank: 0 .. world_size - 1 (rank 0 writes the run folder).
        world_size: number of processes.
        local_rank: the rank on this machine (its GPU index).
        in_group: this process joined a ``torch.distributed`` process group, so the
            collectives run (also in a world of one under ``RLHF_GYM_DISTRIBUTED=1``).
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    in_group: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        """Whether the collectives run (otherwise each is the identity)."""
        return self.in_group

    @classmethod
    def from_environment(cls, device: str) -> Distributed:
        """Join the process group ``torchrun`` describes (a world of one without it).

        ``device`` picks the backend (`backend`); a CUDA rank runs on ``cuda:LOCAL_RANK``.

        Raises:
            LaunchError: ``RLHF_GYM_DISTRIBUTED`` is not 0 or 1; a group is asked for (a world
                size above 1, or that variable at 1) without torchrun's variables; a device
                other than CPU or CUDA.
        """
        join = _joins_a_world_of_one()
        world_size = int(os.environ.get("WORLD_SIZE", "1"))
        if world_size <= 1 and not join:
            return cls()
        missing = [name for name in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT") if name not in os.environ]
        if missing:
            asked = f"{JOIN_VARIABLE}=1" if join else f"WORLD_SIZE={world_size}"
            unset = f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} not set"
            raise LaunchError(f"{asked} needs torchrun's environment, but {unset}: launch with torchrun")
        rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
        group_backend = backend(device)
        if not dist.is_initialized():
            if torch.device(device).type == "cuda":
                torch.cuda.set_device(local_rank)
            dist.init_process_group(backend=group_backend)
        if rank == 0:
            print(f"data-parallel: {world_size} rank(s) in a {dist.get_backend()!r} process group")
        return cls(rank=rank, world_size=world_size, local_rank=local_rank, in_group=True)

    def device(self, device: str) -> str:
        """``cuda:LOCAL_RANK`` for a CUDA run in a process group, else ``device`` unchanged."""
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
        flat = _flatten_dense_tensors(grads)  # on the parameters' device: NCCL on a GPU
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        flat /= self.world_size
        for grad, synced in zip(grads, _unflatten_dense_tensors(flat, grads)):
            grad.copy_(synced)

    def mean(self, values: dict[str, float]) -> dict[str, float]:
        """The ranks' mean of each metric (NaN stays NaN when any rank has it)."""
        if not self.active or not values:
            return values
        tensor = torch.tensor(list(values.values()), dtype=torch.float64)  # a CPU tensor: gloo
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return dict(zip(values, (tensor / self.world_size).tolist()))

    def all_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """The sum of a (no-grad) tensor over the ranks, on its device; the tensor itself in a world of one."""
        if not self.active:
            return tensor
        total = tensor.detach().clone()
        dist.all_reduce(total, op=dist.ReduceOp.SUM)
        return total

    def sum(self, value: float) -> float:
        """`all_sum` of a number."""
        return value if not self.active else float(self.all_sum(torch.tensor([value], dtype=torch.float64)).item())

    def mean_std(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The mean and the unbiased standard deviation of the entries of every rank's ``x``.

        What one process computes on the whole batch: whitening with these is the same on
        every rank. Outside a process group it is ``x.mean(), x.std()`` exactly (runs of
        one process keep their numbers); in a group the sums are taken in float64, then the
        results cast to ``x``'s dtype.

        Example:
            >>> [round(v.item(), 4) for v in Distributed().mean_std(torch.tensor([1.0, 2.0, 6.0]))]
            [3.0, 2.6458]
        """
        if not self.active:
            return x.mean(), x.std()
        x64 = x.detach().double()
        count, total = self.all_sum(torch.stack([x64.new_tensor(float(x.numel())), x64.sum()])).unbind()
        mean = total / count
        variance = self.all_sum(((x64 - mean) ** 2).sum()) / (count - 1)
        return mean.to(x.dtype), variance.sqrt().to(x.dtype)

    def broadcast_from_main(
        self, state: dict[str, Any], modules: Iterable[torch.nn.Module], optimizer: torch.optim.Optimizer
    ) -> dict[str, Any]:
        """Give every rank rank 0's run state, module weights and optimiser state (to resume).

        Rank 0 alone reads a checkpoint into its modules and optimiser: on several machines
        only its disk holds the run folder. The other ranks then receive the JSON-able
        ``state`` (theirs is ignored), every parameter and buffer of ``modules`` (in
        place), and the optimiser's state, so all ranks continue as one.

        Returns:
            rank 0's ``state``, on every rank.
        """
        if not self.active:
            return state
        if self.is_main:
            optimizer_layout, optimizer_tensors = _split_tensors(optimizer.state_dict())
            shared: list[Any] = [state, optimizer_layout]
        else:
            shared = [None, None]
        dist.broadcast_object_list(shared, src=0)  # pickled on the CPU: gloo
        state, optimizer_layout = shared
        for module in modules:
            for tensor in module.state_dict().values():  # views of the parameters and buffers
                dist.broadcast(tensor, src=0)
        if not self.is_main:
            optimizer_tensors = [
                torch.empty(spec.shape, dtype=spec.dtype, device=self._local(spec.device)) for spec in _specs(optimizer_layout)
            ]
        for tensor in optimizer_tensors:
            dist.broadcast(tensor, src=0)
        if not self.is_main:
            optimizer.load_state_dict(_join_tensors(optimizer_layout, optimizer_tensors))
        return state

    def barrier(self) -> None:
        if self.active:
            dist.barrier()

    def close(self) -> None:
        if self.active and dist.is_initialized():
            dist.destroy_process_group()

    def _local(self, device_type: str) -> torch.device:
        """This rank's device of a type rank 0 named (``cuda`` is each rank's own GPU)."""
        return torch.device("cuda", torch.cuda.current_device()) if device_type == "cuda" else torch.device(device_type)


SINGLE = Distributed()
"""A world of one: every collective is the identity."""


# Broadcasting an optimiser state: its layout as an object, its tensors one by one ----------
@dataclass(frozen=True)
class _TensorSpec:
    """A tensor's place in a layout: its index in the tensor list, shape, dtype and device type."""

    index: int
    shape: tuple[int, ...]
    dtype: torch.dtype
    device: str


def _split_tensors(tree: Any) -> tuple[Any, list[torch.Tensor]]:
    """``tree`` (nested dicts, lists, tuples) with each tensor replaced by a `_TensorSpec`, and the tensors."""
    tensors: list[torch.Tensor] = []

    def walk(node: Any) -> Any:
        if isinstance(node, torch.Tensor):
            tensors.append(node.contiguous())
            return _TensorSpec(len(tensors) - 1, tuple(node.shape), node.dtype, node.device.type)
        if isinstance(node, dict):
            return {key: walk(value) for key, value in node.items()}
        if isinstance(node, (list, tuple)):
            return type(node)(walk(value) for value in node)
        return node

    return walk(tree), tensors


def _specs(layout: Any) -> list[_TensorSpec]:
    """The `_TensorSpec` of a layout, in index order."""
    found: list[_TensorSpec] = []

    def walk(node: Any) -> None:
        if isinstance(node, _TensorSpec):
            found.append(node)
        elif isinstance(node, dict):
            for value in node.values():
                walk(value)
        elif isinstance(node, (list, tuple)):
            for value in node:
                walk(value)

    walk(layout)
    return sorted(found, key=lambda spec: spec.index)


def _join_tensors(layout: Any, tensors: list[torch.Tensor]) -> Any:
    """The inverse of `_split_tensors`."""
    if isinstance(layout, _TensorSpec):
        return tensors[layout.index]
    if isinstance(layout, dict):
        return {key: _join_tensors(value, tensors) for key, value in layout.items()}
    if isinstance(layout, (list, tuple)):
        return type(layout)(_join_tensors(value, tensors) for value in layout)
    return layout
