"""Classic word-level BPE (Sennrich, Haddow and Birch, 2016), written the way the paper's listing reads.

Training on a corpus:

1. **Words**: split the text on whitespace and count each distinct word.
2. **Spell** each word as space-separated symbols, its characters plus an end-of-word symbol ``</w>``:
   ``"low"`` becomes ``"l o w </w>"``. The vocabulary is ``{"l o w </w>": 5, ...}``. The ``</w>`` symbol lets the
   model tell ``st`` at the end of ``newest`` from ``st`` at the start of ``stone``.
3. **Merge**: count every adjacent symbol pair, weighted by the word counts (:func:`get_stats`), replace the most
   frequent pair by one symbol everywhere (:func:`merge_vocab`), and repeat ``num_merges`` times. Each merge adds
   one token to the vocabulary.

*Tie-breaking*: the highest count wins; among equal counts the lexicographically smallest pair, comparing the
two symbol strings as a Python tuple, wins (:func:`best_pair`). The rule depends only on the counts, not on the
order of the words, so runs are reproducible and :mod:`scratchformers.fast.bpe` learns the identical merge list.
Training stops early, with a warning, when every word has become a single symbol.

Tokenizing text:

- :meth:`WordBPE.encode` replays the learned merges on each word, lowest rank (earliest merge) first, which is
  exactly the segmentation training produced (``subword-nmt apply-bpe`` does the same; the one exception is a
  word containing the characters ``</w>``, see below).
- :func:`tokenize` is the tutorial shortcut that needs only the vocabulary: it cuts each word greedily with the
  longest token that occurs in it (:func:`tokenize_word`). It is simpler but can segment differently from the
  merges. It also pads and truncates batches and returns an attention mask, as :meth:`WordBPE.encode_batch` does.

Token ids: ``<pad>`` = 0, ``<unk>`` = 1, then the base symbols (the characters seen in training, sorted, then
``</w>``), then one token per merge in the order learned. A character never seen in training becomes ``<unk>``.

Whitespace is not stored: decoding turns every ``</w>`` into one space, so ``decode(encode(text))`` gives the words
of ``text`` joined by single spaces (``" ".join(text.split())``). A word that itself contains the characters
``</w>`` cannot be told apart from a word end and does not round-trip (merges can even spell ``</w>`` out of
its characters, which then acts as the end-of-word symbol).

File format (:meth:`WordBPE.save`): JSON with ``format``, ``version``, ``alphabet`` (the base characters) and
``merges`` (``[a, b]`` pairs in the order learned); the vocabulary is rebuilt from them.
"""
from __future__ import annotations

import re
import warnings
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Literal, Union

from tqdm import tqdm

from scratchformers.reference.jsonfile import load_json, save_json

PAD = "<pad>"
UNK = "<unk>"
END_OF_WORD = "</w>"
PAD_ID = 0
UNK_ID = 1
FILE_FORMAT = "scratchformers-wordbpe"
FILE_VERSION = 1

Corpus = Union[str, Sequence[str]]
Pair = tuple[str, str]
Padding = Literal["longest", "max_length", "do_not_pad"]


# ---------------------------------------------------------------------------------------------------- training


def split_words(corpus: Corpus) -> list[str]:
    """The whitespace-separated words of a text or of a list of texts, checking the input.

    Raises ``TypeError`` for anything but a ``str`` or a list of ``str``, ``ValueError`` when there are no words.
    """
    texts = [corpus] if isinstance(corpus, str) else corpus
    if not isinstance(texts, (list, tuple)):
        raise TypeError(f"corpus must be a str or a list of str, got {type(corpus).__name__}")
    words = []
    for text in texts:
        if not isinstance(text, str):
            raise TypeError(f"corpus must be a str or a list of str, found a {type(text).__name__} inside")
        words.extend(text.split())
    if not words:
        raise ValueError("the corpus has no words: it is empty or only whitespace")
    return words


