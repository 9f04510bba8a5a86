"""Plot a training run's loss, learning rate and gradient norm (from its log.jsonl) into a PNG.

Examples:
  scratchformers plot                                   # out/shakespeare-cpu/log.jsonl -> out/shakespeare-cpu/curves.png
  scratchformers plot out/gpt2-owt/log.jsonl --out gpt2.png
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("log", nargs="?", default="out/shakespeare-cpu/log.jsonl",
                        help="a log.jsonl, or a run folder holding one (default out/shakespeare-cpu/log.jsonl)")
    parser.add_argument("--out", default=None, help="the PNG to write (default curves.png next to the log)")


def run(args: argparse.Namespace) -> int:
    from scratchformers.train.plots import plot_log

    log = Path(args.log)
    if log.is_dir():
        log = log / "log.jsonl"
    try:
        path = plot_log(log, args.out or log.with_name("curves.png"))
    except (ValueError, OSError) as error:
        print(f"scratchformers plot: error: {error}", file=sys.stderr)
        return 1
    print(f"wrote {path}")
    return 0
