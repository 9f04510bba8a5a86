"""GPU check, attention: our Triton flash attention against ``F.scaled_dot_product_attention`` and the materialised
paths, forward (``fwd``) and forward + backward (``fwd+bwd``), in TFLOP/s.

Implementations:

    ours-flash                 scratchformers.fast.attention.flash_attention (Triton, nothing of size T x T)
    sdpa                       F.scaled_dot_product_attention as PyTorch dispatches it by default
    sdpa-flash                 ... under sdpa_kernel(SDPBackend.FLASH_ATTENTION)
    sdpa-cudnn                 ... SDPBackend.CUDNN_ATTENTION
    sdpa-efficient             ... SDPBackend.EFFICIENT_ATTENTION (memory-efficient, xFormers-style)
    sdpa-math                  ... SDPBackend.MATH (materialises T x T; upcasts half precision to float32)
    reference                  scratchformers.reference.attention.scaled_dot_product_attention (materialised)
    reference+triton-softmax   scratchformers.fast.attention.materialized_attention (materialised, fused softmax)

Shapes, in the order they run (the first matter most if time runs out): GPT-2's attention at batch 12 (B 12, H 12,
T 1024, D 64, bfloat16, causal), the same not causal, then causal bfloat16 at T = 256 ... 8192 with 12·1024 tokens
per batch (B = 12288 / T), float16, and D = 128 (H = 6, GPT-2's width 768 = H x D). A materialised variant is skipped
when one (B, H, T, T) tensor would exceed ``MAX_SCORES_GB`` or an eighth of the GPU's memory.

TFLOP/s use the FlashAttention papers' count: forward 4·B·H·T²·D (two matmuls), halved when causal (the masked half
is not computed); forward + backward 3.5 times that. Every implementation is credited with the same count, so TFLOP/s
compare like time. (The training step's MFU counts attention the other way, the full T², as PaLM and nanoGPT do.)
Each row has two: ``tflops`` from the end-to-end time and ``kernel_tflops`` from the GPU's kernel time (harness.py):
our launch path through the custom op and the autotuner can cost more than the kernel itself at short lengths.

    python benchmarks/gpu/bench_attention.py            # this section alone on a CUDA GPU, its tables at the end
"""
from __future__ import annotations

import contextlib
import sys
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

from harness import Harness, Settings, Skip, chosen_tiles, free_memory, section_main

NAME = "attention"
IMPLS = ("ours-flash", "sdpa", "sdpa-flash", "sdpa-cudnn", "sdpa-efficient", "sdpa-math", "reference",
         "reference+triton-softmax")
MODES = ("fwd", "fwd+bwd")
WIDTH = 768  # H x D
TOKENS = 12 * 1024  # per batch: B = TOKENS // T
MAX_SCORES_GB = 8.0
REFUSALS = ("No available kernel", "No viable backend")  # how sdpa_kernel(...) says no, in torch 2.4 ... 2.13


@dataclass(frozen=True)
class Point:
    """One attention shape: q, k, v are (B, H, T, D) in ``dtype``."""

    dtype: str
    D: int
    causal: bool
    T: int
    B: int
    H: int

    def flops(self, mode: str) -> float:
        forward = 4 * self.B * self.H * self.T**2 * self.D / (2 if self.causal else 1)
        return forward if mode == "fwd" else 3.5 * forward

    def scores_bytes(self, element_size: int) -> int:
        """Bytes of one (B, H, T, T) tensor."""
        return self.B * self.H * self.T**2 * element_size


