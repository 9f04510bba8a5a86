"""The classic word BPE reference: the seed's worked example step by step, whole-symbol merging, tie-breaking,
the tokenizer class (encode/decode, batches, files) and bad input."""
from __future__ import annotations

import json
import re
import warnings

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scratchformers.exercises.checks.bpe import BOUNDARY_VOCAB, EXAMPLE_CORPUS, EXAMPLE_COUNTS, EXAMPLE_MERGES
from scratchformers.reference import bpe
from scratchformers.reference.bpe import WordBPE


def train_quietly(tok: WordBPE, corpus: str, num_merges: int) -> None:
    """Train, ignoring the early-stop warning of small corpora."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tok.train(corpus, num_merges)


def seed_tokenizer() -> WordBPE:
    tok = WordBPE()
    with pytest.warns(UserWarning, match="only 15 of the 20"):
        tok.train(EXAMPLE_CORPUS, 20)
    return tok


# ---------------------------------------------------------------------------------------------------- training


def test_build_vocab_spells_words_with_end_of_word():
    assert bpe.build_vocab("low low\n lower") == {"l o w </w>": 2, "l o w e r </w>": 1}
    assert bpe.build_vocab(["low", "low lower"]) == bpe.build_vocab("low low lower")


def test_get_stats_on_the_seed_vocab():
    stats = bpe.get_stats(bpe.build_vocab(EXAMPLE_CORPUS))
    assert stats[("e", "s")] == 6 + 3
    assert stats[("s", "t")] == 6 + 3
    assert stats[("t", "</w>")] == 6 + 3
    assert stats[("w", "e")] == 2 + 6  # lower + newest
    assert stats[("l", "o")] == 5 + 2
    assert stats[("w", "</w>")] == 5
    assert ("e", "e") not in stats
    assert sum(stats.values()) == sum(n * len(word) for word, n in EXAMPLE_COUNTS.items())  # len(word) pairs per word


def test_get_stats_counts_overlapping_pairs():
    assert bpe.get_stats({"a a a </w>": 2}) == {("a", "a"): 4, ("a", "</w>"): 2}


def test_seed_example_step_by_step():
    vocab = bpe.build_vocab(EXAMPLE_CORPUS)
    # Step 1: (e, s), (s, t) and (t, </w>) all count 9; the smallest pair wins.
    stats = bpe.get_stats(vocab)
    assert max(stats.values()) == 9
    assert sorted(p for p, c in stats.items() if c == 9) == [("e", "s"), ("s", "t"), ("t", "</w>")]
    assert bpe.best_pair(stats) == ("e", "s")
    vocab = bpe.merge_vocab(("e", "s"), vocab)
    assert vocab == {"l o w </w>": 5, "l o w e r </w>": 2, "n e w es t </w>": 6, "w i d es t </w>": 3}
    # Step 2: (es, t) and (t, </w>) count 9.
    stats = bpe.get_stats(vocab)
    assert stats[("es", "t")] == 9 and stats[("t", "</w>")] == 9
    assert bpe.best_pair(stats) == ("es", "t")
    vocab = bpe.merge_vocab(("es", "t"), vocab)
    # Step 3: (est, </w>) is the only pair left at 9.
    stats = bpe.get_stats(vocab)
    assert bpe.best_pair(stats) == ("est", "</w>") and stats[("est", "</w>")] == 9
    vocab = bpe.merge_vocab(("est", "</w>"), vocab)
    assert vocab["n e w est</w>"] == 6 and vocab["w i d est</w>"] == 3
    # Step 4: (l, o) and (o, w) count 7, then (lo, w).
    stats = bpe.get_stats(vocab)
    assert stats[("l", "o")] == 7 and stats[("o", "w")] == 7 and max(stats.values()) == 7
    assert bpe.best_pair(stats) == ("l", "o")


def test_seed_example_full_merge_list_and_early_stop():
    with pytest.warns(UserWarning, match="only 15 of the 20 requested merges"):
        merges = bpe.learn_bpe(EXAMPLE_CORPUS, 20)
    assert merges == EXAMPLE_MERGES
    assert bpe.learn_bpe(EXAMPLE_CORPUS, 4) == EXAMPLE_MERGES[:4]
    assert bpe.learn_bpe(EXAMPLE_CORPUS, 0) == []


def test_merge_vocab_merges_whole_symbols_only():
    vocab = BOUNDARY_VOCAB
    merged = bpe.merge_vocab(("e", "s"), vocab)
    assert merged == {"n e w e st </w>": 1, "n es </w>": 2, "ne s </w>": 3, "es es </w>": 4}
    # The classic bug this guards against: a plain substring replacement glues "e" to the prefix of "st" and the
    # suffix of "ne" to "s".
    naive = {re.sub(re.escape("e s"), "es", word): n for word, n in vocab.items()}
    assert naive["n e w est </w>"] == 1 and naive["nes </w>"] == 3


def test_merge_vocab_left_to_right_and_regex_characters():
    assert bpe.merge_vocab(("a", "a"), {"a a a </w>": 1}) == {"aa a </w>": 1}
    assert bpe.merge_vocab(("a", "a"), {"a a a a </w>": 1}) == {"aa aa </w>": 1}
    assert bpe.merge_vocab((".", "*"), {". * .* ( ) </w>": 1}) == {".* .* ( ) </w>": 1}
    assert bpe.merge_vocab(("(", ")"), {". * .* ( ) </w>": 1}) == {". * .* () </w>": 1}


def test_merge_symbols_matches_merge_vocab():
    assert bpe.merge_symbols(["a", "a", "a"], ("a", "a")) == ["aa", "a"]
    assert bpe.merge_symbols(["n", "e", "w", "e", "st"], ("e", "s")) == ["n", "e", "w", "e", "st"]
    assert bpe.merge_symbols(["x", "e", "s", "e", "s"], ("e", "s")) == ["x", "es", "es"]


def test_tie_break_is_highest_count_then_smallest_pair():
    assert bpe.best_pair({("b", "a"): 3, ("a", "c"): 3, ("a", "b"): 2}) == ("a", "c")
    assert bpe.best_pair({("b", "a"): 3, ("a", "c"): 2}) == ("b", "a")
    assert bpe.best_pair({("ab", "c"): 1, ("a", "bc"): 1}) == ("a", "bc")
    # The order of the words in the corpus does not matter.
    assert bpe.learn_bpe("ab ba", 3) == bpe.learn_bpe("ba ab", 3)


def test_single_symbol_words_stop_at_once():
    with pytest.warns(UserWarning, match="only 1 of the 3"):
        assert bpe.learn_bpe("a a a", 3) == [("a", "</w>")]


@pytest.mark.parametrize(
    ("corpus", "num_merges", "error"),
    [
        ("", 5, ValueError),
        (" \n\t ", 5, ValueError),
        ([], 5, ValueError),
        (123, 5, TypeError),
        (b"low lower", 5, TypeError),
        (["low", 7], 5, TypeError),
        ("low lower", -1, ValueError),
        ("low lower", 2.5, TypeError),
        ("low lower", True, TypeError),
        ("low lower", "10", TypeError),
    ],
)
def test_bad_training_input(corpus, num_merges, error):
    with pytest.raises(error):
        bpe.learn_bpe(corpus, num_merges)
    with pytest.raises(error):
        WordBPE().train(corpus, num_merges)


def test_progress_bar_only_when_verbose(capsys):
    bpe.learn_bpe(EXAMPLE_CORPUS, 3, verbose=True)
    assert "word BPE" in capsys.readouterr().err
    bpe.learn_bpe(EXAMPLE_CORPUS, 3, verbose=False)
    assert capsys.readouterr().err == ""


# ---------------------------------------------------------------------------------------------------- tokenizer


def test_vocabulary_layout():
    tok = seed_tokenizer()
    assert tok.merges == EXAMPLE_MERGES
    assert tok.alphabet == sorted(set("lowernstid"))
    assert tok.id2token[:2] == ["<pad>", "<unk>"] and bpe.PAD_ID == 0 and bpe.UNK_ID == 1
    assert tok.id2token[2 : 2 + len(tok.alphabet)] == tok.alphabet
    assert tok.id2token[2 + len(tok.alphabet)] == "</w>"
    assert tok.id2token[-len(EXAMPLE_MERGES) :] == ["".join(pair) for pair in EXAMPLE_MERGES]
    assert tok.vocab_size == 2 + 10 + 1 + 15
    assert all(tok.token2id[t] == i for i, t in enumerate(tok.id2token))


def test_encode_replays_the_merges():
    tok = seed_tokenizer()
    for word in EXAMPLE_COUNTS:  # every training word ended up as one symbol
        assert tok.encode(word) == [tok.token2id[word + "</w>"]]
    assert tok.encode_word("lowest") == ["low", "est</w>"]
    # n e w e r </w> -> (e, w) rank 5 -> n ew e r </w> -> (e, r) rank 12 -> (er, </w>) rank 13; (n, ew) is no merge
    assert tok.encode_word("newer") == ["n", "ew", "er</w>"]
    assert tok.encode_word("lowidest") == ["low", "idest</w>"]


def test_encode_unknown_characters_and_decode():
    tok = seed_tokenizer()
    ids = tok.encode("lowz")
    assert ids == [tok.token2id["low"], bpe.UNK_ID, tok.token2id["</w>"]]
    assert tok.decode(ids) == "low<unk>"
    assert tok.decode([bpe.PAD_ID, *tok.encode("low  newest"), bpe.PAD_ID]) == "low newest"
    assert tok.encode("") == [] and tok.decode([]) == ""


def test_decode_normalises_whitespace():
    tok = seed_tokenizer()
    assert tok.decode(tok.encode("  low\n\tlower  newest\r\n")) == "low lower newest"


def test_bad_encode_and_decode_input():
    tok = seed_tokenizer()
    with pytest.raises(TypeError):
        tok.encode(["low"])
    with pytest.raises(ValueError, match="outside the vocabulary"):
        tok.decode([tok.vocab_size])
    with pytest.raises(ValueError, match="outside the vocabulary"):
        tok.decode([-1])
    with pytest.raises(TypeError):
        tok.decode(["3"])
    with pytest.raises(RuntimeError, match="train"):
        WordBPE().encode("low")


def test_encode_batch_padding_truncation_and_mask():
    tok = seed_tokenizer()
    low, lowest = tok.encode("low"), tok.encode("low lowest")
    assert len(low) == 1 and len(lowest) == 3
    out = tok.encode_batch(["low", "low lowest"])
    assert out["input_ids"] == [low + [0, 0], lowest]
    assert out["attention_mask"] == [[1, 0, 0], [1, 1, 1]]
    out = tok.encode_batch(["low", "low lowest"], max_length=5, padding="max_length")
    assert out["input_ids"] == [low + [0] * 4, lowest + [0, 0]]
    assert out["attention_mask"] == [[1, 0, 0, 0, 0], [1, 1, 1, 0, 0]]
    out = tok.encode_batch(["low", "low lowest"], max_length=2, truncation=True)
    assert out["input_ids"] == [low + [0], lowest[:2]]
    assert out["attention_mask"] == [[1, 0], [1, 1]]
    out = tok.encode_batch(["low", "low lowest"], padding="do_not_pad")
    assert out["input_ids"] == [low, lowest] and out["attention_mask"] == [[1], [1, 1, 1]]


def test_encode_batch_bad_arguments():
    tok = seed_tokenizer()
    with pytest.raises(ValueError, match="truncation=True"):
        tok.encode_batch(["low lowest"], max_length=2)
    with pytest.raises(ValueError, match="need a max_length"):
        tok.encode_batch(["low"], padding="max_length")
    with pytest.raises(ValueError, match="need a max_length"):
        tok.encode_batch(["low"], truncation=True)
    with pytest.raises(ValueError, match="padding must be"):
        tok.encode_batch(["low"], padding="left")
    with pytest.raises(ValueError, match="max_length"):
        tok.encode_batch(["low"], max_length=0)
    with pytest.raises(TypeError):
        tok.encode_batch("low")


def test_greedy_tokenize_single_and_batch():
    tok = seed_tokenizer()
    sorted_tokens = bpe.sort_tokens(tok.id2token[2:])
    assert bpe.measure_token_length("est</w>") == 4 and bpe.measure_token_length("low") == 3
    assert [bpe.measure_token_length(t) for t in sorted_tokens] == sorted(
        (bpe.measure_token_length(t) for t in sorted_tokens), reverse=True
    )
    assert sorted_tokens.index("</w>") < sorted_tokens.index("w")  # else "w" would be cut out of "</w>"
    out = bpe.tokenize("lowest", sorted_tokens, tok.token2id, return_strings=True)
    assert out["tokens"] == ["low", "est</w>"]
    assert out["input_ids"] == [tok.token2id["low"], tok.token2id["est</w>"]] and out["attention_mask"] == [1, 1]
    # Greedy longest-token cutting is not merge replay: it finds "widest</w>" inside "lowidest</w>".
    assert bpe.tokenize_word("lowidest</w>", sorted_tokens) == ["lo", "widest</w>"]
    assert tok.encode_word("lowidest") == ["low", "idest</w>"]
    # A piece no token covers becomes one <unk>.
    assert bpe.tokenize_word("lowzz</w>", sorted_tokens) == ["low", "<unk>", "</w>"]
    batch = bpe.tokenize(["low", "lowest newest"], sorted_tokens, tok.token2id, return_strings=True)
    assert batch["tokens"] == [["low</w>", "<pad>", "<pad>"], ["low", "est</w>", "newest</w>"]]
    assert batch["input_ids"][0] == [tok.token2id["low</w>"], 0, 0]
    assert batch["attention_mask"] == [[1, 0, 0], [1, 1, 1]]
    assert "tokens" not in bpe.tokenize(["low"], sorted_tokens, tok.token2id)
    out = bpe.tokenize(["lowest newest"], sorted_tokens, tok.token2id, max_length=2, truncation=True)
    assert out["input_ids"] == [[tok.token2id["low"], tok.token2id["est</w>"]]]
    with pytest.raises(ValueError, match="must contain"):
        bpe.tokenize("low", sorted_tokens, {"low": 0})
    with pytest.raises(TypeError):
        bpe.tokenize(5, sorted_tokens, tok.token2id)


def test_save_and_load_round_trip(tmp_path):
    tok = WordBPE()
    text = "To be, or not to be: that is the question. Whether 'tis nobler in the mind to suffer"
    tok.train(text, 40)
    path = tmp_path / "bpe.json"
    tok.save(path)
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["format"] == "scratchformers-wordbpe" and len(data["merges"]) == 40
    loaded = WordBPE.load(path)
    assert loaded.merges == tok.merges and loaded.id2token == tok.id2token
    assert loaded.encode(text) == tok.encode(text)
    assert loaded.decode(loaded.encode(text)) == " ".join(text.split())


def test_save_replaces_the_file_whole_or_not_at_all(tmp_path):
    path = tmp_path / "bpe.json"
    good = WordBPE()
    good.train("low lower lowest", 3)
    good.save(path)
    before = path.read_bytes()
    broken = WordBPE()
    broken.train("low lo\ud800w", 2)  # a lone surrogate in the alphabet: no UTF-8 form
    with pytest.raises(ValueError, match="no UTF-8 form.*nothing was written"):
        broken.save(path)
    assert path.read_bytes() == before and WordBPE.load(path).merges == good.merges
    assert [p.name for p in tmp_path.iterdir()] == ["bpe.json"]  # no temporary file left behind


@pytest.mark.parametrize(("key", "value", "message"), [
    ("merges", None, "'merges' field is missing"),
    ("alphabet", None, "'alphabet' field is missing"),
    ("merges", "ab", "'merges' should be a list, not str"),
    ("merges", [["a"]], "pairs of strings"),
    ("alphabet", [1, 2], "'alphabet' must list strings"),
])
def test_load_names_a_missing_or_damaged_field(tmp_path, key, value, message):
    path = tmp_path / "bpe.json"
    tok = WordBPE()
    tok.train("low lower lowest", 3)
    tok.save(path)
    data = json.loads(path.read_text(encoding="utf-8"))
    if value is None:
        del data[key]
    else:
        data[key] = value
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(ValueError, match=message):
        WordBPE.load(path)


def test_load_rejects_other_files(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json", encoding="utf-8")
    with pytest.raises(ValueError, match="not a JSON"):
        WordBPE.load(bad)
    bad.write_text(json.dumps({"format": "something-else", "version": 1}), encoding="utf-8")
    with pytest.raises(ValueError, match="scratchformers-wordbpe"):
        WordBPE.load(bad)


# ---------------------------------------------------------------------------------------------------- properties

words = st.text(alphabet="abcd", min_size=1, max_size=8)
word_lists = st.lists(words, min_size=1, max_size=25)


@settings(max_examples=60, deadline=None)
@given(word_lists, st.integers(0, 30))
def test_encode_gives_the_training_segmentation(word_list, num_merges):
    """Merge replay at encode time reproduces the segmentation that training left in the vocabulary."""
    corpus = " ".join(word_list)
    tok = WordBPE()
    train_quietly(tok, corpus, num_merges)
    vocab = bpe.build_vocab(corpus)
    for pair in tok.merges:
        vocab = bpe.merge_vocab(pair, vocab)
    for spelled in vocab:
        word = spelled.replace(" ", "").removesuffix("</w>")
        assert tok.encode_word(word) == spelled.split()


texts = st.text(alphabet=st.sampled_from(list("abcé日😀.,' \n\t")), max_size=60)


@settings(max_examples=60, deadline=None)
@given(texts, texts)
def test_decode_encode_gives_the_words_back(train_text, text):
    tok = WordBPE()
    train_quietly(tok, train_text + " abcé日😀.,'", 20)
    assert tok.decode(tok.encode(text)) == " ".join(text.split())


@settings(max_examples=40, deadline=None)
@given(texts)
def test_greedy_tokenize_gives_the_words_back(text):
    tok = WordBPE()
    train_quietly(tok, "abcé日😀.,' " + text, 15)
    ids = bpe.tokenize(text, bpe.sort_tokens(tok.id2token[2:]), tok.token2id)["input_ids"]
    assert tok.decode(ids) == " ".join(text.split())
