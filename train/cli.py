"""The ``scratchformers`` command line: one argparse sub-command per job, in nanoGPT's plain-flags spirit.

Each sub-command lives in :mod:`scratchformers.train.commands` as a module with a docstring (its help text),
``add_arguments(parser)`` and ``run(args) -> int``. Heavy imports happen inside ``run`` so that ``--help`` is quick.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

COMMANDS = {
    "tokenize": "scratchformers.train.commands.tokenize",
    "prepare": "scratchformers.train.commands.prepare",
    "viz": "scratchformers.train.commands.viz",
    "train": "scratchformers.train.commands.train",
    "sample": "scratchformers.train.commands.sample",
    "plot": "scratchformers.train.commands.plot",
    "bench": "scratchformers.train.commands.bench",
    "check": "scratchformers.train.commands.check",
}


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every sub-command registered."""
    parser = argparse.ArgumentParser(
        prog="scratchformers",
        description="GPT-2 from scratch: tokenizers, a reference and a fast (Triton) model, training and sampling.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(module_name)
        summary = (module.__doc__ or "").strip().splitlines()[0]
        sub = subparsers.add_parser(
            name,
            help=summary,
            description=(module.__doc__ or "").strip(),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.add_arguments(sub)
        sub.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``scratchformers`` console script."""
    args = build_parser().parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
