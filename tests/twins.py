"""Shared checks for the tiled NumPy twins of the Triton kernels (reference/np_flash_attention.py, np_tiled_*.py)."""
from __future__ import annotations

import ast
from pathlib import Path

import numpy as np

from scratchformers.exercises.checks.tolerances import FP32_ATOL

ROOT = Path(__file__).resolve().parents[1]


def function_names(path: Path, jit_only: bool) -> list[str]:
    """Top-level function names of a file in order (only the @triton.jit ones with jit_only), read without importing."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [node.name for node in tree.body if isinstance(node, ast.FunctionDef)
            and (not jit_only or any("jit" in ast.unparse(d) for d in node.decorator_list))]


def assert_twins_in_order(kernel: str, twin: str) -> None:
    """Every @triton.jit function of kernels/<kernel> has a namesake in reference/<twin>, in the same order."""
    device = function_names(ROOT / "kernels" / kernel, jit_only=True)
    names = function_names(ROOT / "reference" / twin, jit_only=False)
    assert device and [name for name in names if name in device] == device, (device, names)


def assert_same_as_kernel(got: list[np.ndarray], kernel: list[np.ndarray], names: tuple[str, ...],
                          interpreted: bool) -> None:
    """Under the interpreter every ``tl`` operation is the same NumPy call on the same tile as in the twin, so the
    results are identical bits; compiled on a GPU the same tiles are rounded by other hardware (FP32_ATOL)."""
    for name, g, w in zip(names, got, kernel, strict=True):
        assert g.shape == w.shape and g.dtype == w.dtype, name
        if interpreted:
            assert np.array_equal(g, w), f"{name}: max diff {np.nanmax(np.abs(g - w)):.3g}"
        else:
            finite = np.isfinite(w)
            assert np.array_equal(finite, np.isfinite(g)), name
            assert np.abs(g[finite] - w[finite]).max(initial=0.0) <= FP32_ATOL, name
