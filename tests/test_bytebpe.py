"""Reference byte-level BPE: GPT-2 identity with tiktoken, training by hand, round trips, special tokens, files."""
from __future__ import annotations

import json
import warnings

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scratchformers import gpt2_encoding
from scratchformers.exercises.checks.bytebpe import TRICKY
from scratchformers.reference.gpt2_encoding import ENDOFTEXT, gpt2_mergeable_ranks
from scratchformers.reference.bytebpe import ByteLevelBPE, get_stats, merge, repair_surrogates
from scratchformers.train.data import shakespeare

# Any code point, lone surrogates included (st.text() alone never generates them).
ANY_CHAR = st.one_of(st.characters(), st.characters(categories=["Cs"]))
VALID_TEXT = st.text(max_size=60)
ANY_TEXT = st.text(alphabet=ANY_CHAR, max_size=60)


@pytest.fixture(scope="module")
def gpt2() -> ByteLevelBPE:
    return ByteLevelBPE.from_gpt2()


@pytest.fixture(scope="module")
def tiktoken_gpt2():
    return gpt2_encoding()


# ---------------------------------------------------------------- the building blocks


def test_get_stats_counts_overlapping_pairs():
    assert get_stats([1, 2, 3, 1, 2]) == {(1, 2): 2, (2, 3): 1, (3, 1): 1}
    assert get_stats([7, 7, 7]) == {(7, 7): 2}
    assert get_stats([1, 2], {(1, 2): 3}, weight=5) == {(1, 2): 8}


def test_merge_is_left_to_right_and_non_overlapping():
    assert merge([1, 1, 1], (1, 1), 9) == [9, 1]
    assert merge([1, 1, 1, 1], (1, 1), 9) == [9, 9]
    assert merge([5, 1, 2, 1, 2, 1], (1, 2), 9) == [5, 9, 9, 1]
    assert merge([2, 1], (1, 2), 9) == [2, 1]


# ---------------------------------------------------------------- GPT-2: identical ids to tiktoken


def test_gpt2_vocabulary_matches_the_shipped_ranks(gpt2, tiktoken_gpt2):
    ranks = gpt2_mergeable_ranks()
    assert gpt2.vocab == {rank: token for token, rank in ranks.items()}
    assert len(gpt2.merges) == 50_000
    assert gpt2.vocab_size == tiktoken_gpt2.n_vocab == 50_257
    assert gpt2.special_tokens == {ENDOFTEXT: 50256}
    # every merge rebuilds its token from its two parts
    assert all(gpt2.vocab[a] + gpt2.vocab[b] == gpt2.vocab[idx] for (a, b), idx in gpt2.merges.items())


@pytest.mark.parametrize("start", [0, 1_000_000, 2_500_000, 5_000_000])
def test_gpt2_matches_tiktoken_on_shakespeare(gpt2, tiktoken_gpt2, start):
    text = shakespeare("full")[start : start + 25_000]
    assert len(text) > 20_000
    assert gpt2.encode(text) == tiktoken_gpt2.encode(text)


@pytest.mark.parametrize("text", TRICKY)
def test_gpt2_matches_tiktoken_on_tricky_text(gpt2, tiktoken_gpt2, text):
    assert gpt2.encode_ordinary(text) == tiktoken_gpt2.encode_ordinary(text)


@settings(max_examples=150, deadline=None)
@given(text=ANY_TEXT)
def test_gpt2_matches_tiktoken_on_any_string(gpt2, tiktoken_gpt2, text):
    assert gpt2.encode_ordinary(text) == tiktoken_gpt2.encode_ordinary(text)


def test_gpt2_contractions_split_like_gpt2(gpt2):
    assert [gpt2.decode([i]) for i in gpt2.encode("I'll've")] == ["I", "'ll", "'ve"]


def test_split_whitespace_run_leaves_last_space_to_the_next_word(gpt2):
    assert gpt2.compiled_pattern.findall("a    b  \n") == ["a", "   ", " b", "  \n"]
    assert [gpt2.decode([i]) for i in gpt2.encode("a    b")] == ["a", " ", " ", " ", " b"]  # no multi-space tokens


