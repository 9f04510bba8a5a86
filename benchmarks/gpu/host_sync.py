"""GPU check, host syncs in the training loop: the step time with per-step syncs and without them.

A GPU runs ahead of the Python that feeds it only as long as Python never waits for it. ``loss.item()``, a gradient
norm's ``.item()`` or a blocking copy of the next batch make the host wait until the GPU has drained its queue; the
GPU then idles while the host launches the next kernels. nanoGPT reads numbers only on log steps and copies the next
batch from pinned memory while the current one computes. Two loops over the same model, optimizer and batches show
what that is worth here (the ``gpt2-owt`` preset's micro-batch of 12 x 1024 tokens and 10 micro-steps per step, fast
path, bfloat16 autocast, eager):

    synced      per micro-step: the batch sent from pageable host memory with a blocking copy and ``loss.item()``;
                per step: the gradient norm's ``.item()`` (what the trainer's loop did before issue 18)
    sync-free   the next batch sent from pinned memory with ``non_blocking=True`` before the current one computes,
                losses summed on the device, the gradient norm kept as a tensor: read once, at the end

The two alternate in blocks of a few steps (synced, sync-free, synced, sync-free ...) and each reports the median
block's milliseconds per optimizer step, so a drift in clocks or temperature hits both alike. The dry run takes the
torch path: the loops are the same, and the fast path under the Triton interpreter would take a minute.
"""
from __future__ import annotations

import statistics
import time

import torch

from bench_train_step import build, tf32_matmuls
from harness import Harness, Settings, free_memory

NAME = "hostsync"
VARIANTS = ("synced", "sync-free")
MICRO_STEPS, STEPS_PER_BLOCK, BLOCKS = 10, 3, 3  # blocks per variant, alternating
POOL = 4  # distinct batches, reused round-robin


def batches(vocab: int, batch: int, T: int, pinned: bool) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``POOL`` (x, y) pairs of random token ids on the host, (batch, T) int64 each; pinned if asked."""
    gen = torch.Generator().manual_seed(0)
    pairs = []
    for _ in range(POOL):
        tokens = torch.randint(vocab, (batch, T + 1), generator=gen)
        x, y = tokens[:, :-1].contiguous(), tokens[:, 1:].contiguous()
        pairs.append((x.pin_memory(), y.pin_memory()) if pinned else (x, y))
    return pairs


class Loop:
    """The two training loops over one model; :meth:`run` times ``steps`` optimizer steps of either."""

    def __init__(self, s: Settings, path: str, micro_steps: int) -> None:
        self.device = s.device
        self.model, self.optimizer, config, batch = build(s, path)
        self.micro_steps = micro_steps
        self.tokens_per_step = batch * config.max_len * micro_steps
        self.pageable = batches(config.vocab_size, batch, config.max_len, pinned=False)
        cuda = self.device.type == "cuda"  # (pinned memory needs CUDA; the dry run sends both from pageable memory)
        self.pinned = batches(config.vocab_size, batch, config.max_len, pinned=True) if cuda else self.pageable
        self.cursor = 0

    def _next(self, pool: list[tuple[torch.Tensor, torch.Tensor]], non_blocking: bool) -> tuple[torch.Tensor, ...]:
        x, y = pool[self.cursor % POOL]
        self.cursor += 1
        return x.to(self.device, non_blocking=non_blocking), y.to(self.device, non_blocking=non_blocking)

    def _micro(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        with torch.autocast(self.device.type, dtype=torch.bfloat16):
            _, loss = self.model(x, y)
        (loss / self.micro_steps).backward()
        return loss.detach()

    def _update(self) -> torch.Tensor:
        norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return norm

    def synced_step(self) -> float:
        losses = []
        for _ in range(self.micro_steps):
            losses.append(self._micro(*self._next(self.pageable, non_blocking=False)).item())
        self._update().item()
        return sum(losses) / len(losses)

    def sync_free_step(self, prefetched: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        loss_sum = torch.zeros((), device=self.device)
        batch = prefetched
        for _ in range(self.micro_steps):
            current, batch = batch, self._next(self.pinned, non_blocking=True)  # the next copy overlaps this step
            loss_sum += self._micro(*current).float()
        self._update()
        return loss_sum / self.micro_steps, batch

    def run(self, variant: str, steps: int) -> tuple[float, float]:
        """Milliseconds per optimizer step over ``steps`` steps of ``variant``, and the last step's mean loss."""
        _synchronize(self.device)
        start = time.perf_counter()
        if variant == "synced":
            for _ in range(steps):
                loss = self.synced_step()
        else:
            batch = self._next(self.pinned, non_blocking=True)
            for _ in range(steps):
                loss_tensor, batch = self.sync_free_step(batch)
            loss = loss_tensor.item()  # the log step: the one read of the block
        _synchronize(self.device)
        return 1e3 * (time.perf_counter() - start) / steps, loss


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@tf32_matmuls()
def measure(s: Settings, path: str, micro_steps: int, steps: int, blocks: int) -> dict:
    """Both variants, alternating blocks of ``steps`` steps after one warm-up step each."""
    loop = Loop(s, path, micro_steps)
    for variant in VARIANTS:
        loop.run(variant, 1)
    times: dict[str, list[float]] = {variant: [] for variant in VARIANTS}
    losses: dict[str, float] = {}
    for _ in range(blocks):
        for variant in VARIANTS:
            ms, losses[variant] = loop.run(variant, steps)
            times[variant].append(ms)
    result = dict(micro_steps=micro_steps, steps_per_block=steps, blocks=blocks, tokens_per_step=loop.tokens_per_step,
                  source="own loop (host_sync.py)")
    for variant in VARIANTS:
        ms = statistics.median(times[variant])
        result[variant] = dict(ms_per_step=ms, tokens_per_s=loop.tokens_per_step / ms * 1e3, block_ms=times[variant],
                               loss=losses[variant])
    result["speedup"] = result["synced"]["ms_per_step"] / result["sync-free"]["ms_per_step"]
    return result


def run(h: Harness, rows: list[dict]) -> None:
    """One row holding both variants, measured side by side."""
    dry = h.settings.dry_run
    path, micro, steps, blocks = ("torch", 2, 1, 2) if dry else ("fast", MICRO_STEPS, STEPS_PER_BLOCK, BLOCKS)
    row = h.record(rows, dict(path=path, compiled=False), lambda: measure(h.settings, path, micro, steps, blocks),
                   needs_s=0.0 if dry else 20.0)
    if row["status"] == "ok":
        h.log(f"hostsync: synced {row['synced']['ms_per_step']:.1f} ms/step, sync-free "
              f"{row['sync-free']['ms_per_step']:.1f} ms/step (sync-free {row['speedup']:.3f}x as fast)")
    else:
        h.log(f"hostsync: {row['status']}")
    free_memory()

