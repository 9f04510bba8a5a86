"""The GPU check: parity tests, kernels and training against PyTorch, and the real trainer, in one run of 9 minutes.

    PYTHONPATH=. python3 benchmarks/gpu/check.py --out $OUT     # on a CUDA machine, from the repository root
    PYTHONPATH=. python3 benchmarks/gpu/check.py --dry-run      # no GPU: every code path on CPU, tiny shapes
    python3 benchmarks/gpu/check.py --replot DIR/gpu_check.json # redraw the charts from a run's JSON

A bare copy of the repository is enough: torch and Triton installed, the project not; ``PYTHONPATH=<repository>``
makes ``scratchformers.*`` this checkout's folders (see scratchformers/__init__.py).

First phase, nothing timed (``jobs.py``): the GPU tests (``parity.py``: tests/test_gpu_parity.py, then every other
test marked ``gpu``; one pytest process per test) and the compile-ahead jobs run side by side as separate processes, within 40% of the budget. Then
the timed sections, one at a time on a quiet GPU, in this order (each module's docstring says what and how):

    attention   bench_attention.py   flash attention vs F.scaled_dot_product_attention and the materialised paths
    layernorm   bench_layernorm.py   LayerNorm fwd, bwd vs F.layer_norm: GB/s and % of peak bandwidth
    model       bench_train_step.py  a GPT-2 124M training step, fast vs torch path, eager and compiled
    trainer     first_steps.py       the gpt2-owt preset's first 20 steps through `scratchformers train`
    hostsync    host_sync.py         the trainer's step time with and without per-step host syncs
    softmax     bench_softmax.py     row softmax fwd, bwd vs torch.softmax: GB/s

``--budget-s`` (default 500) is the whole run's wall clock, compiling included. Each timed section gets a share of
the time left when it starts; items that find none are recorded as ``skipped: time budget``; one in-process item may
overrun its share (a ``torch.compile``), so at ``--budget-s`` + ``--hard-stop-after-s`` (25 s) the run stops wherever
it is and writes what it has. One item's failure is recorded and the run goes on. The JSON is rewritten after every
item, so a run killed from outside still leaves its data. The output folder gets six files (a run first removes
those of an earlier one):

    gpu_check.json     device, versions, date, settings, timings, one row per test and per measurement
    gpu_check.md       the same as tables, headed by the summary that the run also prints last
    gpu_check.log      the progress lines and the summary, as printed
    gpu-attention.png, gpu-rowwise.png, gpu-training.png   charts (needs matplotlib; --replot redraws them)

Exit status: 0 after a run (whatever failed inside it: read the summary), 2 without CUDA (unless --dry-run) or when
``scratchformers`` cannot be imported from this checkout.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

STARTED = time.monotonic()
ROOT = Path(__file__).resolve().parents[2]
TIMED = ("attention", "layernorm", "model", "trainer", "hostsync", "softmax")  # run order
SECTIONS = ("parity", *TIMED)
WEIGHTS = {"attention": 2.0, "layernorm": 1.0, "model": 4.0, "trainer": 5.0, "hostsync": 3.0, "softmax": 0.5}
FIRST_PHASE_SHARE = 0.4  # GPU tests and compile-ahead jobs: at most this share of the budget
RESERVE_S = 15.0  # kept back from the budget for the report and the charts
HARD_STOP_AFTER_S = 25.0  # past the budget, the run stops wherever it is
DEFAULT_BUDGET_S = 500.0
HEAVY_GIB = 25.0  # GPU memory of a compile-ahead job that runs a GPT-2 training step
LIGHT_GIB = 2.0
JSON_NAME, MARKDOWN_NAME, LOG_NAME = "gpu_check.json", "gpu_check.md", "gpu_check.log"


class TimeUp(BaseException):
    """Raised by the hard-stop alarm; a BaseException, so no item's ``except Exception`` swallows it."""


def default_out() -> Path:
    return Path(os.environ["OUT"]) if os.environ.get("OUT") else ROOT / "benchmarks" / "results" / "gpu"


