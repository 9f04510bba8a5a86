"""GPU check, one GPT-2 (124M) training step: the fast path against the torch path, eager and ``torch.compile``d.

    fast    attention="fast" (our flash attention), layernorm="fast" (our LayerNorm)
    torch   attention="torch_sdpa" (F.scaled_dot_product_attention), layernorm="torch" (F.layer_norm)

The model is the ``gpt2-owt`` preset's (GPT-2 small, vocabulary padded to 50,304) and a step is one of the preset's
micro-steps with the optimizer step after it: forward and loss under bfloat16 autocast, backward, fused AdamW
(``scratchformers.train.optim.make_optimizer``), at batch 12 x 1024 tokens of random ids. Each variant is built fresh,
runs a few warm-up steps (the first compiles and autotunes: reported as ``first_steps_s``), then timed steps; the
median step time gives tokens/s and MFU, ``torch.cuda.max_memory_allocated`` the peak memory.

MFU follows ``scratchformers.train.metrics``: 6·N + 12·L·T·C FLOPs per token (N counts the matmul weights: the
non-embedding parameters plus the token table, which is also the LM head) against the GPU's dense bf16 peak.
"""
from __future__ import annotations

import contextlib
import dataclasses
import statistics
import time
from collections.abc import Callable, Iterator

import torch

from harness import DRY_MODEL, PRESET, Harness, Settings, free_memory

NAME = "model"
PATHS = {"torch": dict(attention="torch_sdpa", layernorm="torch"), "fast": dict(attention="fast", layernorm="fast")}
VARIANTS = (("torch", False), ("fast", False), ("torch", True), ("fast", True))  # (path, compiled), in run order
WARMUP_STEPS, TIMED_STEPS = 3, 10


def variant_name(path: str, compiled: bool) -> str:
    return f"{path}-{'compiled' if compiled else 'eager'}"


def preset_shapes(s: Settings) -> tuple[object, int]:
    """The preset's model configuration and micro-batch size (the dry run: one tiny layer, batch 2)."""
    from scratchformers.train.config import get_train_config

    dry = dict(DRY_MODEL, vocab_size=256, batch_size=2) if s.dry_run else {}
    train = get_train_config(PRESET, **dry)
    return train.model_config(vocab_size=train.vocab_size), train.batch_size


def build(s: Settings, path: str) -> tuple[torch.nn.Module, torch.optim.Optimizer, object, int]:
    """A fresh model of the preset on ``path`` (seeded), its optimizer, its config and the batch size."""
    from scratchformers.reference.model import GPT
    from scratchformers.train.optim import make_optimizer

    config, batch = preset_shapes(s)
    config = dataclasses.replace(config, **PATHS[path])
    torch.manual_seed(0)
    model = GPT(config).to(s.device)
    optimizer = make_optimizer(model, 6e-4, config.weight_decay, device_type=s.device.type)
    return model, optimizer, config, batch


def compile_backend(s: Settings) -> str:
    """Inductor on the GPU; the dry run only traces (``eager``), as Inductor on CPU takes minutes."""
    return "eager" if s.dry_run else "inductor"


@contextlib.contextmanager
def tf32_matmuls() -> Iterator[None]:
    """TF32 tensor cores for whatever autocast leaves in float32, as the trainer sets them (and so does every
    compile-ahead worker: Inductor's cache key includes the setting)."""
    precision = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("high")
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(precision)


def matmul_flops_per_token(model, config) -> float:
    """Training FLOPs per token of ``model``, as the training log counts them."""
    from scratchformers.train.metrics import flops_per_token

    matmul_params = model.num_parameters(non_embedding=True) + model.transformer.wte.weight.numel()
    return flops_per_token(matmul_params, config.num_layers, config.max_len, config.emb_dim)


@tf32_matmuls()
def train_steps(s: Settings, path: str, compiled: bool, warmup_steps: int, timed_steps: int,
                evaluate: bool = False) -> dict:
    """Build a fresh model and optimizer, run ``warmup_steps`` then ``timed_steps`` training steps; the numbers.
    ``evaluate``: also run one forward in eval mode without gradients, as the trainer's evaluation does (the
    compile-ahead job uses it to compile that graph too)."""
    from scratchformers.train.metrics import peak_flops

    device = s.device
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    model, optimizer, config, B = build(s, path)
    T = config.max_len
    forward = torch.compile(model, backend=compile_backend(s)) if compiled else model
    tokens = torch.randint(config.vocab_size, (B, T + 1), device=device)
    x, y = tokens[:, :-1].contiguous(), tokens[:, 1:].contiguous()

    def step() -> torch.Tensor:
        with torch.autocast(device.type, dtype=torch.bfloat16):
            _, loss = forward(x, y)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss

    start = time.monotonic()
    for _ in range(warmup_steps):
        loss = step()
    loss = loss.item()  # waits for the device
    first_steps_s = time.monotonic() - start
    if evaluate:
        forward.eval()
        with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16):
            forward(x, y)
        forward.train()
    step_ms = [_timed(step, device) for _ in range(timed_steps)]
    per_token = matmul_flops_per_token(model, config)
    peak = peak_flops(device)
    result = dict(batch=B, seq_len=T, params=model.num_parameters(), compile_backend=compile_backend(s) if compiled
                  else None, first_steps_s=first_steps_s, loss=loss, flops_per_token=per_token)
    if step_ms:
        ms = statistics.median(step_ms)
        result.update(ms_per_step=ms, tokens_per_s=B * T / ms * 1e3,
                      mfu=per_token * B * T / (ms / 1e3) / peak if peak else None)
    if device.type == "cuda":
        result["peak_memory_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
    return result


def _timed(step: Callable[[], torch.Tensor], device: torch.device) -> float:
    """Milliseconds of one step: CUDA events around it on a GPU (no host sync inside), a wall clock on CPU."""
    if device.type != "cuda":
        start = time.perf_counter()
        step()
        return 1e3 * (time.perf_counter() - start)
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    step()
    end.record()
    end.synchronize()
    return start.elapsed_time(end)


def run(h: Harness, rows: list[dict]) -> None:
    """Every variant into ``rows``: eager ones first (cheap), compiled ones if the budget allows."""
    warmup, timed = (1, 1) if h.settings.dry_run else (WARMUP_STEPS, TIMED_STEPS)
    for path, compiled in VARIANTS:
        row = dict(variant=variant_name(path, compiled), path=path, compiled=compiled, **PATHS[path])
        h.record(rows, row, lambda path=path, compiled=compiled: train_steps(h.settings, path, compiled, warmup, timed),
                 needs_s=30.0 if compiled and not h.settings.dry_run else 0.0)
        done = row["status"] == "ok"
        h.log(f"model {row['variant']}: " + (f"{row['tokens_per_s']:,.0f} tokens/s, {row['first_steps_s']:.1f} s of "
                                             "warm-up steps" if done else row["status"]))
        if compiled:
            torch._dynamo.reset()
        free_memory()


def warm_jobs(s: Settings) -> dict[str, Callable[[], None]]:
    """Compile-ahead jobs: one step of each compiled variant (Inductor's graphs; the fast one also compiles the
    eval-mode graph that the trainer's evaluation runs). The eager variants run kernels that the attention and
    LayerNorm jobs compile."""
    def job(path: str) -> None:
        train_steps(s, path, True, warmup_steps=1, timed_steps=0, evaluate=path == "fast")

    return {f"model-{variant_name(path, True)}": (lambda path=path: job(path)) for path in ("fast", "torch")}
