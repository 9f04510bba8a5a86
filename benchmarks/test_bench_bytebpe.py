"""Byte-level BPE speed: reference vs fast training, pure-Python vs tiktoken encoding, side by side.

Run with ``pytest benchmarks/test_bench_bytebpe.py --benchmark-group-by=group``; each group's ``Min`` column gives
the ratio. ``SCRATCHFORMERS_BENCH_QUICK=1`` shrinks the inputs so the file runs in a few seconds (a smoke test).

- ``bytebpe-train``: ``vocab_size`` 512 (256 merges) on the first 200,000 characters of tiny Shakespeare.
- ``bytebpe-encode``: the real GPT-2 vocabulary on 100,000 characters of Shakespeare: the pure-Python reference,
  the fast class (tiktoken behind the reference's checks) and tiktoken's own ``gpt2`` encoding.
- ``bytebpe-growth-<input>-<encoder>``: how each encoder's time grows with its input, measured at two sizes ten
  times apart, so the group's ratio is the growth (10× linear, 100× quadratic). ``prose`` is Shakespeare, 10 KB and
  100 KB for both encoders: the split regex cuts it into short chunks. ``one-chunk`` is Shakespeare's letters with
  everything else removed, which the regex keeps as one chunk: the reference encoder rescans the whole chunk after
  every merge (quadratic), so it is measured at 1 KB and 10 KB (100 KB would take ~100x the 10 KB time), the fast
  encoder at 10 KB and 100 KB.
"""
from __future__ import annotations

import os

import regex

import pytest

from scratchformers import gpt2_encoding
from scratchformers.fast.bytebpe import ByteLevelBPE as FastBPE
from scratchformers.reference.bytebpe import ByteLevelBPE as ReferenceBPE
from scratchformers.train.data import shakespeare

QUICK = os.environ.get("SCRATCHFORMERS_BENCH_QUICK") == "1"
TRAIN_CHARS, TRAIN_VOCAB = (20_000, 300) if QUICK else (200_000, 512)
ENCODE_CHARS = 10_000 if QUICK else 100_000
SCALE = 10 if QUICK else 1  # quick mode divides every growth size by ten
GROWTH_SIZES = {  # (input, encoder): the two sizes, in characters (= bytes: the inputs are ASCII)
    ("prose", "reference"): (10_000, 100_000),
    ("prose", "fast"): (10_000, 100_000),
    ("one-chunk", "reference"): (1_000, 10_000),
    ("one-chunk", "fast"): (10_000, 100_000),
}
GROWTH_CASES = [
    pytest.param(kind, encoder, size // SCALE, id=f"{kind}-{encoder}-{size / SCALE / 1000:g}KB")
    for (kind, encoder), sizes in GROWTH_SIZES.items()
    for size in sizes
]


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


@pytest.fixture(scope="module")
def growth_inputs() -> dict[str, str]:
    """ASCII prose, and ASCII letters only (one regex chunk), each at least 100,000 characters long."""
    prose = shakespeare("full")[2_000_000:2_200_000]
    prose = prose.encode("ascii", "ignore").decode()
    letters = regex.sub(r"[^A-Za-z]", "", shakespeare("full")[2_000_000:2_200_000])
    return {"prose": prose, "one-chunk": letters}


@pytest.mark.parametrize(("kind", "encoder", "size"), GROWTH_CASES)
def test_bench_encode_growth(benchmark, gpt2_encoders, growth_inputs, kind, encoder, size):
    text = growth_inputs[kind][:size]
    assert len(text) == size and (kind == "prose" or len(regex.findall(ReferenceBPE().pattern, text)) == 1)
    benchmark.group = f"bytebpe-growth-{kind}-{encoder}"
    benchmark.extra_info["bytes"] = size
    slow = encoder == "reference" and kind == "one-chunk" and size == max(GROWTH_SIZES[kind, encoder]) // SCALE
    ids = benchmark.pedantic(gpt2_encoders[encoder], args=(text,), rounds=1 if slow else 5, iterations=1)
    assert ids == gpt2_encoding().encode(text)
