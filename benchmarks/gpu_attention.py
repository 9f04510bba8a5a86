"""GPU benchmark, attention: our Triton flash attention against PyTorch's SDPA backends and the materialised paths.

Implementations, each timed forward (``fwd``) and forward + backward (``fwd+bwd``):

    ours-flash                 scratchformers.fast.attention.flash_attention (Triton, nothing of size T x T)
    sdpa-flash                 F.scaled_dot_product_attention under sdpa_kernel(SDPBackend.FLASH_ATTENTION)
    sdpa-efficient             ... SDPBackend.EFFICIENT_ATTENTION (memory-efficient, xFormers-style)
    sdpa-math                  ... SDPBackend.MATH (materialises T x T; upcasts half precision to float32)
    reference                  scratchformers.reference.attention.scaled_dot_product_attention (materialised)
    reference+triton-softmax   scratchformers.fast.attention.materialized_attention (materialised, fused softmax)

Shapes: GPT-2 small's width, 768 = H x D (H = 12 at D = 64, H = 6 at D = 128), and 12·1024 tokens per batch
(B = 12288 / T, at least 1), so T = 1024, D = 64 is exactly GPT-2's attention at batch 12. The default grid is
bfloat16 at T = 256 ... 8192, D 64 and 128, causal and not, plus float16 at T 1024 and 4096 (``--full-grid``: float16
at every T). A materialised variant is skipped when one (B, H, T, T) tensor would exceed ``--max-scores-gb``.

TFLOP/s use the FlashAttention papers' count: forward 4·B·H·T²·D (two matmuls), halved when causal; forward +
backward 3.5 times that. Every implementation is credited with the same count, so TFLOP/s compare like time.
"""
from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

from gpu_harness import Harness, Settings, Skip, free_memory
from gpu_softmax import softmax_jobs

NAME = "attention"
IMPLS = ("ours-flash", "sdpa-flash", "sdpa-efficient", "sdpa-math", "reference", "reference+triton-softmax")
MODES = ("fwd", "fwd+bwd")
WIDTH = 768  # H x D
REFUSALS = ("No available kernel", "No viable backend")  # how sdpa_kernel(...) says no, in torch 2.4 ... 2.13
LONG_T = (256, 512, 1024, 2048, 4096, 8192)
HALF_T = (1024, 4096)  # float16 in the default grid


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


@dataclass(frozen=True)
class Impl:
    fn: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
    context: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext
    scores_element_size: int | None = None  # bytes per element of its (B, H, T, T) tensors; None: never built


