"""GPU check, the trainer: the ``gpt2-owt`` preset's first 20 optimizer steps through ``scratchformers train``.

The whole job as a user starts it, in a process with a hard time limit: GPT-2 small on the fast path, bfloat16
autocast, ``torch.compile``, 10 micro-batches of 12 x 1024 tokens per step, the preset's learning-rate warm-up,
evaluation, checkpoints (``last.pt`` and ``best.pt``), the final samples and the curves. What is changed from the
preset: ``--max-steps 20``, ``--eval-batches 20`` (200 per split at the preset's evaluations every 2,000 steps),
``--log-interval 4`` (five log windows, three of them after the compiling and warm-up steps: the host-sync section
compares them) and the data. The GPU machines have neither OpenWebText nor ``datasets``, so the run trains on the
embedded Shakespeare as GPT-2 tokens, which the trainer prepares itself (``--dataset shakespeare --tokenizer gpt2``:
the same uint16 memmap and ``meta.json`` that ``scratchformers prepare`` writes, 314k training tokens of the tiny
variant): the speed of a step does not depend on which tokens it reads. It runs after the step timer, whose compiled
fast-path step leaves the same graph in Inductor's cache.

The row keeps the trainer's ``log.jsonl`` (loss, ms/step, tokens/s and MFU at steps 1, 4, ..., 20: the first window
includes compiling; evaluations at steps 0 and 20), its samples, its exit status and the end of its output. The dry
run shrinks the model to one tiny layer and the run to three steps of 2 micro-batches, logged at each, and leaves out
``torch.compile``.
"""
from __future__ import annotations

import sys
from pathlib import Path

from harness import DRY_MODEL, PRESET, ROOT
from jobs import OUTPUT_TAIL, run_process

NAME = "trainer"
REAL = dict(max_steps=20, eval_batches=20, log_interval=4)
DRY = dict(max_steps=3, log_interval=1, eval_batches=1, **DRY_MODEL, batch_size=2, grad_accum_steps=2, num_samples=1,
           sample_tokens=2, compile=False)
DATA = dict(dataset="shakespeare", tokenizer="gpt2", shakespeare_variant="tiny")


def flags(values: dict) -> list[str]:
    """``scratchformers train`` flags for TrainConfig fields: ``--name value``, or ``--name`` / ``--no-name``."""
    out = []
    for name, value in values.items():
        flag = name.replace("_", "-")
        out += ([f"--{flag}" if value else f"--no-{flag}"] if isinstance(value, bool) else [f"--{flag}", str(value)])
    return out


def trainer_settings(dry_run: bool) -> dict:
    """This section's TrainConfig fields on top of the preset."""
    return DRY if dry_run else REAL


def command(work: Path, dry_run: bool, run: str = NAME, **overrides: object) -> list[str]:
    """The ``scratchformers train`` command line, with the data in ``work/data`` and the run in ``work/<run>``;
    ``overrides`` (TrainConfig fields) on top of this section's settings."""
    values = {**trainer_settings(dry_run), **overrides}
    return [sys.executable, "-m", "scratchformers", "train", "--preset", PRESET, *flags(DATA),
            "--data-dir", str(work / "data"), "--out-dir", str(work / run), "--no-progress", *flags(values)]


def last_line(output: str) -> str:
    """The last non-empty line of a run's output (where a CLI error or a traceback's exception is)."""
    lines = [line for line in output.strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else "no output"


def read_run(run_dir: Path) -> dict:
    """The log records and samples a run left behind (whatever it got to)."""
    from scratchformers.train.plots import read_log

    records = read_log(run_dir / "log.jsonl") if (run_dir / "log.jsonl").is_file() else []
    samples = run_dir / "samples.txt"
    return dict(train_log=[r for r in records if r.get("kind") == "train"],
                eval_log=[r for r in records if r.get("kind") == "eval"],
                events=[r for r in records if r.get("kind") not in ("train", "eval")],
                samples=samples.read_text()[:2000] if samples.is_file() else None,
                files=sorted(p.name for p in run_dir.iterdir()) if run_dir.is_dir() else [])


def train(work: Path, dry_run: bool, limit_s: float, run: str = NAME, **overrides: object) -> dict:
    """Run ``scratchformers train`` within ``limit_s``; what it left behind, and ``failure`` (None if it finished
    and logged training steps)."""
    cmd = command(work, dry_run, run, **overrides)
    returncode, output, seconds = run_process(cmd, limit_s, cwd=ROOT)
    output = output.replace(str(work), "$WORK")
    startup = next((line for line in output.splitlines() if line.startswith("training from step")), None)
    result = dict(command=" ".join(cmd[1:]).replace(str(work), "$WORK"), returncode=returncode, seconds=seconds,
                  limit_s=round(limit_s, 1), startup=startup, output_tail=output[-OUTPUT_TAIL:],
                  **read_run(work / run))
    result["failure"] = None
    if returncode is None:
        result["failure"] = f"killed after {limit_s:.0f} s (its share of the time budget)"
    elif returncode != 0:
        result["failure"] = f"exit {returncode}: {last_line(output)}"
    elif not result["train_log"]:
        result["failure"] = "finished without training records"
    return result


def measure(work: Path, dry_run: bool, limit_s: float) -> dict:
    """The section's one row: the run, and its status (``error: ...`` when the trainer did not finish as it should,
    samples included)."""
    row = dict(preset=PRESET, steps=trainer_settings(dry_run)["max_steps"], **train(work, dry_run, limit_s))
    if row["failure"] is None and not row["samples"]:
        row["failure"] = "finished without samples"
    row["status"] = "ok" if row["failure"] is None else f"error: {row['failure']}"
    return row


def summary(row: dict) -> str:
    """``trainer: ok; step 20: loss 7.123, 412 ms/step``: the progress line."""
    last = (row.get("train_log") or [{}])[-1]
    return f"trainer: {row['status']}" + (f"; step {last['step']}: loss {last['loss']:.3f}, "
                                         f"{last['ms_per_step']:.0f} ms/step" if last else "")
