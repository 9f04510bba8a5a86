"""The measuring harness of the GPU check: run settings, timers, a time budget, one row per measured item, and the
command line every timed section runs under (``python benchmarks/gpu/bench_attention.py`` and its neighbours).

Every measurement is one *row* (a dict: what was measured, then the numbers) with a ``status``:

    ok                              measured
    skipped: memory ...             a (B, H, T, T) tensor would not fit the limit; not attempted
    skipped: refused ...            a PyTorch backend declined the configuration (its reason attached)
    skipped: out of memory          attempted, CUDA ran out of memory
    skipped: time budget            the section had no time left for it
    error: <Type>: <message>        anything else that went wrong; the section goes on with the next item

Two times per kernel item. ``ms``, end to end: ``triton.testing.do_bench`` (warm-up, then the median over as many
calls as fit in ``rep_ms``, the L2 cache flushed before each), which includes the host's launch path whenever the
GPU finishes sooner than the host can launch (for our kernels: the custom op, the autotuner, the JIT launcher, an
estimated 60-150 µs, not yet measured; for PyTorch's C++ path less). ``kernel_ms``: the same calls under ``torch.profiler``, the time the GPU
spent in kernels (the L2 flush's own kernel subtracted): what the kernels cost apart from how they are launched.
The dry run (CPU, Triton interpreter) times the median of a few calls with ``time.perf_counter`` and profiles the
CPU operators: it checks the code paths, its numbers mean nothing.

Memory-bound operations (LayerNorm, softmax) are credited with the least traffic they could possibly make, one read of
every input and one write of every output: forward 2·M·N elements (read x, write y), backward 3·M·N (read x or y and
dy, write dx; per-column parameters ignored). A plain copy (``x.clone()``) beside them shows what the memory system
actually delivers, usually 85-95% of the datasheet.

Our kernels autotune: the first call of each shape class compiles and times every candidate. The flash-attention
kernels have up to six candidate tiles each, about a second to compile per tile and shape class, so the timed
sections keep the first ``autotune_keep`` of each list (:func:`prune_autotuning`, in the kernels' own order) to fit
their shares; the attention rows say which tile won. The row kernels' few warp counts compile in a third of a second
and stay whole.
"""
from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import math
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]  # the checkout this check measures
PRESET = "gpt2-owt"  # the training preset whose model, batch and loop the check measures
DRY_MODEL = dict(num_layers=1, num_heads=2, emb_dim=32, max_len=32)  # the dry run's stand-in for GPT-2 small
L2_FLUSH_BYTES = 256 * 2**20  # as triton.testing.do_bench: more than any L2 cache (an H100's is 50 MB)
FLUSH = "gpu-check: L2 flush"  # the profiler range around the flush, whose kernel time is not the kernel's
KERNEL_CALLS = 5  # calls profiled per kernel time


class Skip(Exception):
    """Raised by a measurement to record ``skipped: <message>`` instead of a number."""


@dataclass(frozen=True)
class Settings:
    """What one run measures and how; ``check.py`` hands them to every section as JSON."""

    dry_run: bool = False
    warmup_ms: float = 10.0
    rep_ms: float = 50.0
    autotune_keep: int = 3
    peak_gbps: float | None = None

    @property
    def device(self) -> torch.device:
        return torch.device("cpu" if self.dry_run else "cuda")

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Settings:
        return cls(**json.loads(text))


