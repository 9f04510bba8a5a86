"""Fast byte-level BPE: the same merges as the reference trainer, and tiktoken encoding with the reference's ids."""
from __future__ import annotations

import warnings

import pytest
import tiktoken
from hypothesis import given, settings
from hypothesis import strategies as st

from scratchformers import gpt2_encoding
from scratchformers.reference.gpt2_encoding import ENDOFTEXT
from scratchformers.fast.bytebpe import ByteLevelBPE as FastBPE
from scratchformers.reference.bytebpe import ByteLevelBPE as ReferenceBPE
from scratchformers.train.data import shakespeare

ANY_CHAR = st.one_of(st.characters(), st.characters(categories=["Cs"]))
# Small alphabets give long repeated runs, many ties and overlapping pairs ("aaa"): the hard cases for a trainer.
SMALL_ALPHABET_TEXT = st.text(alphabet=st.sampled_from("aab  c\n'1é😀!"), min_size=1, max_size=200)


def train_both(text: str, vocab_size: int) -> tuple[ReferenceBPE, FastBPE]:
    reference, fast = ReferenceBPE(), FastBPE()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # early stops are checked in their own test
        reference.train(text, vocab_size)
        fast.train(text, vocab_size)
    return reference, fast


@pytest.fixture(scope="module")
def shakespeare_pair() -> tuple[ReferenceBPE, FastBPE]:
    reference, fast = train_both(shakespeare("tiny")[:100_000], 512)
    for tok in (reference, fast):
        tok.register_special_tokens({ENDOFTEXT: 512})
    return reference, fast


def test_identical_merges_on_tiny_shakespeare(shakespeare_pair):
    reference, fast = shakespeare_pair
    assert len(reference.merges) == 256
    assert list(fast.merges.items()) == list(reference.merges.items())  # same pairs, same ids, same order
    assert fast.vocab == reference.vocab


@settings(max_examples=80, deadline=None)
@given(text=SMALL_ALPHABET_TEXT, vocab_size=st.integers(256, 340))
def test_identical_merges_on_generated_text(text, vocab_size):
    reference, fast = train_both(text, vocab_size)
    assert list(fast.merges.items()) == list(reference.merges.items())


@settings(max_examples=40, deadline=None)
@given(text=st.text(alphabet=ANY_CHAR, min_size=1, max_size=150), vocab_size=st.integers(256, 300))
def test_identical_merges_on_arbitrary_unicode(text, vocab_size):
    reference, fast = train_both(text, vocab_size)
    assert list(fast.merges.items()) == list(reference.merges.items())


def test_fast_stops_early_like_the_reference():
    for cls in (ReferenceBPE, FastBPE):
        tok = cls()
        with pytest.warns(UserWarning, match="no adjacent pair left to merge after 9 merges"):
            tok.train("hello world", 1000)  # "hello" allows 4 merges, " world" 5
        assert tok.vocab_size == 265


@pytest.mark.parametrize("cls", [ReferenceBPE, FastBPE])
def test_verbose_shows_a_progress_bar_and_quiet_does_not(cls, capsys):
    cls().train("the cat sat on the mat", 260)
    assert "byte-level BPE" not in capsys.readouterr().err
    cls().train("the cat sat on the mat", 260, verbose=True)
    assert "byte-level BPE" in capsys.readouterr().err


def test_fast_encode_equals_reference_on_unseen_shakespeare(shakespeare_pair):
    reference, fast = shakespeare_pair
    text = shakespeare("tiny")[500_000:540_000]
    ids = fast.encode(text)
    assert ids == reference.encode(text)
    assert len(ids) < len(text.encode("utf-8")) * 0.6  # the merges compress unseen text too
    assert fast.decode(ids) == text


@settings(max_examples=100, deadline=None)
@given(text=st.text(alphabet=ANY_CHAR, max_size=80))
def test_fast_encode_equals_reference_on_any_string(shakespeare_pair, text):
    reference, fast = shakespeare_pair
    assert fast.encode_ordinary(text) == reference.encode_ordinary(text)
    assert fast.encode(text, allowed_special="none") == reference.encode(text, allowed_special="none")


@pytest.mark.parametrize("policy", ["all", "none", {ENDOFTEXT}])
def test_fast_special_policies_equal_reference(shakespeare_pair, policy):
    reference, fast = shakespeare_pair
    text = f"First Citizen:{ENDOFTEXT}Before we proceed{ENDOFTEXT}"
    assert fast.encode(text, allowed_special=policy) == reference.encode(text, allowed_special=policy)
    with pytest.raises(ValueError, match="special token"):
        fast.encode(text)


def test_to_tiktoken_exports_the_same_encoding(shakespeare_pair):
    reference, fast = shakespeare_pair
    encoding = fast.to_tiktoken()
    assert isinstance(encoding, tiktoken.Encoding)
    assert encoding.n_vocab == fast.vocab_size == 513
    text = shakespeare("tiny")[600_000:610_000] + ENDOFTEXT
    assert encoding.encode(text, allowed_special="all") == reference.encode(text, allowed_special="all")


def test_fast_gpt2_is_tiktoken_gpt2():
    fast = FastBPE.from_gpt2()
    text = shakespeare("full")[3_000_000:3_100_000]
    assert fast.encode(text) == gpt2_encoding().encode(text)


def test_fast_cache_follows_retraining_and_new_special_tokens():
    fast = FastBPE()
    fast.train("abababab", 257)
    assert fast.encode("abab") == [256, 256]
    fast.train("cdcdcdcd", 257)
    assert fast.encode("abab") == [97, 98, 97, 98]
    fast.register_special_tokens({"<|x|>": 999})
    assert fast.encode("cd<|x|>", allowed_special="all") == [256, 999]


def test_fast_save_load_round_trip(shakespeare_pair, tmp_path):
    _, fast = shakespeare_pair
    path = tmp_path / "fast.json"
    fast.save(path)
    loaded = FastBPE.load(path)
    assert isinstance(loaded, FastBPE)
    assert list(loaded.merges.items()) == list(fast.merges.items())
    assert loaded.encode("To be, or not to be") == fast.encode("To be, or not to be")


@pytest.mark.parametrize(
    ("text", "vocab_size", "error"),
    [("", 300, ValueError), (["list"], 300, TypeError), ("text", 100, ValueError), ("text", None, TypeError)],
)
def test_fast_train_bad_input(text, vocab_size, error):
    with pytest.raises(error):
        FastBPE().train(text, vocab_size)


def test_fast_encode_bad_input():
    with pytest.raises(TypeError, match="str"):
        FastBPE().encode(None)
