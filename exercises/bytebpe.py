"""Byte-level BPE encoding, the GPT-2 tokenizer: your ids must equal tiktoken's "gpt2" encoding.

Write ``encode(text, ranks)``, where ``ranks`` maps a token's bytes to its id (GPT-2's 50,256 "mergeable ranks",
e.g. ranks[b"Hello"] == 15496; the lower the id, the earlier the merge that made it):

1. Split the text into chunks with GPT-2's regex pattern (letters, numbers, punctuation, whitespace, each with at
   most one leading space; contractions like 's on their own). Use the ``regex`` module: ``re`` has no \\p{L}.
2. Start each chunk as its UTF-8 bytes, one part per byte: [bytes([b]) for b in chunk.encode("utf-8")].
3. Repeatedly merge the adjacent pair of parts whose concatenation has the lowest rank (the leftmost such pair on
   a tie), until no adjacent pair forms a token.
4. The ids are the ranks of the parts, chunk after chunk.

    encode("Hello world", ranks) == [15496, 995]

Merges never cross a chunk boundary, and no text needs an unknown token: every byte is a token.

About 12 lines. The library's version is reference/bytebpe.py (bpe_parts and ByteLevelBPE.encode_ordinary); try
it yourself first. Check it with

    scratchformers check bytebpe bytebpe.py
"""
from collections.abc import Mapping

import regex  # noqa: F401  (you will need it for step 1)

from scratchformers.reference.gpt2_encoding import GPT2_SPLIT_PATTERN  # noqa: F401  (GPT-2's regex pattern)


def encode(text: str, ranks: Mapping[bytes, int]) -> list[int]:
    """GPT-2's token ids for ``text``."""
    raise NotImplementedError
