"""Batches of token windows from a prepared dataset (``train.bin`` / ``val.bin``, see :mod:`.prepare`).

A language model learns to predict every next token, so one training example is a window of ``max_len + 1``
consecutive tokens: the first ``max_len`` are the input ``x`` and the same window shifted by one is the target
``y`` (``y[t] = x[t + 1]``)::

    tokens   ... 464  2068  7586 21831 18045 ...
    x            464  2068  7586 21831
    y                 2068  7586 21831 18045

Three forms:

- :class:`MemmapBatches` reads batches of ``batch_size`` windows at given positions from a memmapped split
  (nanoGPT's ``get_batch`` without the randomness), and the fixed batches of evaluations.
- :class:`StepBatches` is the training loop's source: each optimizer step's *global* batch of ``batch_size ×
  grad_accum_steps`` windows at random positions, drawn from one checkpointable stream that every process shares,
  of which each process reads its own share (see :func:`split_global_batch`), one micro-batch ahead.
- :class:`TokenWindowDataset` is a ``torch.utils.data.Dataset`` of non-overlapping windows for a ``DataLoader``
  (the Lightning path).
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from scratchformers.train.meta import load_meta

FIXED_BATCHES_SEED = 1337


def stream_seed(seed: int, stream: str) -> int:
    """The seed of the random stream named ``stream`` for a run seeded with ``seed``: 63 bits of SHA-256 of both.

    Streams with different names are unrelated even for equal seeds, so the training batches (stream ``"random"``)
    can never replay the fixed evaluation batches (stream ``"fixed"``), whatever seed a run picks.
    """
    digest = hashlib.sha256(f"{stream}:{seed}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def _open_split(data_dir: str | Path, split: str, max_len: int) -> tuple[Path, np.dtype, int]:
    """Validate the prepared split and return its path, dtype and token count."""
    if split not in ("train", "val"):
        raise ValueError(f"split must be 'train' or 'val', got {split!r}")
    if max_len < 1:
        raise ValueError(f"max_len must be positive, got {max_len}")
    meta = load_meta(data_dir)
    num_tokens = meta["tokens"][split]
    if num_tokens < max_len + 1:
        raise ValueError(
            f"{split}.bin in {data_dir} holds {num_tokens:,} tokens, fewer than one window of max_len + 1 = "
            f"{max_len + 1:,}; use a smaller max_len or more data"
        )
    return Path(data_dir) / f"{split}.bin", np.dtype(meta["dtype"]), num_tokens


class MemmapBatches:
    """Windows of a prepared split, memmapped: ``(x, y)`` batches of shape ``(batch_size, max_len)``, int64, at the
    window starts the caller draws (:meth:`random_starts` with its own generator), or a fixed set for evaluation.

    The memmap is re-opened for every batch: a long-lived ``np.memmap`` keeps every page it has touched mapped, so
    the process's memory grows towards the file's size (17 GB for OpenWebText); a fresh one per batch does not
    (nanoGPT's fix, https://stackoverflow.com/questions/45132940). On CUDA the batch is copied into pinned memory
    and sent with ``non_blocking=True``, so the transfer overlaps the previous step's GPU work.

    Args:
        data_dir: a directory written by ``scratchformers prepare``.
        split: ``"train"`` or ``"val"``.
        max_len: tokens per window (the context length T).
        batch_size: windows per batch (B).
        device: where the batches go.
    """

    def __init__(self, data_dir: str | Path, split: str, max_len: int, batch_size: int,
                 device: str | torch.device = "cpu") -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.path, self.dtype, self.num_tokens = _open_split(data_dir, split, max_len)
        self.max_len = max_len
        self.batch_size = batch_size
        self.device = torch.device(device)

    def random_starts(self, generator: torch.Generator) -> torch.Tensor:
        """``batch_size`` window starts, uniform over every position where a whole window (plus its target) fits."""
        return torch.randint(self.num_tokens - self.max_len, (self.batch_size,), generator=generator)

    def read(self, starts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The batch whose rows start at ``starts``: ``x = data[i : i+T]``, ``y = data[i+1 : i+1+T]``."""
        data = np.memmap(self.path, dtype=self.dtype, mode="r")
        T, rows = self.max_len, starts.tolist()
        x = torch.stack([torch.from_numpy(data[i : i + T].astype(np.int64)) for i in rows])  # (B, T)
        y = torch.stack([torch.from_numpy(data[i + 1 : i + 1 + T].astype(np.int64)) for i in rows])  # (B, T)
        if self.device.type == "cuda":
            return x.pin_memory().to(self.device, non_blocking=True), y.pin_memory().to(self.device, non_blocking=True)
        return x.to(self.device), y.to(self.device)

    def fixed_batches(self, n: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """``n`` batches that are the same on every call (a stream of their own, seeded with a constant: never the
        training stream's), so evaluations at different steps, or of different runs, see the same tokens.

        They are returned as a list (already on ``device``) so the caller can keep them: ``n * batch_size *
        max_len * 16`` bytes, 200 batches of 12 x 1024 are 39 MB.
        """
        generator = torch.Generator().manual_seed(stream_seed(FIXED_BATCHES_SEED, "fixed"))
        return [self.read(self.random_starts(generator)) for _ in range(n)]


@dataclass(frozen=True)
class BatchSplit:
    """How one optimizer step's global batch is shared out: each of ``world_size`` processes runs ``accum_steps``
    micro-batches of ``micro_batch`` windows, ``world_size · accum_steps · micro_batch = global_batch`` in all."""

    global_batch: int
    world_size: int
    micro_batch: int
    accum_steps: int

    def describe(self) -> str:
        """E.g. ``120 windows (8 processes × 3 micro-batches × 5 windows)``."""
        processes = f"{self.world_size} process{'es' if self.world_size > 1 else ''}"
        return (f"{self.global_batch:,} windows ({processes} × {self.accum_steps} micro-batch"
                f"{'es' if self.accum_steps > 1 else ''} × {self.micro_batch} windows)")


def split_global_batch(batch_size: int, grad_accum_steps: int, world_size: int) -> BatchSplit:
    """Share the global batch of ``batch_size × grad_accum_steps`` windows out among ``world_size`` processes.

    The global batch is what the learning rate was tuned for, so it stays the same on any number of processes.
    nanoGPT divides ``grad_accum_steps`` by the world size; that works when it divides (12 × 10 on 2 or 5 GPUs). When
    it does not (10 micro-steps on 8 GPUs), each process still gets an equal share of ``G / world_size`` windows
    (15 of 120), cut into the fewest micro-batches of at most ``batch_size`` windows that divide it evenly (3 × 5),
    so no process holds more activations than a ``batch_size`` micro-batch. Equal micro-batches keep the mean of
    the micro-batch means equal to the mean over the global batch.

    Raises:
        ValueError: ``G`` does not split evenly over ``world_size`` processes; the message names the
            ``grad_accum_steps`` and process counts that work.
    """
    for name, value in (("batch_size", batch_size), ("grad_accum_steps", grad_accum_steps),
                        ("world_size", world_size)):
        if value < 1:
            raise ValueError(f"{name} must be at least 1, got {value}")
    global_batch = batch_size * grad_accum_steps
    if global_batch % world_size:
        step = world_size // math.gcd(batch_size, world_size)
        accum_choices = ", ".join(str(step * i) for i in range(1, 4))
        small = [n for n in range(1, math.isqrt(global_batch) + 1) if global_batch % n == 0]
        divisors = sorted({*small, *(global_batch // n for n in small)})
        process_choices = ", ".join(map(str, divisors))
        raise ValueError(
            f"the global batch batch_size × grad_accum_steps = {batch_size} × {grad_accum_steps} = {global_batch} "
            f"windows cannot be shared equally by {world_size} processes: use --grad-accum-steps {accum_choices}, "
            f"... (a multiple of {step}) or a number of processes that divides {global_batch} ({process_choices})"
        )
    share = global_batch // world_size
    micro_batch = max(d for d in range(1, min(batch_size, share) + 1) if share % d == 0)
    return BatchSplit(global_batch, world_size, micro_batch, share // micro_batch)


class StepBatches:
    """One process's micro-batches of every optimizer step's global batch, from the run's training stream, read one
    micro-batch ahead.

    The stream is a ``torch.Generator`` seeded from the run's seed (:func:`stream_seed`, stream ``"random"``). Every
    process draws each step's ``global_batch`` window starts from it (``grad_accum_steps`` draws of ``batch_size``,
    as a single process without DDP would make them), so all processes agree on the global batch and the stream does
    not depend on how many processes share it; process ``rank`` then reads only its ``global_batch / world_size``
    windows, as ``accum_steps`` micro-batches of ``micro_batch``. Its state is checkpointed, so a resumed run draws
    the batches an uninterrupted one would have drawn.

    :meth:`prefetch` reads the next micro-batch from disk and starts its copy to the device (non-blocking, from
    pinned memory, on CUDA) while the GPU is still busy with the current one; :meth:`next` hands it over.

    Args:
        source: the split to read; its ``batch_size`` is the configured micro-batch (the size of one draw).
        split: from :func:`split_global_batch` with ``source.batch_size``.
        rank: this process's rank.
        seed: the run's seed.
    """

    def __init__(self, source: MemmapBatches, split: BatchSplit, rank: int, seed: int) -> None:
        if split.global_batch % source.batch_size or not 0 <= rank < split.world_size:
            raise ValueError(f"{split} does not fit draws of {source.batch_size} windows and rank {rank}")
        self.source = source
        self.split = split
        self.rank = rank
        self.generator = torch.Generator().manual_seed(stream_seed(seed, "random"))
        self._queue: list[torch.Tensor] = []  # window starts of the drawn step's micro-batches not yet read
        self._ahead: tuple[torch.Tensor, torch.Tensor] | None = None  # read by prefetch(), not yet handed over
        self._state_before_draw: torch.Tensor | None = None  # the generator's state before the last draw

    def _read_next(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Read this process's next micro-batch, drawing the next step's global batch when the queue is empty."""
        if not self._queue:
            self._state_before_draw = self.generator.get_state()
            draws = self.split.global_batch // self.source.batch_size
            starts = torch.cat([self.source.random_starts(self.generator) for _ in range(draws)])  # (global_batch,)
            share = self.split.global_batch // self.split.world_size
            mine = starts[self.rank * share : (self.rank + 1) * share]
            self._queue = list(mine.split(self.split.micro_batch))
        return self.source.read(self._queue.pop(0))

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The next micro-batch ``(x, y)``, each ``(micro_batch, max_len)`` int64 on the device."""
        batch = self._ahead if self._ahead is not None else self._read_next()
        self._ahead = None
        return batch

    def prefetch(self) -> None:
        """Read the micro-batch that :meth:`next` returns next, now (a no-op if it is already read)."""
        if self._ahead is None:
            self._ahead = self._read_next()

    def state_dict(self) -> dict[str, Any]:
        """The stream's position at the start of the next step not yet handed out (whatever was read ahead is drawn
        again after a restore). Take it between optimizer steps. Holds only a uint8 tensor, so it loads with
        ``torch.load(weights_only=True)``."""
        undelivered = len(self._queue) + (self._ahead is not None)
        if undelivered == 0:
            return {"generator": self.generator.get_state()}
        if undelivered == self.split.accum_steps:
            return {"generator": self._state_before_draw}
        raise RuntimeError("StepBatches.state_dict() was called in the middle of an optimizer step")

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from :meth:`state_dict`; anything read ahead is dropped."""
        self.generator.set_state(state["generator"])
        self._queue, self._ahead = [], None


class TokenWindowDataset(Dataset):
    """The split cut into non-overlapping windows: item ``i`` is ``(x, y)`` with ``x = data[i*T : i*T + T]`` and
    ``y`` the same window shifted by one, each ``(T,)`` int64.

    Windows do not overlap, so one pass of a shuffled ``DataLoader`` sees every token once (the last partial window
    is dropped); the randomness comes from the loader's shuffling instead of random offsets. The memmap is opened
    per item, which also keeps the dataset picklable for ``num_workers > 0``.
    """

    def __init__(self, data_dir: str | Path, split: str, max_len: int) -> None:
        self.path, self.dtype, self.num_tokens = _open_split(data_dir, split, max_len)
        self.max_len = max_len

    def __len__(self) -> int:
        return (self.num_tokens - 1) // self.max_len

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        if not 0 <= index < len(self):
            raise IndexError(f"window {index} out of range for {len(self)} windows")
        data = np.memmap(self.path, dtype=self.dtype, mode="r")
        start = index * self.max_len
        window = torch.from_numpy(data[start : start + self.max_len + 1].astype(np.int64))  # (T + 1,)
        return window[:-1], window[1:]
