"""Can the fast path run here? One check, one clear error, never a silent fallback to the reference path. And how
the fast custom ops take part in autocast.

The Triton kernels run on CUDA GPUs. For tests they also run on CPU tensors under the Triton interpreter, which
Triton enables when ``TRITON_INTERPRET=1`` is in the environment at the moment the kernels are defined (that is,
before ``scratchformers.kernels`` is imported).
"""
from __future__ import annotations

import importlib.util
import os
import sys

import torch

_KERNELS_COMMON = "scratchformers.kernels.common"  # every kernel module imports it first; it records the switch
_HOW = ("Run the fast path on a CUDA GPU, or, to test it on CPU, set TRITON_INTERPRET=1 in the environment before "
        "importing triton (for example `TRITON_INTERPRET=1 python ...`) to run the kernels in the Triton "
        "interpreter (slow; meant for tests).")
FLOAT_DTYPES = (torch.float32, torch.float16, torch.bfloat16)  # what the kernels read and write
_TRITON_INSTALLED = importlib.util.find_spec("triton") is not None  # looked up without importing triton


def interpreting() -> bool:
    """True when the Triton interpreter is switched on (``TRITON_INTERPRET=1``)."""
    return os.environ.get("TRITON_INTERPRET") == "1"


def check_fast_available(device: torch.device | str) -> None:
    """Raise one clear ``RuntimeError`` if the fast (Triton) path cannot run on ``device``; return None if it can."""
    device = torch.device(device)
    if device.type == "meta":
        return  # shapes only, as with F.scaled_dot_product_attention: the ops' fake implementations answer
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
    common = sys.modules.get(_KERNELS_COMMON)
    if common is not None and not common.INTERPRET:
        raise RuntimeError("scratchformers.kernels was imported before TRITON_INTERPRET=1 was set, so its kernels "
                           "were built for the GPU. " + _HOW)


# Autocast keys of the devices the fast path runs on (CUDA, and CPU under the interpreter).
_AUTOCAST_KEYS = {"cpu": "AutocastCPU", "cuda": "AutocastCUDA"}


def autocast_dtype(device: torch.device) -> torch.dtype | None:
    """The dtype autocast casts to on ``device`` now, or None where autocast is off (or has no meaning: meta)."""
    if device.type in _AUTOCAST_KEYS and torch.is_autocast_enabled(device.type):
        return torch.get_autocast_dtype(device.type)
    return None
_LIBRARY = torch.library.Library("scratchformers", "IMPL")  # holds the autocast kernels registered below


def autocast_to_lower_precision(name: str, cast: tuple[int, ...]) -> None:
    """Make the custom op ``scratchformers::<name>`` take part in autocast as ``F.scaled_dot_product_attention`` does.

    That is autocast's "lower precision" rule: inside ``torch.autocast(device_type, dtype)``, the floating-point
    inputs at positions ``cast`` (float64 aside) are cast to the autocast dtype, then the op runs with autocast off;
    outside autocast nothing changes. ``torch.library.register_autocast`` (torch >= 2.5) casts to one dtype fixed at
    registration; this rule reads the autocast dtype at each call, so bf16 and fp16 autocast both work. The cast is
    an ordinary differentiable ``Tensor.to``: gradients reach fp32 leaves in fp32.
    """
    op = getattr(torch.ops.scratchformers, name).default
    for device_type, key in _AUTOCAST_KEYS.items():
        def kernel(_keyset, *args, device_type=device_type):
            dtype = torch.get_autocast_dtype(device_type)
            args = tuple(a.to(dtype) if i in cast and a.is_floating_point() and a.dtype != torch.float64 else a
                         for i, a in enumerate(args))
            with torch.autocast(device_type, enabled=False):
                return op(*args)

        _LIBRARY.impl(name, kernel, key, with_keyset=True)
