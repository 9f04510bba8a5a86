"""Tokenizers for training data: characters, the real GPT-2 BPE, and the classic word BPE.

Every tokenizer here is a :class:`~scratchformers.reference.tokenizer.Tokenizer`: ``encode``, ``decode`` and
``vocab_size`` (the size of the embedding table the model needs).

``prepare`` records which tokenizer produced a dataset in ``meta.json`` (``meta["tokenizer"]``, a dict with a
``"kind"`` key); :func:`load_tokenizer` rebuilds it from that record, so sampling decodes with the very tokenizer the
data was encoded with:

- ``{"kind": "gpt2"}``: tiktoken's GPT-2 encoding (50,257 tokens), built offline by
  :func:`scratchformers.reference.gpt2_encoding.gpt2_encoding`.
- ``{"kind": "char", "chars": "\\n !..."}``: one token per character, the vocabulary stored in full.
- ``{"kind": "bpe", "path": "bpe.json"}``: the classic word BPE of :mod:`scratchformers.reference.bpe`, saved next to
  the data (``path`` is relative to the data directory). It splits on whitespace and decodes to the words joined by
  single spaces, so line breaks do not survive; ``gpt2`` and ``char`` decode back to the exact text.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from scratchformers.reference.gpt2_encoding import gpt2_encoding
from scratchformers.reference.tokenizer import Tokenizer


class CharTokenizer:
    """One token per character; the vocabulary is the sorted set of characters of the corpus (nanoGPT's
    ``shakespeare_char``).

    >>> tok = CharTokenizer.from_text("hello")
    >>> tok.chars, tok.encode("hole")
    ('ehlo', [2, 3, 1, 0])
    """

    def __init__(self, chars: str) -> None:
        if len(set(chars)) != len(chars):
            raise ValueError("CharTokenizer: the vocabulary must not repeat a character")
        self.chars = chars
        self.stoi = {ch: i for i, ch in enumerate(chars)}

    @classmethod
    def from_text(cls, text: str) -> CharTokenizer:
        """The tokenizer whose vocabulary is every distinct character of ``text``, sorted."""
        return cls("".join(sorted(set(text))))

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> list[int]:
        """Map each character to its index in the vocabulary; unknown characters raise ``ValueError``."""
        try:
            return [self.stoi[ch] for ch in text]
        except KeyError:
            unknown = sorted(set(text) - set(self.stoi))
            raise ValueError(
                f"CharTokenizer: characters not in the vocabulary: {unknown!r} "
                f"(the vocabulary is the {self.vocab_size} characters of the training corpus)"
            ) from None

    def decode(self, ids: list[int]) -> str:
        """Map each id back to its character."""
        try:
            return "".join(self.chars[i] for i in ids)
        except IndexError:
            raise ValueError(f"CharTokenizer: ids must lie in [0, {self.vocab_size})") from None

    def to_dict(self) -> dict[str, Any]:
        """The JSON-able record stored in ``meta.json``."""
        return {"kind": "char", "chars": self.chars}

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> CharTokenizer:
        """Rebuild from :meth:`to_dict`'s record."""
        if record.get("kind") != "char" or not isinstance(record.get("chars"), str):
            raise ValueError(f"not a character-tokenizer record: {record!r}")
        return cls(record["chars"])


class GPT2Tokenizer:
    """tiktoken's GPT-2 encoding behind the common interface.

    ``encode`` is tiktoken's ``encode_ordinary``: the text ``<|endoftext|>`` is encoded as plain text, never as the
    special token, so no input can smuggle in a document separator. :attr:`eot_token` is that separator (50256).
    """

    def __init__(self) -> None:
        self.encoding = gpt2_encoding()
        self.eot_token = self.encoding.eot_token

    @property
    def vocab_size(self) -> int:
        return self.encoding.n_vocab

    def encode(self, text: str) -> list[int]:
        return self.encoding.encode_ordinary(text)

    def decode(self, ids: list[int]) -> str:
        return self.encoding.decode(list(ids))

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "gpt2"}


def load_tokenizer(meta: dict[str, Any], data_dir: str | Path | None = None) -> Tokenizer:
    """Rebuild the tokenizer recorded in a dataset's metadata.

    Args:
        meta: the dict returned by :func:`scratchformers.train.meta.load_meta` (or ``prepare_*``).
        data_dir: where relative paths in the record (the BPE's JSON file) live; defaults to ``meta["data_dir"]``,
            which ``load_meta`` fills in.
    """
    record = meta.get("tokenizer")
    kind = record.get("kind") if isinstance(record, dict) else None
    if kind == "gpt2":
        return GPT2Tokenizer()
    if kind == "char":
        return CharTokenizer.from_dict(record)
    if kind == "bpe":
        from scratchformers.reference.bpe import WordBPE

        base = data_dir if data_dir is not None else meta.get("data_dir")
        if base is None:
            raise ValueError("load_tokenizer: a BPE record needs data_dir (its JSON file is stored next to the data)")
        path = Path(base) / record["path"]
        if not path.is_file():
            raise FileNotFoundError(f"the BPE tokenizer file {path} is missing; re-run `scratchformers prepare`")
        return WordBPE.load(str(path))
    raise ValueError(f"unknown tokenizer record in meta.json: {record!r}; expected kind 'gpt2', 'char' or 'bpe'")
