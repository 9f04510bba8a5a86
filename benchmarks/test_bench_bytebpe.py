"""Byte-level BPE speed: reference vs fast training, pure-Python vs tiktoken encoding, side by side.

Run with ``pytest benchmarks/test_bench_bytebpe.py --benchmark-group-by=group``; each group's ``Min`` column gives
the ratio. ``SCRATCHFORMERS_BENCH_QUICK=1`` shrinks the inputs so the file runs in a few seconds (a smoke test).

- ``bytebpe-train``: ``vocab_size`` 512 (256 merges) on the first 200,000 characters of tiny Shakespeare.
- ``bytebpe-encode``: the real GPT-2 vocabulary on 100,000 characters of Shakespeare: the pure-Python reference,
  the fast class (tiktoken behind the reference's checks) and tiktoken's own ``gpt2`` encoding.
"""
from __future__ import annotations

import os

import pytest

from scratchformers import gpt2_encoding
from scratchformers.fast.bytebpe import ByteLevelBPE as FastBPE
from scratchformers.reference.bytebpe import ByteLevelBPE as ReferenceBPE
from scratchformers.train.data import shakespeare

QUICK = os.environ.get("SCRATCHFORMERS_BENCH_QUICK") == "1"
TRAIN_CHARS, TRAIN_VOCAB = (20_000, 300) if QUICK else (200_000, 512)
ENCODE_CHARS = 10_000 if QUICK else 100_000


@pytest.fixture(scope="module")
def train_text() -> str:
    return shakespeare("tiny")[:TRAIN_CHARS]


@pytest.fixture(scope="module")
def encode_text() -> str:
    return shakespeare("full")[2_000_000 : 2_000_000 + ENCODE_CHARS]


@pytest.mark.benchmark(group="bytebpe-train")
@pytest.mark.parametrize(
    ("cls", "rounds"), [pytest.param(ReferenceBPE, 2, id="reference"), pytest.param(FastBPE, 10, id="fast")]
)
def test_bench_train(benchmark, train_text, cls, rounds):
    def train() -> ReferenceBPE:
        tokenizer = cls()
        tokenizer.train(train_text, TRAIN_VOCAB)
        return tokenizer

    tokenizer = benchmark.pedantic(train, rounds=rounds, iterations=1)
    assert tokenizer.vocab_size == TRAIN_VOCAB


@pytest.fixture(scope="module")
def gpt2_encoders() -> dict:
    return {
        "reference": ReferenceBPE.from_gpt2().encode,
        "fast": FastBPE.from_gpt2().encode,
        "tiktoken": gpt2_encoding().encode,
    }


@pytest.mark.benchmark(group="bytebpe-encode")
@pytest.mark.parametrize("name", ["reference", "fast", "tiktoken"])
def test_bench_encode_gpt2(benchmark, gpt2_encoders, encode_text, name):
    ids = benchmark.pedantic(gpt2_encoders[name], args=(encode_text,), rounds=10, iterations=1, warmup_rounds=1)
    assert ids == gpt2_encoding().encode(encode_text)
