"""Byte-level BPE, the GPT-2 tokenizer: train it, encode, decode, save, and load the real GPT-2 vocabulary.

Written in the style of Karpathy's minbpe ``RegexTokenizer``. The pipeline for one string:

1. **Split** the text into chunks with GPT-2's regex (letters, numbers, punctuation and whitespace runs, each with
   at most one leading space; English contractions such as ``'ll`` on their own). Merges never cross a chunk
   boundary, so ``dog.`` and ``dog!`` share the token ``dog``.
2. **Bytes**: each chunk becomes its UTF-8 bytes, i.e. ids in 0..255. Every string can be written this way, so
   there is no ``<unk>`` token: an unseen character simply costs several byte tokens.
3. **Train**: count every adjacent pair of ids over all chunks, give the most frequent pair a new id (256, 257, ...)
   and replace it everywhere; repeat until the vocabulary has ``vocab_size`` tokens. Equal chunks always merge
   alike, so each distinct chunk is stored once with its count. *Tie-breaking*: the highest count wins; among
   equal counts the smallest pair ``(a, b)`` compared as integers wins. This rule does not depend on where a pair
   first occurs, so :mod:`scratchformers.fast.bytebpe` reproduces it exactly.
4. **Encode** (tiktoken's algorithm): within a chunk, repeatedly merge the adjacent pair whose concatenated bytes
   form the token with the lowest id ("rank"), the leftmost pair on ties, until no adjacent pair forms a token.
   Written for reading, this is quadratic in a chunk's length (see :func:`bpe_parts` for the measured growth):
   fine for prose, whose chunks are short; :mod:`scratchformers.fast.bytebpe` is the encoder for long chunks.
   A chunk that is itself a token is emitted directly, as tiktoken does. Working with byte strings and ranks
   rather than with the merge list lets the same code run GPT-2's own vocabulary, whose 256 byte tokens are not
   numbered 0..255 (GPT-2 gave the printable bytes the first ids).
5. **Decode**: concatenate the tokens' bytes and decode them as UTF-8 with ``errors="replace"``: a list of ids
   that cuts a multi-byte character in half decodes to U+FFFD (``�``) instead of raising.

Invalid Unicode: a Python ``str`` may contain surrogate code points (U+D800..U+DFFF), which have no UTF-8 encoding.
``encode`` (and ``train``) repair them exactly like tiktoken: a high/low surrogate pair becomes the character it
stands for and a lone surrogate becomes U+FFFD. Hence ``decode(encode(s)) == s`` for every string without
surrogates, and equals the repaired string otherwise: invalid Unicode never makes ``encode`` fail.

Special tokens such as ``<|endoftext|>`` are registered with :meth:`ByteLevelBPE.register_special_tokens` and
are never produced by merges. Whether their text inside the input is encoded as the special id depends on
``allowed_special``, following tiktoken's policy (see :meth:`ByteLevelBPE.encode`).

File format (:meth:`ByteLevelBPE.save`): JSON with the split ``pattern``, ``byte_ids`` (the id of each byte value
0..255), ``merges`` as ``[a, b, new_id]`` triples in the order they were learned, and ``special_tokens``.
"""
from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Iterable, Set
from pathlib import Path
from typing import Literal, Union

import regex
from tqdm import tqdm

from scratchformers.reference.gpt2_encoding import ENDOFTEXT, ENDOFTEXT_ID, GPT2_SPLIT_PATTERN, gpt2_mergeable_ranks
from scratchformers.reference.jsonfile import load_json, save_json

FILE_FORMAT = "scratchformers-bytebpe"
FILE_VERSION = 1
AllowedSpecial = Union[Literal["none_raise", "all", "none"], Set[str]]


def get_stats(
    ids: list[int], counts: dict[tuple[int, int], int] | None = None, weight: int = 1
) -> dict[tuple[int, int], int]:
    """Count adjacent pairs, ``weight`` each, adding into ``counts`` if given.

    ``get_stats([1, 2, 3, 1, 2]) == {(1, 2): 2, (2, 3): 1, (3, 1): 1}``
    """
    counts = {} if counts is None else counts
    for pair in zip(ids, ids[1:]):
        counts[pair] = counts.get(pair, 0) + weight
    return counts


