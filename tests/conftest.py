"""Shared test set-up.

Triton decides at kernel-definition time whether to compile for the GPU or to interpret on the CPU, so
``TRITON_INTERPRET=1`` must be in the environment before any module defining a ``@triton.jit`` kernel is imported.
Without CUDA we set it here, first thing, so the kernel parity tests run on CPU tensors in CI.
"""
from __future__ import annotations

import os

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest  # noqa: E402

CUDA = torch.cuda.is_available()

# The test models are tiny: one thread avoids OpenMP hand-off costs that dominate them on a 2-core CI box.
torch.set_num_threads(1)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip tests marked ``gpu`` cleanly when there is no CUDA device."""
    if CUDA:
        return
    skip_gpu = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)
