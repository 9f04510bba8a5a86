"""Timestamped training runs: the clock that the CPU training benchmarks (cpu_vs_nanogpt.py, cpu_sweep.py) read.

A run is a training command started as a child process (``python -m scratchformers train ...`` or nanoGPT's
``train.py``). Every line it prints is stamped, as it arrives, with the seconds since the process was started, and
kept in a log file as ``<seconds><TAB><line>``. Where the numbers come from:

- ours: its ``log.jsonl`` (the training log, read by ``scratchformers.train.plots.read_log``), whose training and
  evaluation records carry their wall-clock ``time``; a point's time is that minus the moment the process started;
- nanoGPT: its printed lines, ``step 500: train loss 1.9021, val loss 1.9874`` and ``iter 500: loss 1.93, time ...``,
  read by :func:`eval_points` and :func:`train_points` (with the stamps above as their times).

Only public command lines, printed lines and log files are used, so the benchmarks keep working while the trainers'
internals change. Wall time is counted from the start of the process, so it includes Python's start-up, imports,
model building and every evaluation, as a user waits for them. The children run with unbuffered output
(``PYTHONUNBUFFERED=1``): a line is stamped when it is printed, not when a 4 KB pipe buffer happens to fill.
"""
from __future__ import annotations

import os
import platform
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # this checkout's scratchformers, also when it is not installed
    sys.path.insert(0, str(REPO))
EVAL_LINE = re.compile(r"\bstep (\d+): .*?\bval loss\s+(\d+(?:\.\d+)?)")  # nanoGPT's evaluation line
TRAIN_LINE = re.compile(r"\biter (\d+): loss\s+(\d+(?:\.\d+)?)")  # nanoGPT's logged step
STOP_GRACE_S = 60.0  # after SIGINT, how long a run may take to save and exit before it is killed
ECHO_EVERY_S = 15.0  # training lines reach the console at most this often (evaluations always do)
_LIVE: set[subprocess.Popen] = set()  # runs in progress, killed if this script is terminated


@dataclass
class Point:
    """One number a run printed: at ``t`` seconds after its start, at step ``step``."""

    t: float
    step: int
    value: float