def grid(s: Settings) -> list[Point]:
    """The shapes to measure, in the order they run (the first ones matter most if the budget runs out)."""
    if s.dry_run:
        return [Point("bfloat16", 16, causal, 32, 1, 2) for causal in (True, False)]
    points = []
    for dtype in ("bfloat16", "float16"):
        lengths = LONG_T if dtype == "bfloat16" or s.full_grid else HALF_T
        for D in (64, 128):
            for causal in (True, False):
                points += [Point(dtype, D, causal, T, max(1, s.tokens // T), WIDTH // D) for T in lengths]
    return points


def implementations(causal: bool, dtype: torch.dtype) -> dict[str, Impl]:
    from torch.nn.attention import SDPBackend, sdpa_kernel

    from scratchformers.fast.attention import flash_attention, materialized_attention
    from scratchformers.reference.attention import scaled_dot_product_attention

    def sdpa(q, k, v):
        return F.scaled_dot_product_attention(q, k, v, is_causal=causal)

    size = torch.finfo(dtype).bits // 8
    return {
        "ours-flash": Impl(lambda q, k, v: flash_attention(q, k, v, causal=causal)),
        "sdpa-flash": Impl(sdpa, lambda: sdpa_kernel(SDPBackend.FLASH_ATTENTION)),
        "sdpa-efficient": Impl(sdpa, lambda: sdpa_kernel(SDPBackend.EFFICIENT_ATTENTION)),
        "sdpa-math": Impl(sdpa, lambda: sdpa_kernel(SDPBackend.MATH), scores_element_size=4),
        "reference": Impl(lambda q, k, v: scaled_dot_product_attention(q, k, v, causal=causal)[0],
                          scores_element_size=size),
        "reference+triton-softmax": Impl(lambda q, k, v: materialized_attention(q, k, v, causal=causal),
                                         scores_element_size=size),
    }


def scores_limit(s: Settings) -> float:
    """Largest (B, H, T, T) tensor to attempt, in bytes: --max-scores-gb, and at most 1/8 of the GPU's memory (the
    materialised backward holds several such tensors at once)."""
    limit = s.max_scores_gb * 1e9
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
    """Every implementation and mode at one shape: 12 rows."""
    q, k, v, grad = inputs(p, h.settings.device)
    with torch.no_grad():
        expected = F.scaled_dot_product_attention(q, k, v, is_causal=p.causal).float()
    limit = scores_limit(h.settings)
    for name, impl in implementations(p.causal, q.dtype).items():
        for mode in MODES:
            def measure(impl: Impl = impl, mode: str = mode) -> dict:
                nbytes = p.scores_bytes(impl.scores_element_size or 0)
                if nbytes > limit:
                    raise Skip(f"memory: a (B, H, T, T) tensor takes {nbytes / 1e9:.3g} GB > the {limit / 1e9:.3g} GB "
                               "limit")
                with impl.context():
                    if mode == "fwd":
                        with torch.no_grad():
                            out = first_call(lambda: impl.fn(q, k, v))
                            ms = h.bench(lambda: impl.fn(q, k, v))
                        return dict(ms=ms, tflops=p.flops(mode) / ms / 1e9,
                                    max_abs_diff=(out.float() - expected).abs().max().item())
                    first_call(lambda: impl.fn(q, k, v).backward(grad))
                    ms = h.bench(lambda: impl.fn(q, k, v).backward(grad), grad_to_none=[q, k, v])
                    return dict(ms=ms, tflops=p.flops(mode) / ms / 1e9)

            h.record(rows, dict(asdict(p), impl=name, mode=mode), measure)


def run(h: Harness, rows: list[dict]) -> None:
    """Measure the whole grid into ``rows``, one progress line per shape."""
    for p in grid(h.settings):
        start = len(rows)
        measure_point(h, rows, p)
        free_memory()
        h.log(f"attention {p.dtype} D{p.D} {'causal' if p.causal else 'full'} T{p.T}: " + summary(rows[start:]))


def summary(rows: list[dict]) -> str:
    """``ours-flash 0.074/0.35 ms, sdpa-flash 0.053/0.22 ms (fwd/fwd+bwd); 2.8 s``: one shape at a glance."""
    ms = {(r["impl"], r["mode"]): f"{r['ms']:.3g}" if r["status"] == "ok" else "-" for r in rows}
    parts = [f"{impl} {ms.get((impl, 'fwd'), '-')}/{ms.get((impl, 'fwd+bwd'), '-')} ms"
             for impl in ("ours-flash", "sdpa-flash")]
    return ", ".join(parts) + f" (fwd/fwd+bwd); {sum(r.get('wall_s', 0) for r in rows):.1f} s"


def warm_jobs(s: Settings) -> dict[str, Callable[[], None]]:
    """Compile-ahead jobs: our three flash kernels per (dtype, D, causal), the fused softmax per (dtype, T).

    Triton specialises a kernel on its integer arguments' divisibility by 16, not on their values, so one call at
    the first T of a combination compiles what every T of it runs."""
    jobs: dict[str, Callable[[], None]] = {}
    for p in grid(s):
        name = f"attention-flash-{p.dtype}-d{p.D}-{'causal' if p.causal else 'full'}"
        jobs.setdefault(name, lambda p=p: _flash_once(p, s.device))
        jobs.update(softmax_jobs(s, p.dtype, p.T, rows=p.H * p.T))
    return jobs


def _flash_once(p: Point, device: torch.device) -> None:
    from scratchformers.fast.attention import flash_attention

    q, k, v, grad = inputs(p, device)
    flash_attention(q, k, v, causal=p.causal).backward(grad)