def point(dtype: str, D: int, causal: bool, T: int) -> Point:
    """A shape of GPT-2's width and 12·1024 tokens per batch."""
    return Point(dtype, D, causal, T, max(1, TOKENS // T), WIDTH // D)


HEADLINE = point("bfloat16", 64, True, 1024)  # GPT-2 small's attention at batch 12


def grid(s: Settings) -> list[Point]:
    """The shapes to measure, most important first."""
    if s.dry_run:
        return [Point("bfloat16", 16, True, 32, 1, 2)]
    sweep = [point("bfloat16", 64, True, T) for T in (256, 512, 2048, 4096, 8192)]
    return [HEADLINE, point("bfloat16", 64, False, 1024), *sweep, point("float16", 64, True, 1024),
            point("bfloat16", 128, True, 1024)]


@dataclass(frozen=True)
class Impl:
    fn: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
    context: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext
    scores_element_size: int | None = None  # bytes per element of its (B, H, T, T) tensors; None: never built


def implementations(causal: bool, dtype: torch.dtype) -> dict[str, Impl]:
    from torch.nn.attention import SDPBackend, sdpa_kernel

    from scratchformers.fast.attention import flash_attention, materialized_attention
    from scratchformers.reference.attention import scaled_dot_product_attention

    def sdpa(q, k, v):
        return F.scaled_dot_product_attention(q, k, v, is_causal=causal)

    def backend(name: str) -> Callable[[], contextlib.AbstractContextManager]:
        return lambda: sdpa_kernel(getattr(SDPBackend, name))

    size = torch.finfo(dtype).bits // 8
    return {
        "ours-flash": Impl(lambda q, k, v: flash_attention(q, k, v, causal=causal)),
        "sdpa": Impl(sdpa),
        "sdpa-flash": Impl(sdpa, backend("FLASH_ATTENTION")),
        "sdpa-cudnn": Impl(sdpa, backend("CUDNN_ATTENTION")),
        "sdpa-efficient": Impl(sdpa, backend("EFFICIENT_ATTENTION")),
        "sdpa-math": Impl(sdpa, backend("MATH"), scores_element_size=4),
        "reference": Impl(lambda q, k, v: scaled_dot_product_attention(q, k, v, causal=causal)[0],
                          scores_element_size=size),
        "reference+triton-softmax": Impl(lambda q, k, v: materialized_attention(q, k, v, causal=causal),
                                         scores_element_size=size),
    }


def scores_limit(s: Settings) -> float:
    """Largest (B, H, T, T) tensor to attempt, in bytes: MAX_SCORES_GB and at most 1/8 of the GPU's memory (the
    materialised backward holds several such tensors at once). The dry run's 6 kB lets the bf16 (1, 2, 32, 32) scores
    through but not float32 ones, so both branches run."""
    if s.dry_run:
        return 6e3
    limit = MAX_SCORES_GB * 1e9
    if s.device.type == "cuda":
        limit = min(limit, torch.cuda.get_device_properties(s.device).total_memory / 8)
    return limit


def inputs(p: Point, device: torch.device) -> tuple[torch.Tensor, ...]:
    """q, k, v (requiring grad) and an output gradient, each (B, H, T, D)."""
    gen = torch.Generator(device=device).manual_seed(p.T)
    dtype = getattr(torch, p.dtype)
    q, k, v, grad = (torch.randn(p.B, p.H, p.T, p.D, device=device, dtype=dtype, generator=gen) for _ in range(4))
    return q.requires_grad_(), k.requires_grad_(), v.requires_grad_(), grad


def first_call(fn: Callable[[], torch.Tensor | None]) -> torch.Tensor | None:
    """Call ``fn`` once; an SDPA backend's refusal becomes ``Skip("refused: <its reasons>")``."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            return fn()
        except RuntimeError as error:
            if not any(text in str(error) for text in REFUSALS):
                raise
            reasons = [" ".join(str(w.message).split()) for w in caught] or [str(error)]
            raise Skip("refused: " + "; ".join(reasons)[:400]) from None


def measure_point(h: Harness, rows: list[dict], p: Point) -> None:
    """Every implementation and mode at one shape."""
    q, k, v, grad = inputs(p, h.settings.device)
    with torch.no_grad():
        expected = F.scaled_dot_product_attention(q, k, v, is_causal=p.causal).float()
    limit = scores_limit(h.settings)
    for name, impl in implementations(p.causal, q.dtype).items():
        for mode in MODES:
            def measure(name: str = name, impl: Impl = impl, mode: str = mode) -> dict:
                nbytes = p.scores_bytes(impl.scores_element_size or 0)
                if nbytes > limit:
                    raise Skip(f"memory: a (B, H, T, T) tensor takes {nbytes / 1e9:.3g} GB > the {limit / 1e9:.3g} GB "
                               "limit")
                with impl.context():
                    if mode == "fwd":
                        with torch.no_grad():
                            out = first_call(lambda: impl.fn(q, k, v))
                            ms, kernel_ms = h.bench(lambda: impl.fn(q, k, v)), h.kernel_ms(lambda: impl.fn(q, k, v))
                        numbers = dict(max_abs_diff=(out.float() - expected).abs().max().item())
                    else:
                        def step() -> None:
                            impl.fn(q, k, v).backward(grad)

                        first_call(step)
                        ms, kernel_ms = h.bench(step, grad_to_none=[q, k, v]), h.kernel_ms(step, [q, k, v])
                        numbers = {}
                numbers.update(ms=ms, tflops=p.flops(mode) / ms / 1e9, kernel_ms=kernel_ms,
                               kernel_tflops=p.flops(mode) / kernel_ms / 1e9 if kernel_ms else None)
                if name == "ours-flash":
                    from scratchformers.kernels import flash_attention

                    numbers["tiles"] = chosen_tiles(flash_attention)
                return numbers

            h.record(rows, dict(asdict(p), impl=name, mode=mode), measure)


def run(h: Harness, rows: list[dict]) -> None:
    """Measure the grid into ``rows``, one progress line per shape."""
    for p in grid(h.settings):
        start = len(rows)
        measure_point(h, rows, p)
        free_memory()
        h.log(f"attention {p.dtype} D{p.D} {'causal' if p.causal else 'full'} T{p.T}: " + summary(rows[start:]))


def summary(rows: list[dict]) -> str:
    """``ours-flash 0.074/0.35 ms, sdpa 0.053/0.22 ms (fwd/fwd+bwd); 2.8 s``: one shape at a glance."""
    ms = {(r["impl"], r["mode"]): f"{r['ms']:.3g}" if r["status"] == "ok" else "-" for r in rows}
    parts = [f"{impl} {ms.get((impl, 'fwd'), '-')}/{ms.get((impl, 'fwd+bwd'), '-')} ms"
             for impl in ("ours-flash", "sdpa")]
    return ", ".join(parts) + f" (fwd/fwd+bwd); {sum(r.get('wall_s', 0) for r in rows):.1f} s"


if __name__ == "__main__":
    sys.exit(section_main(NAME, run))
