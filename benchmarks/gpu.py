"""GPU benchmark of the Triton kernels against PyTorch, side by side on one device.

    python benchmarks/gpu.py [--out DIR]        # DIR defaults to $OUT, else benchmarks/results

Attention (GPT-2 small shapes: B 12, H 12, T 1024, D 64, bfloat16, causal), forward and forward+backward:
  torch math (Q Kᵀ, masked softmax, @ V, all in torch) -> materialised with the fused Triton softmax -> Triton flash
  attention, against ``F.scaled_dot_product_attention`` on its flash backend.
LayerNorm (12·1024 rows × 768, bfloat16), forward and backward: Triton against ``F.layer_norm``, with the achieved
bandwidth in GB/s and as a share of the GPU's peak HBM bandwidth (datasheet value for known GPUs, or --peak-gbps),
next to what a plain device-to-device copy achieves.

Timings are medians from ``triton.testing.do_bench``. Writes gpu_benchmark.json and gpu_benchmark.md to DIR.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

# Datasheet peak HBM bandwidth in GB/s, matched against torch.cuda.get_device_name().
PEAK_GBPS = {"H200": 4800, "H100 SXM": 3350, "H100 80GB HBM3": 3350, "H100 PCIe": 2000, "H100 NVL": 3900,
             "A100-SXM4-80GB": 2039, "A100-PCIE-80GB": 1935, "A100-SXM4-40GB": 1555, "A100-PCIE-40GB": 1555}


def peak_bandwidth(name: str, override: float | None) -> float | None:
    if override is not None:
        return override
    matches = [gbps for key, gbps in PEAK_GBPS.items() if key in name]
    return matches[0] if matches else None


def bench(fn, grad_to_none=None) -> float:
    """Median milliseconds of fn()."""
    from triton.testing import do_bench
    return do_bench(fn, warmup=25, rep=200, grad_to_none=grad_to_none, return_mode="median")


def torch_attention(q, k, v):
    """Plain torch causal attention: the (B, H, T, T) scores and probabilities are materialised in memory."""
    T = q.shape[2]
    scores = (q @ k.transpose(-2, -1)) * q.shape[-1] ** -0.5
    causal = torch.ones(T, T, dtype=torch.bool, device=q.device).tril()
    return torch.softmax(scores.masked_fill(~causal, float("-inf")), dim=-1) @ v


def sdpa_flash(q, k, v):
    from torch.nn.attention import SDPBackend, sdpa_kernel
    with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
        return F.scaled_dot_product_attention(q, k, v, is_causal=True)


def attention_rows(B: int, H: int, T: int, D: int, dtype: torch.dtype) -> list[dict]:
    from scratchformers.fast.attention import flash_attention, materialized_attention

    gen = torch.Generator(device="cuda").manual_seed(0)
    q, k, v = (torch.randn(B, H, T, D, device="cuda", dtype=dtype, generator=gen, requires_grad=True)
               for _ in range(3))
    grad_out = torch.randn(B, H, T, D, device="cuda", dtype=dtype, generator=gen)
    impls = {
        "torch math (materialised)": torch_attention,
        "materialised + Triton softmax": lambda q, k, v: materialized_attention(q, k, v, causal=True),
        "Triton flash attention": lambda q, k, v: flash_attention(q, k, v, causal=True),
        "SDPA (flash backend)": sdpa_flash,
    }
    baseline = sdpa_flash(q, k, v)
    flops_fwd = 4 * B * H * T * T * D / 2  # two matmuls, causal half
    rows = []
    for name, fn in impls.items():
        with torch.no_grad():
            err = (fn(q, k, v).float() - baseline.float()).abs().max().item()
            fwd = bench(lambda fn=fn: fn(q, k, v))
        fwd_bwd = bench(lambda fn=fn: fn(q, k, v).backward(grad_out), grad_to_none=[q, k, v])
        rows.append(dict(op="attention", impl=name, fwd_ms=fwd, fwd_bwd_ms=fwd_bwd, max_abs_diff_vs_sdpa=err,
                         fwd_tflops=flops_fwd / fwd / 1e9, fwd_bwd_tflops=3.5 * flops_fwd / fwd_bwd / 1e9))
    sdpa = rows[-1]
    for row in rows:
        row["fwd_speedup_vs_sdpa"] = sdpa["fwd_ms"] / row["fwd_ms"]
        row["fwd_bwd_speedup_vs_sdpa"] = sdpa["fwd_bwd_ms"] / row["fwd_bwd_ms"]
    return rows


def layernorm_rows(M: int, N: int, dtype: torch.dtype, peak_gbps: float | None) -> list[dict]:
    from scratchformers.fast.layernorm import layer_norm

    gen = torch.Generator(device="cuda").manual_seed(1)
    x = torch.randn(M, N, device="cuda", dtype=dtype, generator=gen, requires_grad=True)
    w = torch.randn(N, device="cuda", dtype=dtype, generator=gen, requires_grad=True)
    b = torch.randn(N, device="cuda", dtype=dtype, generator=gen, requires_grad=True)
    grad_out = torch.randn(M, N, device="cuda", dtype=dtype, generator=gen)
    size = M * N * x.element_size()
    copy_gbps = 2 * size / bench(lambda: x.detach().clone()) / 1e6  # read + write: what the memory system delivers
    impls = {"F.layer_norm": lambda: F.layer_norm(x, (N,), w, b), "Triton LayerNorm": lambda: layer_norm(x, w, b)}
    rows = []
    for name, fn in impls.items():
        with torch.no_grad():
            fwd = bench(fn)
        y = fn()
        bwd = bench(lambda y=y: y.backward(grad_out, retain_graph=True), grad_to_none=[x, w, b])
        # Minimum traffic: forward reads x, writes y; backward reads x and dy, writes dx (parameters are tiny).
        fwd_gbps, bwd_gbps = 2 * size / fwd / 1e6, 3 * size / bwd / 1e6
        row = dict(op="layernorm", impl=name, fwd_ms=fwd, bwd_ms=bwd, fwd_gbps=fwd_gbps, bwd_gbps=bwd_gbps,
                   copy_gbps=copy_gbps)
        if peak_gbps:
            row.update(fwd_pct_peak=100 * fwd_gbps / peak_gbps, bwd_pct_peak=100 * bwd_gbps / peak_gbps)
        rows.append(row)
    torch_row = rows[0]
    for row in rows:
        row["fwd_speedup_vs_torch"] = torch_row["fwd_ms"] / row["fwd_ms"]
        row["bwd_speedup_vs_torch"] = torch_row["bwd_ms"] / row["bwd_ms"]
    return rows


def markdown(meta: dict, attention: list[dict], layernorm: list[dict]) -> str:
    lines = [f"# GPU benchmark: {meta['gpu']}", "",
             f"torch {meta['torch']}, triton {meta['triton']}, CUDA {meta['cuda']}; medians of triton.testing.do_bench",
             "", f"## Attention, B{meta['attention_shape'][0]} H{meta['attention_shape'][1]} "
             f"T{meta['attention_shape'][2]} D{meta['attention_shape'][3]}, bf16, causal", "",
             "| implementation | fwd ms | fwd TFLOP/s | fwd vs SDPA | fwd+bwd ms | fwd+bwd TFLOP/s | fwd+bwd vs SDPA "
             "| max abs diff vs SDPA |", "|---|---|---|---|---|---|---|---|"]
    for r in attention:
        lines.append(f"| {r['impl']} | {r['fwd_ms']:.3f} | {r['fwd_tflops']:.1f} | {r['fwd_speedup_vs_sdpa']:.2f}x "
                     f"| {r['fwd_bwd_ms']:.3f} | {r['fwd_bwd_tflops']:.1f} | {r['fwd_bwd_speedup_vs_sdpa']:.2f}x "
                     f"| {r['max_abs_diff_vs_sdpa']:.2e} |")
    peak = f"{meta['peak_gbps']:.0f} GB/s" if meta["peak_gbps"] else "unknown (pass --peak-gbps)"
    lines += ["", f"## LayerNorm, {meta['layernorm_shape'][0]} x {meta['layernorm_shape'][1]}, bf16", "",
              f"Peak HBM bandwidth: {peak}; a device-to-device copy achieves {layernorm[0]['copy_gbps']:.0f} GB/s.",
              "", "| implementation | fwd ms | fwd GB/s | fwd % peak | fwd vs torch | bwd ms | bwd GB/s | bwd % peak "
              "| bwd vs torch |", "|---|---|---|---|---|---|---|---|---|"]
    for r in layernorm:
        pct = [f"{r[key]:.0f}%" if key in r else "n/a" for key in ("fwd_pct_peak", "bwd_pct_peak")]
        lines.append(f"| {r['impl']} | {r['fwd_ms']:.4f} | {r['fwd_gbps']:.0f} | {pct[0]} "
                     f"| {r['fwd_speedup_vs_torch']:.2f}x | {r['bwd_ms']:.4f} | {r['bwd_gbps']:.0f} | {pct[1]} "
                     f"| {r['bwd_speedup_vs_torch']:.2f}x |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "benchmarks/results")),
                        help="folder for gpu_benchmark.json and gpu_benchmark.md (default: $OUT or benchmarks/results)")
    parser.add_argument("--peak-gbps", type=float, default=None, help="peak HBM bandwidth of this GPU in GB/s")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("benchmarks/gpu.py needs a CUDA GPU (torch.cuda.is_available() is False); nothing was measured.",
              file=sys.stderr)
        return 1
    import triton

    B, H, T, D = 12, 12, 1024, 64
    M, N = 12 * 1024, 768
    name = torch.cuda.get_device_name()
    meta = dict(gpu=name, torch=torch.__version__, triton=triton.__version__, cuda=torch.version.cuda,
                python=platform.python_version(), peak_gbps=peak_bandwidth(name, args.peak_gbps),
                attention_shape=[B, H, T, D], layernorm_shape=[M, N])
    attention = attention_rows(B, H, T, D, torch.bfloat16)
    layernorm = layernorm_rows(M, N, torch.bfloat16, meta["peak_gbps"])
    report = markdown(meta, attention, layernorm)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "gpu_benchmark.json").write_text(json.dumps(dict(meta=meta, attention=attention,
                                                                 layernorm=layernorm), indent=2))
    (args.out / "gpu_benchmark.md").write_text(report)
    print(report)
    print(f"wrote {args.out / 'gpu_benchmark.json'} and {args.out / 'gpu_benchmark.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
