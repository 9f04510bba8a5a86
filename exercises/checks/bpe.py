"""The checks of the word-BPE exercise: ``get_stats(vocab)`` and ``merge_vocab(pair, vocab)`` over space-separated
symbols ending in ``</w>``, against the library's reference and the worked example of Sennrich et al. (2016)."""
from __future__ import annotations

import re

from hypothesis import strategies as st

from scratchformers.exercises.checks.core import Check, Exercise, Mistake, expect_equal, failing_case, for_all
from scratchformers.exercises.checks.strategies import bpe_vocabs
from scratchformers.reference import bpe

# The example of Sennrich, Haddow and Birch (2016): "low" 5 times, "lower" 2, "newest" 6, "widest" 3.
EXAMPLE_COUNTS = {"low": 5, "lower": 2, "newest": 6, "widest": 3}
EXAMPLE_CORPUS = " ".join(word for word, n in EXAMPLE_COUNTS.items() for _ in range(n))
# Derived by hand from the counts; the merges possible before every word is one symbol.
EXAMPLE_MERGES = [
    ("e", "s"), ("es", "t"), ("est", "</w>"),  # 9 each: newest (6) + widest (3); ties go to the smallest pair
    ("l", "o"), ("lo", "w"),  # 7: low (5) + lower (2)
    ("e", "w"), ("ew", "est</w>"), ("n", "ewest</w>"),  # 6: newest
    ("low", "</w>"),  # 5: low
    ("d", "est</w>"), ("i", "dest</w>"), ("w", "idest</w>"),  # 3: widest
    ("e", "r"), ("er", "</w>"), ("low", "er</w>"),  # 2: lower
]
# Whole symbols only: ("e", "s") must not glue "e" to the "s" of "st", nor the "e" of "ne" to "s".
BOUNDARY_VOCAB = {"n e w e st </w>": 1, "n e s </w>": 2, "ne s </w>": 3, "e s es </w>": 4}


def example_stats(learner):
    vocab = bpe.build_vocab(EXAMPLE_CORPUS)
    with failing_case(vocab=vocab):
        expect_equal("get_stats(vocab)", dict(learner.get_stats(dict(vocab))), bpe.get_stats(vocab))


def overlapping_pairs(learner):
    with failing_case(vocab={"a a a </w>": 2}):
        expect_equal("get_stats(vocab)", dict(learner.get_stats({"a a a </w>": 2})), {("a", "a"): 4, ("a", "</w>"): 2})


@for_all(vocab=bpe_vocabs)
def random_stats(learner, vocab):
    with failing_case(vocab=vocab):
        expect_equal("get_stats(vocab)", dict(learner.get_stats(dict(vocab))), bpe.get_stats(vocab))


def whole_symbols(learner):
    with failing_case(pair=("e", "s"), vocab=BOUNDARY_VOCAB):
        expect_equal("merge_vocab(pair, vocab)", learner.merge_vocab(("e", "s"), dict(BOUNDARY_VOCAB)),
                     bpe.merge_vocab(("e", "s"), BOUNDARY_VOCAB))


@for_all(vocab=bpe_vocabs, choice=st.integers(0, 100))
def random_merges(learner, vocab, choice):
    pairs = sorted(bpe.get_stats(vocab))
    if not pairs:
        return
    pair = pairs[choice % len(pairs)]
    with failing_case(pair=pair, vocab=vocab):
        expect_equal("merge_vocab(pair, vocab)", learner.merge_vocab(pair, dict(vocab)), bpe.merge_vocab(pair, vocab))


def learned_merges(learner):
    vocab = bpe.build_vocab(EXAMPLE_CORPUS)
    merges = []
    with failing_case(corpus=EXAMPLE_CORPUS):
        for _ in EXAMPLE_MERGES:
            stats = learner.get_stats(dict(vocab))
            if not stats:
                break
            pair = bpe.best_pair(stats)
            vocab = learner.merge_vocab(pair, vocab)
            merges.append(pair)
        expect_equal("the merges learned with your functions", merges, EXAMPLE_MERGES)