def sections_arg(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in SECTIONS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"choose among {','.join(SECTIONS)}; got {text!r}")
    return [name for name in SECTIONS if name in names]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     epilog="Sections, output files and timing: benchmarks/README.md.")
    parser.add_argument("--out", type=Path, default=None,
                        help="output folder (default: $OUT if set, else benchmarks/results/gpu)")
    parser.add_argument("--sections", type=sections_arg, default=list(SECTIONS),
                        help=f"comma-separated subset of {','.join(SECTIONS)} (default: all)")
    parser.add_argument("--budget-s", type=float, default=DEFAULT_BUDGET_S,
                        help=f"wall-clock budget of the whole run, compiling included (default: {DEFAULT_BUDGET_S:g})")
    parser.add_argument("--hard-stop-after-s", type=float, default=HARD_STOP_AFTER_S,
                        help="this long past the budget the run stops wherever it is and writes what it has "
                             f"(default: {HARD_STOP_AFTER_S:g})")
    parser.add_argument("--dry-run", action="store_true",
                        help="CPU only, Triton interpreter, tiny shapes: checks every code path, measures nothing")
    parser.add_argument("--no-warm", action="store_true", help="no compile-ahead jobs in the first phase")
    parser.add_argument("--warmup-ms", type=float, default=10.0, help="do_bench warm-up per item (default: 10)")
    parser.add_argument("--rep-ms", type=float, default=50.0, help="do_bench repetition time per item (default: 50)")
    parser.add_argument("--autotune-rep-ms", type=float, default=20.0,
                        help="repetition time per candidate when our Triton kernels autotune (default: 20; "
                             "Triton's own: 100)")
    parser.add_argument("--peak-gbps", type=float, default=None,
                        help="peak memory bandwidth of this GPU in GB/s (default: datasheet value of known GPUs)")
    parser.add_argument("--replot", type=Path, default=None, metavar="JSON",
                        help="only redraw the charts of a gpu_check.json (into --out, default: beside it)")
    parser.add_argument("--warm-job", default=None, help=argparse.SUPPRESS)  # internal: compile-ahead worker
    return parser.parse_args(argv)


def section_modules() -> dict[str, ModuleType]:
    """The timed sections' modules, by section name."""
    import bench_attention
    import bench_layernorm
    import bench_softmax
    import bench_train_step
    import first_steps
    import host_sync

    modules = (bench_attention, bench_layernorm, bench_train_step, first_steps, host_sync, bench_softmax)
    return {module.NAME: module for module in modules}


def warm_jobs(settings, sections: list[str]) -> dict[str, Callable[[], None]]:
    """Every compile-ahead job of the chosen sections, in section order."""
    jobs: dict[str, Callable[[], None]] = {}
    for name, module in section_modules().items():
        if name in sections and hasattr(module, "warm_jobs"):
            jobs.update({job: fn for job, fn in module.warm_jobs(settings).items() if job not in jobs})
    return jobs


