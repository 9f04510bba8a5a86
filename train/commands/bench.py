"""Run the benchmarks: the CPU suites (pytest-benchmark) or, with --gpu, the GPU check.

Examples:
  scratchformers bench                                  # every CPU suite at full size: a few minutes each on 2 cores
  scratchformers bench --quick                          # small inputs: a smoke test in well under a minute
  scratchformers bench --json out/cpu.json              # also save the timings (plot: benchmarks/plot_results.py)
  scratchformers bench -- -k attention                  # arguments after -- go to pytest
  scratchformers bench --gpu                            # the GPU check (benchmarks/gpu/check.py), CUDA machine
  scratchformers bench --gpu -- --out results/          # arguments after -- go to the GPU check
  scratchformers bench --gpu -- --dry-run               # the GPU check's rehearsal on CPU

The benchmarks live in the repository's benchmarks/ folder; they are not part of the wheel, so this command needs a
clone (installed in editable mode, pip install -e ".[test]", or on PYTHONPATH).
"""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true",
                        help="small inputs and few rounds (same as SCRATCHFORMERS_BENCH_QUICK=1)")
    parser.add_argument("--gpu", action="store_true",
                        help="run the GPU check (benchmarks/gpu/check.py) instead of the CPU suites")
    parser.add_argument("--json", metavar="PATH", default=None,
                        help="write the CPU timings to PATH (pytest --benchmark-json)")
    parser.add_argument("extra", nargs=argparse.REMAINDER,
                        help="after --: more arguments for pytest (or, with --gpu, for benchmarks/gpu/check.py)")


def benchmarks_dir() -> Path:
    """The repository's benchmarks/ folder: this file is <repository>/train/commands/bench.py in a clone (bare or
    installed in editable mode)."""
    return Path(__file__).resolve().parents[2] / "benchmarks"


def command(args: argparse.Namespace, folder: Path) -> list[str]:
    """The command line that runs what ``args`` asks for."""
    extra = args.extra[1:] if args.extra[:1] == ["--"] else args.extra
    if args.gpu:
        return [sys.executable, str(folder / "gpu" / "check.py"), *extra]
    cmd = [sys.executable, "-m", "pytest", str(folder), "--benchmark-group-by=group"]
    if args.quick:
        cmd.append("--quick")
    if args.json:
        cmd.append(f"--benchmark-json={Path(args.json).resolve()}")
    return cmd + extra


def run(args: argparse.Namespace) -> int:
    if args.gpu and (args.quick or args.json):
        print("scratchformers bench: error: --quick and --json are for the CPU suites; the GPU script takes "
              "its own options after --, e.g. scratchformers bench --gpu -- --out DIR", file=sys.stderr)
        return 2
    folder = benchmarks_dir()
    if not (folder / "conftest.py").is_file():
        print(f"scratchformers bench: error: no benchmarks/ folder at {folder}. "
              "The benchmarks ship with the repository, not the wheel: clone it and pip install -e '.[test]'.",
              file=sys.stderr)
        return 1
    if args.json:
        try:
            Path(args.json).resolve().parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            print(f"scratchformers bench: error: cannot write --json {args.json}: {error.strerror}", file=sys.stderr)
            return 2
    return subprocess.call(command(args, folder), cwd=folder.parent)
