"""What the machine offers a training run: the autocast dtype, the CPU threads, TF32 matmuls."""
from __future__ import annotations

import os

import torch

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
FP16_FALLBACK = "this GPU has no native bfloat16: float16 autocast with a gradient scaler instead"


def cpu_has_native_bf16() -> bool:
    """Whether this CPU multiplies bfloat16 in hardware (AVX512-BF16: AMD Zen 4 and later, Intel Cooper Lake; AMX:
    Intel Sapphire Rapids and later), which oneDNN's matmuls then use. Elsewhere (AVX2-only x86 CPUs; ARM CPUs,
    which these probes do not cover) the answer is False and the trainer stays in float32: emulated bf16 is slower
    than float32. (``torch.cpu``'s probes are private; a torch without them answers False.)"""
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, probe, lambda: False)() for probe in probes)


def choose_amp_dtype(requested: str, device: torch.device) -> tuple[torch.dtype, str]:
    """The autocast dtype for ``requested`` (a ``TrainConfig.dtype``) on ``device``, and a phrase saying what was
    chosen (and why, where it is not what was asked for).

    ``auto`` is what the device does natively: bf16 on a CUDA GPU with native bf16 (Ampere and later), fp16 with
    the GradScaler on older GPUs (as nanoGPT does); on the CPU bf16 where it has bf16 dot products in hardware
    (:func:`cpu_has_native_bf16`; the default Shakespeare model's step, 16 windows of 128, took 133 ms instead of
    167 ms on a 2-core AVX512-BF16 CPU, with the same loss per step: benchmarks/RESULTS.md), float32 elsewhere.
    ``bfloat16`` asked for on a GPU without native bf16 (V100, T4: emulated, slow) falls back to fp16 with the
    GradScaler too; on the CPU it is honoured.
    """
    name = requested
    native_bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported(including_emulation=False)
    if name == "auto" and device.type == "cpu":
        if cpu_has_native_bf16():
            return torch.bfloat16, "bfloat16 autocast: this CPU has native bf16"
        return torch.float32, "float32: this CPU has no native bf16"
    if name == "auto":
        name = "float32" if device.type != "cuda" else "bfloat16" if native_bf16 else "float16"
    if name == "float16" and device.type != "cuda":
        raise ValueError("dtype='float16' (with a GradScaler) is for CUDA; use float32 or bfloat16 on CPU")
    if name == "bfloat16" and device.type == "cuda" and not native_bf16:
        return torch.float16, FP16_FALLBACK
    if name == "float16":
        return torch.float16, "float16 autocast with a gradient scaler"
    return DTYPES[name], "float32" if name == "float32" else f"{name} autocast"


def default_num_threads() -> int:
    """The CPU cores this process may use, shared among the DDP processes on this machine."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, cores // int(os.environ.get("LOCAL_WORLD_SIZE", "1")))


def set_up_backends(device: torch.device, num_threads: int) -> None:
    """TF32 tensor cores for float32 matmuls on CUDA (8x on an A100); ``num_threads`` torch threads on the CPU."""
    if device.type == "cuda":
        torch.set_float32_matmul_precision("high")
    else:
        torch.set_num_threads(num_threads)
