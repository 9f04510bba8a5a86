"""GPU check, the step timer: one GPT-2 (124M) training step, the fast path against the torch path, eager and
``torch.compile``d, with each optimizer of :data:`OPTIMIZERS`.

    fast    attention="fast" (our flash attention), layernorm="fast" (our LayerNorm)
    torch   attention="torch_sdpa" (F.scaled_dot_product_attention), layernorm="torch" (F.layer_norm)

The model is the ``gpt2-owt`` preset's (GPT-2 small, vocabulary padded to 50,304) and a step is one of the preset's
micro-steps with the optimizer step after it: forward and loss under bfloat16 autocast, backward, the optimizer as the
trainer builds it from the preset (fused AdamW), at batch 12 x 1024 tokens of random ids. Each row builds a fresh
model and optimizer, runs a few warm-up steps (the first compiles and autotunes: reported as ``first_steps_s``), then
timed steps, CUDA events around each; the median step time gives tokens/s and MFU, ``torch.cuda.max_memory_allocated``
the peak memory. The eager variants run first (seconds each), then the compiled ones (a cold Inductor compile of
GPT-2 takes a minute or so; its cache then serves the trainer's runs, which compile the same graph).

MFU follows ``scratchformers.train.metrics``: 6·N + 12·L·T·C FLOPs per token (N: ``metrics.matmul_parameters``)
against the GPU's dense bf16 peak. Its 12·L·T·C counts the full T x T attention although the model is causal (PaLM's
and nanoGPT's convention, as the training log's MFU), unlike the attention section's causal TFLOP/s, which count half.

    python benchmarks/gpu/bench_train_step.py           # this section alone on a CUDA GPU, its table at the end
"""
from __future__ import annotations

import contextlib
import dataclasses
import statistics
import sys
import time
from collections.abc import Callable, Iterator

import torch

from harness import DRY_MODEL, PRESET, Harness, Settings, free_memory, section_main

NAME = "model"
PATHS = {"torch": dict(attention="torch_sdpa", layernorm="torch"), "fast": dict(attention="fast", layernorm="fast")}
VARIANTS = (("fast", False), ("torch", False), ("fast", True), ("torch", True))  # (path, compiled), in run order
# The optimizers timed, by name: the TrainConfig overrides that choose each. Muon (the blocks' matrices; AdamW for the
# rest) is timed on the eager variants only: torch.compile compiles the model, not the optimizer step, so a compiled
# variant would add the same optimizer time again.
OPTIMIZERS: dict[str, dict] = {"adamw": {}, "muon": {"optimizer": "muon"}}
WARMUP_STEPS, TIMED_STEPS = 3, 10
COMPILE_NEEDS_S = 60.0  # section time a compiled row must find left to start: a cold Inductor compile of GPT-2


def variant_name(path: str, compiled: bool) -> str:
    return f"{path}-{'compiled' if compiled else 'eager'}"


def train_config(s: Settings, optimizer: str) -> object:
    """The preset's TrainConfig with ``optimizer``'s overrides (the dry run: one tiny layer, batch 2)."""
    from scratchformers.train.config import get_train_config

    dry = dict(DRY_MODEL, vocab_size=256, batch_size=2) if s.dry_run else {}
    return get_train_config(PRESET, **dry, **OPTIMIZERS[optimizer])


def build(s: Settings, path: str, optimizer: str) -> tuple[torch.nn.Module, torch.optim.Optimizer, object, int]:
    """A fresh model of the preset on ``path`` (seeded), its optimizer made as the trainer makes it (the same call as
    in ``Trainer.__init__``), its model config and the batch size."""
    from scratchformers.reference.model import GPT
    from scratchformers.train.optim import make_optimizer

    train = train_config(s, optimizer)
    config = dataclasses.replace(train.model_config(vocab_size=train.vocab_size), **PATHS[path])
    torch.manual_seed(0)
    model = GPT(config).to(s.device)
    made = make_optimizer(model, train.learning_rate, train.weight_decay, (train.beta1, train.beta2), s.device.type,
                          train.optimizer, train.muon_learning_rate, train.muon_momentum, train.muon_weight_decay)
    return model, made, config, train.batch_size


def compile_backend(s: Settings) -> str:
    """Inductor on the GPU; the dry run only traces (``eager``), as Inductor on CPU takes minutes."""
    return "eager" if s.dry_run else "inductor"


@contextlib.contextmanager
def tf32_matmuls() -> Iterator[None]:
    """TF32 tensor cores for whatever autocast leaves in float32, as the trainer sets them (Inductor's cache key
    includes the setting: the trainer's runs find this section's graphs only if it matches)."""
    precision = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("high")
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(precision)


@tf32_matmuls()
def train_steps(s: Settings, path: str, compiled: bool, optimizer: str, warmup_steps: int, timed_steps: int) -> dict:
    """Build a fresh model and optimizer, run ``warmup_steps`` then ``timed_steps`` training steps; the numbers."""
    from scratchformers.train.metrics import flops_per_token, matmul_parameters, peak_flops

    device = s.device
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    model, opt, config, B = build(s, path, optimizer)
    T = config.max_len
    forward = torch.compile(model, backend=compile_backend(s)) if compiled else model
    tokens = torch.randint(config.vocab_size, (B, T + 1), device=device)
    x, y = tokens[:, :-1].contiguous(), tokens[:, 1:].contiguous()

    def step() -> torch.Tensor:
        with torch.autocast(device.type, dtype=torch.bfloat16):
            _, loss = forward(x, y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss

    start = time.monotonic()
    for _ in range(warmup_steps):
        loss = step()
    loss = loss.item()  # waits for the device
    first_steps_s = time.monotonic() - start
    step_ms = [_timed(step, device) for _ in range(timed_steps)]
    per_token = flops_per_token(matmul_parameters(model), config.num_layers, config.max_len, config.emb_dim)
    peak = peak_flops(device)
    ms = statistics.median(step_ms)
    result = dict(batch=B, seq_len=T, params=model.num_parameters(), compile_backend=compile_backend(s) if compiled
                  else None, first_steps_s=first_steps_s, loss=loss, flops_per_token=per_token, ms_per_step=ms,
                  tokens_per_s=B * T / ms * 1e3, mfu=per_token * B * T / (ms / 1e3) / peak if peak else None)
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
    """Every variant with every optimizer into ``rows``: eager ones first (cheap), compiled ones if the time allows."""
    warmup, timed = (1, 1) if h.settings.dry_run else (WARMUP_STEPS, TIMED_STEPS)
    for path, compiled in VARIANTS:
        for optimizer in [name for name in OPTIMIZERS if name == "adamw" or not compiled]:
            row = dict(variant=variant_name(path, compiled), path=path, compiled=compiled, optimizer=optimizer,
                       **PATHS[path])
            h.record(rows, row, lambda: train_steps(h.settings, path, compiled, optimizer, warmup, timed),
                     needs_s=COMPILE_NEEDS_S if compiled and not h.settings.dry_run else 0.0)
            h.log(f"model {row['variant']} {optimizer}: " + (
                f"{row['tokens_per_s']:,.0f} tokens/s, {row['first_steps_s']:.1f} s of warm-up steps"
                if row["status"] == "ok" else row["status"]))
            if compiled:
                torch._dynamo.reset()
            free_memory()


if __name__ == "__main__":
    sys.exit(section_main(NAME, run))