# ---------------------------------------------------------------- special tokens, tiktoken's policy

SPECIAL_TEXT = "one<|endoftext|>two <|endoftext|><|endoftext|> three"


def test_special_all_matches_tiktoken(gpt2, tiktoken_gpt2):
    ids = gpt2.encode(SPECIAL_TEXT, allowed_special="all")
    assert ids == tiktoken_gpt2.encode(SPECIAL_TEXT, allowed_special="all")
    assert ids.count(50256) == 3
    assert gpt2.decode(ids) == SPECIAL_TEXT


def test_special_set_matches_tiktoken(gpt2, tiktoken_gpt2):
    ids = gpt2.encode(SPECIAL_TEXT, allowed_special={ENDOFTEXT})
    assert ids == tiktoken_gpt2.encode(SPECIAL_TEXT, allowed_special={ENDOFTEXT})


def test_special_none_encodes_as_text_like_tiktoken(gpt2, tiktoken_gpt2):
    ids = gpt2.encode(SPECIAL_TEXT, allowed_special="none")
    assert ids == tiktoken_gpt2.encode(SPECIAL_TEXT, disallowed_special=())
    assert ids == gpt2.encode_ordinary(SPECIAL_TEXT)
    assert 50256 not in ids
    assert gpt2.decode(ids) == SPECIAL_TEXT


@pytest.mark.parametrize("policy", ["none_raise", set()])
def test_special_disallowed_raises_like_tiktoken(gpt2, tiktoken_gpt2, policy):
    with pytest.raises(ValueError, match="special token"):
        gpt2.encode(SPECIAL_TEXT, allowed_special=policy)
    with pytest.raises(ValueError):
        tiktoken_gpt2.encode(SPECIAL_TEXT)  # tiktoken's default: allowed_special=set(), disallowed_special="all"
    assert gpt2.encode("no special here", allowed_special=policy) == tiktoken_gpt2.encode("no special here")


def test_special_policy_errors(gpt2):
    with pytest.raises(ValueError, match="allowed_special must be"):
        gpt2.encode("x", allowed_special="sometimes")
    with pytest.raises(ValueError, match="unregistered"):
        gpt2.encode("x", allowed_special={"<|im_start|>"})
    with pytest.raises(TypeError, match="allowed_special"):
        gpt2.encode("x", allowed_special=["<|endoftext|>"])


def test_several_special_tokens_set_policy_and_longest_match():
    tok = ByteLevelBPE()
    tok.train("some text to learn a few merges from", 270)
    tok.register_special_tokens({"<|a|>": 1000, "<|a|><|b|>": 1001, "<|b|>": 1002})
    assert tok.encode("x<|a|><|b|>y", allowed_special="all")[1] == 1001  # the longer token wins
    ids = tok.encode("x<|a|>y<|b|>", allowed_special={"<|a|>", "<|b|>"})
    assert 1000 in ids and 1002 in ids
    with pytest.raises(ValueError, match="<\\|b\\|>"):
        tok.encode("x<|a|>y<|b|>", allowed_special={"<|a|>"})
    assert tok.decode(ids) == "x<|a|>y<|b|>"


def test_register_special_tokens_rejects_collisions():
    tok = ByteLevelBPE()
    with pytest.raises(ValueError, match="already used"):
        tok.register_special_tokens({"<|x|>": 65})
    tok.register_special_tokens({"<|x|>": 300})
    with pytest.raises(ValueError, match="already"):
        tok.register_special_tokens({"<|x|>": 301})
    with pytest.raises(ValueError, match="already used"):
        tok.register_special_tokens({"<|y|>": 300})
    with pytest.raises(ValueError, match="non-empty"):
        tok.register_special_tokens({"": 302})
    with pytest.raises(ValueError, match="non-negative int"):
        tok.register_special_tokens({"<|z|>": -1})
    with pytest.raises(TypeError):
        tok.register_special_tokens(["<|z|>"])
    with pytest.raises(ValueError, match="inside the trained vocabulary"):
        tok.train("enough text for a merge", 512)  # <|x|> = 300 would collide with merge ids