class Budget:
    """A wall-clock budget shared out between sections as they start.

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

    def __init__(self, settings: Settings, budget: Budget, save: Callable[[dict], None] = lambda row: None,
                 log: Callable[[str], None] = lambda line: None) -> None:
        self.settings = settings
        self.budget = budget
        self.save = save
        self.log = log
        self.kernel_error = ""

    def bench(self, fn: Callable[[], object], grad_to_none: Sequence[torch.Tensor] | None = None) -> float:
        """Median milliseconds of ``fn()``, end to end; ``grad_to_none`` tensors get ``.grad = None`` before each
        run."""
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

    def kernel_ms(self, fn: Callable[[], object], grad_to_none: Sequence[torch.Tensor] | None = None) -> float | None:
        """Milliseconds per call of ``fn()`` spent in GPU kernels (on CPU: in torch operators), from the profiler;
        None where the profiler cannot trace the GPU (the end-to-end time then stands alone; the first such error is
        logged). Call it after :meth:`bench`, so that nothing compiles or autotunes while it profiles."""
        from torch.profiler import ProfilerActivity, profile, record_function

        device = self.settings.device
        cuda = device.type == "cuda"
        calls = KERNEL_CALLS if cuda else 2  # the dry run only checks the code path
        try:
            flush = torch.empty(L2_FLUSH_BYTES // 4 if cuda else 1, dtype=torch.int32, device=device)
            activities = [ProfilerActivity.CPU, ProfilerActivity.CUDA] if cuda else [ProfilerActivity.CPU]
            synchronize(device)
            with profile(activities=activities) as prof:
                for _ in range(calls):
                    for tensor in grad_to_none or ():
                        tensor.grad = None
                    with record_function(FLUSH):
                        flush.zero_()
                    fn()
                synchronize(device)
            return kernel_us(prof.events(), cuda) / calls / 1e3
        except Exception as error:  # a profiler that cannot trace the GPU must not cost the end-to-end time
            if not self.kernel_error:
                self.kernel_error = status_of(error)
                self.log(f"kernel times unavailable, end-to-end times only: {self.kernel_error}")
            return None

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
            except Exception as error:  # one failed item must not cost the rest of the section
                row["status"] = status_of(error)
                free_memory()
            row["wall_s"] = round(time.monotonic() - start, 3)
        rows.append(row)
        self.save(row)
        return row

    def rate(self, ms: float, kernel_ms: float | None, nbytes: float) -> dict:
        """Both times, bandwidth in GB/s from each, and percent of the peak bandwidth (None when it is unknown)."""
        peak = self.settings.peak_gbps
        out = {}
        for prefix, time_ms in (("", ms), ("kernel_", kernel_ms)):
            gbps = nbytes / time_ms / 1e6 if time_ms else None
            out.update({f"{prefix}ms": time_ms, f"{prefix}gbps": gbps,
                        f"{prefix}pct_peak": 100 * gbps / peak if peak and gbps else None})
        return out

    def measure_copy(self, rows: list[dict], row: dict, x: torch.Tensor) -> None:
        """One row: ``x.clone()``, 2 · bytes of x."""
        nbytes = 2 * x.numel() * x.element_size()

        def measure() -> dict:
            return self.rate(self.bench(x.clone), self.kernel_ms(x.clone), nbytes)

        self.record(rows, dict(row, impl="copy", mode="fwd"), measure)

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
                return self.rate(self.bench(fn), self.kernel_ms(fn), 2 * nbytes)

        def backward() -> dict:
            y = fn()

            def step() -> None:
                y.backward(grad, retain_graph=True)

            return self.rate(self.bench(step, grad_to_none=leaves), self.kernel_ms(step, leaves), 3 * nbytes)

        self.record(rows, dict(row, mode="fwd"), forward)
        self.record(rows, dict(row, mode="bwd"), backward)


def kernel_us(events: Sequence, cuda: bool) -> float:
    """Microseconds in kernels among profiler ``events``: on CUDA every GPU kernel but those launched inside the
    :data:`FLUSH` ranges; on CPU the top-level operators outside them."""
    from torch.autograd import DeviceType

    if cuda:
        total = sum(event.device_time_total for event in events if event.device_type == DeviceType.CUDA)
        return total - sum(event.device_time_total for event in events if event.name == FLUSH)
    return sum(event.cpu_time_total for event in events if event.cpu_parent is None and event.name != FLUSH)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def free_memory() -> None:
    """Drop dead tensors and return cached CUDA blocks, e.g. after an out-of-memory error."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def prune_autotuning(keep: int) -> int:
    """Make each autotuned flash-attention kernel try only the first ``keep`` candidates its own pruning leaves (for
    the precision and head dimension at hand); returns how many autotuners it changed. Works through
    ``Autotuner.early_config_prune``, the hook that ``triton.autotune(prune_configs_by=...)`` sets."""
    from triton.runtime.autotuner import Autotuner

    from scratchformers.kernels import flash_attention

    tuners = [value for value in vars(flash_attention).values() if isinstance(value, Autotuner)]
    for tuner in tuners:
        tuner.early_config_prune = _first(tuner.early_config_prune, keep)
    return len(tuners)


