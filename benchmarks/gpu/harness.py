"""The measuring harness of the GPU check: run settings, a timer, a time budget, one row per measured item.

Every measurement is one *row* (a dict: what was measured, then the numbers) with a ``status``:

    ok                              measured
    skipped: memory ...             a (B, H, T, T) tensor would not fit the limit; not attempted
    skipped: refused ...            a PyTorch backend declined the configuration (its reason attached)
    skipped: out of memory          attempted, CUDA ran out of memory
    skipped: time budget            the run had no time left for it
    error: <Type>: <message>        anything else that went wrong; the run goes on with the next item

Timing on a GPU is ``triton.testing.do_bench``: warm-up, then the median over as many runs as fit in ``rep_ms``, with
the L2 cache flushed before each run. The dry run (CPU, Triton interpreter) times the median of a few calls with
``time.perf_counter``: it checks the code paths, its numbers mean nothing.

Memory-bound operations (LayerNorm, softmax) are credited with the least traffic they could possibly make, one read of
every input and one write of every output: forward 2·M·N elements (read x, write y), backward 3·M·N (read x or y and
dy, write dx; per-column parameters ignored). A plain copy (``x.clone()``) beside them shows what the memory system
actually delivers, usually 85-95% of the datasheet.
"""
from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]  # the checkout this check measures
PRESET = "gpt2-owt"  # the training preset whose model, batch and loop the check measures
DRY_MODEL = dict(num_layers=1, num_heads=2, emb_dim=32, max_len=32)  # the dry run's stand-in for GPT-2 small


class Skip(Exception):
    """Raised by a measurement to record ``skipped: <message>`` instead of a number."""


@dataclass(frozen=True)
class Settings:
    """What one run measures and how; built from the command line by ``check.py``."""

    device: torch.device
    dry_run: bool = False
    warmup_ms: float = 10.0
    rep_ms: float = 50.0
    autotune_rep_ms: float = 20.0
    peak_gbps: float | None = None


class Budget:
    """A wall-clock budget for the timed sections, shared out between them as they start.

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

    def section_left(self) -> float:
        """Seconds left in the current section (and never more than in the run)."""
        now = self.clock()
        return min(self.section_deadline, self.deadline) - now

    def allows(self, needs_s: float = 0.0) -> bool:
        """Whether the current section still has ``needs_s`` seconds (and the run some time) left."""
        return self.section_left() > needs_s


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

    def rate(self, ms: float, nbytes: float) -> dict:
        """Time, bandwidth in GB/s, and percent of the peak bandwidth (None when the peak is unknown)."""
        gbps = nbytes / ms / 1e6
        peak = self.settings.peak_gbps
        return dict(ms=ms, gbps=gbps, pct_peak=100 * gbps / peak if peak else None)

    def measure_copy(self, rows: list[dict], row: dict, x: torch.Tensor) -> None:
        """One row: ``x.clone()``, 2 · bytes of x."""
        nbytes = 2 * x.numel() * x.element_size()
        self.record(rows, dict(row, impl="copy", mode="fwd"), lambda: self.rate(self.bench(lambda: x.clone()), nbytes))

    def measure_fwd_bwd(self, rows: list[dict], row: dict, fn: Callable[[], torch.Tensor],
                        leaves: Sequence[torch.Tensor], grad: torch.Tensor) -> None:
        """Two rows, ``fwd`` (``fn()`` without autograd) and ``bwd`` (the backward of one retained ``fn()`` graph).

        ``leaves``: the tensors ``fn`` differentiates wrt (their .grad is reset between runs); ``grad``: dy, shaped
        like the output; ``row`` says what is measured. Traffic as in the module docstring, from ``grad``'s size.
        """
        nbytes = grad.numel() * grad.element_size()

        def forward() -> dict:
            with torch.no_grad():
                fn()
                return self.rate(self.bench(fn), 2 * nbytes)

        def backward() -> dict:
            y = fn()
            ms = self.bench(lambda: y.backward(grad, retain_graph=True), grad_to_none=leaves)
            return self.rate(ms, 3 * nbytes)

        self.record(rows, dict(row, mode="fwd"), forward)
        self.record(rows, dict(row, mode="bwd"), backward)


def free_memory() -> None:
    """Drop dead tensors and return cached CUDA blocks, e.g. after an out-of-memory error."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def configure_autotuning(modules: Sequence[object], rep_ms: float | None) -> int:
    """Change how the Triton autotuners in ``modules`` time their candidates; returns how many it changed.

    ``rep_ms``: time each candidate with ``do_bench(warmup=5, rep=rep_ms)`` instead of Triton's 25 + 100 ms (the
    choice among a handful of tiles is as clear at 20 ms). ``None``: run each candidate once and call them all
    equal, which compiles every candidate (into Triton's on-disk cache) without timing anything; the compile-ahead
    workers use it.
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


def kernel_modules() -> list[object]:
    """The modules whose Triton autotuners the run configures."""
    from scratchformers.kernels import flash_attention, layernorm, softmax

    return [flash_attention, layernorm, softmax]