def merge(ids: list[int], pair: tuple[int, int], idx: int) -> list[int]:
    """Replace every occurrence of ``pair``, scanning left to right, by ``idx``: ``[1, 1, 1], (1, 1), 9 -> [9, 1]``."""
    out = []
    i = 0
    while i < len(ids):
        if i + 1 < len(ids) and (ids[i], ids[i + 1]) == pair:
            out.append(idx)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def most_frequent_pair(stats: dict[tuple[int, int], int]) -> tuple[int, int]:
    """The pair to merge next: highest count, ties broken by the smallest pair ``(a, b)``."""
    return min(stats, key=lambda pair: (-stats[pair], pair))


def bpe_parts(piece: bytes, ranks: dict[bytes, int], max_rank: int | None = None) -> list[bytes]:
    """Split ``piece`` into tokens by merging, each time, the adjacent pair whose concatenation has the lowest rank.

    Only tokens of rank below ``max_rank`` may be formed when it is given (used by :func:`recover_merges`).
    Ties (the same token possible at two places) go to the leftmost pair, as in tiktoken.

    Cost: each merge rescans every adjacent pair and splices the list, and a piece of n bytes takes up to n - 1
    merges, so the time is quadratic in n. Ordinary text is cut by the split regex into pieces of a few bytes, so
    encoding it grows about linearly (Shakespeare, 10 KB -> 100 KB: 9x to 18x the time over four runs on a busy
    machine). A piece the regex does not cut (a long run of letters, digits or spaces) does not: 1 KB -> 10 KB of
    letters took 146x the time, and 100 KB would take about a hundred times longer again. For such input use
    :mod:`scratchformers.fast.bytebpe` (tiktoken), which encoded the same 10 KB about 15,000x faster. (Measured
    side by side on a shared 2-core CPU: ``benchmarks/test_bench_bytebpe.py``, groups ``bytebpe-growth-*``.)
    """
    parts = [bytes([b]) for b in piece]
    while len(parts) > 1:
        candidates = []  # (rank, position) of every adjacent pair that forms an allowed token
        for i in range(len(parts) - 1):
            rank = ranks.get(parts[i] + parts[i + 1])
            if rank is not None and (max_rank is None or rank < max_rank):
                candidates.append((rank, i))
        if not candidates:
            break
        _, i = min(candidates)  # lowest rank, then leftmost
        parts[i : i + 2] = [parts[i] + parts[i + 1]]
    return parts


def recover_merges(ranks: dict[bytes, int]) -> dict[tuple[int, int], int]:
    """Rebuild the merge list ``{(a, b): id}`` from tiktoken-style ranks ``{token bytes: id}`` (minbpe's recipe).

    The token of rank r was created by the last merge BPE performs on its own bytes when only the tokens of rank
    below r exist; running that restricted BPE leaves exactly two parts, whose ids are the merged pair.
    """
    merges = {}
    for token, rank in sorted(ranks.items(), key=lambda item: item[1]):
        if len(token) == 1:
            continue
        parts = bpe_parts(token, ranks, max_rank=rank)
        if len(parts) != 2:
            raise ValueError(f"token {token!r} (rank {rank}) cannot be built from two lower-ranked tokens")
        merges[ranks[parts[0]], ranks[parts[1]]] = rank
    return merges


def repair_surrogates(text: str) -> str:
    """Make ``text`` encodable as UTF-8 the way tiktoken does: join surrogate pairs, lone surrogates -> U+FFFD."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text


def check_text(text: object) -> str:
    """``text`` with surrogates repaired; ``TypeError`` if it is not a ``str``."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    return repair_surrogates(text)