# ---------------------------------------------------------------- round trips and invalid Unicode


@settings(max_examples=150, deadline=None)
@given(text=VALID_TEXT)
def test_round_trip_gpt2(gpt2, text):
    assert gpt2.decode(gpt2.encode(text, allowed_special="all")) == text


@settings(max_examples=100, deadline=None)
@given(text=ANY_TEXT)
def test_surrogates_are_repaired_like_tiktoken(gpt2, tiktoken_gpt2, text):
    # Any text, '<|endoftext|>' included (hypothesis finds it): as plain text on both sides.
    ids = gpt2.encode(text, allowed_special="none")
    assert ids == tiktoken_gpt2.encode(text, disallowed_special=())
    assert gpt2.decode(ids) == tiktoken_gpt2.decode(ids)
    assert gpt2.decode(ids) == text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def test_lone_and_paired_surrogates():
    assert repair_surrogates("a\ud800b") == "a\ufffdb"
    assert repair_surrogates("\ud83d\ude00") == "😀"
    assert repair_surrogates("fine") == "fine"
    tok = ByteLevelBPE()
    assert tok.decode(tok.encode("x\udfffy")) == "x\ufffdy"


def test_decode_replaces_broken_utf8():
    tok = ByteLevelBPE()  # no merges: ids are the bytes
    ids = tok.encode("é€")
    assert ids == list("é€".encode("utf-8"))
    assert tok.decode(ids[:1]) == "\ufffd"
    assert tok.decode(ids[:-1]) == "é\ufffd"


# ---------------------------------------------------------------- training


def test_train_worked_example_step_by_step():
    # "aaabdaaabac" is one chunk. Pairs: aa ×4, ab ×2, others ×1  -> merge (a, a) = 256:
    #   aa a b d aa a b a c. Now (aa, a) ×2 and (a, b) ×2 tie: the smaller pair (97, 98) wins -> 257:
    #   aa ab d aa ab a c. Now (aa, ab) ×2 -> 258 = "aaab".
    tok = ByteLevelBPE()
    tok.train("aaabdaaabac", 259)
    assert tok.merges == {(97, 97): 256, (97, 98): 257, (256, 257): 258}
    assert tok.vocab[258] == b"aaab"
    assert tok.encode("aaabdaaabac") == [258, 100, 258, 97, 99]
    assert tok.vocab_size == 259


def test_train_ties_go_to_the_smallest_pair():
    tok = ByteLevelBPE()
    tok.train("ab cd", 257)  # chunks "ab", " cd": (97, 98), (32, 99), (99, 100) all once
    assert tok.merges == {(32, 99): 256}


def test_train_never_merges_across_chunks_and_stops_early():
    tok = ByteLevelBPE()
    with pytest.warns(UserWarning, match="no adjacent pair left"):
        tok.train("hello world", 1000)
    assert all(tok.vocab[idx] in b"hello" or tok.vocab[idx] in b" world" for idx in tok.merges.values())
    assert 256 < tok.vocab_size < 1000
    assert [tok.decode([i]) for i in tok.encode("hello world")] == ["hello", " world"]


def test_train_vocab_256_learns_nothing_and_retraining_replaces():
    tok = ByteLevelBPE()
    tok.train("banana bandana", 260)
    assert len(tok.merges) == 4
    tok.train("banana bandana", 256)
    assert tok.merges == {} and tok.vocab_size == 256
    assert tok.encode("ban") == [98, 97, 110]


@settings(max_examples=60, deadline=None)
@given(text=st.text(alphabet="ab c\n'1é😀", min_size=1, max_size=80), extra=st.integers(0, 40))
def test_trained_round_trip_and_merges_rebuild_vocab(text, extra):
    tok = ByteLevelBPE()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tok.train(text, 256 + extra)
    assert tok.decode(tok.encode(text)) == text
    assert all(tok.vocab[a] + tok.vocab[b] == tok.vocab[idx] for (a, b), idx in tok.merges.items())
    assert list(tok.merges.values()) == list(range(256, 256 + len(tok.merges)))


