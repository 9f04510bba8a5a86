"""Compile the Triton kernels for an H100/H200 (sm_90) on a machine without a GPU, and report what that GPU would meet.

Triton compiles ahead of time for any target it knows: this tool runs the library's own host functions (attention,
LayerNorm, softmax) on CPU tensors shaped as GPT-2 124M training and sampling shape them, catches each kernel launch
instead of running it, and compiles every autotuning candidate of that launch with ``triton.compile`` for
``GPUTarget("cuda", 90, 32)`` (sm_90, 32 threads per warp), specialised exactly as the runtime would specialise it.
ptxas ships with Triton, so the result is the real cubin. For each compile it reports registers per thread, register
spills (bytes of local memory / stack frame, from ``cuobjdump -res-usage``), shared memory per program (the limit is
227 KiB = 232,448 bytes) and compile seconds.

    python tools/compile_sm90.py                      # every GPT-2 configuration, a table
    python tools/compile_sm90.py --subset ci --json results.json
    python tools/compile_sm90.py --extra              # also fp16 / fp32 / head dim 128 (what pruning must cover)
    python tools/compile_sm90.py --extra --list       # the candidates the autotuners keep, compiling nothing

Exit status: 0 if every compile fits (no spills, shared memory within the limit), 1 if one does not, 2 for a stale
CI subset, 3 if this Triton build cannot compile for CUDA at all (no NVIDIA backend or no ptxas).

Compile seconds come from an empty Triton cache (a temporary one unless ``--keep-cache``) and, with ``--jobs`` > 1,
from several compiles side by side: compare them with each other, not with another machine.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from multiprocessing import get_context
from pathlib import Path

if os.environ.get("TRITON_INTERPRET") == "1":  # the kernels must be real JIT functions, not interpreted ones
    del os.environ["TRITON_INTERPRET"]
if "triton" in sys.modules:
    raise SystemExit("compile_sm90: import this tool before triton (it must see TRITON_INTERPRET unset)")

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
import triton  # noqa: E402
from triton import knobs  # noqa: E402
from triton.backends.compiler import GPUTarget  # noqa: E402
from triton.compiler import ASTSource, make_backend  # noqa: E402
from triton.runtime.autotuner import Autotuner  # noqa: E402
from triton.runtime.jit import JITFunction, create_function_from_signature  # noqa: E402

from scratchformers.kernels import flash_attention, layernorm, softmax  # noqa: E402
from scratchformers.kernels.limits import SM90_MAX_SHARED_BYTES  # noqa: E402

TARGET = GPUTarget("cuda", 90, 32)
KERNEL_MODULES = (flash_attention, layernorm, softmax)

# GPT-2 124M: C = 768, 12 heads of 64, context 1024; one sequence is enough (the batch only scales the grid).
C, H, D, T = 768, 12, 64, 1024


@dataclass
class Launch:
    """One kernel launch caught from a host function: the kernel (an Autotuner or a JITFunction) and its arguments."""
    case: str
    name: str
    kernel: object
    args: tuple
    kwargs: dict


@dataclass
class Result:
    case: str
    kernel: str
    config: str
    registers: int
    spill_bytes: int
    shared_bytes: int
    seconds: float
    error: str = ""

    @property
    def ok(self) -> bool:
        return not self.error and self.spill_bytes == 0 and self.shared_bytes <= SM90_MAX_SHARED_BYTES


@contextlib.contextmanager
def caught_launches(case: str, launches: list[Launch]) -> Iterator[None]:
    """Replace every kernel of the kernel modules by a stand-in that records ``kernel[grid](*args, **kwargs)``."""
    originals = {}
    for module in KERNEL_MODULES:
        for name, value in vars(module).items():
            if isinstance(value, (Autotuner, JITFunction)) and not name.startswith("__"):
                originals[(module, name)] = value

    class Catch:
        def __init__(self, name: str, kernel: object) -> None:
            self.name, self.kernel = name, kernel

        def __getitem__(self, grid):
            return lambda *args, **kwargs: launches.append(Launch(case, self.name, self.kernel, args, kwargs))

    for (module, name), kernel in originals.items():
        setattr(module, name, Catch(name, kernel))
    try:
        yield
    finally:
        for (module, name), kernel in originals.items():
            setattr(module, name, kernel)


def attention_views(dtype: torch.dtype, Tq: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """q, k, v as the model hands them over: (B, H, T, D) views of the fused c_attn output (B, T, 3C)."""
    qkv = torch.zeros(1, Tq, 3 * C, dtype=dtype)
    return tuple(part.view(1, Tq, H, D).transpose(1, 2) for part in qkv.split(C, dim=-1))


def attention_training(dtype: torch.dtype, padded: bool, head_dim: int = D) -> Callable[[], None]:
    """Forward and backward of causal self-attention at T = 1024 (with right padding: key lengths per sequence)."""
    def run() -> None:
        if head_dim == D:
            q, k, v = attention_views(dtype, T)
        else:
            q, k, v = (torch.zeros(1, H, T, head_dim, dtype=dtype) for _ in range(3))
        lens = torch.full((1,), T, dtype=torch.int32) if padded else None
        out, lse = torch.zeros_like(q), torch.zeros(1, H, T)
        grad = torch.zeros(1, T, H, head_dim, dtype=dtype).transpose(1, 2)  # the gradient of merge_heads' input
        flash_attention.flash_attention_forward(q, k, v, lens, True, head_dim**-0.5)
        flash_attention.flash_attention_backward(grad, q, k, v, out, lse, lens, True, head_dim**-0.5)
    return run


def attention_decoding(dtype: torch.dtype) -> Callable[[], None]:
    """One sampling step with the KV cache: Tq = 1 query against 512 cached keys, slices of the cache's buffers."""
    def run() -> None:
        q, _, _ = attention_views(dtype, 1)
        cache = torch.zeros(2, 1, H, T, D, dtype=dtype)  # (layers, B, H, max_len, D), keys or values
        flash_attention.flash_attention_forward(q, cache[0, :, :, :512], cache[1, :, :, :512], None, True, D**-0.5)
    return run


