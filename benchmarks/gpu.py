"""GPU benchmark: the Triton kernels and the fast GPT-2 path against PyTorch, in one run of a few minutes.

    python benchmarks/gpu.py                      # everything, within --budget-s (420 s), into $OUT or results/gpu
    python benchmarks/gpu.py --sections attention,model --out DIR
    python benchmarks/gpu.py --dry-run            # no GPU: every code path on CPU, Triton interpreter, tiny shapes

Sections, in run order (details in each module's docstring):

    attention   gpu_attention.py  flash attention vs SDPA (flash / efficient / math) vs materialised, fwd, fwd+bwd
    layernorm   gpu_layernorm.py  LayerNorm fwd, bwd vs F.layer_norm: GB/s and % of peak bandwidth
    softmax     gpu_softmax.py    row softmax fwd, bwd vs torch.softmax: GB/s
    model       gpu_model.py      a GPT-2 124M training step, fast vs torch path, eager and compiled: tokens/s, MFU

The run first compiles every Triton kernel and ``torch.compile`` graph it will need in parallel worker processes
(gpu_warm.py), then measures one item at a time on a quiet GPU. It never runs over its time budget by more than
one item: each section gets a share of the time left when it starts, and items past it are recorded as
``skipped: time budget``. One item's failure is recorded and the run goes on. Results are rewritten after every
item (JSON) and every section (Markdown), so a run killed from outside still leaves its data; at the end come the
PNG charts (plot_gpu.py redraws them from the JSON). Files in the output folder:

    gpu_benchmark.json  device, versions, date, settings, timings, and one row per measurement
    gpu_benchmark.md    the same as tables
    gpu-*.png           bar charts

Runs from a bare copy of the repository (torch and triton installed, the project not): see gpu_repo.py.
Exit status: 0 after a run (even with skipped or failed items), 2 without CUDA (unless --dry-run).
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import signal
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import gpu_repo

STARTED = time.monotonic()
SECTIONS = ("attention", "layernorm", "softmax", "model")
WEIGHTS = {"attention": 4.0, "layernorm": 1.0, "softmax": 1.0, "model": 4.0}  # shares of the measuring time
WARM_SHARE = 0.4  # the compile-ahead phase gets at most this share of the budget
RESERVE_S = 15.0  # kept back from the budget for the report and the plots
JSON_NAME, MARKDOWN_NAME = "gpu_benchmark.json", "gpu_benchmark.md"


def default_out() -> Path:
    return Path(os.environ["OUT"]) if os.environ.get("OUT") else gpu_repo.ROOT / "benchmarks" / "results" / "gpu"


def sections_arg(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in SECTIONS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"choose among {','.join(SECTIONS)}; got {text!r}")
    return [name for name in SECTIONS if name in names]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--out", type=Path, default=None,
                        help="output folder (default: $OUT if set, else benchmarks/results/gpu)")
    parser.add_argument("--sections", type=sections_arg, default=list(SECTIONS),
                        help="comma-separated subset of " + ",".join(SECTIONS))
    parser.add_argument("--budget-s", type=float, default=420.0,
                        help="wall-clock budget of the whole run, compiling included; later items are skipped")
    parser.add_argument("--dry-run", action="store_true",
                        help="CPU only, Triton interpreter, tiny shapes: checks every code path, measures nothing")
    parser.add_argument("--full-grid", action="store_true",
                        help="attention: float16 at every T, not only at 1024 and 4096")
    parser.add_argument("--no-warm", action="store_true", help="skip the parallel compile-ahead phase")
    parser.add_argument("--warmup-ms", type=float, default=10.0, help="do_bench warm-up per item")
    parser.add_argument("--rep-ms", type=float, default=50.0, help="do_bench repetition time per item")
    parser.add_argument("--autotune-rep-ms", type=float, default=20.0,
                        help="repetition time per candidate when our Triton kernels autotune (Triton's own: 100)")
    parser.add_argument("--tokens", type=int, default=12 * 1024, help="attention: tokens per batch (B = tokens / T)")
    parser.add_argument("--max-scores-gb", type=float, default=8.0,
                        help="attention: skip materialised variants whose (B, H, T, T) tensor is larger")
    parser.add_argument("--batch", type=int, default=12, help="model: batch size (sequences of 1024 tokens)")
    parser.add_argument("--peak-gbps", type=float, default=None,
                        help="peak memory bandwidth of this GPU in GB/s (default: datasheet value of known GPUs)")
    parser.add_argument("--warm-job", default=None, help=argparse.SUPPRESS)  # internal: one compile-ahead job
    return parser.parse_args(argv)


def worker_argv(args: argparse.Namespace) -> list[str]:
    """The options that decide what the sections build, passed on to compile-ahead workers."""
    argv = ["--sections", ",".join(args.sections), "--tokens", str(args.tokens), "--batch", str(args.batch)]
    return argv + ["--dry-run"] * args.dry_run + ["--full-grid"] * args.full_grid


class Run:
    """One benchmark run: its settings, the section modules, the results, and writing them out."""

    def __init__(self, args: argparse.Namespace) -> None:
        import torch

        import gpu_attention
        import gpu_layernorm
        import gpu_model
        import gpu_softmax
        from gpu_device import describe
        from gpu_harness import Budget, Harness, Settings

        self.args = args
        self.modules = {m.NAME: m for m in (gpu_attention, gpu_layernorm, gpu_softmax, gpu_model)}
        device = torch.device("cpu" if args.dry_run else "cuda")
        self.meta = describe(device, gpu_repo.ROOT, args.peak_gbps)
        self.settings = Settings(device=device, dry_run=args.dry_run, full_grid=args.full_grid, tokens=args.tokens,
                                 # dry run: 6 kB lets the bf16 (1, 2, 32, 32) scores through but not float32 ones
                                 max_scores_gb=6e-6 if args.dry_run else args.max_scores_gb,
                                 warmup_ms=args.warmup_ms, rep_ms=args.rep_ms, autotune_rep_ms=args.autotune_rep_ms,
                                 model_batch=args.batch, peak_gbps=self.meta["peak_gbps"])
        self.budget = Budget(args.budget_s - RESERVE_S - (time.monotonic() - STARTED))
        self.harness = Harness(self.settings, self.budget, save=self.save_json, log=self.log)
        self.out = args.out or default_out()
        self.results: dict = dict(meta=self.meta, timing=dict(warm=None, sections={}))
        self.meta["run"] = dict(state="running", budget_s=args.budget_s, sections=args.sections,
                                dry_run=args.dry_run, full_grid=args.full_grid, warmup_ms=args.warmup_ms,
                                rep_ms=args.rep_ms, autotune_rep_ms=args.autotune_rep_ms,
                                max_scores_gb=self.settings.max_scores_gb, tokens=args.tokens, batch=args.batch,
                                argv=sys.argv[1:])
        self.meta["package_files"] = importlib.import_module("scratchformers.fast.attention").__file__

    def log(self, message: str) -> None:
        print(f"[{time.monotonic() - STARTED:6.1f} s] {message}", flush=True)

    def save_json(self) -> None:
        self.meta["run"]["elapsed_s"] = round(time.monotonic() - STARTED, 1)
        self.out.mkdir(parents=True, exist_ok=True)
        partial = self.out / (JSON_NAME + ".partial")
        partial.write_text(json.dumps(self.results, indent=1, default=str))
        partial.replace(self.out / JSON_NAME)

    def save_markdown(self, images: Sequence[str] = ()) -> Path:
        from gpu_report import markdown

        path = self.out / MARKDOWN_NAME
        path.write_text(markdown(self.results, images))
        return path

    def warm(self) -> None:
        """The compile-ahead phase (gpu_warm.py)."""
        import torch

        from gpu_warm import warm_up

        jobs: list[str] = []
        heavy: list[str] = []  # the model's jobs each hold a GPT-2 training step's GPU memory
        for name in self.args.sections:
            names = [job for job in self.modules[name].warm_jobs(self.settings) if job not in jobs]
            names = names[:1] if self.args.dry_run else names  # dry run: one job per section shows the mechanism
            jobs += names
            heavy += names if name == "model" else []
        if self.args.dry_run:
            parallel, heavy_slots = 2, 1
        else:
            parallel = max(1, min(len(jobs), cpu_cores() - 1))
            heavy_slots = max(1, int(torch.cuda.get_device_properties(0).total_memory / 2**30 // 25))
        seconds = max(0.0, self.budget.left() * WARM_SHARE)
        self.log(f"compile-ahead: {len(jobs)} jobs, {parallel} at a time, at most {seconds:.0f} s")
        script = [sys.executable, str(Path(__file__).resolve())] + worker_argv(self.args)
        start = time.monotonic()
        outcome = warm_up(jobs, lambda job: script + ["--warm-job", job], seconds, parallel, heavy, heavy_slots,
                          progress=self.log)
        self.results["timing"]["warm"] = dict(wall_s=round(time.monotonic() - start, 1), jobs=outcome)
        self.save_json()

    def measure(self) -> None:
        """Every selected section, one after another, each within its share of the budget."""
        from gpu_harness import configure_autotuning

        configure_autotuning(kernel_modules(), self.settings.autotune_rep_ms)
        chosen = self.args.sections
        for i, name in enumerate(chosen):
            allotted = self.budget.open_section(WEIGHTS[name], sum(WEIGHTS[n] for n in chosen[i:]))
            self.log(f"{name}: start, {allotted:.0f} s allotted")
            rows = self.results.setdefault(name, [])
            timing = self.results["timing"]["sections"][name] = dict(allotted_s=round(allotted, 1))
            start = time.monotonic()
            try:
                self.modules[name].run(self.harness, rows)
            except Exception as error:  # a section that cannot even set up: note it, go on
                from gpu_harness import status_of

                timing["error"] = status_of(error)
                self.log(f"{name}: {timing['error']}")
            wall = time.monotonic() - start
            timing["wall_s"] = round(wall, 1)
            counts = Counter(row["status"].split(":")[0] for row in rows)
            self.log(f"{name}: done in {wall:.1f} s, {len(rows)} rows ({dict(counts)})")
            self.save_json()
            self.save_markdown()

    def finish(self, state: str) -> None:
        """Final JSON, charts (if matplotlib is there) and Markdown."""
        self.meta["run"]["state"] = state
        images: list[str] = []
        try:
            from plot_gpu import plot_all

            images = [path.name for path in plot_all(self.results, self.out)]
        except ImportError as error:
            self.meta["run"]["plots"] = f"not drawn ({error}); run benchmarks/plot_gpu.py on the JSON"
        except Exception as error:
            self.meta["run"]["plots"] = f"failed: {type(error).__name__}: {error}"
        self.save_json()
        report = self.save_markdown(images)
        self.log(f"wrote {self.out / JSON_NAME}, {report} and {len(images)} charts")


def cpu_cores() -> int:
    """CPU cores this process may use (a container's share, not the host's count)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def kernel_modules() -> list[object]:
    from scratchformers.kernels import flash_attention, layernorm, softmax

    return [flash_attention, layernorm, softmax]