def build_vocab(corpus: Corpus) -> dict[str, int]:
    """Count the words of ``corpus``, each spelled as space-separated characters plus ``</w>``.

    ``build_vocab("low low lower") == {"l o w </w>": 2, "l o w e r </w>": 1}``
    """
    counts = Counter(split_words(corpus))
    return {" ".join(word) + " " + END_OF_WORD: count for word, count in counts.items()}


def get_stats(vocab: dict[str, int]) -> dict[Pair, int]:
    """Count every adjacent symbol pair, each occurrence weighted by the count of its word.

    ``get_stats({"l o w </w>": 5}) == {("l", "o"): 5, ("o", "w"): 5, ("w", "</w>"): 5}``
    """
    pairs: dict[Pair, int] = {}
    for word, count in vocab.items():
        symbols = word.split()
        for a, b in zip(symbols, symbols[1:]):
            pairs[a, b] = pairs.get((a, b), 0) + count
    return pairs


def best_pair(stats: dict[Pair, int]) -> Pair:
    """The pair to merge next: the highest count, then the lexicographically smallest pair."""
    return min(stats, key=lambda pair: (-stats[pair], pair))


def merge_vocab(pair: Pair, vocab: dict[str, int]) -> dict[str, int]:
    """Replace every occurrence of the two adjacent symbols ``pair`` by one merged symbol, left to right.

    The pattern only matches whole symbols: ``(?<!\\S)`` and ``(?!\\S)`` demand a space or the string's end on
    both sides. Without them, merging ``("e", "s")`` would also rewrite ``"n e w e st"`` into ``"n e w est"``,
    gluing ``e`` to the *prefix* of the symbol ``st``.
    """
    bigram = re.escape(" ".join(pair))
    pattern = re.compile(r"(?<!\S)" + bigram + r"(?!\S)")
    merged = "".join(pair)
    return {pattern.sub(merged, word): count for word, count in vocab.items()}


def check_num_merges(num_merges: object) -> int:
    """``num_merges`` must be a non-negative int."""
    if not isinstance(num_merges, int) or isinstance(num_merges, bool):
        raise TypeError(f"num_merges must be an int, got {type(num_merges).__name__}")
    if num_merges < 0:
        raise ValueError(f"num_merges must be >= 0, got {num_merges}")
    return num_merges


def warn_early_stop(learned: int, requested: int) -> None:
    """Say that training ran out of pairs before ``requested`` merges."""
    warnings.warn(
        f"only {learned} of the {requested} requested merges are possible: every word is a single symbol now",
        stacklevel=3,
    )


def learn_bpe(corpus: Corpus, num_merges: int, verbose: bool = False) -> list[Pair]:
    """Learn up to ``num_merges`` merges from ``corpus``; returns them in order.

    The plain loop, as the 'Transformers From Scratch' notebook this library follows writes it: recount all pairs,
    merge the best one, repeat. Each merge costs a pass over the whole vocabulary;
    :func:`scratchformers.fast.bpe.learn_bpe` gives the same list without the full recount.
    """
    check_num_merges(num_merges)
    vocab = build_vocab(corpus)
    merges = []
    for _ in tqdm(range(num_merges), desc="word BPE", unit="merge", disable=not verbose):
        stats = get_stats(vocab)
        if not stats:
            warn_early_stop(len(merges), num_merges)
            break
        pair = best_pair(stats)
        vocab = merge_vocab(pair, vocab)
        merges.append(pair)
    return merges


def alphabet_of(corpus: Corpus) -> list[str]:
    """The sorted characters of the words of ``corpus`` (whitespace excluded): the base symbols."""
    texts = [corpus] if isinstance(corpus, str) else corpus
    return sorted({ch for text in texts for ch in set(text) if not ch.isspace()})


# ---------------------------------------------------------------------------------------------------- tokenizing


