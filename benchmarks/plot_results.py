"""Bar charts of a pytest-benchmark JSON file: one PNG per group, every bar a ratio to the group's fastest member.

    pytest benchmarks --benchmark-json=benchmarks/results/cpu.json
    python benchmarks/plot_results.py benchmarks/results/cpu.json --prefix cpu-

writes ``benchmarks/results/cpu-<group>.png`` for every group (next to the JSON unless ``--out`` says otherwise)
and prints the same numbers as a Markdown table. A bar of 5.0× means five times slower than the fastest
implementation measured in the same run on the same machine; the statistic is the minimum over the rounds by default
(the least disturbed run: on a shared machine the other statistics mostly measure the neighbours).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections import defaultdict
from pathlib import Path

STATS = ("min", "median", "mean")


def load_groups(path: Path, stat: str = "min") -> dict[str, list[tuple[str, float]]]:
    """``{group: [(label, seconds), ...]}`` from a ``--benchmark-json`` file, fastest first within each group."""
    if stat not in STATS:
        raise ValueError(f"stat must be one of {STATS}, got {stat!r}")
    data = json.loads(Path(path).read_text())
    if not isinstance(data, dict) or "benchmarks" not in data:
        raise ValueError(f"{path} is not a pytest-benchmark JSON file (no 'benchmarks' list)")
    groups: dict[str, list[tuple[str, float]]] = defaultdict(list)
    for bench in data["benchmarks"]:
        try:
            groups[bench["group"] or "ungrouped"].append((label(bench["name"]), bench["stats"][stat]))
        except KeyError as missing:
            raise ValueError(f"{path}: a benchmark entry has no {missing} field") from None
    if not groups:
        raise ValueError(f"{path} holds no benchmarks (was it written with --benchmark-disable?)")
    return {group: sorted(drop_common_prefix(rows), key=lambda row: row[1]) for group, rows in sorted(groups.items())}


def drop_common_prefix(rows: list[tuple[str, float]]) -> list[tuple[str, float]]:
    """``attention-numpy``, ``attention-torch-reference`` → ``numpy``, ``torch-reference`` (cut at a ``-``)."""
    prefix = os.path.commonprefix([name for name, _ in rows]) if len(rows) > 1 else ""
    prefix = prefix[: prefix.rfind("-") + 1]
    return [(name.removeprefix(prefix), seconds) for name, seconds in rows]


def label(name: str) -> str:
    """A short bar label: the parameter id of ``test_x[id]``, else the test name without ``test_``."""
    match = re.fullmatch(r"test_\w+\[(.+)\]", name)
    return match.group(1) if match else name.removeprefix("test_")


def format_time(seconds: float) -> str:
    """``2.74 µs``, ``41.3 ms``, ``1.2 s``: three significant digits in the unit that fits."""
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def markdown_table(groups: dict[str, list[tuple[str, float]]], stat: str = "min") -> str:
    """The groups as a Markdown table: the time and the ratio to the group's fastest member."""
    lines = [f"| group | implementation | {stat} | × fastest |", "|---|---|---:|---:|"]
    for group, rows in groups.items():
        fastest = rows[0][1]
        for name, seconds in rows:
            lines.append(f"| {group} | {name} | {format_time(seconds)} | {seconds / fastest:.2f} |")
    return "\n".join(lines)


def plot_group(group: str, rows: list[tuple[str, float]], path: Path, stat: str = "min") -> Path:
    """One horizontal bar chart of ``rows`` relative to the fastest; log scale when the ratios span over 20×."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fastest = rows[0][1]
    names = [name for name, _ in rows]
    ratios = [seconds / fastest for _, seconds in rows]
    fig, ax = plt.subplots(figsize=(7, 0.6 * len(rows) + 1.2))
    bars = ax.barh(names, ratios, color=["tab:green"] + ["tab:blue"] * (len(rows) - 1))
    ax.invert_yaxis()  # fastest on top
    if max(ratios) > 20:
        ax.set_xscale("log")
    for bar, (_, seconds), ratio in zip(bars, rows, ratios, strict=True):
        ax.text(bar.get_width(), bar.get_y() + bar.get_height() / 2, f" {ratio:.2f}×  ({format_time(seconds)})",
                va="center", fontsize=9)
    ax.set_xlim(right=max(ratios) * (4 if max(ratios) > 20 else 1.45))
    ax.set_xlabel(f"time relative to the fastest ({stat} over rounds; lower is better)")
    ax.set_title(group)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("json", type=Path, help="a file written by pytest --benchmark-json")
    parser.add_argument("--out", type=Path, default=None, help="folder for the PNGs (default: the JSON's folder)")
    parser.add_argument("--prefix", default="", help="file name prefix, e.g. cpu- (default none)")
    parser.add_argument("--stat", choices=STATS, default="min", help="the statistic to compare (default min)")
    args = parser.parse_args(argv)
    try:
        groups = load_groups(args.json, args.stat)
    except (OSError, ValueError) as error:
        print(f"plot_results: error: {error}", file=sys.stderr)
        return 1
    out = args.out or args.json.parent
    out.mkdir(parents=True, exist_ok=True)
    for group, rows in groups.items():
        print(f"wrote {plot_group(group, rows, out / f'{args.prefix}{group}.png', args.stat)}", file=sys.stderr)
    print(markdown_table(groups, args.stat))
    return 0


if __name__ == "__main__":
    sys.exit(main())
