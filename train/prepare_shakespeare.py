"""The embedded Shakespeare as a prepared dataset (nanoGPT's ``data/shakespeare_char/prepare.py``, as a function).

The whole corpus fits the tokenizer (so the validation text never holds an unknown character), the last 10 % of the
characters is the validation split, one contiguous piece, and each split is encoded to a flat file of token ids
(see :mod:`.meta` for the folder it writes).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from scratchformers.train.data import shakespeare
from scratchformers.train.datasets import DEFAULT_BPE_MERGES, SHAKESPEARE_VAL_FRACTION, shakespeare_spec
from scratchformers.train.meta import load_meta, sha256_text, token_dtype
from scratchformers.train.staging import BPE_FILE, begin, commit, staged
from scratchformers.train.tokenizers import CharTokenizer, GPT2Tokenizer


def _shakespeare_tokenizer(kind: str, text: str, out: Path, bpe_merges: int) -> Any:
    """Build (and for BPE, train and stage) the tokenizer; the vocabulary is fitted on the whole corpus, as in
    nanoGPT's ``shakespeare_char``, so the validation text never holds an unknown character."""
    if kind == "gpt2":
        return GPT2Tokenizer()
    if kind == "char":
        return CharTokenizer.from_text(text)
    # The fast trainer learns the reference's exact merge list (4,000 merges on the full corpus in seconds instead
    # of ~20 minutes) and saves the same file, which load_tokenizer reads with the reference class.
    from scratchformers.fast.bpe import WordBPE

    bpe = WordBPE()
    bpe.train(text, bpe_merges)
    bpe.save(staged(out / BPE_FILE))
    return bpe


def prepare_shakespeare(
    out_dir: str | Path,
    tokenizer: str = "gpt2",
    variant: str = "full",
    val_fraction: float = SHAKESPEARE_VAL_FRACTION,
    bpe_merges: int = DEFAULT_BPE_MERGES,
) -> dict[str, Any]:
    """Tokenize the embedded Shakespeare corpus into ``out_dir/{train,val}.bin`` and ``meta.json``.

    The validation split is the last ``val_fraction`` of the characters, one contiguous piece (nanoGPT's
    ``shakespeare_char``): random documents would leak neighbouring lines of the same play into both splits.
    Each split is encoded on its own, so decoding ``val.bin`` gives back exactly the validation text. A dataset
    already in ``out_dir`` is replaced only once the new one is complete (see the module docstring).

    Args:
        out_dir: the directory to write (created if needed); the default of ``scratchformers prepare`` is
            ``shakespeare_spec(tokenizer, variant, bpe_merges).directory()``.
        tokenizer: ``"gpt2"`` (tiktoken's GPT-2 BPE, 50,257 tokens), ``"char"`` (one token per distinct character)
            or ``"bpe"`` (the classic word BPE, trained here with ``bpe_merges`` merges and saved as ``bpe.json``;
            it keeps words, not whitespace, so its data decodes to the words joined by single spaces).
        variant: ``"full"`` (5.06 M characters) or ``"tiny"`` (the first 1.1 M, tinyshakespeare's size).
        val_fraction: the fraction of characters held out, in (0, 1).
        bpe_merges: number of merges learned by the word BPE (ignored by the other tokenizers).

    Returns:
        The metadata, as :func:`load_meta` returns it.
    """
    spec = shakespeare_spec(tokenizer, variant, bpe_merges)  # checks the tokenizer, variant and merges
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must lie in (0, 1), got {val_fraction}")
    text = shakespeare(variant)
    out = begin(out_dir)
    tok = _shakespeare_tokenizer(tokenizer, text, out, bpe_merges)
    dtype = token_dtype(tok.vocab_size)
    n = int(len(text) * (1.0 - val_fraction))
    pieces = {"train": text[:n], "val": text[n:]}
    counts = {}
    for split, piece in pieces.items():
        ids = np.array(tok.encode(piece), dtype=dtype)
        ids.tofile(staged(out / f"{split}.bin"))
        counts[split] = len(ids)
    meta = {
        "dataset": spec.to_dict(),
        "tokenizer": {"kind": "bpe", "path": BPE_FILE} if tokenizer == "bpe" else tok.to_dict(),
        "vocab_size": tok.vocab_size,
        "dtype": dtype.name,
        "tokens": counts,
        "characters": {split: len(piece) for split, piece in pieces.items()},
        "split": f"contiguous: the last {val_fraction:g} of the characters is val",
        "source": {
            "description": f"embedded Shakespeare corpus, variant {variant!r} (scratchformers.train.data.shakespeare)",
            "variant": variant,
            "sha256": sha256_text(text),
        },
    }
    commit(out, meta)
    return load_meta(out)
