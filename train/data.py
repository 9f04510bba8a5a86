"""The embedded Shakespeare corpus: the library's default dataset, shipped inside the package.

The 42 works in Project Gutenberg's modern-spelling texts (as packaged by the Open Shakespeare project, MIT /
public domain) are joined in file-name order into one 5.06 M-character text and stored xz-compressed
(``assets/shakespeare.txt.xz``, rebuilt by ``tools/build_shakespeare_corpus.py``). The ``tiny`` variant is its
first 1,115,394 characters, the size of Karpathy's tinyshakespeare, for quick runs.
"""
from __future__ import annotations

import functools
import lzma
from pathlib import Path
from typing import Literal

TINY_CHARS = 1_115_394
Variant = Literal["full", "tiny"]
VARIANTS: tuple[Variant, ...] = ("full", "tiny")


@functools.lru_cache(maxsize=1)
def _full_text() -> str:
    blob = (Path(__file__).with_name("assets") / "shakespeare.txt.xz").read_bytes()
    return lzma.decompress(blob).decode("utf-8")


def shakespeare(variant: Variant = "full") -> str:
    """Return the embedded Shakespeare corpus as one string.

    Args:
        variant: ``"full"`` (all 42 works, 5,057,321 characters) or ``"tiny"`` (the first 1,115,394 characters).
    """
    if variant == "full":
        return _full_text()
    if variant == "tiny":
        return _full_text()[:TINY_CHARS]
    raise ValueError(f"unknown Shakespeare variant {variant!r}; choose 'full' or 'tiny'")