def _stats(vocab, weighted=True, once=False):
    pairs = {}
    for word, count in vocab.items():
        symbols = word.split()
        found = set(zip(symbols, symbols[1:])) if once else list(zip(symbols, symbols[1:]))
        for pair in found:
            pairs[pair] = pairs.get(pair, 0) + (count if weighted else 1)
    return pairs


def _merge(pair, vocab, whole=True, first_only=False):
    merged = "".join(pair)
    if not whole:
        return {word.replace(" ".join(pair), merged): count for word, count in vocab.items()}
    pattern = re.compile(r"(?<!\S)" + re.escape(" ".join(pair)) + r"(?!\S)")
    return {pattern.sub(merged, word, count=1 if first_only else 0): count for word, count in vocab.items()}


_VOCABS = ({"l o w </w>": 5, "l o w e r </w>": 2, "a a a a </w>": 3, "b a b a </w>": 4},
           {"n e w e s t </w>": 6, "w i d e s t </w>": 3})

EXERCISE = Exercise(
    name="bpe",
    summary="get_stats(vocab) and merge_vocab(pair, vocab): classic word BPE over symbols ending in </w>",
    signatures=("get_stats(vocab)", "merge_vocab(pair, vocab)"),
    checks=(
        Check("get_stats on the example vocabulary (low 5, lower 2, newest 6, widest 3)", example_stats,
              "count every adjacent pair of symbols (word.split()), adding the word's count for each occurrence"),
        Check("get_stats counts overlapping pairs: {'a a a </w>': 2} has ('a', 'a') 4 times", overlapping_pairs,
              "every adjacent pair counts, overlapping ones too: zip(symbols, symbols[1:])"),
        Check("get_stats on random vocabularies", random_stats,
              "count every adjacent pair of every word, weighted by the word's count"),
        Check("merge_vocab merges whole symbols only ('e s' inside 'e st' or 'ne s' stays)", whole_symbols,
              "replace the two symbols only where each is a whole symbol, i.e. bounded by spaces or the string's "
              "ends: re.sub(r'(?<!\\S)' + re.escape('e s') + r'(?!\\S)', 'es', word), or split and scan"),
        Check("merge_vocab on random vocabularies and pairs", random_merges,
              "merge every occurrence of the pair in every word, left to right, keeping each word's count"),
        Check("15 merges with your functions (and the library's tie-break) give the worked example's list",
              learned_merges, "get_stats and merge_vocab must agree with each other: merge exactly the pairs counted"),
    ),
    mistakes=(
        Mistake("each pair counted once per word, not weighted by the word's count",
                "add the word's count, not 1: pairs[a, b] += count",
                {"get_stats": lambda v: _stats(v, weighted=False)}),
        Mistake("a pair that occurs twice in a word counted once (a set of pairs)",
                "count every occurrence: iterate over zip(symbols, symbols[1:]), not over a set of it",
                {"get_stats": lambda v: _stats(v, once=True)}),
        Mistake("merged by plain substring replacement, which glues parts of neighbouring symbols",
                "match whole symbols only: (?<!\\S) and (?!\\S) around the escaped pair, or split into symbols and "
                "scan them", {"merge_vocab": lambda pair, v: _merge(pair, v, whole=False)}),
        Mistake("only the first occurrence of the pair merged in each word",
                "merge every occurrence, left to right (re.sub replaces them all by default)",
                {"merge_vocab": lambda pair, v: _merge(pair, v, first_only=True)}),
    ),
    probes=(*(("get_stats", lambda f, v=v: dict(f.get_stats(dict(v)))) for v in _VOCABS),
            ("merge_vocab", lambda f: f.merge_vocab(("e", "s"), dict(BOUNDARY_VOCAB))),
            ("merge_vocab", lambda f: f.merge_vocab(("a", "a"), {"a a a a </w>": 3, "b a a </w>": 1})),
            ("merge_vocab", lambda f: f.merge_vocab(("e", "s"), {"n e w e s t </w>": 6, "e s e s </w>": 2}))),
)
