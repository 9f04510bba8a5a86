"""Distributed data parallel (DDP) training, launched with ``torchrun``.

``torchrun --nproc_per_node=8 -m scratchformers train --preset gpt2-owt`` starts 8 processes and tells each who
it is through environment variables: ``RANK`` (0 … world_size − 1, over all machines), ``LOCAL_RANK`` (which GPU
on this machine) and ``WORLD_SIZE``. Every process holds a full copy of the model, draws its own batches and
computes its own gradients; ``DistributedDataParallel`` averages the gradients over all processes during
``backward()`` (an all-reduce, NCCL between GPUs, gloo between CPU processes), so after ``optimizer.step()`` every
copy holds the same weights.

With gradient accumulation only the last micro-step needs the average: inside ``model.no_sync()`` DDP skips
the all-reduce and just accumulates locally, saving ``grad_accum_steps − 1`` rounds of communication per step.
Process 0 (the "main" process) alone logs, evaluates and writes checkpoints.
"""
from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

import torch
import torch.distributed as dist
from torch import nn

T = TypeVar("T")


@dataclass(frozen=True)
class DistContext:
    """Who this process is: its rank among ``world_size`` processes and the device it trains on."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def resolve_device(device: str) -> torch.device:
    """``"auto"`` → ``cuda`` when available, else ``cpu``; anything else as given, if this machine has it.

    Raises:
        ValueError: not a device name, or a CUDA device where torch sees none (one line saying which).
    """
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError:
        raise ValueError(f"--device {device!r} is not a device: use auto, cpu, cuda or cuda:N") from None
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            build = "this torch is a CPU-only build" if torch.version.cuda is None else "no CUDA GPU is visible"
            raise ValueError(f"--device {device}: {build}; use --device cpu (or auto)")
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            raise ValueError(f"--device {device}: this machine has {torch.cuda.device_count()} CUDA GPU(s)")
    elif resolved.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"--device {device}: this machine has no Apple GPU (MPS); use --device cpu (or auto)")
    elif resolved.type not in ("cpu", "mps"):
        raise ValueError(f"--device {device}: use auto, cpu, cuda, cuda:N or mps")
    return resolved


def setup_distributed(device: str = "auto") -> DistContext:
    """Join the process group when launched by ``torchrun`` (``RANK`` is set); otherwise a single process.

    Each DDP process on a GPU machine takes the GPU ``cuda:LOCAL_RANK``; the backend is NCCL on GPU, gloo on CPU.
    """
    base = resolve_device(device)
    if "RANK" not in os.environ:
        return DistContext(device=base)
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    world_size = int(os.environ["WORLD_SIZE"])
    if base.type == "cuda":
        base = torch.device("cuda", local_rank)
        torch.cuda.set_device(base)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if base.type == "cuda" else "gloo", rank=rank, world_size=world_size)
    return DistContext(rank=rank, local_rank=local_rank, world_size=world_size, device=base)


def cleanup_distributed(ctx: DistContext) -> None:
    """Leave the process group, all processes together (a no-op for a single process).

    Process 0 still evaluates, samples and plots after the last step while the others are done; a process that
    tears down its gloo connections then can abort ("terminate called without an active exception") while its peers
    are still connected. The barrier makes every process leave at the same moment, as ``destroy_process_group``
    expects."""
    if ctx.enabled and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def wrap_model(model: nn.Module, ctx: DistContext) -> nn.Module:
    """``DistributedDataParallel(model)`` in a DDP run, the model itself otherwise."""
    if not ctx.enabled:
        return model
    device_ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=device_ids)


def maybe_no_sync(model: nn.Module, skip_sync: bool) -> contextlib.AbstractContextManager:
    """``model.no_sync()`` when ``skip_sync`` and the model is DDP-wrapped: gradients accumulate locally and
    are not all-reduced on this backward pass."""
    if skip_sync and isinstance(model, nn.parallel.DistributedDataParallel):
        return model.no_sync()
    return contextlib.nullcontext()


def all_reduce_sum(tensor: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """Sum ``tensor`` over all processes, in place (unchanged for a single process)."""
    if ctx.enabled:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def barrier(ctx: DistContext) -> None:
    """Wait until every process reaches this point."""
    if ctx.enabled:
        dist.barrier()


def on_main_or_raise(action: Callable[[], T], ctx: DistContext) -> T | None:
    """``action()`` on process 0 only (None elsewhere); if it raises, every process raises: process 0 its own
    error, the others one that points to it (rather than waiting forever at the next collective)."""
    result, error = None, None
    if ctx.is_main:
        try:
            result = action()
        except Exception as caught:  # re-raised below, after the other processes have heard of it
            error = caught
    if ctx.enabled:
        failed = torch.tensor([float(error is not None)], device=ctx.device)
        dist.broadcast(failed, src=0)
        if not ctx.is_main and failed.item():
            raise RuntimeError("process 0 stopped the run at start-up (its message says why)")
    if error is not None:
        raise error
    return result


@contextlib.contextmanager
def main_process_first(ctx: DistContext) -> Iterator[None]:
    """Run the block on process 0 first, then on the others (e.g. prepare the data once, then read it)."""
    if not ctx.is_main:
        barrier(ctx)
    yield
    if ctx.is_main:
        barrier(ctx)
