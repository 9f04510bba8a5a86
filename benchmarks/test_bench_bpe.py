"""Word BPE training speed: the fast trainer against subword-nmt and Hugging Face ``tokenizers``, and the seed's
naive loop against the fast trainer.

    pytest benchmarks/test_bench_bpe.py                                   # 4000 merges on full Shakespeare
    SCRATCHFORMERS_BENCH_QUICK=1 pytest benchmarks/test_bench_bpe.py      # a 200 k-character slice: seconds

Groups (pytest-benchmark prints each group's times relative to its fastest member):

- ``word-bpe-train``: 4000 merges on the full corpus (5.06 M characters) with
  :class:`scratchformers.fast.bpe.WordBPE`, ``subword_nmt.learn_bpe.learn_bpe`` and a ``tokenizers`` BPE model
  (``WhitespaceSplit`` pre-tokenizer, ``</w>`` suffix, ``vocab_size`` = its initial alphabet + 4000 so that it
  learns exactly 4000 merges). All three count words split on whitespace and learn the same number of merges;
  their merge lists differ slightly because subword-nmt and ``tokenizers`` glue ``</w>`` to the last character
  instead of making it a symbol, and break ties differently. ``tokenizers`` is Rust and uses every core for
  counting; the other two are single-threaded Python.
- ``word-bpe-naive``: the reference (recount every pair after every merge) against the fast trainer on the tiny
  corpus, for 100 merges: the naive loop costs about the same for every merge, so 4000 merges take about 40 times
  as long.
"""
from __future__ import annotations

import io
import json
import os

import pytest

from scratchformers.fast import bpe as fast
from scratchformers.reference import bpe as reference
from scratchformers.train.data import shakespeare

QUICK = os.environ.get("SCRATCHFORMERS_BENCH_QUICK", "") not in ("", "0")
if QUICK:
    TEXT, MERGES, ROUNDS = shakespeare("tiny")[:200_000], 300, 2
    NAIVE_TEXT, NAIVE_MERGES = shakespeare("tiny")[:50_000], 10
else:
    TEXT, MERGES, ROUNDS = shakespeare("full"), 4000, 3
    NAIVE_TEXT, NAIVE_MERGES = shakespeare("tiny"), 100


def _run(benchmark, fn, rounds=ROUNDS):
    return benchmark.pedantic(fn, rounds=rounds, iterations=1, warmup_rounds=0)


@pytest.mark.benchmark(group="word-bpe-train")
def test_fast_word_bpe(benchmark):
    def train():
        tok = fast.WordBPE()
        tok.train(TEXT, MERGES)
        return tok

    tok = _run(benchmark, train)
    assert len(tok.merges) == MERGES
    benchmark.extra_info.update(corpus_chars=len(TEXT), merges=len(tok.merges), vocab_size=tok.vocab_size)


@pytest.mark.benchmark(group="word-bpe-train")
def test_subword_nmt(benchmark):
    learn_bpe = pytest.importorskip("subword_nmt.learn_bpe").learn_bpe

    def train():
        out = io.StringIO()
        learn_bpe(io.StringIO(TEXT), out, MERGES)
        return out.getvalue()

    codes = _run(benchmark, train)
    merges = codes.splitlines()[1:]  # the first line is a version header
    assert len(merges) == MERGES
    benchmark.extra_info.update(corpus_chars=len(TEXT), merges=len(merges))


def _hf_train(vocab_size: int):
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(end_of_word_suffix="</w>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, min_frequency=0, show_progress=False, end_of_word_suffix="</w>"
    )
    tok.train_from_iterator([TEXT], trainer=trainer)
    return json.loads(tok.to_str())["model"]


@pytest.mark.benchmark(group="word-bpe-train")
def test_hf_tokenizers(benchmark):
    pytest.importorskip("tokenizers")
    alphabet = len(_hf_train(1)["vocab"])  # vocab_size below the alphabet: no merges, just the initial alphabet
    model = _run(benchmark, lambda: _hf_train(alphabet + MERGES))
    assert len(model["merges"]) == MERGES
    benchmark.extra_info.update(corpus_chars=len(TEXT), merges=len(model["merges"]), vocab_size=len(model["vocab"]))


@pytest.mark.benchmark(group="word-bpe-naive")
def test_naive_reference_word_bpe(benchmark):
    merges = _run(benchmark, lambda: reference.learn_bpe(NAIVE_TEXT, NAIVE_MERGES), rounds=1)
    assert len(merges) == NAIVE_MERGES
    benchmark.extra_info.update(corpus_chars=len(NAIVE_TEXT), merges=NAIVE_MERGES)


@pytest.mark.benchmark(group="word-bpe-naive")
def test_fast_word_bpe_same_work_as_naive(benchmark):
    merges = _run(benchmark, lambda: fast.learn_bpe(NAIVE_TEXT, NAIVE_MERGES))
    assert len(merges) == NAIVE_MERGES  # the same list as the reference's: tests/test_bpe_fast.py
    benchmark.extra_info.update(corpus_chars=len(NAIVE_TEXT), merges=NAIVE_MERGES)
