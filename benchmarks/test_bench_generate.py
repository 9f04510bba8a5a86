"""KV cache speed-up: gpt-mini generating 256 tokens on the CPU, with and without the cache, side by side.

Run with ``pytest benchmarks/test_bench_generate.py --benchmark-group-by=group``; the ratio of the two ``Min``
columns is the speed-up. ``SCRATCHFORMERS_BENCH_QUICK=1`` generates 32 tokens instead (a smoke test).

The model is a randomly initialised gpt-mini (6 layers, 6 heads, 192 wide, GPT-2's 50,257-token vocabulary,
max_len 256), started from the single token ``<|endoftext|>`` as nanoGPT does for unconditional samples. Without
the cache step t re-runs all t tokens (and computes logits for every position), so the total work grows as T²;
with it each step runs one token. 1 + 256 tokens is one more than max_len, so the very last step of the cached
path slides the window and recomputes it in full, as documented in :mod:`scratchformers.reference.generate`.

Both run on one thread: a one-token decoding step is made of many tiny operations, and on a small shared machine
OpenMP's thread hand-offs then dominate and swing the timings by 10x. One thread measures the algorithm.
"""
from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import torch

from scratchformers.reference.gpt2_encoding import ENDOFTEXT_ID
from scratchformers.reference.config import get_config
from scratchformers.reference.generate import generate
from scratchformers.reference.model import GPT

QUICK = os.environ.get("SCRATCHFORMERS_BENCH_QUICK") == "1"
NEW_TOKENS = 32 if QUICK else 256


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def model() -> GPT:
    torch.manual_seed(0)
    return GPT(get_config("gpt-mini")).eval()


@pytest.fixture(scope="module")
def outputs() -> dict[bool, list[int]]:
    return {}


@pytest.mark.benchmark(group="generate-gpt-mini-cpu")
@pytest.mark.parametrize("use_cache", [pytest.param(True, id="kv-cache"), pytest.param(False, id="no-cache")])
def test_bench_generate(benchmark, model: GPT, outputs: dict[bool, list[int]], use_cache: bool) -> None:
    tokens = benchmark.pedantic(
        generate,
        args=(model, [ENDOFTEXT_ID], NEW_TOKENS),
        kwargs=dict(temperature=1.0, seed=0, use_cache=use_cache),
        rounds=3,
        iterations=1,
        warmup_rounds=0,
    )
    assert len(tokens) == 1 + NEW_TOKENS
    outputs[use_cache] = tokens
    if len(outputs) == 2:
        assert outputs[True] == outputs[False]  # the cache changes the speed, never the tokens
