"""Multi-process training under ``torchrun``: DistributedDataParallel, gloo on CPU, nccl on GPU.

Outside ``torchrun`` (no ``WORLD_SIZE`` > 1 in the environment) every function
here is a no-op, so the trainer has one code path.

Example (two processes on one CPU machine)::

    torchrun --nproc_per_node 2 -m vlm_reward_wrappers train --objective triplet --data D --out C
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist
from torch import nn


def setup() -> tuple[int, int]:
    """Join the process group if launched by torchrun; return ``(rank, world_size)``."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return 0, 1
    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend=backend)
        if backend == "nccl":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    return dist.get_rank(), dist.get_world_size()


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def wrap(module: nn.Module, device: str) -> nn.Module:
    """The module itself, or wrapped in DistributedDataParallel when distributed."""
    if not is_distributed():
        return module
    device_ids = [torch.device(device).index] if device.startswith("cuda") else None
    # Objectives that ignore the temperature leave it without a gradient.
    return nn.parallel.DistributedDataParallel(module, device_ids=device_ids, find_unused_parameters=True)


def all_finite(values: torch.Tensor) -> bool:
    """Whether ``values`` (a loss, weight magnitudes) are finite on every process; all stop together if not."""
    bad = torch.tensor([0.0 if torch.isfinite(values).all() else 1.0], device=values.device)
    if is_distributed():
        dist.all_reduce(bad)
    return bool(bad.item() == 0.0)


def any_process(flag: bool, device: str) -> bool:
    """Whether ``flag`` is true on any process (rank 0 decides a stop; every process follows); ``device`` is this
    process's, where the collective runs."""
    if not is_distributed():
        return flag
    count = torch.tensor([float(flag)], device=device)
    dist.all_reduce(count)
    return bool(count.item() > 0)


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def teardown() -> None:
    if is_distributed():
        dist.destroy_process_group()
