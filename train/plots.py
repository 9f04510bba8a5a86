"""Training curves from ``log.jsonl``: loss (train steps and evaluations), learning rate and gradient norm."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def read_log(path: str | Path) -> list[dict[str, Any]]:
    """The records of a ``log.jsonl`` file, one JSON object per line.

    A half-written last line (a run killed mid-write) is skipped; any other line that is not a JSON object means
    the file is not a training log, and raises ``ValueError`` naming the line.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no training log at {path}")
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    records = []
    for number, line in enumerate(lines, start=1):
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            record = None
        if not isinstance(record, dict):
            if number == len(lines):
                break
            raise ValueError(f"{path} is not a training log: line {number} is not a JSON record: {line[:60]!r}")
        records.append(record)
    return records


def png_path(path: str | Path) -> Path:
    """The file matplotlib writes for ``path``: a name without a suffix gets ``.png``."""
    path = Path(path)
    return path if path.suffix else path.with_name(path.name + ".png")


def plot_log(log_path: str | Path, out_path: str | Path) -> Path:
    """Write a PNG with three panels (loss, learning rate, gradient norm) against the step; returns its path."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no window: works on servers and in CI
    import matplotlib.pyplot as plt

    records = read_log(log_path)
    train = [r for r in records if r.get("kind") == "train"]
    evals = [r for r in records if r.get("kind") == "eval"]

    def column(rows: list[dict[str, Any]], key: str) -> tuple[list[int], list[float]]:
        rows = [r for r in rows if isinstance(r.get(key), (int, float)) and isinstance(r.get("step"), int)]
        return [r["step"] for r in rows], [r[key] for r in rows]

    if not any(column(rows, key)[0] for rows, key in ((train, "loss"), (evals, "val_loss"))):
        raise ValueError(f"{log_path} has no training or evaluation losses to plot")

    fig, (ax_loss, ax_lr, ax_norm) = plt.subplots(3, 1, figsize=(8, 9), sharex=True)
    ax_loss.plot(*column(train, "loss"), label="train (step)", alpha=0.5, linewidth=1)
    ax_loss.plot(*column(evals, "train_loss"), "o-", label="train (eval)")
    ax_loss.plot(*column(evals, "val_loss"), "o-", label="val (eval)")
    ax_loss.set_ylabel("cross-entropy loss (nats)")
    ax_loss.legend()
    ax_lr.plot(*column(train, "lr"))
    ax_lr.set_ylabel("learning rate")
    ax_norm.plot(*column(train, "grad_norm"))
    ax_norm.set_ylabel("gradient norm (before clipping)")
    ax_norm.set_xlabel("optimizer step")
    for ax in (ax_loss, ax_lr, ax_norm):
        ax.grid(alpha=0.3)
    fig.suptitle(Path(log_path).parent.name)
    fig.tight_layout()
    out_path = png_path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_path, dpi=100)
    plt.close(fig)
    return out_path