def layer_norm(dtype: torch.dtype) -> Callable[[], None]:
    """LayerNorm forward and backward over (T, 768) with fp32 parameters (under autocast the residual is fp32)."""
    def run() -> None:
        x, w = torch.zeros(T, C, dtype=dtype), torch.ones(C)
        y, mean, rstd = layernorm.layer_norm_forward(x, w, torch.zeros(C), 1e-5)
        layernorm.layer_norm_backward(y, x, w, mean, rstd)
    return run


def row_softmax(dtype: torch.dtype) -> Callable[[], None]:
    """Softmax forward and backward over attention scores (H, T, T), as the materialised attention path uses it."""
    def run() -> None:
        x = torch.zeros(1, H, T, T, dtype=dtype)
        softmax.softmax_backward(x, softmax.softmax_forward(x))
    return run


GPT2_CASES: dict[str, Callable[[], None]] = {
    "attention bf16 causal": attention_training(torch.bfloat16, padded=False),
    "attention bf16 causal padded": attention_training(torch.bfloat16, padded=True),
    "attention bf16 decode Tq=1": attention_decoding(torch.bfloat16),
    "layernorm fp32 768": layer_norm(torch.float32),
    "layernorm bf16 768": layer_norm(torch.bfloat16),
    "softmax bf16 1024": row_softmax(torch.bfloat16),
}
EXTRA_CASES: dict[str, Callable[[], None]] = {
    "attention fp16 causal": attention_training(torch.float16, padded=False),
    "attention fp32 causal": attention_training(torch.float32, padded=False),
    "attention bf16 causal D=128": attention_training(torch.bfloat16, padded=False, head_dim=128),
    "attention fp32 causal D=128": attention_training(torch.float32, padded=False, head_dim=128),
}
# The CI subset: one candidate of each kernel that GPT-2 training runs, the quickest to compile.
CI_SUBSET = {
    ("attention bf16 causal", "_attn_fwd"): "BLOCK_M=64 BLOCK_N=64 warps=4 stages=3",
    ("attention bf16 causal", "_attn_bwd_delta"): "BLOCK_M=64 warps=8 stages=3",
    ("attention bf16 causal", "_attn_bwd_kv"): "BLOCK_M=16 BLOCK_N=64 warps=4 stages=3",
    ("attention bf16 causal", "_attn_bwd_q"): "BLOCK_M=16 BLOCK_N=64 warps=4 stages=3",
    ("layernorm fp32 768", "_layer_norm_fwd"): "BLOCK_M=4 BLOCK_N=1024 warps=4 stages=3",
    ("layernorm fp32 768", "_layer_norm_bwd"): "BLOCK_M=4 BLOCK_N=1024 warps=4 stages=3",
    ("softmax bf16 1024", "_softmax_fwd"): "BLOCK_M=4 BLOCK_N=1024 warps=4 stages=3",
}


