"""Child processes of the GPU check, each with a time limit that nothing outlives.

Every section of the check runs in processes of its own: the timed sections as ``python benchmarks/gpu/<module>.py``,
the trainer as ``scratchformers train``, the GPU tests as ``pytest``. A process that overruns its limit is killed
together with whatever it started (Inductor's compile workers, pytest's children: one process group), so a hang, a
crash or an illegal memory access costs only its own section, and the check always reaches its report.

- :func:`run_process`: one command, e.g. a timed section.
- :func:`run_jobs`: the GPU tests, one process per test side by side (compiling a test's kernels takes far longer than
  running them, and the machine has many cores), started only while the GPU memory they declare fits the card.
"""
from __future__ import annotations

import contextlib
import math
import os
import signal
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

OUTPUT_TAIL = 3000  # characters of a failed job's output kept in its result


@dataclass(frozen=True)
class Job:
    """One worker process: its name, its command line, the GPU memory (GiB) it may hold at its peak, its folder."""

    name: str
    command: list[str]
    gib: float = 0.0
    cwd: Path | None = None


def run_process(command: list[str], seconds: float, cwd: Path | None = None, env: Mapping[str, str] | None = None,
                show_stdout: bool = False) -> tuple[int | None, str, float]:
    """Run ``command``; returns (its exit status, or None if it was killed at ``seconds``; its output, stdout and
    stderr together, or only stderr with ``show_stdout``, which passes stdout on to ours; the seconds it took)."""
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
        log = Path(tmp) / "output.log"
        proc, start = _start(command, log, cwd, env, show_stdout)
        try:
            returncode: int | None = proc.wait(timeout=max(0.0, seconds))
        except subprocess.TimeoutExpired:
            returncode = None
        finally:  # timed out, or the check itself interrupted: the process group goes with it
            _kill(proc)
        return returncode, log.read_text(errors="replace"), time.monotonic() - start


def run_jobs(jobs: Sequence[Job], seconds: float, parallel: int, memory_gib: float = math.inf,
             progress: Callable[[str], None] = lambda line: None) -> dict[str, dict]:
    """Run the jobs, at most ``parallel`` at a time and only while their declared memory adds up to at most
    ``memory_gib`` (a job larger than that runs alone). Jobs start in the order given, a later one first only when
    an earlier one does not fit yet; whatever runs at ``seconds`` is killed. Job names must be unique (the results
    are keyed by them).

    Returns ``{name: {"status": ..., "s": seconds}}``; status ``ok``, ``failed (exit N)`` with the end of its
    output under ``"log"``, ``killed at the deadline`` or ``not started (deadline)``.
    """
    repeated = sorted(name for name, count in Counter(job.name for job in jobs).items() if count > 1)
    if repeated:
        raise ValueError(f"job names must be unique; repeated: {', '.join(repeated)}")
    pending = list(jobs)
    running: dict[str, tuple[Job, subprocess.Popen, float, Path]] = {}
    results: dict[str, dict] = {}
    deadline = time.monotonic() + seconds
    with tempfile.TemporaryDirectory(prefix="gpu-jobs-") as logs:
        try:
            while pending or running:
                for job in list(pending):
                    used = sum(entry[0].gib for entry in running.values())
                    fits = not running or used + job.gib <= memory_gib
                    if len(running) < parallel and fits:
                        pending.remove(job)
                        log = Path(logs) / f"job-{len(jobs) - len(pending)}.log"
                        running[job.name] = (job, *_start(job.command, log, job.cwd), log)
                for name, (job, proc, start, log) in list(running.items()):
                    if proc.poll() is not None:
                        del running[name]
                        results[name] = _finished(proc.returncode, time.monotonic() - start, log)
                        progress(f"{name}: {results[name]['status']} in {results[name]['s']:.1f} s")
                if time.monotonic() > deadline:
                    break
                time.sleep(0.1)
        finally:  # the deadline, or the run itself interrupted: no job outlives it
            for name, (job, proc, start, _) in running.items():
                _kill(proc)
                results[name] = dict(status="killed at the deadline", s=round(time.monotonic() - start, 1))
            results.update({job.name: dict(status="not started (deadline)", s=0.0) for job in pending})
    return results


def _start(command: list[str], log: Path, cwd: Path | None = None, env: Mapping[str, str] | None = None,
           show_stdout: bool = False) -> tuple[subprocess.Popen, float]:
    with open(log, "wb") as out:  # the child keeps its own handle
        proc = subprocess.Popen(command, stdout=None if show_stdout else out,
                                stderr=out if show_stdout else subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=cwd,
                                env=None if env is None else dict(env), start_new_session=True)
    return proc, time.monotonic()


def _finished(returncode: int, seconds: float, log: Path) -> dict:
    result = dict(status="ok" if returncode == 0 else f"failed (exit {returncode})", s=round(seconds, 1))
    if returncode != 0:
        result["log"] = log.read_text(errors="replace")[-OUTPUT_TAIL:]
    return result


def _kill(proc: subprocess.Popen) -> None:
    """Kill the process and whatever it started (its own process group), then reap it."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
