"""Worker processes side by side: the GPU tests and the compile-ahead jobs of the GPU check's first phase.

On a fresh GPU machine compiling costs more than measuring. Each autotuned flash-attention kernel has six candidate
tiles, three kernels per (dtype, head dim, causal) combination, each a second or more to compile; then the LayerNorm
and softmax kernels per block size, and ``torch.compile`` of GPT-2 at about a minute per graph. One after the other
that is most of a 9-minute run. So the check starts with a phase in which nothing is timed:

- *GPU tests*: one ``pytest`` process per test marked ``gpu``, ``tests/test_gpu_parity.py`` first (``parity.py``);
- *compile-ahead jobs*: ``check.py --warm-job NAME`` processes that call the code a timed section will run once,
  with autotuning set to compile every candidate without timing it (:func:`harness.configure_autotuning`).

They run side by side on the machine's CPU cores; the GPU work they do is small next to their compiling. Compiled
kernels land in ``~/.triton/cache`` and Inductor's graphs in its cache directory, keyed on the source and on how the
arguments are specialised (not on the tensor sizes within a class), so when a timed section meets the same kernel it
loads the binary in milliseconds. Jobs still running at the deadline are killed: whatever they had compiled stays
cached. Each job declares the GPU memory it may hold, and jobs start only while the declared memory fits the card.
"""
from __future__ import annotations

import contextlib
import math
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Job:
    """One worker process: its name, its command line, the GPU memory (GiB) it may hold at its peak, its folder."""

    name: str
    command: list[str]
    gib: float = 0.0
    cwd: Path | None = None


def run_jobs(jobs: Sequence[Job], seconds: float, parallel: int, memory_gib: float = math.inf,
             progress: Callable[[str], None] = lambda line: None) -> dict[str, dict]:
    """Run the jobs, at most ``parallel`` at a time and only while their declared memory adds up to at most
    ``memory_gib`` (a job larger than that runs alone). Jobs start in the order given, a later one first only when
    an earlier one does not fit yet; whatever runs at ``seconds`` is killed.

    Returns ``{name: {"status": ..., "s": seconds}}``; status ``ok``, ``failed (exit N)`` with the end of its
    output under ``"log"``, ``killed at the deadline`` or ``not started (deadline)``.
    """
    pending = list(jobs)
    running: dict[str, tuple[Job, subprocess.Popen, float, Path]] = {}
    results: dict[str, dict] = {}
    deadline = time.monotonic() + seconds
    started = 0
    with tempfile.TemporaryDirectory(prefix="gpu-jobs-") as logs:
        try:
            while pending or running:
                for job in list(pending):
                    used = sum(entry[0].gib for entry in running.values())
                    fits = not running or used + job.gib <= memory_gib
                    if len(running) < parallel and fits:
                        pending.remove(job)
                        started += 1
                        running[job.name] = (job, *_start(job, Path(logs) / f"job-{started}.log"))
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


def _start(job: Job, log: Path) -> tuple[subprocess.Popen, float, Path]:
    with open(log, "wb") as out:  # the child keeps its own handle
        proc = subprocess.Popen(job.command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                cwd=job.cwd, start_new_session=True)
    return proc, time.monotonic(), log


def _finished(returncode: int, seconds: float, log: Path) -> dict:
    result = dict(status="ok" if returncode == 0 else f"failed (exit {returncode})", s=round(seconds, 1))
    if returncode != 0:
        result["log"] = log.read_text(errors="replace")[-3000:]
    return result


def _kill(proc: subprocess.Popen) -> None:
    """Kill the job and whatever it started (Inductor's compile workers): its own process group."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
