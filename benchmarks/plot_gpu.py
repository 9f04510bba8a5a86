"""Bar charts of a GPU benchmark run (the ``gpu_benchmark.json`` that ``benchmarks/gpu.py`` writes).

    python benchmarks/plot_gpu.py benchmarks/results/gpu/gpu_benchmark.json [--out DIR]

writes, next to the JSON unless ``--out`` says otherwise:

    gpu-attention-<mode>-<dtype>.png   TFLOP/s against T, one panel per (head dim, causal), one bar per implementation
    gpu-layernorm.png, gpu-softmax.png GB/s against the row length, forward and backward panels, the peak as a line
    gpu-model.png                      tokens/s of each GPT-2 training variant, with MFU and peak memory

``benchmarks/gpu.py`` draws them itself at the end of a run; this script redraws them from the JSON alone (after a run
that was cut short, or on a machine with matplotlib when the GPU machine had none). Missing bars are items that were
skipped or failed (the Markdown report says why).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from gpu_report import ATTENTION_IMPLS, unique

COLORS = {"ours-flash": "tab:green", "ours-triton": "tab:green", "sdpa-flash": "tab:blue",
          "sdpa-efficient": "tab:cyan", "sdpa-math": "tab:purple", "reference": "tab:red",
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


def plot_attention(rows: list[dict], out: Path) -> list[Path]:
    """One figure per (mode, dtype): a panel per (D, causal) of TFLOP/s against T."""
    plt = _pyplot()
    ok = [r for r in rows if r["status"] == "ok"]
    paths = []
    for mode, dtype in unique((r["mode"], r["dtype"]) for r in ok):
        mine = [r for r in ok if (r["mode"], r["dtype"]) == (mode, dtype)]
        panels = unique((r["D"], r["causal"]) for r in mine)
        series = [impl for impl in ATTENTION_IMPLS if any(r["impl"] == impl for r in mine)]
        fig, axes = plt.subplots(len(panels), 1, figsize=(10, 3.2 * len(panels)), squeeze=False)
        for ax, (D, causal) in zip(axes[:, 0], panels, strict=True):
            panel = [r for r in mine if (r["D"], r["causal"]) == (D, causal)]
            grouped_bars(ax, unique(r["T"] for r in panel), series, {(r["T"], r["impl"]): r["tflops"] for r in panel})
            ax.set_title(f"attention {mode}, {dtype}, D = {D}, {'causal' if causal else 'not causal'}")
            ax.set_xlabel("sequence length T (B = tokens / T)")
            ax.set_ylabel("TFLOP/s (higher is better)")
        axes[0, 0].legend(fontsize=8, ncol=3)
        fig.tight_layout()
        paths.append(_save(fig, out / f"gpu-attention-{mode.replace('+', '-')}-{dtype}.png", plt))
    return paths


def plot_bandwidth(rows: list[dict], title: str, path: Path, peak_gbps: float | None) -> Path | None:
    """Forward and backward panels of GB/s against N; the datasheet peak as a dashed line."""
    ok = [r for r in rows if r["status"] == "ok"]
    if not ok:
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6), sharey=True)
    for ax, mode in zip(axes, ("fwd", "bwd"), strict=True):
        mine = [r for r in ok if r["mode"] == mode or r["impl"] == "copy"]
        series = [s for s in ("copy", "torch", "ours-triton") if any(r["impl"] == s for r in mine)]
        grouped_bars(ax, unique(r["N"] for r in mine), series, {(r["N"], r["impl"]): r["gbps"] for r in mine})
        if peak_gbps:
            ax.axhline(peak_gbps, color="black", linestyle="--", linewidth=1, label=f"peak {peak_gbps:.0f} GB/s")
        ax.set_title(f"{title} {'forward' if mode == 'fwd' else 'backward'}")
        ax.set_xlabel("row length N")
        ax.set_ylabel("GB/s (higher is better)")
        ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return _save(fig, path, plt)


def plot_model(rows: list[dict], path: Path) -> Path | None:
    """Horizontal bars of tokens/s per variant, labelled with MFU and peak memory."""
    ok = [r for r in rows if r["status"] == "ok" and r.get("tokens_per_s")]
    if not ok:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 0.6 * len(ok) + 1.4))
    bars = ax.barh([r["variant"] for r in ok], [r["tokens_per_s"] for r in ok],
                   color=["tab:green" if r["path"] == "fast" else "tab:blue" for r in ok])
    ax.invert_yaxis()
    for bar, r in zip(bars, ok, strict=True):
        notes = [f"{r['tokens_per_s']:,.0f} tok/s"]
        if r.get("mfu") is not None:
            notes.append(f"MFU {100 * r['mfu']:.1f}%")
        if r.get("peak_memory_gib") is not None:
            notes.append(f"{r['peak_memory_gib']:.1f} GiB")
        ax.text(bar.get_width(), bar.get_y() + bar.get_height() / 2, "  " + ", ".join(notes), va="center",
                fontsize=9)
    ax.set_xlim(right=max(r["tokens_per_s"] for r in ok) * 1.6)
    ax.set_xlabel("tokens per second (higher is better)")
    ax.set_title(f"GPT-2 124M training step, batch {ok[0]['batch']} x {ok[0]['seq_len']}")
    fig.tight_layout()
    return _save(fig, path, plt)


def _save(fig, path: Path, plt) -> Path:
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_all(results: dict, out: Path) -> list[Path]:
    """Every chart the results have data for; returns the files written."""
    out.mkdir(parents=True, exist_ok=True)
    peak = results["meta"].get("peak_gbps")
    paths = plot_attention(results.get("attention", []), out)
    paths.append(plot_bandwidth(results.get("layernorm", []), "LayerNorm", out / "gpu-layernorm.png", peak))
    paths.append(plot_bandwidth(results.get("softmax", []), "softmax", out / "gpu-softmax.png", peak))
    paths.append(plot_model(results.get("model", []), out / "gpu-model.png"))
    return [p for p in paths if p is not None]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("json", type=Path, help="a gpu_benchmark.json written by benchmarks/gpu.py")
    parser.add_argument("--out", type=Path, default=None, help="folder for the PNGs (default: the JSON's folder)")
    args = parser.parse_args(argv)
    try:
        results = json.loads(args.json.read_text())
        if not isinstance(results, dict) or "meta" not in results:
            raise ValueError(f"{args.json} is not a gpu_benchmark.json (no 'meta')")
    except (OSError, ValueError) as error:
        print(f"plot_gpu: error: {error}", file=sys.stderr)
        return 1
    for path in plot_all(results, args.out or args.json.parent):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
