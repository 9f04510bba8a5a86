"""Import ``scratchformers.*`` from this checkout, installed or not.

A GPU machine may get a bare copy of the repository (torch and Triton installed, the project not), and ``pip install
-e .`` needs build tools from the network. :func:`use_checkout` puts the checkout's root first on ``sys.path``: its
``scratchformers/`` is then the package imported, and the front door maps ``reference/``, ``fast/``, ``kernels/`` and
``train/`` of the same checkout onto ``scratchformers.*`` (see ``scratchformers/__init__.py``), so the benchmark always
measures the tree it was started from, even where another copy is installed.
"""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def use_checkout(root: Path = ROOT) -> None:
    """Make ``import scratchformers.<package>`` load ``root``'s folders. Call it before anything imports them."""
    loaded = sorted(name for name in sys.modules if name == "scratchformers" or name.startswith("scratchformers."))
    if loaded:
        raise RuntimeError(f"use_checkout() must run before scratchformers is imported; already loaded: {loaded}")
    if str(root) not in sys.path[:1]:
        sys.path.insert(0, str(root))
