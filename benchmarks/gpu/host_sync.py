"""GPU check, host syncs in the training loop: the trainer's step time with and without its per-step syncs.

A GPU runs ahead of the Python that feeds it only as long as Python never waits for it. ``loss.item()``, a gradient
norm's ``.item()`` or a blocking copy of the next batch make the host wait until the GPU has drained its queue; the
GPU then idles while the host launches the next kernels. The trainer reads its figures only at check steps (log,
evaluation and last steps) and reads the next micro-batch while the current one computes, as nanoGPT does;
``--sync-every-step`` (``TrainConfig.sync_every_step``) restores the old loop, which read the loss and the gradient
norm at every step, as the baseline.

The sync-free run is the trainer section's (``first_steps.py``; made here when that section is not chosen); this
section runs the same command with ``--sync-every-step``, and without the samples and the plot, which come after the
last timed step. The trainer logs
the mean ms/step of each log window; a run's figure is the median of the windows after the first two (the first steps
compile and warm up; both runs find the compiled graphs in Inductor's cache). Both runs read the same prepared data.
"""
from __future__ import annotations

import statistics
import time
from pathlib import Path

from first_steps import train, trainer_settings
from harness import PRESET

NAME = "hostsync"
VARIANTS = ("synced", "sync-free")
SYNCED = dict(sync_every_step=True, num_samples=0, plot=False)  # on top of the trainer section's command


def steady_windows(train_log: list[dict], log_interval: int) -> list[dict]:
    """The log records whose window started after the first two log intervals (compiling and warm-up are over)."""
    return [record for record in train_log if record["step"] > 2 * log_interval]


def figures(train_log: list[dict], log_interval: int, seconds: float) -> dict:
    """One run's median ms/step and tokens/s over its steady windows."""
    windows = steady_windows(train_log, log_interval)
    if not windows:
        raise RuntimeError(f"no step logged after the first {2 * log_interval}")
    return dict(ms_per_step=statistics.median(r["ms_per_step"] for r in windows),
                tokens_per_s=statistics.median(r["tokens_per_s"] for r in windows),
                window_ms=[r["ms_per_step"] for r in windows], seconds=seconds, loss=windows[-1]["loss"])


def measure(work: Path, dry_run: bool, limit_s: float, trainer: dict | None) -> dict:
    """The section's one row: the synced run against the trainer section's run (``trainer``, its row; None when that
    section was not chosen: then this section makes the sync-free run itself, in half its time)."""
    from scratchformers.train.config import get_train_config

    values = trainer_settings(dry_run)
    config = get_train_config(PRESET, **values)
    row: dict = dict(steps=config.max_steps, log_interval=config.log_interval, micro_steps=config.grad_accum_steps,
                     compiled=config.compile, source="scratchformers train, with and without --sync-every-step")
    deadline = time.monotonic() + limit_s
    if trainer is None:
        trainer = dict(train(work, dry_run, limit_s / 2, run="sync-free"))
        trainer["status"] = "ok" if trainer["failure"] is None else f"error: {trainer['failure']}"
    if trainer["status"] != "ok":
        row["status"] = f"error: no sync-free baseline: {trainer['status']}"
        return row
    synced = train(work, dry_run, deadline - time.monotonic(), run=NAME, **SYNCED)
    row.update(command=synced["command"], output_tail=synced["output_tail"])
    try:
        if synced["failure"]:
            raise RuntimeError(f"the synced run: {synced['failure']}")
        row["synced"] = figures(synced["train_log"], config.log_interval, synced["seconds"])
        row["sync-free"] = figures(trainer["train_log"], config.log_interval, trainer["seconds"])
    except RuntimeError as error:
        row["status"] = f"error: {error}"
        return row
    row["speedup"] = row["synced"]["ms_per_step"] / row["sync-free"]["ms_per_step"]
    row["status"] = "ok"
    return row


def summary(row: dict) -> str:
    if row["status"] != "ok":
        return f"hostsync: {row['status']}"
    return (f"hostsync: synced {row['synced']['ms_per_step']:.1f} ms/step, sync-free "
            f"{row['sync-free']['ms_per_step']:.1f} ms/step (sync-free {row['speedup']:.3f}x as fast)")