def measure_token_length(token: str) -> int:
    """Length of a token in symbols: ``</w>`` counts as one character."""
    if token.endswith(END_OF_WORD):
        return len(token) - len(END_OF_WORD) + 1
    return len(token)


def sort_tokens(tokens: Sequence[str]) -> list[str]:
    """Tokens from the longest to the shortest (``</w>`` counting as one character), for :func:`tokenize`.

    Among equally long tokens, those ending a word come first, so that ``</w>`` itself is cut before the token
    ``w`` could match inside it. Otherwise the sort is stable: the earlier token in vocabulary order (the earlier
    merge, i.e. the more frequent pair) is tried first.
    """
    return sorted(tokens, key=lambda token: (measure_token_length(token), token.endswith(END_OF_WORD)), reverse=True)


def tokenize_word(string: str, sorted_tokens: Sequence[str]) -> list[str]:
    """Cut ``string`` greedily: find the first (longest) token of ``sorted_tokens`` that occurs in it, split around
    its occurrences, and cut the pieces in between with the remaining tokens. A piece that no token covers
    becomes one ``<unk>``.

    ``tokenize_word("lowest</w>", ["est</w>", "low"]) == ["low", "est</w>"]``
    """
    if not string:
        return []
    for i, token in enumerate(sorted_tokens):
        if token in string:
            pieces = string.split(token)
            out = tokenize_word(pieces[0], sorted_tokens[i + 1 :])
            for piece in pieces[1:]:
                out.append(token)
                out += tokenize_word(piece, sorted_tokens[i + 1 :])
            return out
    return [UNK]


def pad_batch(
    sequences: Sequence[list],
    pad_value: object,
    max_length: int | None = None,
    padding: Padding = "longest",
    truncation: bool = False,
) -> tuple[list[list], list[list[int]]]:
    """Truncate and right-pad ``sequences`` to one length; returns ``(padded, attention_mask)``.

    Args:
        sequences: token ids (or token strings), one list per text.
        pad_value: what fills the padding (``<pad>``'s id, or the string ``"<pad>"``).
        max_length: the length limit; a longer sequence is an error unless ``truncation`` is set.
        padding: ``"longest"`` pads to the longest sequence, ``"max_length"`` to ``max_length``,
            ``"do_not_pad"`` leaves the lengths alone.
        truncation: cut sequences longer than ``max_length`` (which it then requires).

    The attention mask has a 1 for every real token and a 0 for every pad.
    """
    if padding not in ("longest", "max_length", "do_not_pad"):
        raise ValueError(f"padding must be 'longest', 'max_length' or 'do_not_pad', got {padding!r}")
    if max_length is not None and (not isinstance(max_length, int) or isinstance(max_length, bool) or max_length < 1):
        raise ValueError(f"max_length must be a positive int or None, got {max_length!r}")
    if max_length is None and (truncation or padding == "max_length"):
        raise ValueError("truncation=True and padding='max_length' need a max_length")
    if max_length is not None:
        if truncation:
            sequences = [seq[:max_length] for seq in sequences]
        elif any(len(seq) > max_length for seq in sequences):
            longest = max(len(seq) for seq in sequences)
            raise ValueError(f"a sequence has {longest} tokens > max_length={max_length}; pass truncation=True")
    target = None
    if padding == "longest":
        target = max((len(seq) for seq in sequences), default=0)
    elif padding == "max_length":
        target = max_length
    padded, mask = [], []
    for seq in sequences:
        pad = 0 if target is None else target - len(seq)
        padded.append(list(seq) + [pad_value] * pad)
        mask.append([1] * len(seq) + [0] * pad)
    return padded, mask


