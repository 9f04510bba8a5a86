"""The fast word-BPE trainer learns exactly the reference's merge list, and its tokenizer behaves the same."""
from __future__ import annotations

import warnings

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scratchformers.fast import bpe as fast
from scratchformers.reference import bpe as reference
from scratchformers.train.data import shakespeare


def learn_both(corpus, num_merges):
    """Both merge lists and both warnings (as strings)."""
    out = []
    for learn in (reference.learn_bpe, fast.learn_bpe):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            merges = learn(corpus, num_merges)
        out.append((merges, [str(w.message) for w in caught]))
    return out


# Small alphabets give many ties and repeated pairs ("a a a"); "<", "/", "w", ">" let merges spell "</w>" itself.
symbols = st.sampled_from(list("aabbc<>/wé日") + ["</w>"])
words = st.lists(symbols, min_size=1, max_size=10).map("".join)
separators = st.sampled_from([" ", "  ", "\n", "\t", " \r\n"])
corpora = st.lists(st.tuples(words, separators), min_size=1, max_size=30).map(
    lambda items: "".join(w + sep for w, sep in items)
)


@settings(max_examples=150, deadline=None)
@given(corpora, st.integers(0, 60))
def test_fast_merges_identical_to_reference(corpus, num_merges):
    (ref_merges, ref_warnings), (fast_merges, fast_warnings) = learn_both(corpus, num_merges)
    assert fast_merges == ref_merges
    assert fast_warnings == ref_warnings


@settings(max_examples=40, deadline=None)
@given(st.lists(corpora, min_size=1, max_size=3), st.integers(0, 30))
def test_fast_accepts_a_list_of_texts(texts, num_merges):
    (ref_merges, _), (fast_merges, _) = learn_both(texts, num_merges)
    assert fast_merges == ref_merges


def test_fast_merges_identical_on_shakespeare():
    text = shakespeare("tiny")[:200_000]
    merges = fast.learn_bpe(text, 200)
    assert len(merges) == 200
    assert merges == reference.learn_bpe(text, 200)


def test_fast_seed_example_and_early_stop():
    corpus = "low " * 5 + "lower " * 2 + "newest " * 6 + "widest " * 3
    with pytest.warns(UserWarning, match="only 15 of the 20"):
        merges = fast.learn_bpe(corpus, 20)
    assert merges[:3] == [("e", "s"), ("es", "t"), ("est", "</w>")]
    assert merges == reference.learn_bpe(corpus, 15)


@pytest.mark.parametrize(
    ("corpus", "num_merges", "error"),
    [("", 5, ValueError), ("  \n", 5, ValueError), (None, 5, TypeError), (["ok", 1], 5, TypeError),
     ("ok", -3, ValueError), ("ok", 1.0, TypeError)],
)
def test_fast_bad_input(corpus, num_merges, error):
    with pytest.raises(error):
        fast.learn_bpe(corpus, num_merges)
    with pytest.raises(error):
        fast.WordBPE().train(corpus, num_merges)


def test_fast_tokenizer_matches_reference(tmp_path):
    text = shakespeare("tiny")[:20_000]
    fast_tok, ref_tok = fast.WordBPE(), reference.WordBPE()
    fast_tok.train(text, 100)
    ref_tok.train(text, 100)
    assert isinstance(fast_tok, reference.WordBPE)
    assert fast_tok.id2token == ref_tok.id2token and fast_tok.merges == ref_tok.merges
    sample = shakespeare("tiny")[20_000:22_000]
    assert fast_tok.encode(sample) == ref_tok.encode(sample)
    fast_tok.save(tmp_path / "bpe.json")
    loaded = reference.WordBPE.load(tmp_path / "bpe.json")
    assert loaded.encode(sample) == ref_tok.encode(sample)
    assert isinstance(fast.WordBPE.load(tmp_path / "bpe.json"), fast.WordBPE)


def test_fast_progress_bar_only_when_verbose(capsys):
    fast.learn_bpe("low lower lowest", 3, verbose=True)
    assert "word BPE" in capsys.readouterr().err
    fast.learn_bpe("low lower lowest", 3)
    assert capsys.readouterr().err == ""