class Run:
    """One run of the check: its settings, the results, and writing them out."""

    def __init__(self, args: argparse.Namespace) -> None:
        import torch

        import scratchformers.fast.attention
        from harness import Budget, Harness, Settings
        from machine import describe
        from plots import CHARTS

        self.args = args
        device = torch.device("cpu" if args.dry_run else "cuda")
        self.meta = describe(device, ROOT, args.peak_gbps)
        self.settings = Settings(device=device, dry_run=args.dry_run, warmup_ms=args.warmup_ms, rep_ms=args.rep_ms,
                                 autotune_rep_ms=args.autotune_rep_ms, peak_gbps=self.meta["peak_gbps"])
        self.budget = Budget(args.budget_s - RESERVE_S - (time.monotonic() - STARTED))
        self.harness = Harness(self.settings, self.budget, save=self.save_json, log=self.log)
        self.out = args.out or default_out()
        for name in (JSON_NAME, MARKDOWN_NAME, LOG_NAME, *CHARTS):  # this run's files only, never an older run's
            (self.out / name).unlink(missing_ok=True)
        self.results: dict = dict(meta=self.meta, timing=dict(first_phase=None, sections={}))
        self.meta["run"] = dict(state="running", budget_s=args.budget_s, sections=args.sections, dry_run=args.dry_run,
                                warmup_ms=args.warmup_ms, rep_ms=args.rep_ms, autotune_rep_ms=args.autotune_rep_ms,
                                argv=sys.argv[1:])
        self.meta["package_files"] = scratchformers.fast.attention.__file__

    def log(self, message: str) -> None:
        """A progress line on stdout and in the output folder's log."""
        line = f"[{time.monotonic() - STARTED:6.1f} s] {message}"
        print(line, flush=True)
        self.out.mkdir(parents=True, exist_ok=True)
        with open(self.out / LOG_NAME, "a") as handle:
            handle.write(line + "\n")

    def save_json(self) -> None:
        self.meta["run"]["elapsed_s"] = round(time.monotonic() - STARTED, 1)
        self.out.mkdir(parents=True, exist_ok=True)
        partial = self.out / (JSON_NAME + ".partial")
        partial.write_text(json.dumps(self.results, indent=1, default=str))
        partial.replace(self.out / JSON_NAME)

    def first_phase(self) -> None:
        """The GPU tests and the compile-ahead jobs side by side (jobs.py), within FIRST_PHASE_SHARE of the budget."""
        import torch

        import parity
        from jobs import Job, run_jobs

        seconds = max(0.0, self.budget.left() * FIRST_PHASE_SHARE)
        deadline = time.monotonic() + seconds
        with tempfile.TemporaryDirectory(prefix="gpu-check-parity-") as tmp:
            xml_dir = Path(tmp)
            parity_jobs: list[Job] = []
            node_ids: list[str] = []
            if "parity" in self.args.sections:
                try:
                    node_ids = parity.collect()
                    parity_jobs = parity.jobs(node_ids, xml_dir, self.args.dry_run)
                except Exception as error:  # collecting failed: say so, go on with the rest
                    self.results["parity"] = [dict(test=parity.TEST_FILE, status=f"error: {error}")]
            warm = [] if self.args.no_warm else self.warm_job_list()
            # The long torch.compile jobs first, so that they finish in time; then the tests; then the kernels.
            job_list = [j for j in warm if j.gib >= HEAVY_GIB] + parity_jobs + [j for j in warm if j.gib < HEAVY_GIB]
            if self.args.dry_run:
                parallel, memory = 2, math.inf
            else:
                parallel = max(1, cpu_cores() - 1)
                memory = 0.85 * torch.cuda.get_device_properties(0).total_memory / 2**30
            seconds = max(0.0, deadline - time.monotonic())
            self.log(f"first phase: {len(node_ids)} GPU tests in {len(parity_jobs)} processes and {len(warm)} "
                     f"compile-ahead jobs, {parallel} at a time, at most {seconds:.0f} s")
            start = time.monotonic()
            results = run_jobs(job_list, seconds, parallel, memory, progress=self.log)
            if node_ids:
                self.results["parity"] = parity.rows(node_ids, job_list, results, xml_dir)
                self.log(f"GPU tests: {parity.counts(self.results['parity'])}")
        warm_results = {job.name: results[job.name] for job in warm}
        self.results["timing"]["first_phase"] = dict(wall_s=round(time.monotonic() - start, 1), jobs=warm_results)
        self.save_json()

    def warm_job_list(self) -> list:
        """The compile-ahead jobs as worker processes; the dry run runs the first job of each section in one
        process (that shows the mechanism; each job's code still runs)."""
        from jobs import Job

        script = [sys.executable, str(Path(__file__).resolve()), "--sections", ",".join(self.args.sections)]
        script += ["--dry-run"] * self.args.dry_run
        names_by_section = {name: list(warm_jobs(self.settings, [name])) for name in self.args.sections}
        if self.args.dry_run:
            first = [names[0] for names in names_by_section.values() if names]
            return [Job("warm-dry-run", script + ["--warm-job", ",".join(first)])] if first else []
        return [Job(job, script + ["--warm-job", job], HEAVY_GIB if section == "model" else LIGHT_GIB)
                for section, names in names_by_section.items() for job in names]

    def timed_sections(self) -> None:
        """Every selected timed section, one after another, each within its share of the budget."""
        from harness import configure_autotuning, kernel_modules, status_of

        try:
            configure_autotuning(kernel_modules(), self.settings.autotune_rep_ms)
        except Exception as error:  # another Triton: its own autotune timing, noted
            self.results["timing"]["autotuning"] = f"Triton's default timing ({status_of(error)})"
        modules = section_modules()
        chosen = [name for name in TIMED if name in self.args.sections]
        for i, name in enumerate(chosen):
            allotted = self.budget.open_section(WEIGHTS[name], sum(WEIGHTS[n] for n in chosen[i:]))
            self.log(f"{name}: start, {allotted:.0f} s allotted")
            rows = self.results.setdefault(name, [])
            timing = self.results["timing"]["sections"][name] = dict(allotted_s=round(allotted, 1))
            start = time.monotonic()
            try:
                modules[name].run(self.harness, rows)
            except Exception as error:  # a section that cannot even set up: note it, go on
                timing["error"] = status_of(error)
                self.log(f"{name}: {timing['error']}")
            wall = time.monotonic() - start
            timing["wall_s"] = round(wall, 1)
            counts = Counter(row["status"].split(":")[0] for row in rows)
            self.log(f"{name}: done in {wall:.1f} s, {len(rows)} rows ({dict(counts)})")
            self.save_json()

    def finish(self, state: str) -> None:
        """Final JSON, charts (if matplotlib is there), Markdown, and the summary printed last."""
        from report import markdown, summary

        self.meta["run"]["state"] = state
        images: list[str] = []
        try:
            from plots import plot_all

            images = [path.name for path in plot_all(self.results, self.out)]
        except ImportError as error:
            self.meta["run"]["plots"] = f"not drawn ({error}); run check.py --replot on the JSON"
        except Exception as error:  # a chart must not cost the report
            self.meta["run"]["plots"] = f"failed: {type(error).__name__}: {error}"
        self.save_json()
        try:
            report, lines = markdown(self.results, images), summary(self.results)
        except Exception as error:  # the JSON is on disk: say where, and what broke the report
            lines = [f"the report could not be made ({type(error).__name__}: {error}); the results are in "
                     f"{self.out / JSON_NAME}"]
            report = "\n".join(["# GPU check", "", *lines]) + "\n"
        (self.out / MARKDOWN_NAME).write_text(report)
        self.log(f"wrote {self.out / JSON_NAME}, {self.out / MARKDOWN_NAME} and {len(images)} charts")
        print("\n".join(lines), flush=True)
        with open(self.out / LOG_NAME, "a") as handle:
            handle.write("\n".join(lines) + "\n")