def tokenize(
    text: str | Sequence[str],
    sorted_tokens: Sequence[str],
    token2id: dict[str, int],
    return_strings: bool = False,
    max_length: int | None = None,
    padding: Padding = "longest",
    truncation: bool = False,
) -> dict[str, list]:
    """Tokenize one text, or a batch of texts, with the greedy longest-token cut of :func:`tokenize_word`.

    Args:
        text: a string, or a list of strings (a batch).
        sorted_tokens: the vocabulary's tokens, longest first (:func:`sort_tokens`).
        token2id: ``{token: id}``; must contain ``<pad>`` and ``<unk>``. Tokens missing from it become ``<unk>``.
        return_strings: also return the token strings under ``"tokens"``.
        max_length, padding, truncation: as in :func:`pad_batch`.

    Returns:
        ``{"input_ids": ..., "attention_mask": ...}`` (plus ``"tokens"``): flat lists for one string, lists of
        lists (padded to one length) for a batch.
    """
    single = isinstance(text, str)
    texts = [text] if single else text
    if not isinstance(texts, (list, tuple)) or not all(isinstance(t, str) for t in texts):
        raise TypeError("text must be a str or a list of str")
    if PAD not in token2id or UNK not in token2id:
        raise ValueError(f"token2id must contain {PAD!r} and {UNK!r}")
    tokens = [[tok for word in t.split() for tok in tokenize_word(word + END_OF_WORD, sorted_tokens)] for t in texts]
    tokens, mask = pad_batch(tokens, PAD, max_length, padding, truncation)
    ids = [[token2id.get(tok, token2id[UNK]) for tok in seq] for seq in tokens]
    out = {"input_ids": ids, "attention_mask": mask}
    if return_strings:
        out["tokens"] = tokens
    if single:
        out = {key: value[0] for key, value in out.items()}
    return out


def merge_symbols(symbols: list[str], pair: Pair) -> list[str]:
    """Merge every occurrence of ``pair`` in a list of symbols, left to right (the list form of :func:`merge_vocab`).

    ``merge_symbols(["a", "a", "a"], ("a", "a")) == ["aa", "a"]``
    """
    out = []
    i = 0
    while i < len(symbols):
        if i + 1 < len(symbols) and (symbols[i], symbols[i + 1]) == pair:
            out.append(symbols[i] + symbols[i + 1])
            i += 2
        else:
            out.append(symbols[i])
            i += 1
    return out


# ---------------------------------------------------------------------------------------------------- tokenizer


