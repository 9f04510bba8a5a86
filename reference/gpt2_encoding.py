"""The real GPT-2 tokenizer, built offline from the vocabulary files shipped beside this module.

``tiktoken.get_encoding("gpt2")`` downloads ``encoder.json`` and ``vocab.bpe`` on first use. ``assets/gpt2/`` holds
the same two files (OpenAI, MIT licence), checked against the sha256 hashes tiktoken itself expects, so the encoding
below is byte-for-byte tiktoken's ``gpt2`` without touching the network.
"""
from __future__ import annotations

import functools
from pathlib import Path

import tiktoken
from tiktoken.load import data_gym_to_mergeable_bpe_ranks

ENDOFTEXT = "<|endoftext|>"
ENDOFTEXT_ID = 50256
# GPT-2's pre-tokenizer regex as in OpenAI's encoder.py. tiktoken writes the same pattern with possessive
# quantifiers (faster, same splits); we use tiktoken's spelling so that the encoding is literally tiktoken's.
GPT2_SPLIT_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
TIKTOKEN_GPT2_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s"""
ENCODER_JSON_SHA256 = "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783"
VOCAB_BPE_SHA256 = "1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5"


def gpt2_files() -> tuple[Path, Path]:
    """Paths of the shipped ``encoder.json`` and ``vocab.bpe``."""
    folder = Path(__file__).with_name("assets") / "gpt2"
    return folder / "encoder.json", folder / "vocab.bpe"


def gpt2_mergeable_ranks() -> dict[bytes, int]:
    """GPT-2's 50,256 byte-sequence ranks (the 256 single bytes plus 50,000 merges), hash-checked."""
    encoder_json, vocab_bpe = gpt2_files()
    return data_gym_to_mergeable_bpe_ranks(
        vocab_bpe_file=str(vocab_bpe),
        encoder_json_file=str(encoder_json),
        vocab_bpe_hash=VOCAB_BPE_SHA256,
        encoder_json_hash=ENCODER_JSON_SHA256,
    )


@functools.lru_cache(maxsize=1)
def gpt2_encoding() -> tiktoken.Encoding:
    """tiktoken's ``gpt2`` encoding (50,257 tokens, ``<|endoftext|>`` = 50256), built offline.

    >>> enc = gpt2_encoding()
    >>> enc.decode(enc.encode("Hello world"))
    'Hello world'
    """
    return tiktoken.Encoding(
        name="gpt2",
        pat_str=TIKTOKEN_GPT2_PATTERN,
        mergeable_ranks=gpt2_mergeable_ranks(),
        special_tokens={ENDOFTEXT: ENDOFTEXT_ID},
        explicit_n_vocab=50257,
    )
