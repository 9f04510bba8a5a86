"""The measuring harness of ``benchmarks/gpu.py``: run settings, a timer, a time budget, one row per measured item.

Every measurement is one *row* (a dict: what was measured, then the numbers) with a ``status``:

    ok                              measured
    skipped: memory ...             a (B, H, T, T) tensor would not fit the limit; not attempted
    skipped: refused ...            a PyTorch backend declined the configuration (its reason attached)
    skipped: out of memory          attempted, CUDA ran out of memory
    skipped: time budget            the run's --budget-s had no time left for it
    error: <Type>: <message>        anything else that went wrong; the run goes on with the next item

Timing on a GPU is ``triton.testing.do_bench``: warm-up, then the median over as many runs as fit in ``rep_ms``, with
the L2 cache flushed before each run. The dry run (CPU, Triton interpreter) times the median of a few calls with
``time.perf_counter``: it checks the code paths, its numbers mean nothing.
"""
from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch


class Skip(Exception):
    """Raised by a measurement to record ``skipped: <message>`` instead of a number."""


@dataclass(frozen=True)
class Settings:
    """What one run measures and how; built from the command line by ``benchmarks/gpu.py``."""

    device: torch.device
    dry_run: bool = False
    full_grid: bool = False
    tokens: int = 12 * 1024  # attention: tokens per batch, B = tokens // T
    max_scores_gb: float = 8.0  # attention: skip materialised variants whose (B, H, T, T) tensor is larger
    warmup_ms: float = 10.0
    rep_ms: float = 50.0
    autotune_rep_ms: float = 20.0
    model_batch: int = 12
    peak_gbps: float | None = None


class Budget:
    """A wall-clock budget for the whole run, shared out between its sections as they start.

    A section gets ``weight / (its weight + the weights of the sections after it)`` of the time left when it starts,
    so time a section does not use passes on to the next ones.
    """

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.deadline = clock() + seconds
        self.section_deadline = self.deadline

    def left(self) -> float:
        """Seconds left in the whole run."""
        return self.deadline - self.clock()

    def open_section(self, weight: float, weights_left: float) -> float:
        """Start a section; returns its allotment in seconds."""
        allotment = max(0.0, self.left()) * weight / weights_left
        self.section_deadline = self.clock() + allotment
        return allotment

    def allows(self, needs_s: float = 0.0) -> bool:
        """Whether the current section still has ``needs_s`` seconds (and the run some time) left."""
        now = self.clock()
        return now + needs_s < self.section_deadline and now < self.deadline


def status_of(error: BaseException) -> str:
    """The row status for an exception raised while measuring."""
    if isinstance(error, Skip):
        return f"skipped: {error}"
    if isinstance(error, torch.cuda.OutOfMemoryError):
        return "skipped: out of memory"
    message = " ".join(str(error).split())
    return f"error: {type(error).__name__}: {message[:300]}"


class Harness:
    """Times callables and turns measurements into rows, whatever happens to each one."""

    def __init__(self, settings: Settings, budget: Budget, save: Callable[[], None] = lambda: None,
                 log: Callable[[str], None] = lambda line: None) -> None:
        self.settings = settings
        self.budget = budget
        self.save = save
        self.log = log

    def bench(self, fn: Callable[[], object], grad_to_none: Sequence[torch.Tensor] | None = None) -> float:
        """Median milliseconds of ``fn()``; ``grad_to_none`` tensors get ``.grad = None`` before each run."""
        if self.settings.device.type == "cuda":
            from triton.testing import do_bench

            return do_bench(fn, warmup=self.settings.warmup_ms, rep=self.settings.rep_ms,
                            grad_to_none=grad_to_none, return_mode="median")
        times = []
        for _ in range(3):  # the first call is the warm-up
            for tensor in grad_to_none or ():
                tensor.grad = None
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        return 1e3 * statistics.median(times[1:])

    def record(self, rows: list[dict], row: dict, measure: Callable[[], dict], needs_s: float = 0.0) -> dict:
        """Append ``row`` to ``rows`` with ``measure()``'s numbers and status ``ok``, or with the status of whatever
        stopped it (see the module docstring), then save. ``needs_s``: skip unless that much section time is left."""
        if not self.budget.allows(needs_s):
            row["status"] = "skipped: time budget"
        else:
            start = time.monotonic()
            try:
                row.update(measure())
                row["status"] = "ok"
            except Exception as error:  # one failed item must not cost the rest of the run
                row["status"] = status_of(error)
                free_memory()
            row["wall_s"] = round(time.monotonic() - start, 3)
        rows.append(row)
        self.save()
        return row


def free_memory() -> None:
    """Drop dead tensors and return cached CUDA blocks, e.g. after an out-of-memory error."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def configure_autotuning(modules: Sequence[object], rep_ms: float | None) -> int:
    """Change how the Triton autotuners in ``modules`` time their candidates; returns how many it changed.

    ``rep_ms``: time each candidate with ``do_bench(warmup=5, rep=rep_ms)`` instead of Triton's 25 + 100 ms (the
    choice among a handful of tiles is as clear at 20 ms). ``None``: run each candidate once and call them all
    equal, which compiles every candidate (into Triton's on-disk cache) without timing anything; the warm-up
    workers of ``gpu_warm`` use it.
    """
    from triton.runtime.autotuner import Autotuner
    from triton.testing import do_bench

    def timed(kernel_call, quantiles):
        return do_bench(kernel_call, warmup=5, rep=rep_ms, quantiles=quantiles)

    def compile_only(kernel_call, quantiles):
        kernel_call()
        return [1.0] * len(quantiles)

    tuners = [value for module in modules for value in vars(module).values() if isinstance(value, Autotuner)]
    for tuner in tuners:
        tuner.do_bench = compile_only if rep_ms is None else timed
    return len(tuners)
