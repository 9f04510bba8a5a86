"""Compile ahead, in parallel: fill Triton's and Inductor's on-disk caches before anything is timed.

On a fresh GPU machine compiling costs more than measuring. Each autotuned flash-attention kernel has six candidate
tiles, three kernels per (dtype, head dim, causal) combination: about 150 compilations of a second or more each for
the grid, then the LayerNorm and softmax kernels per block size, then two ``torch.compile`` runs of GPT-2 at about a
minute each. One after the other that is several minutes of an 8-minute run.

So the run starts by launching *jobs*, each a separate process (``gpu.py --warm-job NAME``) that calls the code it
warms once, with autotuning set to compile every candidate without timing it
(:func:`gpu_harness.configure_autotuning`). The jobs run side by side on the machine's CPU cores; the GPU work they do
is tiny. Compiled kernels land in ``~/.triton/cache`` and Inductor's graphs in its cache directory, keyed on the
source and on how the arguments are specialised (not on the tensor sizes within a class), so when the measured run
meets the same kernel it loads the binary in milliseconds. Nothing the jobs time is kept. Jobs still running at the
deadline are killed: whatever they had compiled stays cached, and the measured run compiles the rest itself.
"""
from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Collection, Sequence
from pathlib import Path


def warm_up(jobs: Sequence[str], command: Callable[[str], list[str]], seconds: float, parallel: int,
            heavy: Collection[str] = (), heavy_slots: int = 1,
            progress: Callable[[str], None] = lambda line: None) -> dict[str, dict]:
    """Run ``command(job)`` for every job, ``parallel`` at a time and at most ``heavy_slots`` of the ``heavy`` ones
    (those that need a lot of GPU memory) at once; heavy jobs start first, as they take longest.

    Returns ``{job: {"status": ..., "s": seconds}}``; status ``ok``, ``failed (exit N)`` with the end of its output
    under ``"log"``, ``killed at the deadline`` or ``not started (deadline)``.
    """
    pending = sorted(jobs, key=lambda job: job not in heavy)
    running: dict[str, tuple[subprocess.Popen, float, Path]] = {}
    results: dict[str, dict] = {}
    deadline = time.monotonic() + seconds
    with tempfile.TemporaryDirectory(prefix="gpu-warm-") as logs:
        try:
            while pending or running:
                for job in list(pending):
                    busy_heavy = sum(name in heavy for name in running)
                    if len(running) < parallel and (job not in heavy or busy_heavy < heavy_slots):
                        pending.remove(job)
                        running[job] = _start(command(job), Path(logs) / f"{job}.log")
                for job, (proc, start, log) in list(running.items()):
                    if proc.poll() is not None:
                        del running[job]
                        results[job] = _finished(proc.returncode, time.monotonic() - start, log)
                        progress(f"warm-up {job}: {results[job]['status']} in {results[job]['s']:.1f} s")
                if time.monotonic() > deadline:
                    break
                time.sleep(0.1)
        finally:  # the deadline, or the run itself interrupted: no job outlives it
            for job, (proc, start, _) in running.items():
                _kill(proc)
                results[job] = dict(status="killed at the deadline", s=round(time.monotonic() - start, 1))
            results.update({job: dict(status="not started (deadline)", s=0.0) for job in pending})
    return results


def _start(cmd: list[str], log: Path) -> tuple[subprocess.Popen, float, Path]:
    with open(log, "wb") as out:  # the child keeps its own handle
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    return proc, time.monotonic(), log


def _finished(returncode: int, seconds: float, log: Path) -> dict:
    result = dict(status="ok" if returncode == 0 else f"failed (exit {returncode})", s=round(seconds, 1))
    if returncode != 0:
        result["log"] = log.read_text(errors="replace")[-2000:]
    return result


def _kill(proc: subprocess.Popen) -> None:
    """Kill the job and whatever it started (Inductor's compile workers): its own process group."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