def _first(prune: Callable | None, keep: int) -> Callable:
    def pruned(configs: list, named_args: dict, **kwargs: object) -> list:
        kept = prune(configs, named_args, **kwargs) if prune else configs
        return list(kept)[:keep]

    return pruned


def chosen_tiles(*modules: object) -> dict[str, str]:
    """The tile each autotuned kernel of ``modules`` last chose, e.g. ``{"_attn_fwd": "BLOCK_M=128 BLOCK_N=64
    warps=4 stages=3"}``."""
    from triton.runtime.autotuner import Autotuner

    chosen = {}
    for module in modules:
        for name, value in vars(module).items():
            config = getattr(value, "best_config", None) if isinstance(value, Autotuner) else None
            if config is not None:
                tiles = " ".join(f"{key}={val}" for key, val in config.kwargs.items())
                chosen[name] = f"{tiles} warps={config.num_warps} stages={config.num_stages}".strip()
    return chosen


def section_main(name: str, run: Callable[[Harness, list[dict]], None], argv: list[str] | None = None) -> int:
    """The command line of a timed section: measure into a JSON-lines file (one row per line, written as each row
    is measured), within ``--seconds``; standalone, print the section's tables at the end.

        python benchmarks/gpu/bench_attention.py                    # on a CUDA GPU, no time limit
        python benchmarks/gpu/bench_attention.py --dry-run          # CPU, Triton interpreter, tiny shapes
    """
    parser = argparse.ArgumentParser(description=f"The GPU check's {name} section (see benchmarks/README.md).")
    parser.add_argument("--settings", type=Settings.from_json, default=Settings(),
                        help="the run's settings as JSON (check.py passes them)")
    parser.add_argument("--dry-run", action="store_true", help="CPU only, Triton interpreter, tiny shapes")
    parser.add_argument("--seconds", type=float, default=math.inf,
                        help="start no item this many seconds after --started (default: no limit)")
    parser.add_argument("--rows", type=Path, default=None, help="append each row to this JSON-lines file")
    parser.add_argument("--log", type=Path, default=None, help="append the progress lines to this file too")
    parser.add_argument("--started", type=float, default=time.time(),
                        help="the run's start (seconds since the epoch), for the progress lines' clock")
    args = parser.parse_args(argv)
    settings = dataclasses.replace(args.settings, dry_run=True) if args.dry_run else args.settings
    if settings.dry_run:  # before any kernel module is imported: a CPU-only run
        os.environ["TRITON_INTERPRET"] = "1"
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
    elif not torch.cuda.is_available():
        print(f"{name}: needs a CUDA GPU (or --dry-run)", file=sys.stderr)
        return 2

    def log(message: str) -> None:
        line = f"[{time.time() - args.started:6.1f} s] {message}"
        print(line, flush=True)
        if args.log:
            with open(args.log, "a") as handle:
                handle.write(line + "\n")

    def save(row: dict) -> None:
        if args.rows:
            with open(args.rows, "a") as handle:
                handle.write(json.dumps(row, default=str) + "\n")

    rows: list[dict] = []
    prune_autotuning(settings.autotune_keep)
    run(Harness(settings, Budget(args.seconds - (time.time() - args.started)), save=save, log=log), rows)
    if args.rows is None:
        from report import section_tables

        print("\n".join(section_tables(name, rows)))
    return 0