class ByteLevelBPE:
    """A byte-level BPE tokenizer with GPT-2's split regex.

    Attributes:
        merges: ``{(a, b): new_id}`` in the order the merges were learned.
        byte_ids: ``byte_ids[b]`` is the id of the one-byte token ``bytes([b])`` (``b`` itself after training).
        vocab: ``{id: bytes}`` for every ordinary (non-special) token.
        ranks: the inverse of ``vocab``, ``{bytes: id}``; what :meth:`encode` uses.
        special_tokens: ``{text: id}``, e.g. ``{"<|endoftext|>": 50256}``.
    """

    def __init__(self) -> None:
        self.pattern = GPT2_SPLIT_PATTERN
        self.compiled_pattern = regex.compile(self.pattern)
        self.special_tokens: dict[str, int] = {}
        self._set_merges({}, byte_ids=list(range(256)))

    # ------------------------------------------------------------------ vocabulary

    def _set_merges(self, merges: dict[tuple[int, int], int], byte_ids: list[int]) -> None:
        """Install a merge list and rebuild ``vocab`` and ``ranks`` from it."""
        if len(byte_ids) != 256 or len(set(byte_ids)) != 256:
            raise ValueError("byte_ids must list 256 distinct token ids, one per byte value")
        vocab = {idx: bytes([b]) for b, idx in enumerate(byte_ids)}
        for (a, b), idx in merges.items():
            if a not in vocab or b not in vocab:
                raise ValueError(f"merge ({a}, {b}) -> {idx} uses an id that does not exist yet")
            if idx in vocab:
                raise ValueError(f"merge ({a}, {b}) -> {idx} reuses the existing id {idx}")
            vocab[idx] = vocab[a] + vocab[b]
        clash = sorted(set(vocab) & set(self.special_tokens.values()))
        if clash:
            raise ValueError(f"special token ids {clash} collide with ordinary token ids")
        self.merges = dict(merges)
        self.byte_ids = list(byte_ids)
        self.vocab = vocab
        # Should two merges ever spell the same bytes, encoding uses the lower id (as tiktoken would).
        self.ranks = {token: idx for idx, token in sorted(vocab.items(), reverse=True)}

    @property
    def vocab_size(self) -> int:
        """The size of the embedding table this tokenizer needs: its largest id plus one, ordinary and special
        tokens alike (tiktoken's ``n_vocab``, the same definition). Ids no token uses count too: a 1,000-token
        vocabulary with ``<|endoftext|>`` registered as 50256 has ``vocab_size`` 50,257."""
        return max([*self.vocab, *self.special_tokens.values()]) + 1

    @property
    def inverse_special_tokens(self) -> dict[int, str]:
        """``{id: text}`` for the special tokens."""
        return {idx: token for token, idx in self.special_tokens.items()}

    def register_special_tokens(self, special_tokens: dict[str, int]) -> None:
        """Add special tokens ``{text: id}``; their ids must not be used by any other token."""
        if not isinstance(special_tokens, dict):
            raise TypeError(f"special_tokens must be a dict {{text: id}}, got {type(special_tokens).__name__}")
        taken = set(self.vocab) | set(self.special_tokens.values())
        for token, idx in special_tokens.items():
            if not isinstance(token, str) or not token or token != repair_surrogates(token):
                raise ValueError(f"special token {token!r} must be a non-empty, valid Unicode string")
            if not isinstance(idx, int) or isinstance(idx, bool) or idx < 0:
                raise ValueError(f"special token id for {token!r} must be a non-negative int, got {idx!r}")
            if token in self.special_tokens:
                raise ValueError(f"special token {token!r} is already registered")
            if idx in taken:
                raise ValueError(f"id {idx} for special token {token!r} is already used by another token")
            taken.add(idx)
        self.special_tokens.update(special_tokens)

    # ------------------------------------------------------------------ training

    def _check_train_args(self, text: object, vocab_size: object) -> str:
        """Validate ``train``'s arguments; returns the text with surrogates repaired."""
        text = check_text(text)
        if not text:
            raise ValueError("cannot train on empty text")
        if not isinstance(vocab_size, int) or isinstance(vocab_size, bool):
            raise TypeError(f"vocab_size must be an int, got {type(vocab_size).__name__}")
        if vocab_size < 256:
            raise ValueError(f"vocab_size must be at least 256 (one token per byte), got {vocab_size}")
        clash = sorted(idx for idx in self.special_tokens.values() if idx < vocab_size)
        if clash:
            raise ValueError(f"special token ids {clash} fall inside the trained vocabulary (< {vocab_size})")
        return text

    @staticmethod
    def _warn_early_stop(num_merges: int, vocab_size: int) -> None:
        warnings.warn(
            f"no adjacent pair left to merge after {num_merges} merges: "
            f"vocabulary stops at {256 + num_merges} tokens instead of {vocab_size}",
            stacklevel=3,
        )

    def train(self, text: str, vocab_size: int, verbose: bool = False) -> None:
        """Learn ``vocab_size - 256`` merges from ``text`` (replacing any previous ones).

        Stops early, with a warning, when no chunk has two tokens left. ``verbose`` shows a tqdm progress bar.
        Special tokens already registered must have ids ``>= vocab_size``.
        """
        text = self._check_train_args(text, vocab_size)
        # Equal chunks (" the", " and", ...) always merge alike: keep each distinct chunk once, with its count.
        chunk_counts = Counter(self.compiled_pattern.findall(text))
        chunks = [list(chunk.encode("utf-8")) for chunk in chunk_counts]  # byte ids, 0..255
        counts = list(chunk_counts.values())
        merges = {}
        for i in tqdm(range(vocab_size - 256), desc="byte-level BPE", unit="merge", disable=not verbose):
            stats = {}
            for ids, count in zip(chunks, counts):
                get_stats(ids, stats, weight=count)
            if not stats:
                self._warn_early_stop(i, vocab_size)
                break
            pair = most_frequent_pair(stats)
            idx = 256 + i
            chunks = [merge(ids, pair, idx) for ids in chunks]
            merges[pair] = idx
        self._set_merges(merges, byte_ids=list(range(256)))

    # ------------------------------------------------------------------ encoding and decoding

    def _encode_chunk(self, chunk: bytes) -> list[int]:
        if chunk in self.ranks:  # tiktoken's shortcut: a chunk that is a token is that token
            return [self.ranks[chunk]]
        return [self.ranks[part] for part in bpe_parts(chunk, self.ranks)]

    def encode_ordinary(self, text: str) -> list[int]:
        """Encode ``text`` ignoring special tokens (their text is encoded like any other text)."""
        return self._encode_ordinary(check_text(text))

    def _encode_ordinary(self, text: str) -> list[int]:
        ids = []
        for chunk in self.compiled_pattern.findall(text):
            ids.extend(self._encode_chunk(chunk.encode("utf-8")))
        return ids

    def _allowed_special(self, text: str, allowed_special: AllowedSpecial) -> dict[str, int]:
        """The special tokens to recognise in ``text``; raises if it holds one that is not allowed."""
        if isinstance(allowed_special, str):
            if allowed_special == "all":
                allowed = dict(self.special_tokens)
            elif allowed_special == "none":
                return {}
            elif allowed_special == "none_raise":
                allowed = {}
            else:
                raise ValueError(
                    f"allowed_special must be 'none_raise', 'all', 'none' or a set, got {allowed_special!r}"
                )
        elif isinstance(allowed_special, Set):
            unknown = sorted(set(allowed_special) - set(self.special_tokens))
            if unknown:
                raise ValueError(f"allowed_special names unregistered special tokens {unknown}")
            allowed = {token: self.special_tokens[token] for token in allowed_special}
        else:
            raise TypeError(f"allowed_special must be a str or a set, got {type(allowed_special).__name__}")
        for token in self.special_tokens:
            if token not in allowed and token in text:
                raise ValueError(
                    f"text contains the special token {token!r}, which is not allowed: pass allowed_special='all' "
                    "(or a set naming it) to encode it as a special token, or 'none' to encode it as plain text"
                )
        return allowed

    def encode(self, text: str, allowed_special: AllowedSpecial = "none_raise") -> list[int]:
        """Encode ``text`` to token ids, with tiktoken's policy for special tokens in the text.

        ``allowed_special``:
            - ``"none_raise"`` (default, tiktoken's ``encode(text)``): raise ``ValueError`` if the text contains any
              special token, so that user text cannot inject ``<|endoftext|>``.
            - ``"all"``: every registered special token becomes its special id.
            - ``"none"``: special tokens are encoded as plain text (same as :meth:`encode_ordinary`).
            - a set of special token texts: those become special ids; any other special token in the text raises
              ``ValueError`` (tiktoken's ``allowed_special=set, disallowed_special="all"``).

        Where two allowed special tokens start at the same position the longer one wins.
        """
        text = check_text(text)
        special = self._allowed_special(text, allowed_special)
        if not special:
            return self._encode_ordinary(text)
        alternatives = "|".join(regex.escape(token) for token in sorted(special, key=len, reverse=True))
        ids = []
        for part in regex.split(f"({alternatives})", text):  # odd positions hold the special tokens
            if part in special:
                ids.append(special[part])
            else:
                ids.extend(self._encode_ordinary(part))
        return ids

    def decode(self, ids: Iterable[int]) -> str:
        """Concatenate the tokens' bytes and decode them as UTF-8; broken sequences become U+FFFD (``"replace"``)."""
        inverse_special = self.inverse_special_tokens
        parts = []
        for idx in ids:
            if not isinstance(idx, int) or isinstance(idx, bool):
                raise TypeError(f"token ids must be ints, got {type(idx).__name__}")
            if idx in self.vocab:
                parts.append(self.vocab[idx])
            elif idx in inverse_special:
                parts.append(inverse_special[idx].encode("utf-8"))
            else:
                raise ValueError(f"invalid token id {idx}: no token has it (ids lie in [0, {self.vocab_size}))")
        return b"".join(parts).decode("utf-8", errors="replace")

    # ------------------------------------------------------------------ GPT-2, saving and loading

    @classmethod
    def from_gpt2(cls) -> ByteLevelBPE:
        """The real GPT-2 tokenizer (50,257 ids, ``<|endoftext|>`` = 50256) from the files shipped in the package."""
        ranks = gpt2_mergeable_ranks()
        tokenizer = cls()
        tokenizer._set_merges(recover_merges(ranks), byte_ids=[ranks[bytes([b])] for b in range(256)])
        tokenizer.register_special_tokens({ENDOFTEXT: ENDOFTEXT_ID})
        return tokenizer

    def save(self, path: str | Path) -> None:
        """Write the tokenizer as JSON (format described in the module docstring), replacing ``path`` whole."""
        save_json(path, {
            "format": FILE_FORMAT,
            "version": FILE_VERSION,
            "pattern": self.pattern,
            "byte_ids": self.byte_ids,
            "merges": [[a, b, idx] for (a, b), idx in self.merges.items()],
            "special_tokens": self.special_tokens,
        })

    @classmethod
    def load(cls, path: str | Path) -> ByteLevelBPE:
        """Read a tokenizer written by :meth:`save`; ``ValueError`` if the file is not one, or is damaged."""
        data = load_json(path, FILE_FORMAT, FILE_VERSION,
                         {"pattern": str, "byte_ids": list, "merges": list, "special_tokens": dict})
        if data["pattern"] != GPT2_SPLIT_PATTERN:
            raise ValueError(f"{path} uses a split pattern other than GPT-2's, which this class does not support")
        if not all(isinstance(m, list) and len(m) == 3 for m in data["merges"]):
            raise ValueError(f"{path} is damaged: 'merges' must list [a, b, new_id] triples")
        tokenizer = cls()
        try:
            tokenizer._set_merges({(a, b): idx for a, b, idx in data["merges"]}, byte_ids=data["byte_ids"])
            tokenizer.register_special_tokens(data["special_tokens"])
        except (ValueError, TypeError) as err:
            raise ValueError(f"{path} is damaged: {err}") from None
        return tokenizer