def cpu_cores() -> int:
    """CPU cores this process may use (a container's share, not the host's count)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def run_warm_jobs(args: argparse.Namespace) -> int:
    """Worker side of the first phase: run compile-ahead jobs, compiling every autotuning candidate untimed."""
    import torch

    from harness import Settings, configure_autotuning, kernel_modules

    settings = Settings(device=torch.device("cpu" if args.dry_run else "cuda"), dry_run=args.dry_run)
    jobs = warm_jobs(settings, args.sections)
    names = args.warm_job.split(",")
    unknown = [name for name in names if name not in jobs]
    if unknown:
        print(f"check.py: unknown compile-ahead job(s) {unknown}", file=sys.stderr)
        return 2
    configure_autotuning(kernel_modules(), None)
    for name in names:
        jobs[name]()
    return 0


def import_checkout() -> str | None:
    """Import ``scratchformers`` and check that it is this checkout's; the reason why not, or None."""
    how = (f"run from the repository root with PYTHONPATH={ROOT} (nothing needs installing), or pip install -e "
           f"{ROOT}")
    try:
        import scratchformers
    except ImportError as error:
        return f"cannot import scratchformers ({error}): {how}"
    found = Path(scratchformers.__file__).resolve().parents[1]
    if found != ROOT:
        return f"scratchformers is imported from {found}, not from this checkout ({ROOT}): {how}"
    return None


def replot(args: argparse.Namespace) -> int:
    from plots import plot_all

    try:
        results = json.loads(args.replot.read_text())
        if not isinstance(results, dict) or "meta" not in results:
            raise ValueError(f"{args.replot} is not a gpu_check.json (no 'meta')")
    except (OSError, ValueError) as error:
        print(f"check.py: error: {error}", file=sys.stderr)
        return 1
    for path in plot_all(results, args.out or args.replot.parent):
        print(f"wrote {path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.replot:
        return replot(args)
    if args.dry_run:  # before torch and any kernel are imported, here and in every child process: a CPU-only run
        os.environ["TRITON_INTERPRET"] = "1"
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
    problem = import_checkout()
    if problem:
        print(f"check.py: {problem}", file=sys.stderr)
        return 2
    import torch

    if not args.dry_run and not torch.cuda.is_available():
        print("check.py needs a CUDA GPU (torch.cuda.is_available() is False); nothing was measured. "
              "`python benchmarks/gpu/check.py --dry-run` checks the script on CPU.", file=sys.stderr)
        return 2
    if args.warm_job:
        return run_warm_jobs(args)
    return run_check(args)


def run_check(args: argparse.Namespace) -> int:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # killed from outside: still stop the workers, report

    def hard_stop(*_: object) -> None:
        raise TimeUp

    signal.signal(signal.SIGALRM, hard_stop)
    limit = args.budget_s + args.hard_stop_after_s
    signal.alarm(max(1, math.ceil(limit - (time.monotonic() - STARTED))))
    run = Run(args)
    run.log(f"{run.meta['name']}; torch {run.meta['torch']}, triton {run.meta['triton']}; writing to {run.out}")
    run.save_json()
    state = "interrupted"
    try:
        run.first_phase()
        run.timed_sections()
        state = "complete"
    except TimeUp:
        state = f"stopped at the hard limit ({limit:.0f} s)"
    finally:
        signal.alarm(0)
        run.finish(state)
    return 0


if __name__ == "__main__":
    sys.exit(main())