@dataclass
class Run:
    """A finished (or stopped) run: its command and every line it printed, stamped."""

    name: str
    command: list[str]
    lines: list[tuple[float, str]]
    returncode: int | None
    stop: str  # "finished", "budget" (stopped at its time limit) or "enough" (stopped once it had what was needed)
    wall_s: float
    load_before: list[float] = field(default_factory=list)  # 1, 5 and 15 minute load averages
    load_after: list[float] = field(default_factory=list)
    started_at: float = 0.0  # Unix time when the process was started
    log_jsonl: Path | None = None  # ours: the run's training log, where its numbers are read

    @property
    def evals(self) -> list[Point]:
        """The validation losses, with their times (seconds since the start) and steps."""
        if self.log_jsonl is not None:
            return log_points(self.log_jsonl, self.started_at, "eval", "val_loss")
        return eval_points(self.lines)

    @property
    def train(self) -> list[Point]:
        """The training losses of the logged steps."""
        if self.log_jsonl is not None:
            return log_points(self.log_jsonl, self.started_at, "train", "loss")
        return train_points(self.lines)

    def summary(self, max_train_points: int = 400) -> dict[str, Any]:
        """Plain values for a JSON report: the command, how it ended, every evaluation, a thinned training curve."""
        train = self.train
        stride = max(1, len(train) // max_train_points)
        return {
            "name": self.name,
            "command": self.command,
            "returncode": self.returncode,
            "stop": self.stop,
            "wall_s": round(self.wall_s, 2),
            "load_before": self.load_before,
            "load_after": self.load_after,
            "evals": [asdict(p) for p in self.evals],
            "train": [asdict(p) for p in train[::stride]],
        }


def log_points(log_jsonl: Path, started_at: float, kind: str, key: str) -> list[Point]:
    """``key`` of every ``kind`` record of our training log, timed from ``started_at`` (Unix time). Records older
    than the start are an earlier run's (a run refused at start-up leaves the old log in place)."""
    from scratchformers.train.plots import read_log

    records = read_log(log_jsonl) if log_jsonl.is_file() else []
    return [Point(r["time"] - started_at, r["step"], r[key]) for r in records
            if r.get("kind") == kind and r.get("time", 0.0) >= started_at]


def eval_points(lines: Sequence[tuple[float, str]]) -> list[Point]:
    """The validation losses nanoGPT printed, with their times and steps."""
    points = []
    for t, text in lines:
        match = EVAL_LINE.search(text)
        if match:
            points.append(Point(t, int(match.group(1)), float(match.group(2))))
    return points


def train_points(lines: Sequence[tuple[float, str]]) -> list[Point]:
    """The training losses nanoGPT printed for its logged steps (not its evaluation lines)."""
    points = []
    for t, text in lines:
        match = TRAIN_LINE.search(text)
        if match and not EVAL_LINE.search(text):
            points.append(Point(t, int(match.group(1)), float(match.group(2))))
    return points


def points_from(summary_points: Sequence[dict[str, Any]]) -> list[Point]:
    """:class:`Point` objects back from a JSON report."""
    return [Point(**p) for p in summary_points]


def value_at(points: Sequence[Point], t: float) -> float | None:
    """The value at time ``t``: linear between the two points that bracket it; the last value if the run ended
    before ``t``; None before the first point."""
    if not points or t < points[0].t:
        return None
    for a, b in zip(points, points[1:]):
        if a.t <= t <= b.t:
            return a.value + (b.value - a.value) * (t - a.t) / (b.t - a.t) if b.t > a.t else b.value
    return points[-1].value


def time_to_reach(points: Sequence[Point], value: float) -> float | None:
    """The first time the value falls to ``value`` (linear between points), or None if it never does."""
    for a, b in zip(points, points[1:]):
        if b.value <= value < a.value:
            return a.t + (b.t - a.t) * (a.value - value) / (a.value - b.value)
    return points[0].t if points and points[0].value <= value else None


def scratchformers(*args: str) -> list[str]:
    """Our command line, through the interpreter running this script (an installed entry point is not needed)."""
    return [sys.executable, "-m", "scratchformers", *args]


def child_env(threads: int) -> dict[str, str]:
    """The environment of every run: unbuffered output, ``threads`` OpenMP/MKL threads, this repository importable
    (so that ``python -m scratchformers`` runs this checkout's code from any working directory)."""
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(threads)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH", "")]))
    return env


def default_threads() -> int:
    """The cores this process may use (what ``scratchformers train`` uses by default)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else []


def run_stamped(
    name: str,
    command: Sequence[str],
    *,
    cwd: Path,
    env: dict[str, str],
    log_path: Path,
    budget_s: float | None = None,
    enough: Callable[[list[tuple[float, str]]], bool] | None = None,
    echo: bool = True,
    log_jsonl: Path | None = None,
) -> Run:
    """Run ``command`` to its end, or until ``budget_s`` seconds have passed, or until ``enough(lines)`` is true;
    a stopped run gets SIGINT (ours saves a checkpoint and exits), then SIGKILL after :data:`STOP_GRACE_S`.
    ``log_jsonl``: for our trainer, its training log (``<out-dir>/log.jsonl``), where the run's numbers are read."""
    lines: list[tuple[float, str]] = []
    stopping = threading.Event()  # once set, lines are still logged but no longer echoed (a stopped run's traceback)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    load_before = load_average()
    started_at, start = time.time(), time.perf_counter()
    proc = subprocess.Popen(list(command), cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, bufsize=1, errors="replace")
    _LIVE.add(proc)

    def read() -> None:
        last_echo = -ECHO_EVERY_S
        with open(log_path, "w", encoding="utf-8", buffering=1) as log:  # line-buffered: a killed run keeps its log
            for raw in proc.stdout:
                t = time.perf_counter() - start
                text = raw.rstrip("\n").split("\r")[-1]  # a progress bar's carriage returns: keep the last state
                lines.append((t, text))
                log.write(f"{t:.3f}\t{text}\n")
                routine = not EVAL_LINE.search(text)  # evaluations always reach the console, the rest now and then
                if echo and not stopping.is_set() and (not routine or t - last_echo >= ECHO_EVERY_S):
                    print(f"[{name} {t:7.1f} s] {text}", flush=True)
                    last_echo = t if routine else last_echo

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    stop = "finished"
    try:
        while proc.poll() is None:
            elapsed = time.perf_counter() - start
            if budget_s is not None and elapsed >= budget_s:
                stop = "budget"
            elif enough is not None and enough(list(lines)):
                stop = "enough"
            if stop != "finished":
                stopping.set()
                print(f"[{name} {elapsed:7.1f} s] stopping ({stop})", flush=True)
                _interrupt(proc)
                break
            time.sleep(0.2)
    except BaseException:  # Ctrl-C or an error here: never leave a training run behind
        proc.kill()
        raise
    finally:
        proc.wait()
        _LIVE.discard(proc)
    wall = time.perf_counter() - start
    reader.join(timeout=10)
    return Run(name, list(command), lines, proc.returncode, stop, wall, load_before, load_average(), started_at,
               log_jsonl)


def kill_runs_on_sigterm() -> None:
    """Make SIGTERM (``timeout``, a job scheduler) kill the runs in progress, then exit: without it they would
    outlive this script and keep the cores busy."""

    def handle(signum: int, frame: Any) -> None:
        for proc in list(_LIVE):
            proc.kill()
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handle)


def _interrupt(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        proc.kill()


def machine_info(threads: int) -> dict[str, Any]:
    """What the numbers were measured on: CPU, cores, the instruction sets that matter for bf16, versions, date."""
    import torch

    cpu, flags = platform.processor() or platform.machine(), set()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                cpu = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
    return {
        "cpu": cpu,
        "cores_usable": default_threads(),
        "threads": threads,
        "cpu_flags": sorted(flags & {"avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile"}),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }


def prepare_tiny_char(data_dir: Path, env: dict[str, str]) -> Path:
    """Our tiny Shakespeare, character tokens, last 10 % as val, prepared by ``scratchformers prepare``."""
    command = scratchformers("prepare", "shakespeare", "--tokenizer", "char", "--variant", "tiny",
                             "--out", str(data_dir))
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"`{' '.join(command[1:])}` failed:\n{result.stdout}{result.stderr}")
    return data_dir