def cannot_compile_for_cuda() -> str:
    """Why this Triton build cannot compile for sm_90 here ('' if it can): no NVIDIA backend, or no ptxas."""
    try:
        make_backend(TARGET)
        ptxas = knobs.nvidia.ptxas.path
    except Exception as error:
        return f"this Triton build has no usable NVIDIA backend ({type(error).__name__}: {error})"
    if not ptxas or not Path(ptxas).is_file():
        return f"ptxas is missing (looked for {ptxas!r}; it ships with Triton's NVIDIA backend, or set TRITON_PTXAS_PATH)"
    return ""


def describe(kwargs: dict) -> str:
    """Tile sizes, warps and stages of one candidate, e.g. 'BLOCK_M=64 BLOCK_N=64 warps=4 stages=3'."""
    tiles = [f"{k}={kwargs[k]}" for k in ("BLOCK_M", "BLOCK_N") if k in kwargs]
    return " ".join(tiles + [f"warps={kwargs.get('num_warps', 4)}", f"stages={kwargs.get('num_stages', 3)}"])


def jobs_for(cases: dict[str, Callable[[], None]]) -> list[tuple[Launch, dict]]:
    """Every (launch, candidate) pair: each autotuning candidate that survives the kernel's own pruning."""
    jobs = []
    for case, run in cases.items():
        launches: list[Launch] = []
        with caught_launches(case, launches):
            run()
        for launch in launches:
            if isinstance(launch.kernel, Autotuner):
                configs = launch.kernel.configs
                if launch.kernel.early_config_prune:
                    named = dict(zip(launch.kernel.arg_names, launch.args))
                    configs = launch.kernel.early_config_prune(configs, named, **launch.kwargs)
                jobs += [(launch, {**launch.kwargs, **config.all_kwargs()}) for config in configs]
            else:
                jobs.append((launch, dict(launch.kwargs)))
    return jobs


def resource_usage(cubin: bytes) -> tuple[int, int]:
    """(registers per thread, spill bytes = local memory + stack frame) of a cubin, read by cuobjdump."""
    with tempfile.NamedTemporaryFile(suffix=".cubin") as file:
        file.write(cubin)
        file.flush()
        report = subprocess.run([knobs.nvidia.cuobjdump.path, "-res-usage", file.name], capture_output=True,
                                text=True, check=True).stdout
    usage = dict(re.findall(r"\b(REG|STACK|LOCAL):(\d+)", report))
    return int(usage["REG"]), int(usage["STACK"]) + int(usage["LOCAL"])


def compile_for_sm90(launch: Launch, kwargs: dict) -> Result:
    """Compile one candidate for sm_90 exactly as ``JITFunction.run`` would specialise it on that GPU."""
    fn = launch.kernel.fn if isinstance(launch.kernel, Autotuner) else launch.kernel
    config = describe(kwargs)
    backend = make_backend(TARGET)
    binder = create_function_from_signature(fn.signature, fn.params, backend)
    options = {"debug": False, **kwargs}
    bound, specialization, parsed = binder(*launch.args, **options)
    parsed, signature, constexprs, attrs = fn._pack_args(backend, options, bound, specialization, parsed)
    start = time.perf_counter()
    try:
        kernel = triton.compile(ASTSource(fn, signature, constexprs, attrs), target=TARGET, options=parsed.__dict__)
    except Exception as error:  # a candidate that does not compile is a finding, not a crash of the tool
        return Result(launch.case, launch.name, config, 0, 0, 0, time.perf_counter() - start,
                      f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}")
    seconds = time.perf_counter() - start
    registers, spills = resource_usage(kernel.asm["cubin"])
    return Result(launch.case, launch.name, config, registers, spills, kernel.metadata.shared, seconds)


