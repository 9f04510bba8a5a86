"""GPU check, the trainer: the ``gpt2-owt`` preset's first 20 optimizer steps through ``scratchformers train``.

The whole job as a user starts it, in a subprocess with a hard time limit: GPT-2 small on the fast path, bfloat16
autocast, ``torch.compile``, 10 micro-batches of 12 x 1024 tokens per step, the preset's learning-rate warm-up,
evaluation, checkpoints (``last.pt`` and ``best.pt``), the final samples and the curves. What is changed from the
preset: ``--max-steps 20``, ``--eval-batches 20`` (200 per split at the preset's evaluations every 2,000 steps), and
the data. The GPU machines have neither OpenWebText nor ``datasets``, so the run trains on the embedded Shakespeare
as GPT-2 tokens, which the trainer prepares itself (``--dataset shakespeare --tokenizer gpt2``: the same uint16
memmap and ``meta.json`` that ``scratchformers prepare`` writes, 314k training tokens of the tiny variant): the
speed of a step does not depend on which tokens it reads.

The row keeps the trainer's ``log.jsonl`` (loss, ms/step, tokens/s and MFU at steps 1, 10 and 20: the first window
includes compiling; evaluations at steps 0 and 20), its samples, its exit status and the end of its output. The
dry run shrinks the model to one tiny layer and the run to one step of 2 micro-batches, and leaves out
``torch.compile``.
"""
from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness import DRY_MODEL, PRESET, ROOT, Harness, Settings

NAME = "trainer"
STEPS = 20
REAL = dict(max_steps=STEPS, eval_batches=20)
DRY = dict(max_steps=1, eval_batches=1, **DRY_MODEL, batch_size=2, grad_accum_steps=2, num_samples=1, sample_tokens=2,
           compile=False)
DATA = dict(dataset="shakespeare", tokenizer="gpt2", shakespeare_variant="tiny")


def flags(values: dict) -> list[str]:
    """``scratchformers train`` flags for TrainConfig fields: ``--name value``, or ``--name`` / ``--no-name``."""
    out = []
    for name, value in values.items():
        flag = name.replace("_", "-")
        out += ([f"--{flag}" if value else f"--no-{flag}"] if isinstance(value, bool) else [f"--{flag}", str(value)])
    return out


def command(work: Path, dry_run: bool, run: str = "run", **overrides: object) -> list[str]:
    """The ``scratchformers train`` command line, with the data in ``work/data`` and the run in ``work/<run>``;
    ``overrides`` (TrainConfig fields) on top of this section's settings."""
    values = {**(DRY if dry_run else REAL), **overrides}
    return [sys.executable, "-m", "scratchformers", "train", "--preset", PRESET, *flags(DATA),
            "--data-dir", str(work / "data"), "--out-dir", str(work / run), "--no-progress", *flags(values)]


def run_trainer(cmd: list[str], cwd: Path, timeout_s: float) -> tuple[int | None, str, float]:
    """Run ``cmd``; returns (exit status or None if killed at ``timeout_s``, its output, seconds)."""
    start = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        output, _ = proc.communicate(timeout=timeout_s)
        returncode: int | None = proc.returncode
    except subprocess.TimeoutExpired:
        returncode = None
    finally:  # timed out, or the check itself stopped: the trainer and its compile workers go with it
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            output, _ = proc.communicate()
    return returncode, output, time.monotonic() - start


def last_line(output: str) -> str:
    """The last non-empty line of a run's output (where a CLI error or a traceback's exception is)."""
    lines = [line for line in output.strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else "no output"


def read_run(run_dir: Path) -> dict:
    """The log records and samples a run left behind (whatever it got to)."""
    log = run_dir / "log.jsonl"
    records = []
    if log.is_file():
        for line in log.read_text().splitlines():
            with contextlib.suppress(json.JSONDecodeError):
                records.append(json.loads(line))
    samples = run_dir / "samples.txt"
    return dict(train_log=[r for r in records if r.get("kind") == "train"],
                eval_log=[r for r in records if r.get("kind") == "eval"],
                events=[r for r in records if r.get("kind") not in ("train", "eval")],
                samples=samples.read_text()[:2000] if samples.is_file() else None,
                files=sorted(p.name for p in run_dir.iterdir()) if run_dir.is_dir() else [])


def measure(h: Harness) -> dict:
    """Run the trainer within the section's time; what it left behind, and ``failure`` (None if it finished)."""
    timeout_s = h.budget.section_left()
    with tempfile.TemporaryDirectory(prefix="gpu-check-trainer-") as tmp:
        cmd = command(Path(tmp), h.settings.dry_run)
        returncode, output, seconds = run_trainer(cmd, ROOT, timeout_s)
        output = output.replace(tmp, "$TMP")
        startup = next((line for line in output.splitlines() if line.startswith("training from step")), None)
        result = dict(command=" ".join(cmd[1:]).replace(tmp, "$TMP"), returncode=returncode, seconds=seconds,
                      timeout_s=round(timeout_s, 1), startup=startup, output_tail=output[-3000:],
                      **read_run(Path(tmp) / "run"))
    if returncode is None:
        result["failure"] = f"killed after {timeout_s:.0f} s (its share of the time budget)"
    elif returncode != 0:
        result["failure"] = f"exit {returncode}: {last_line(output)}"
    elif not result["train_log"] or not result["samples"]:
        result["failure"] = "finished without training records or samples"
    return result


def run(h: Harness, rows: list[dict]) -> None:
    """One row: the run's log, samples and status (``error: ...`` when the trainer did not finish as it should)."""
    steps = (DRY if h.settings.dry_run else REAL)["max_steps"]
    row = h.record(rows, dict(preset=PRESET, steps=steps), lambda: measure(h),
                   needs_s=5.0 if h.settings.dry_run else 30.0)
    if row.get("failure"):
        row["status"] = f"error: {row['failure']}"
        h.save()
    last = (row.get("train_log") or [{}])[-1]
    h.log(f"trainer: {row['status']}" + (f"; step {last['step']}: loss {last['loss']:.3f}, "
                                         f"{last['ms_per_step']:.0f} ms/step" if last else ""))


def warm_jobs(s: Settings) -> dict:
    """The final samples' kernels: GPT-2 on the fast path generating as the trainer does at the end (bf16 autocast,
    the KV cache: one forward kernel per power-of-two bucket of the growing key length). The compile-ahead job of
    the compiled fast train step compiles the trainer's training and evaluation graphs."""
    def sample() -> None:
        import torch

        from scratchformers.reference.generate import generate
        from scratchformers.reference.model import GPT
        from scratchformers.train.config import get_train_config

        train = get_train_config(PRESET, **(DRY if s.dry_run else REAL))
        torch.manual_seed(0)
        model = GPT(train.model_config(vocab_size=train.vocab_size)).to(s.device)
        with torch.autocast(s.device.type, dtype=torch.bfloat16):
            generate(model, train.sample_prompt, train.sample_tokens, temperature=train.temperature,
                     top_k=train.top_k or None, seed=train.seed)

    return {"trainer-sampling": sample}