def run_warm_job(args: argparse.Namespace) -> int:
    """Worker side of gpu_warm: run one compile-ahead job, compiling every autotuning candidate without timing."""
    import torch

    import gpu_attention
    import gpu_layernorm
    import gpu_model
    import gpu_softmax
    from gpu_harness import Settings, configure_autotuning

    settings = Settings(device=torch.device("cpu" if args.dry_run else "cuda"), dry_run=args.dry_run,
                        full_grid=args.full_grid, tokens=args.tokens, model_batch=args.batch)
    jobs = {}
    for module in (gpu_attention, gpu_layernorm, gpu_softmax, gpu_model):
        if module.NAME in args.sections:
            jobs.update(module.warm_jobs(settings))
    if args.warm_job not in jobs:
        print(f"gpu.py: unknown compile-ahead job {args.warm_job!r}", file=sys.stderr)
        return 2
    configure_autotuning(kernel_modules(), None)
    jobs[args.warm_job]()
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.dry_run:
        os.environ["TRITON_INTERPRET"] = "1"  # before any kernel is defined
    gpu_repo.use_checkout()
    import torch

    if not args.dry_run and not torch.cuda.is_available():
        print("benchmarks/gpu.py needs a CUDA GPU (torch.cuda.is_available() is False); nothing was measured. "
              "`python benchmarks/gpu.py --dry-run` checks the script on CPU.", file=sys.stderr)
        return 2
    if args.warm_job:
        return run_warm_job(args)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # killed from outside: still stop the workers
    run = Run(args)
    run.log(f"{run.meta['name']}; torch {run.meta['torch']}, triton {run.meta['triton']}; writing to {run.out}")
    run.save_json()
    state = "interrupted"
    try:
        if not args.no_warm:
            run.warm()
        run.measure()
        state = "complete"
    finally:
        run.finish(state)
    return 0


if __name__ == "__main__":
    sys.exit(main())
