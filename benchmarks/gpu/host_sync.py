"""GPU check, host syncs in the training loop: the trainer's step time with and without its per-step syncs.

A GPU runs ahead of the Python that feeds it only as long as Python never waits for it. ``loss.item()``, a gradient
norm's ``.item()`` or a blocking copy of the next batch make the host wait until the GPU has drained its queue; the
GPU then idles while the host launches the next kernels. The trainer reads its figures only at check steps (log,
evaluation and last steps) and reads the next micro-batch while the current one computes, as nanoGPT does;
``--sync-every-step`` (``TrainConfig.sync_every_step``) restores the old loop, which read the loss and the gradient
norm at every step, as the baseline. Two runs of ``scratchformers train`` with the ``gpt2-owt`` preset (GPT-2 small,
fast path, bf16 autocast, ``torch.compile``, 10 micro-batches of 12 x 1024 tokens per step) differ only in that flag:
16 steps, logged every 4, evaluation on one batch, no samples, no plot. The trainer logs the mean ms/step of each
log window; a run's figure is the median of the windows after the first two (the first steps compile and warm up).
The data, as in ``first_steps.py``, is the embedded Shakespeare in GPT-2 tokens. The dry run shrinks the model as
``first_steps.py`` does and runs 3 steps, logged every step, on the torch path, without ``torch.compile``.
"""
from __future__ import annotations

import statistics
import tempfile
from pathlib import Path

from first_steps import DRY, REAL, command, last_line, read_run, run_trainer
from harness import PRESET, ROOT, Harness

NAME = "hostsync"
VARIANTS = {"sync-free": False, "synced": True}  # variant: sync_every_step
RUN = dict(max_steps=16, log_interval=4, eval_batches=1, num_samples=0, plot=False)
# The dry run on the torch path: the loops are the same, and the fast path under the interpreter would take a minute.
DRY_RUN = dict(max_steps=3, log_interval=1, eval_batches=1, num_samples=0, plot=False, attention="torch_sdpa",
               layernorm="torch")


def steady_windows(train_log: list[dict], log_interval: int) -> list[dict]:
    """The log records whose window started after the first two log intervals (compiling and warm-up are over)."""
    return [record for record in train_log if record["step"] > 2 * log_interval]


def measure(h: Harness) -> dict:
    """Both runs, one after the other, in one folder (the second reuses the prepared data)."""
    from scratchformers.train.config import get_train_config

    dry = h.settings.dry_run
    values = DRY_RUN if dry else RUN
    train = get_train_config(PRESET, **{**(DRY if dry else REAL), **values})
    result: dict = dict(steps=train.max_steps, log_interval=train.log_interval, micro_steps=train.grad_accum_steps,
                        compiled=train.compile, source="scratchformers train, with and without --sync-every-step")
    with tempfile.TemporaryDirectory(prefix="gpu-check-hostsync-") as tmp:
        for i, (variant, sync) in enumerate(VARIANTS.items()):
            cmd = command(Path(tmp), dry, run=variant, **values, sync_every_step=sync)
            limit = h.budget.section_left() / (len(VARIANTS) - i)  # an equal share of what is left for each run
            returncode, output, seconds = run_trainer(cmd, ROOT, limit)
            if returncode != 0:
                ending = "killed at its time limit" if returncode is None else f"exit {returncode}"
                raise RuntimeError(f"the {variant} run: {ending}: {last_line(output)}")
            windows = steady_windows(read_run(Path(tmp) / variant)["train_log"], values["log_interval"])
            if not windows:
                raise RuntimeError(f"the {variant} run logged no step after its first {2 * values['log_interval']}")
            result[variant] = dict(ms_per_step=statistics.median(r["ms_per_step"] for r in windows),
                                   tokens_per_s=statistics.median(r["tokens_per_s"] for r in windows),
                                   window_ms=[r["ms_per_step"] for r in windows], seconds=seconds,
                                   loss=windows[-1]["loss"])
    result["command"] = " ".join(cmd[1:]).replace(tmp, "$TMP")
    result["speedup"] = result["synced"]["ms_per_step"] / result["sync-free"]["ms_per_step"]
    return result


def run(h: Harness, rows: list[dict]) -> None:
    """One row holding both runs."""
    row = h.record(rows, dict(preset=PRESET), lambda: measure(h), needs_s=5.0 if h.settings.dry_run else 40.0)
    if row["status"] == "ok":
        h.log(f"hostsync: synced {row['synced']['ms_per_step']:.1f} ms/step, sync-free "
              f"{row['sync-free']['ms_per_step']:.1f} ms/step (sync-free {row['speedup']:.3f}x as fast)")
    else:
        h.log(f"hostsync: {row['status']}")
