"""A prepared dataset: a folder with a flat file of token ids per split and ``meta.json`` saying what they are.

::

    train.bin   the training tokens, one after the other, as raw uint16 (uint32 if the vocabulary exceeds 65,536)
    val.bin     the validation tokens, same format
    meta.json   what they are and how they were made (below)
    bpe.json    with the word BPE only: the tokenizer

``meta.json`` records:

- ``dataset``: the :class:`~scratchformers.train.datasets.DatasetSpec` (recipe, tokenizer, Shakespeare variant, BPE
  merges) that ``scratchformers train`` compares with what it was asked for;
- ``tokenizer`` (the record that rebuilds it, see :mod:`.tokenizers`), ``vocab_size``, ``dtype``;
- ``tokens`` per split, ``characters`` or ``documents`` per split, and ``split`` (how val was chosen);
- ``source``: for Shakespeare the variant and the text's sha256; for local files the ``--data-files`` as given, the
  number of files, their bytes and the sha256 of their *contents* (:func:`.documents.fingerprint`), so a corpus
  that changed on disk shows as a different hash, and is read again rather than taken from the ``datasets`` cache.

The ``.bin`` files have no header, so ``np.memmap(path, dtype=meta["dtype"], mode="r")`` reads them back without
loading them into memory (OpenWebText's 9 B tokens are 17 GB). Because nothing in the file itself says how long it
should be, :func:`load_meta` compares each file's size with the count recorded in ``meta.json`` and refuses a
truncated or mismatched file; :func:`check_vocab` refuses a model whose embedding table is smaller than the data's
vocabulary. The recipes that write such folders are :mod:`.prepare_shakespeare` and :mod:`.prepare_openwebtext`;
:mod:`.staging` replaces a folder's dataset all or nothing.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from scratchformers.train.staging import META_FILE, SPLITS, finish_commit


class DatasetMissingError(FileNotFoundError):
    """The folder holds no prepared dataset (no ``meta.json``)."""


def token_dtype(vocab_size: int) -> np.dtype:
    """The smallest unsigned dtype that holds every id of the vocabulary: uint16 up to 65,536 tokens (GPT-2's
    50,257 fit), uint32 beyond."""
    return np.dtype(np.uint16 if vocab_size <= 2**16 else np.uint32)


def sha256_text(text: str) -> str:
    """Hex sha256 of a string's UTF-8 bytes."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def load_meta(data_dir: str | Path) -> dict[str, Any]:
    """Read ``meta.json`` of a prepared dataset and check that every ``.bin`` file has the recorded size.

    Returns the metadata with one extra key, ``data_dir`` (the directory, as given), so that
    :func:`scratchformers.train.tokenizers.load_tokenizer` can find files stored next to the data. A replacement
    that was committed but not finished (the preparing process was killed) is finished first.

    Raises:
        DatasetMissingError: the directory holds no prepared dataset.
        FileNotFoundError: a ``.bin`` file is missing.
        ValueError: ``meta.json`` is malformed, or a ``.bin`` file's size does not match its token count.
    """
    data_dir = Path(data_dir)
    path = data_dir / META_FILE
    finish_commit(data_dir)
    if not path.is_file():
        raise DatasetMissingError(
            f"no prepared dataset in {data_dir} ({META_FILE} is missing): prepare one with `scratchformers prepare "
            f"shakespeare --out {data_dir}` (the embedded corpus) or `scratchformers prepare openwebtext "
            f"--data-files FILE ... --out {data_dir}` (your documents)"
        )
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
        missing = [key for key in ("tokenizer", "vocab_size", "dtype", "tokens") if key not in meta]
        if missing:
            raise KeyError(f"no {', '.join(missing)}")
        itemsize = np.dtype(meta["dtype"]).itemsize
        counts = {split: int(meta["tokens"][split]) for split in SPLITS}
    except (ValueError, KeyError, TypeError) as err:
        reason = f"{type(err).__name__}: {err}"
        raise ValueError(f"{path} is malformed ({reason}); re-run `scratchformers prepare`") from None
    for split, count in counts.items():
        bin_path = data_dir / f"{split}.bin"
        if not bin_path.is_file():
            raise FileNotFoundError(
                f"{bin_path} is missing although {META_FILE} lists it; re-run `scratchformers prepare`"
            )
        size, expected = bin_path.stat().st_size, count * itemsize
        if size != expected:
            raise ValueError(
                f"{bin_path} holds {size:,} bytes but {META_FILE} records {count:,} {meta['dtype']} tokens "
                f"({expected:,} bytes): the file is truncated or comes from another prepare run; "
                "re-run `scratchformers prepare`"
            )
    meta["data_dir"] = str(data_dir)
    return meta


def check_vocab(meta: dict[str, Any], vocab_size: int) -> None:
    """Refuse a model whose vocabulary is smaller than the data's: its embedding lookup would fail (on CPU) or read
    out of bounds (on GPU) at the first large token id. A larger one is fine (GPT-2 pads 50,257 to 50,304)."""
    if vocab_size < meta["vocab_size"]:
        raise ValueError(
            f"the model's vocab_size {vocab_size:,} is smaller than the data's {meta['vocab_size']:,} "
            f"({meta['tokenizer']['kind']} tokenizer, {meta.get('data_dir', 'this dataset')}): "
            f"set vocab_size >= {meta['vocab_size']} or prepare the data with the model's tokenizer"
        )
