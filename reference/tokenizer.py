"""What the library asks of a tokenizer: text to ids, ids to text, and how many ids there are.

    ids = tokenizer.encode("To be, or not to be")   # list[int], each id in [0, tokenizer.vocab_size)
    text = tokenizer.decode(ids)                    # back to a string
    tokenizer.vocab_size                            # the size of the embedding table a model needs

Every tokenizer in scratchformers has these three: :class:`~scratchformers.reference.bpe.WordBPE`,
:class:`~scratchformers.reference.bytebpe.ByteLevelBPE`, their fast twins, and the character and GPT-2 tokenizers
of :mod:`scratchformers.train.tokenizers`. Sampling (:func:`scratchformers.reference.generate.generate`) also takes
a tiktoken ``Encoding``, which calls its size ``n_vocab``.
"""
from __future__ import annotations

from typing import Protocol


class Tokenizer(Protocol):
    """``encode(str) -> list[int]``, ``decode(list[int]) -> str`` and ``vocab_size``."""

    @property
    def vocab_size(self) -> int: ...

    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids: list[int]) -> str: ...
