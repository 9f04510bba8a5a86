"""Throughput numbers for the training log: FLOPs per token, model FLOPs utilisation (MFU), memory.

FLOPs per token (Kaplan et al. 2020, appendix B of the PaLM paper): a matmul with an (m, n) weight costs 2·m·n
FLOPs per token forward and twice that backward, so the N weights cost 6·N; attention's score and value matmuls
add 2 · 2 · T · C per layer forward, 12·L·T·C forward + backward:

    flops_per_token = 6 · N + 12 · L · T · C

The 12·L·T·C term counts the whole T x T score matrix, causal or not (PaLM's and nanoGPT's convention): a causal
model computes only about half of it, so this MFU credits attention with about twice the work done. (The GPU check's
attention benchmark uses the other convention, FlashAttention's: causal counts half. Each figure says which.)

MFU = achieved FLOPs/s ÷ the accelerator's peak (dense bf16 tensor-core FLOPs/s, from the vendor's data sheet).
"""
from __future__ import annotations

import resource
import sys

import torch

from scratchformers.reference.model import GPT

# Dense (no sparsity) bf16 tensor-core peak, FLOPs/s. The first key found in the device name wins, so specific names
# come first: "NVIDIA H100 NVL" must not read as the SXM part, nor "NVIDIA GH200 480GB" as an H200. NVIDIA's
# data-center pages (nvidia.com/en-us/data-center/h100/ and .../h200/) give BF16 Tensor Core TFLOPS "with sparsity",
# twice the dense figure: H100 SXM and H200 SXM 1,979 (989 dense), H100 NVL and H200 NVL 1,671 (835 dense), H100
# PCIe 1,513 (756 dense). The NVL boards run at lower clocks (350-400 W and 600 W against the SXM's 700 W).
PEAK_BF16_FLOPS: list[tuple[str, float]] = [
    ("H100 NVL", 835e12),
    ("H200 NVL", 835e12),
    ("H100 PCIe", 756e12),
    ("GH200", 989e12),
    ("H100", 989e12),  # SXM / HBM3 ("NVIDIA H100 80GB HBM3")
    ("H200", 989e12),  # SXM ("NVIDIA H200")
    ("B200", 2250e12),
    ("A100", 312e12),
    ("L40S", 362e12),
    ("L4", 121e12),
    ("A10", 125e12),
    ("RTX 4090", 165e12),
]


def peak_flops_of(name: str) -> float | None:
    """The peak bf16 FLOPs/s of the GPU called ``name`` (``torch.cuda.get_device_name``), or None if unknown."""
    return next((flops for key, flops in PEAK_BF16_FLOPS if key in name), None)


def peak_flops(device: torch.device) -> float | None:
    """The peak bf16 FLOPs/s of ``device`` from :data:`PEAK_BF16_FLOPS`, or None (CPU, unknown GPU)."""
    if device.type != "cuda":
        return None
    return peak_flops_of(torch.cuda.get_device_name(device))


def matmul_parameters(model: GPT) -> int:
    """N of :func:`flops_per_token`: the parameters a token meets in matmuls. Every parameter but the position table
    (a lookup, no matmul); the token table counts, as it is also the output layer."""
    return model.num_parameters(non_embedding=True) + model.transformer.wte.weight.numel()


def flops_per_token(num_params: int, num_layers: int, max_len: int, emb_dim: int) -> float:
    """Training FLOPs per token: 6·N + 12·L·T·C (see the module docstring)."""
    return 6 * num_params + 12 * num_layers * max_len * emb_dim


def memory_mb(device: torch.device) -> float:
    """Peak memory in MiB: allocated tensors on CUDA, the process's peak resident set on CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10