_JOBS: list[tuple[Launch, dict]] = []  # inherited by forked workers


def _compile_job(index: int) -> Result:
    return compile_for_sm90(*_JOBS[index])


def compile_all(jobs: list[tuple[Launch, dict]], workers: int) -> list[Result]:
    """Compile every job, ``workers`` at a time, with one progress line per finished compile on stderr."""
    _JOBS[:] = jobs
    results = []
    with contextlib.ExitStack() as stack:
        if workers > 1:
            pool = stack.enter_context(ProcessPoolExecutor(workers, mp_context=get_context("fork")))
            finished = pool.map(_compile_job, range(len(jobs)))
        else:
            finished = map(_compile_job, range(len(jobs)))
        for result in finished:
            results.append(result)
            print(f"[{len(results)}/{len(jobs)}] {result.case} {result.kernel} {result.config}: "
                  f"{result.seconds:.1f} s", file=sys.stderr, flush=True)
    return results


def table(results: list[Result]) -> str:
    header = ("case", "kernel", "config", "regs", "spill B", "shared B", "seconds", "verdict")
    rows = [(r.case, r.kernel, r.config, str(r.registers), str(r.spill_bytes), f"{r.shared_bytes:,}",
             f"{r.seconds:.1f}", "ok" if r.ok else (r.error or "SPILLS" if r.spill_bytes else r.error or "SHARED"))
            for r in results]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = [" | ".join(cell.ljust(w) for cell, w in zip(row, widths)) for row in [header, *rows]]
    return "\n".join([lines[0], "-+-".join("-" * w for w in widths), *lines[1:]])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subset", choices=["gpt2", "ci"], default="gpt2",
                        help="gpt2: every candidate GPT-2 124M training and sampling launch (default); ci: one "
                             "quick candidate per training kernel, for the test suite")
    parser.add_argument("--extra", action="store_true",
                        help="also fp16, fp32 and head dim 128 attention (what the autotune pruning must cover)")
    parser.add_argument("--jobs", type=int, default=1, help="compile this many candidates side by side")
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")
    parser.add_argument("--list", action="store_true",
                        help="only list the candidates (case, kernel, launch settings) as JSON, compile nothing")
    parser.add_argument("--keep-cache", action="store_true",
                        help="use Triton's usual cache (faster reruns; compile seconds then measure cache hits)")
    args = parser.parse_args(argv)
    if args.list:
        cases = {**GPT2_CASES, **(EXTRA_CASES if args.extra else {})}
        plain = (int, float, str, bool, type(None))
        listed = [{"case": launch.case, "kernel": launch.name,
                   "meta": {k: v for k, v in kw.items() if isinstance(v, plain)}} for launch, kw in jobs_for(cases)]
        print(json.dumps(listed))
        return 0
    reason = cannot_compile_for_cuda()
    if reason:
        print(f"compile_sm90: cannot compile for CUDA here: {reason}", file=sys.stderr)
        return 3
    cases = {**GPT2_CASES, **(EXTRA_CASES if args.extra else {})}
    jobs = jobs_for(cases)
    if args.subset == "ci":
        jobs = [(launch, kw) for launch, kw in jobs if CI_SUBSET.get((launch.case, launch.name)) == describe(kw)]
        missing = set(CI_SUBSET.items()) - {((launch.case, launch.name), describe(kw)) for launch, kw in jobs}
        if missing:
            print(f"compile_sm90: the CI subset names candidates the kernels no longer have: {sorted(missing)}",
                  file=sys.stderr)
            return 2
    with tempfile.TemporaryDirectory() as cache:
        if not args.keep_cache:
            knobs.cache.dir = cache
        print(f"compiling {len(jobs)} kernel configurations for sm_90 (triton {triton.__version__}, "
              f"{args.jobs} at a time)", file=sys.stderr, flush=True)
        results = compile_all(jobs, args.jobs)
    print(table(results))
    if args.json:
        args.json.write_text(json.dumps({"triton": triton.__version__, "target": "sm_90",
                                         "max_shared_bytes": SM90_MAX_SHARED_BYTES,
                                         "results": [{**asdict(r), "ok": r.ok} for r in results]}, indent=1))
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
