"""Can the fast path run here? One check, one clear error, never a silent fallback to the reference path.

The Triton kernels run on CUDA GPUs. For tests they also run on CPU tensors under the Triton interpreter, which
Triton enables when ``TRITON_INTERPRET=1`` is in the environment at the moment the kernels are defined (that is,
before ``scratchformers.kernels`` is imported).
"""
from __future__ import annotations

import importlib.util
import os
import sys

import torch

_KERNEL_MODULES = ("scratchformers.kernels.flash_attention", "scratchformers.kernels.layernorm",
                   "scratchformers.kernels.softmax")
_HOW = ("Run the fast path on a CUDA GPU, or, to test it on CPU, set TRITON_INTERPRET=1 in the environment before "
        "importing triton (for example `TRITON_INTERPRET=1 python ...`) to run the kernels in the Triton "
        "interpreter (slow; meant for tests).")
_TRITON_INSTALLED = importlib.util.find_spec("triton") is not None  # looked up without importing triton


def interpreting() -> bool:
    """True when the Triton interpreter is switched on (``TRITON_INTERPRET=1``)."""
    return os.environ.get("TRITON_INTERPRET") == "1"


def check_fast_available(device: torch.device | str) -> None:
    """Raise one clear ``RuntimeError`` if the fast (Triton) path cannot run on ``device``; return None if it can."""
    device = torch.device(device)
    if not _TRITON_INSTALLED:
        raise RuntimeError("The fast path needs Triton, which is not installed (`pip install triton`; it ships with "
                           "CUDA builds of PyTorch on Linux). " + _HOW)
    if device.type == "cuda":
        return
    if device.type != "cpu":
        raise RuntimeError(f"The fast path runs on CUDA devices (or CPU under the Triton interpreter), not on "
                           f"{device.type!r}. " + _HOW)
    if not interpreting():
        raise RuntimeError("The fast path got CPU tensors but the Triton interpreter is off "
                           "(TRITON_INTERPRET is not '1'). " + _HOW)
    for name in _KERNEL_MODULES:
        module = sys.modules.get(name)
        if module is not None and not module.INTERPRET:
            raise RuntimeError(f"{name} was imported before TRITON_INTERPRET=1 was set, so its kernels were built "
                               "for the GPU. " + _HOW)
