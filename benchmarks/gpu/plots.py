"""Charts of a GPU check (the ``gpu_check.json`` that ``check.py`` writes); ``check.py --replot JSON`` redraws them.

    gpu-attention.png   TFLOP/s against T of causal bfloat16 attention at D = 64, forward and forward + backward,
                        one bar per implementation (the other shapes are in the Markdown tables)
    gpu-rowwise.png     GB/s against the row length, LayerNorm and softmax, forward and backward, the peak as a line
    gpu-training.png    tokens/s of each GPT-2 training-step variant (MFU and peak memory as labels), and the
                        training loop's ms/step with and without per-step host syncs

The bars are end-to-end figures; the kernel-time figures are in the Markdown tables.

Missing bars are items that were skipped or failed (the Markdown report says why).
"""
from __future__ import annotations

from pathlib import Path

from report import ATTENTION_IMPLS, ok, unique, variant_label

CHARTS = ("gpu-attention.png", "gpu-rowwise.png", "gpu-training.png")
COLORS = {"ours-flash": "tab:green", "ours-triton": "tab:green", "sdpa": "tab:blue", "sdpa-flash": "tab:cyan",
          "sdpa-cudnn": "tab:olive", "sdpa-efficient": "tab:pink", "sdpa-math": "tab:purple", "reference": "tab:red",
          "reference+triton-softmax": "tab:orange", "torch": "tab:blue", "copy": "tab:gray"}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def grouped_bars(ax, groups: list, series: list[str], value: dict) -> None:
    """Bars of ``value[(group, series)]`` (missing ones left out), one cluster per group, one colour per series."""
    width = 0.8 / max(1, len(series))
    for i, name in enumerate(series):
        xs = [g for g, group in enumerate(groups) if (group, name) in value]
        ys = [value[(groups[g], name)] for g in xs]
        ax.bar([x + (i - (len(series) - 1) / 2) * width for x in xs], ys, width, label=name,
               color=COLORS.get(name))
    ax.set_xticks(range(len(groups)), [str(g) for g in groups])


def plot_attention(rows: list[dict], path: Path) -> Path | None:
    """Forward and forward + backward panels: TFLOP/s against T, causal bfloat16 at D = 64."""
    if not rows:
        return None
    first = rows[0]  # the headline shape: its dtype and head dim
    mine = [r for r in rows if ok(r) and r["causal"] and (r["D"], r["dtype"]) == (first["D"], first["dtype"])]
    if not mine:
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(2, 1, figsize=(10, 7))
    series = [impl for impl in ATTENTION_IMPLS if any(r["impl"] == impl for r in mine)]
    for ax, mode in zip(axes, ("fwd", "fwd+bwd"), strict=True):
        panel = sorted((r for r in mine if r["mode"] == mode), key=lambda r: r["T"])
        grouped_bars(ax, unique(r["T"] for r in panel), series, {(r["T"], r["impl"]): r["tflops"] for r in panel})
        ax.set_title(f"attention {mode}, {mine[0]['dtype']}, D = {mine[0]['D']}, causal, "
                     f"{mine[0]['H']} heads, B = 12·1024 / T")
        ax.set_xlabel("sequence length T")
        ax.set_ylabel("TFLOP/s (higher is better)")
    axes[0].legend(fontsize=8, ncol=4)
    fig.tight_layout()
    return _save(fig, path, plt)


def plot_rowwise(results: dict, path: Path) -> Path | None:
    """LayerNorm and softmax, forward and backward: GB/s against N; the datasheet peak as a dashed line."""
    sections = [(title, [r for r in results.get(name, []) if ok(r)])
                for name, title in (("layernorm", "LayerNorm"), ("softmax", "softmax"))]
    sections = [(title, rows) for title, rows in sections if rows]
    if not sections:
        return None
    plt = _pyplot()
    peak = results["meta"].get("peak_gbps")
    fig, axes = plt.subplots(len(sections), 2, figsize=(11, 3.6 * len(sections)), squeeze=False)
    for (title, rows), row_axes in zip(sections, axes, strict=True):
        for ax, mode in zip(row_axes, ("fwd", "bwd"), strict=True):
            mine = [r for r in rows if r["mode"] == mode or r["impl"] == "copy"]
            series = [s for s in ("copy", "torch", "ours-triton") if any(r["impl"] == s for r in mine)]
            grouped_bars(ax, unique(r["N"] for r in mine), series, {(r["N"], r["impl"]): r["gbps"] for r in mine})
            if peak:
                ax.axhline(peak, color="black", linestyle="--", linewidth=1, label=f"peak {peak:.0f} GB/s")
            ax.set_title(f"{title} {'forward' if mode == 'fwd' else 'backward'}")
            ax.set_xlabel("row length N")
            ax.set_ylabel("GB/s (higher is better)")
            ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return _save(fig, path, plt)


def plot_training(results: dict, path: Path) -> Path | None:
    """Tokens/s per training-step variant; ms/step of the loop with and without host syncs."""
    steps = [r for r in results.get("model", []) if ok(r) and r.get("tokens_per_s")]
    sync = [r for r in results.get("hostsync", []) if ok(r)]
    if not steps and not sync:
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(13, 3.8), gridspec_kw=dict(width_ratios=[3, 2]), squeeze=False)
    ax = axes[0, 0]
    if steps:
        bars = ax.barh([variant_label(r) for r in steps], [r["tokens_per_s"] for r in steps],
                       color=["tab:green" if r["path"] == "fast" else "tab:blue" for r in steps])
        ax.invert_yaxis()
        for bar, r in zip(bars, steps, strict=True):
            notes = [f"{r['tokens_per_s']:,.0f} tok/s"]
            if r.get("mfu") is not None:
                notes.append(f"MFU {100 * r['mfu']:.1f}%")
            if r.get("peak_memory_gib") is not None:
                notes.append(f"{r['peak_memory_gib']:.1f} GiB")
            ax.text(bar.get_width(), bar.get_y() + bar.get_height() / 2, "  " + ", ".join(notes), va="center",
                    fontsize=8)
        ax.set_xlim(right=max(r["tokens_per_s"] for r in steps) * 1.7)
        ax.set_title(f"GPT-2 124M training step, batch {steps[0]['batch']} x {steps[0]['seq_len']}")
    ax.set_xlabel("tokens per second (higher is better)")
    ax = axes[0, 1]
    if sync:
        variants = ("synced", "sync-free")
        values = [sync[0][v]["ms_per_step"] for v in variants]
        ax.bar(variants, values, color=["tab:gray", "tab:green"])
        for x, value in enumerate(values):
            ax.text(x, value, f"{value:.1f}", ha="center", va="bottom", fontsize=9)
        ax.set_title(f"training loop, {sync[0]['micro_steps']} micro-steps per step")
    ax.set_ylabel("ms per optimizer step (lower is better)")
    fig.tight_layout()
    return _save(fig, path, plt)


def _save(fig, path: Path, plt) -> Path:
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_all(results: dict, out: Path) -> list[Path]:
    """Every chart the results have data for; returns the files written."""
    out.mkdir(parents=True, exist_ok=True)
    attention, rowwise, training = CHARTS
    paths = [plot_attention(results.get("attention", []), out / attention), plot_rowwise(results, out / rowwise),
             plot_training(results, out / training)]
    return [p for p in paths if p is not None]