# ---------------------------------------------------------------- save / load


def test_save_load_round_trip(tmp_path):
    tok = ByteLevelBPE()
    tok.train(shakespeare("tiny")[:5_000], 300)
    tok.register_special_tokens({ENDOFTEXT: 300})
    path = tmp_path / "tok.json"
    tok.save(path)
    data = json.loads(path.read_text())
    assert data["byte_ids"] == list(range(256)) and len(data["merges"]) == 44
    loaded = ByteLevelBPE.load(path)
    assert list(loaded.merges.items()) == list(tok.merges.items())
    assert loaded.vocab == tok.vocab and loaded.special_tokens == tok.special_tokens
    text = shakespeare("tiny")[5_000:7_000] + ENDOFTEXT
    assert loaded.encode(text, allowed_special="all") == tok.encode(text, allowed_special="all")


def test_save_load_gpt2_keeps_byte_order(gpt2, tiktoken_gpt2, tmp_path):
    path = tmp_path / "gpt2.json"
    gpt2.save(path)
    loaded = ByteLevelBPE.load(path)
    assert loaded.byte_ids == gpt2.byte_ids != list(range(256))
    text = "GPT-2's bytes are permuted: ¡Hola! 😀"
    assert loaded.encode(text) == tiktoken_gpt2.encode(text)


def test_load_rejects_bad_files(tmp_path):
    not_json = tmp_path / "a.json"
    not_json.write_text("merges: nope")
    with pytest.raises(ValueError, match="not a JSON file"):
        ByteLevelBPE.load(not_json)
    wrong = tmp_path / "b.json"
    wrong.write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(ValueError, match="scratchformers-bytebpe"):
        ByteLevelBPE.load(wrong)
    broken = tmp_path / "c.json"
    ByteLevelBPE().save(broken)
    data = json.loads(broken.read_text())
    data["merges"] = [[97, 999, 256]]
    broken.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="does not exist"):
        ByteLevelBPE.load(broken)


@pytest.mark.parametrize("key", ["merges", "byte_ids", "special_tokens", "pattern"])
def test_load_names_a_missing_field(tmp_path, key):
    path = tmp_path / "tok.json"
    ByteLevelBPE().save(path)
    data = json.loads(path.read_text())
    del data[key]
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=f"'{key}' field is missing"):
        ByteLevelBPE.load(path)


def test_vocab_size_is_the_largest_id_plus_one_as_in_the_tiktoken_export():
    fast = pytest.importorskip("scratchformers.fast.bytebpe")
    for cls in (ByteLevelBPE, fast.ByteLevelBPE):
        tok = cls()
        tok.train(shakespeare("tiny")[:5_000], 300)
        assert tok.vocab_size == 300
        tok.register_special_tokens({ENDOFTEXT: 50256})  # GPT-2's id, far past the 300 trained tokens
        assert tok.vocab_size == 50257 == max(tok.encode(ENDOFTEXT, allowed_special="all")) + 1
    assert tok.to_tiktoken().n_vocab == tok.vocab_size


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("text", "vocab_size", "error", "match"),
    [
        ("", 300, ValueError, "empty"),
        (b"bytes", 300, TypeError, "str"),
        (None, 300, TypeError, "str"),
        ("text", 255, ValueError, "at least 256"),
        ("text", "300", TypeError, "int"),
        ("text", 300.0, TypeError, "int"),
    ],
)
def test_train_bad_input(text, vocab_size, error, match):
    with pytest.raises(error, match=match):
        ByteLevelBPE().train(text, vocab_size)


def test_encode_decode_bad_input(gpt2):
    with pytest.raises(TypeError, match="str"):
        gpt2.encode(b"bytes")
    with pytest.raises(TypeError, match="str"):
        gpt2.encode_ordinary(42)
    with pytest.raises(ValueError, match="invalid token id 50257"):
        gpt2.decode([50257])
    with pytest.raises(ValueError, match="invalid token id -1"):
        gpt2.decode([-1])
    with pytest.raises(TypeError, match="ints"):
        gpt2.decode(["a"])