class WordBPE:
    """A word-level BPE tokenizer: train it, encode, decode, save and load.

    Attributes:
        alphabet: the base characters, sorted.
        merges: the learned pairs, in order; ``merges[i]`` has rank ``i``.
        token2id: ``{token: id}``: ``<pad>`` 0, ``<unk>`` 1, the alphabet, ``</w>``, then one token per merge.
        id2token: the inverse list.
    """

    def __init__(self) -> None:
        self._set_merges([], [])

    def _set_merges(self, alphabet: list[str], merges: list[Pair]) -> None:
        """Install a base alphabet and a merge list and rebuild the vocabulary from them."""
        self.alphabet = list(alphabet)
        self.merges = [tuple(pair) for pair in merges]
        self.ranks: dict[Pair, int] = {}
        for rank, pair in enumerate(self.merges):
            self.ranks.setdefault(pair, rank)
        self.id2token = [PAD, UNK]
        self.token2id = {PAD: PAD_ID, UNK: UNK_ID}
        for token in [*self.alphabet, END_OF_WORD, *("".join(pair) for pair in self.merges)]:
            if token not in self.token2id:  # two merges can, rarely, spell the same string
                self.token2id[token] = len(self.id2token)
                self.id2token.append(token)
        self._cache: dict[str, list[str]] = {}

    @property
    def vocab_size(self) -> int:
        """Number of token ids, ``<pad>`` and ``<unk>`` included."""
        return len(self.id2token)

    def train(self, text: Corpus, num_merges: int, verbose: bool = False) -> None:
        """Learn ``num_merges`` merges from ``text`` (replacing any previous ones); ``verbose`` shows a progress bar.

        Stops early, with a warning, when no word has two symbols left.
        """
        merges = learn_bpe(text, num_merges, verbose=verbose)
        self._set_merges(alphabet_of(text), merges)

    def encode_word(self, word: str) -> list[str]:
        """The tokens of one word: spell it with ``</w>``, then apply the lowest-ranked adjacent pair until none of
        the pairs is a learned merge. Results are cached, as in GPT-2's ``encoder.py``."""
        if word in self._cache:
            return self._cache[word]
        symbols = list(word) + [END_OF_WORD]
        while len(symbols) > 1:
            pairs = set(zip(symbols, symbols[1:]))
            pair = min(pairs, key=lambda p: self.ranks.get(p, float("inf")))
            if pair not in self.ranks:
                break
            symbols = merge_symbols(symbols, pair)
        self._cache[word] = symbols
        return symbols

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text``; characters never seen in training become ``<unk>`` (id 1)."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        if not self.alphabet:
            raise RuntimeError("the tokenizer has no vocabulary yet: call train() or load() first")
        return [self.token2id.get(tok, UNK_ID) for word in text.split() for tok in self.encode_word(word)]

    def encode_batch(
        self,
        texts: Sequence[str],
        max_length: int | None = None,
        padding: Padding = "longest",
        truncation: bool = False,
    ) -> dict[str, list[list[int]]]:
        """Encode a list of texts, padded with ``<pad>`` (id 0); returns ``{"input_ids", "attention_mask"}``.

        ``max_length``, ``padding`` and ``truncation`` work as in :func:`pad_batch`.
        """
        if isinstance(texts, str) or not isinstance(texts, (list, tuple)):
            raise TypeError("texts must be a list of str (use encode() for a single string)")
        ids, mask = pad_batch([self.encode(t) for t in texts], PAD_ID, max_length, padding, truncation)
        return {"input_ids": ids, "attention_mask": mask}

    def decode(self, ids: Sequence[int]) -> str:
        """The text of ``ids``: tokens concatenated, each ``</w>`` read as one space, ``<pad>`` skipped and ``<unk>``
        written as ``<unk>``."""
        tokens = []
        for idx in ids:
            if not isinstance(idx, int) or isinstance(idx, bool):
                raise TypeError(f"token ids must be ints, got {type(idx).__name__}")
            if not 0 <= idx < self.vocab_size:
                raise ValueError(f"token id {idx} is outside the vocabulary [0, {self.vocab_size})")
            if idx != PAD_ID:
                tokens.append(self.id2token[idx])
        return "".join(tokens).replace(END_OF_WORD, " ").removesuffix(" ")

    def save(self, path: str | Path) -> None:
        """Write the tokenizer as JSON (format in the module docstring). The file is replaced whole or not at all:
        an alphabet that cannot be written (a lone surrogate) raises ``ValueError`` and leaves ``path`` as it was."""
        save_json(path, {
            "format": FILE_FORMAT,
            "version": FILE_VERSION,
            "alphabet": self.alphabet,
            "merges": [list(pair) for pair in self.merges],
        })

    @classmethod
    def load(cls, path: str | Path) -> WordBPE:
        """Read a tokenizer written by :meth:`save`; ``ValueError`` if the file is not one, or is damaged."""
        data = load_json(path, FILE_FORMAT, FILE_VERSION, {"alphabet": list, "merges": list})
        alphabet, merges = data["alphabet"], data["merges"]
        if not (all(isinstance(pair, list) and len(pair) == 2 for pair in merges)
                and all(isinstance(symbol, str) for symbol in [*alphabet, *(s for pair in merges for s in pair)])):
            raise ValueError(f"{path} is damaged: 'alphabet' must list strings and 'merges' pairs of strings")
        tokenizer = cls()
        tokenizer._set_merges(alphabet, [tuple(pair) for pair in merges])
        return tokenizer
