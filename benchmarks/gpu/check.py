"""The GPU check: the GPU tests, our kernels and training against PyTorch, and the real trainer, in one run that
ends, report included, within 8 minutes.

    PYTHONPATH=. python3 benchmarks/gpu/check.py --out $OUT     # on a CUDA machine, from the repository root
    PYTHONPATH=. python3 benchmarks/gpu/check.py --dry-run      # no GPU: every code path on CPU, tiny shapes
    python3 benchmarks/gpu/check.py --replot DIR/gpu_check.json # redraw the charts from a run's JSON
    PYTHONPATH=. python3 benchmarks/gpu/check.py --code-hash    # the code hash a run records, for this checkout

A bare copy of the repository is enough: torch and Triton installed, the project not; ``PYTHONPATH=<repository>``
makes ``scratchformers.*`` this checkout's folders (see scratchformers/__init__.py).

The sections run one after another, most important first, each in processes of its own that are killed at the end of
its time (``jobs.py``), so none can hang the run or take another's time, and a crash costs only its own section:

    parity      parity.py            every test marked gpu, one pytest process per test, side by side
    attention   bench_attention.py   flash attention vs F.scaled_dot_product_attention and the materialised paths
    layernorm   bench_layernorm.py   LayerNorm fwd, bwd vs F.layer_norm: GB/s and % of peak bandwidth
    softmax     bench_softmax.py     row softmax fwd, bwd vs torch.softmax: GB/s
    model       bench_train_step.py  the step timer: a GPT-2 124M training step, fast vs torch path, eager and compiled
    trainer     first_steps.py       the gpt2-owt preset's first 20 steps through `scratchformers train`
    hostsync    host_sync.py         the same run with --sync-every-step: what per-step host syncs cost

The order also warms the caches the later sections read: the tests compile most kernel configurations the timed
sections run, and the step timer's compiled fast step is the graph the trainer's runs compile. ``--budget-s``
(default 480) is the whole run's wall clock, report included: each section gets its share (:data:`SHARES`) of the
time left when it starts, unused time passing on; within its time a section records the items it had no time for as
``skipped: time budget``. One item's failure is recorded and the section goes on; a section that fails is recorded
and the run goes on. ``TRITON_CACHE_AUTOTUNING`` is unset for the run (cached autotuning results would skip the
timing of our tiles). The JSON is rewritten after every section, so a run killed from outside still leaves its data.
The output folder gets six files (a run first removes those of an earlier one):

    gpu_check.json     device, versions, date, code, settings, timings, one row per test and per measurement
    gpu_check.md       the same as tables, headed by the summary that the run also prints last
    gpu_check.log      the progress lines and the summary, as printed
    gpu-attention.png, gpu-rowwise.png, gpu-training.png   charts (needs matplotlib; --replot redraws them)

Exit status: 0 after a run (whatever failed inside it: read the summary), 2 without CUDA (unless --dry-run) or when
``scratchformers`` cannot be imported from this checkout.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

STARTED = time.time()
ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
SECTIONS = ("parity", "attention", "layernorm", "softmax", "model", "trainer", "hostsync")  # run order
BENCH_MODULES = dict(attention="bench_attention.py", layernorm="bench_layernorm.py", softmax="bench_softmax.py",
                     model="bench_train_step.py")  # the sections that run as `python <module> ...`
# Each section's share: seconds of the default budget (benchmarks/README.md gives the estimate behind them).
SHARES = dict(parity=75.0, attention=70.0, layernorm=25.0, softmax=20.0, model=120.0, trainer=95.0, hostsync=55.0)
DEFAULT_BUDGET_S = 480.0
RESERVE_S = 15.0  # kept back from the budget for the report and the charts
STOP_EARLY_S = 2.0  # a timed section starts no item this close to its end, and records the rest as skipped
MIN_SECTION_S = 3.0  # a section allotted less is not started
UNSET = ("TRITON_CACHE_AUTOTUNING",)  # environment variables removed for the run and its processes
JSON_NAME, MARKDOWN_NAME, LOG_NAME = "gpu_check.json", "gpu_check.md", "gpu_check.log"


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
                        help=f"wall-clock budget of the whole run, report included (default: {DEFAULT_BUDGET_S:g})")
    parser.add_argument("--dry-run", action="store_true",
                        help="CPU only, Triton interpreter, tiny shapes: checks every code path, measures nothing")
    parser.add_argument("--warmup-ms", type=float, default=10.0, help="do_bench warm-up per item (default: 10)")
    parser.add_argument("--rep-ms", type=float, default=50.0, help="do_bench repetition time per item (default: 50)")
    parser.add_argument("--autotune-keep", type=int, default=3,
                        help="candidate tiles each flash-attention kernel tries in the timed sections (default: 3)")
    parser.add_argument("--peak-gbps", type=float, default=None,
                        help="peak memory bandwidth of this GPU in GB/s (default: datasheet value of known GPUs)")
    parser.add_argument("--replot", type=Path, default=None, metavar="JSON",
                        help="only redraw the charts of a gpu_check.json (into --out, default: beside it)")
    parser.add_argument("--code-hash", action="store_true",
                        help="only print the code hash of this checkout (the one a run records) and exit")
    args = parser.parse_args(argv)
    if args.autotune_keep < 1:
        parser.error("--autotune-keep must be at least 1")
    return args


def clean_environment(environ: dict[str, str]) -> list[str]:
    """Remove :data:`UNSET` from ``environ``; returns the names that were set."""
    return [name for name in UNSET if environ.pop(name, None) is not None]


class Run:
    """One run of the check: its settings, the sections one after another, and writing the results out."""

    def __init__(self, args: argparse.Namespace, unset: list[str]) -> None:
        import torch

        import scratchformers.fast.attention
        from harness import Budget, Settings
        from machine import describe
        from plots import CHARTS

        self.args = args
        device = torch.device("cpu" if args.dry_run else "cuda")
        self.meta = describe(device, ROOT, args.peak_gbps)
        self.settings = Settings(dry_run=args.dry_run, warmup_ms=args.warmup_ms, rep_ms=args.rep_ms,
                                 autotune_keep=args.autotune_keep, peak_gbps=self.meta["peak_gbps"])
        self.budget = Budget(args.budget_s - RESERVE_S - (time.time() - STARTED))
        self.out = args.out or default_out()
        for name in (JSON_NAME, MARKDOWN_NAME, LOG_NAME, *CHARTS):  # this run's files only, never an older run's
            (self.out / name).unlink(missing_ok=True)
        self.results: dict = dict(meta=self.meta, timing={})
        self.meta["run"] = dict(state="running", budget_s=args.budget_s, sections=args.sections, dry_run=args.dry_run,
                                warmup_ms=args.warmup_ms, rep_ms=args.rep_ms, autotune_keep=args.autotune_keep,
                                shares_s={name: SHARES[name] for name in args.sections}, unset_env=unset,
                                argv=sys.argv[1:])
        self.meta["package_files"] = scratchformers.fast.attention.__file__

    def log(self, message: str) -> None:
        """A progress line on stdout and in the output folder's log."""
        line = f"[{time.time() - STARTED:6.1f} s] {message}"
        print(line, flush=True)
        self.out.mkdir(parents=True, exist_ok=True)
        with open(self.out / LOG_NAME, "a") as handle:
            handle.write(line + "\n")

    def save_json(self) -> None:
        self.meta["run"]["elapsed_s"] = round(time.time() - STARTED, 1)
        self.out.mkdir(parents=True, exist_ok=True)
        partial = self.out / (JSON_NAME + ".partial")
        partial.write_text(json.dumps(self.results, indent=1, default=str))
        partial.replace(self.out / JSON_NAME)

    def sections(self) -> None:
        """Every selected section, one after another, each within its share of the budget."""
        from harness import status_of

        chosen = self.args.sections
        with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
            for i, name in enumerate(chosen):
                allotted = self.budget.open_section(SHARES[name], sum(SHARES[n] for n in chosen[i:]))
                timing = self.results["timing"][name] = dict(allotted_s=round(allotted, 1))
                if allotted < MIN_SECTION_S:
                    timing["error"] = "not run: no time left"
                    self.log(f"{name}: {timing['error']}")
                    continue
                self.log(f"{name}: start, {allotted:.0f} s allotted")
                start = time.monotonic()
                try:
                    if name in BENCH_MODULES:
                        self.results[name] = self.run_bench(name, allotted, Path(tmp), timing)
                    else:
                        self.results[name] = getattr(self, f"run_{name}")(allotted, Path(tmp), timing)
                except Exception as error:  # a section that cannot even set up: note it, go on
                    timing["error"] = status_of(error)
                    self.log(f"{name}: {timing['error']}")
                timing["wall_s"] = round(time.monotonic() - start, 1)
                rows = self.results.get(name, [])
                counts = Counter(row["status"].split(":")[0] for row in rows)
                self.log(f"{name}: done in {timing['wall_s']:.1f} s, {len(rows)} rows ({dict(counts)})")
                self.save_json()

    def run_parity(self, seconds: float, work: Path, timing: dict) -> list[dict]:
        """The GPU tests, one process per test, as many side by side as the cores and the declared memory allow."""
        import torch

        import parity
        from jobs import run_jobs

        deadline = time.monotonic() + seconds
        node_ids = parity.collect(timeout_s=seconds)
        job_list = parity.jobs(node_ids, work, self.args.dry_run)
        if self.args.dry_run:
            parallel, memory = 2, float("inf")
        else:
            parallel = max(1, cpu_cores() - 1)
            memory = 0.85 * torch.cuda.get_device_properties(0).total_memory / 2**30
        timing.update(parallel=parallel, memory_gib=round(memory, 1), declared_gib=sum(job.gib for job in job_list))
        self.log(f"parity: {len(node_ids)} GPU tests in {len(job_list)} processes, {parallel} at a time within "
                 f"{memory:.0f} GiB of declared memory")
        results = run_jobs(job_list, deadline - time.monotonic(), parallel, memory, progress=self.log)
        rows = parity.rows(node_ids, job_list, results, work)
        self.log(f"parity: {parity.counts(rows)}")
        return rows

    def run_bench(self, name: str, seconds: float, work: Path, timing: dict) -> list[dict]:
        """A timed section as ``python benchmarks/gpu/<module> ...``: its rows, as many as it measured in time."""
        from first_steps import last_line
        from jobs import OUTPUT_TAIL, run_process
        from scratchformers.train.plots import read_log

        rows_file = work / f"{name}.jsonl"
        stop = time.time() + seconds - STOP_EARLY_S - STARTED  # on the run's clock, as the section's lines are
        command = [sys.executable, str(HERE / BENCH_MODULES[name]), "--settings", self.settings.to_json(),
                   "--seconds", f"{stop:.1f}", "--rows", str(rows_file), "--log", str(self.out / LOG_NAME),
                   "--started", repr(STARTED)]
        returncode, output, _ = run_process(command, seconds, cwd=ROOT, env=child_environment(), show_stdout=True)
        if returncode != 0:
            timing["error"] = (f"killed at the end of its {seconds:.0f} s" if returncode is None
                               else f"exit {returncode}: {last_line(output)}")
            timing["output_tail"] = output[-OUTPUT_TAIL:]
        return read_log(rows_file) if rows_file.is_file() else []

    def run_trainer(self, seconds: float, work: Path, timing: dict) -> list[dict]:
        import first_steps

        row = first_steps.measure(work, self.args.dry_run, seconds)
        self.log(first_steps.summary(row))
        return [row]

    def run_hostsync(self, seconds: float, work: Path, timing: dict) -> list[dict]:
        import host_sync

        row = host_sync.measure(work, self.args.dry_run, seconds, (self.results.get("trainer") or [None])[0])
        self.log(host_sync.summary(row))
        return [row]

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


def child_environment() -> dict[str, str]:
    """The environment of the sections' processes: this one's, with this checkout first on PYTHONPATH."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def cpu_cores() -> int:
    """CPU cores this process may use (a container's share, not the host's count)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


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
    if args.code_hash:
        from machine import code_sha256

        sha, count = code_sha256(ROOT)
        print(f"{sha}  ({count} files of {ROOT})")
        return 0
    unset = clean_environment(os.environ)  # before triton is imported, here and in every child process
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
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # killed from outside: stop the section, still report
    run = Run(args, unset)
    code = run.meta["code"]
    run.log(f"{run.meta['name']}; torch {run.meta['torch']}, triton {run.meta['triton']}; code {code['sha256'][:12]}"
            f" (commit {code['git_commit'] or 'unknown: no .git'}); writing to {run.out}")
    run.save_json()
    state = "interrupted"
    try:
        run.sections()
        state = "complete"
    finally:
        run.finish(state)
    return 0


if __name__ == "__main__":
    sys.exit(main())
