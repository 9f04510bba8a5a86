"""How much memory a function holds at once: the check behind "nothing of size Tq x Tk" (flash attention) and
"nothing larger than a tile" (the online softmax)."""
from __future__ import annotations

import tracemalloc
from collections.abc import Callable
from typing import Any


def peak_bytes_allocated(fn: Callable[[], Any]) -> tuple[int, Any]:
    """Run ``fn``; return the most memory held at once while it ran, above what was allocated before it, and what
    it returned. tracemalloc sees every NumPy array buffer (and Python's own small objects, whose free lists and
    uncollected garbage add a few tens of KiB)."""
    tracemalloc.start()
    try:
        result = fn()
        return tracemalloc.get_traced_memory()[1], result
    finally:
        tracemalloc.stop()
