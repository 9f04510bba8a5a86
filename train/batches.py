"""Batches of token windows from a prepared dataset (``train.bin`` / ``val.bin``, see :mod:`.prepare`).

A language model learns to predict every next token, so one training example is a window of ``block_size + 1``
consecutive tokens: the first ``block_size`` are the input ``x`` and the same window shifted by one is the target
``y`` (``y[t] = x[t + 1]``)::

    tokens   ... 464  2068  7586 21831 18045 ...
    x            464  2068  7586 21831
    y                 2068  7586 21831 18045

Two forms:

- :class:`MemmapBatches` draws ``batch_size`` windows at random positions (nanoGPT's ``get_batch``), the training
  loop's source. Its random generator is its own and checkpointable, so a resumed run draws the same batches.
- :class:`TokenWindowDataset` is a ``torch.utils.data.Dataset`` of non-overlapping windows for a ``DataLoader``
  (the Lightning path).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from scratchformers.train.prepare import load_meta

FIXED_BATCHES_SEED = 1337


def _open_split(data_dir: str | Path, split: str, block_size: int) -> tuple[Path, np.dtype, int]:
    """Validate the prepared split and return its path, dtype and token count."""
    if split not in ("train", "val"):
        raise ValueError(f"split must be 'train' or 'val', got {split!r}")
    if block_size < 1:
        raise ValueError(f"block_size must be positive, got {block_size}")
    meta = load_meta(data_dir)
    num_tokens = meta["tokens"][split]
    if num_tokens < block_size + 1:
        raise ValueError(
            f"{split}.bin in {data_dir} holds {num_tokens:,} tokens, fewer than one window of block_size + 1 = "
            f"{block_size + 1:,}; use a smaller block_size or more data"
        )
    return Path(data_dir) / f"{split}.bin", np.dtype(meta["dtype"]), num_tokens


class MemmapBatches:
    """Random ``(x, y)`` batches of shape ``(batch_size, block_size)``, int64, read from a memmapped split.

    The memmap is re-opened for every batch: a long-lived ``np.memmap`` keeps every page it has touched mapped, so
    the process's memory grows towards the file's size (17 GB for OpenWebText); a fresh one per batch does not
    (nanoGPT's fix, https://stackoverflow.com/questions/45132940). On CUDA the batch is copied into pinned memory
    and sent with ``non_blocking=True``, so the transfer overlaps the previous step's GPU work.

    Args:
        data_dir: a directory written by ``scratchformers prepare``.
        split: ``"train"`` or ``"val"``.
        block_size: tokens per window (the context length T).
        batch_size: windows per batch (B).
        device: where the batches go.
        seed: seeds this object's ``torch.Generator``; ``None`` draws a random seed.
    """

    def __init__(
        self,
        data_dir: str | Path,
        split: str,
        block_size: int,
        batch_size: int,
        device: str | torch.device = "cpu",
        seed: int | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.path, self.dtype, self.num_tokens = _open_split(data_dir, split, block_size)
        self.block_size = block_size
        self.batch_size = batch_size
        self.device = torch.device(device)
        self.generator = torch.Generator()
        if seed is None:
            self.generator.seed()
        else:
            self.generator.manual_seed(seed)

    def _windows(self, starts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The batch whose rows start at ``starts``: ``x = data[i : i+T]``, ``y = data[i+1 : i+1+T]``."""
        data = np.memmap(self.path, dtype=self.dtype, mode="r")
        T, rows = self.block_size, starts.tolist()
        x = torch.stack([torch.from_numpy(data[i : i + T].astype(np.int64)) for i in rows])  # (B, T)
        y = torch.stack([torch.from_numpy(data[i + 1 : i + 1 + T].astype(np.int64)) for i in rows])  # (B, T)
        if self.device.type == "cuda":
            return x.pin_memory().to(self.device, non_blocking=True), y.pin_memory().to(self.device, non_blocking=True)
        return x.to(self.device), y.to(self.device)

    def _random_starts(self, generator: torch.Generator) -> torch.Tensor:
        """``batch_size`` window starts, uniform over every position where a whole window (plus its target) fits."""
        return torch.randint(self.num_tokens - self.block_size, (self.batch_size,), generator=generator)

    def get_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The next random batch ``(x, y)``, each ``(batch_size, block_size)`` int64 on ``device``."""
        return self._windows(self._random_starts(self.generator))

    def fixed_batches(self, n: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """``n`` batches that are the same on every call (a generator seeded with a constant, independent of
        :meth:`get_batch`'s), so evaluations at different steps, or of different runs, see the same tokens.

        They are returned as a list (already on ``device``) so the caller can keep them: ``n * batch_size *
        block_size * 16`` bytes, 200 batches of 12 x 1024 are 39 MB.
        """
        generator = torch.Generator().manual_seed(FIXED_BATCHES_SEED)
        return [self._windows(self._random_starts(generator)) for _ in range(n)]

    def state_dict(self) -> dict[str, Any]:
        """The random generator's state: restoring it makes the next :meth:`get_batch` the one an uninterrupted
        run would have drawn. Holds only a uint8 tensor, so it loads with ``torch.load(weights_only=True)``."""
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`'s generator state."""
        self.generator.set_state(state["generator"])


class TokenWindowDataset(Dataset):
    """The split cut into non-overlapping windows: item ``i`` is ``(x, y)`` with ``x = data[i*T : i*T + T]`` and
    ``y`` the same window shifted by one, each ``(T,)`` int64.

    Windows do not overlap, so one pass of a shuffled ``DataLoader`` sees every token once (the last partial window
    is dropped); the randomness comes from the loader's shuffling instead of random offsets. The memmap is opened
    per item, which also keeps the dataset picklable for ``num_workers > 0``.
    """

    def __init__(self, data_dir: str | Path, split: str, block_size: int) -> None:
        self.path, self.dtype, self.num_tokens = _open_split(data_dir, split, block_size)
        self.block_size = block_size

    def __len__(self) -> int:
        return (self.num_tokens - 1) // self.block_size

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        if not 0 <= index < len(self):
            raise IndexError(f"window {index} out of range for {len(self)} windows")
        data = np.memmap(self.path, dtype=self.dtype, mode="r")
        start = index * self.block_size
        window = torch.from_numpy(data[start : start + self.block_size + 1].astype(np.int64))  # (T + 1,)
        return window[:-1], window[1:]
