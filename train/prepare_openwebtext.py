"""OpenWebText (or your own documents) as a prepared dataset (nanoGPT's ``data/openwebtext/prepare.py``, as a
function): GPT-2's tokens of every document plus ``<|endoftext|>``, concatenated into one flat file per split (see
:mod:`.meta` for the folder it writes)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from scratchformers.reference.gpt2_encoding import ENDOFTEXT_ID, gpt2_encoding
from scratchformers.train.datasets import OPENWEBTEXT_SPEC, OPENWEBTEXT_SPLIT_SEED, OPENWEBTEXT_VAL_FRACTION
from scratchformers.train.documents import expand_data_files, fingerprint, load_documents
from scratchformers.train.meta import load_meta, token_dtype
from scratchformers.train.progress import progress_bar
from scratchformers.train.staging import SPLITS, STAGED, begin, commit, staged
from scratchformers.train.tokenizers import GPT2Tokenizer


def _load_hub_dataset(dataset_name: str, num_proc: int, cache_dir: str | None) -> Any:
    """The hub dataset as one ``datasets.Dataset``, or a one-line error that says how to use local files."""
    from datasets import load_dataset

    try:
        return load_dataset(dataset_name, split="train", num_proc=num_proc, cache_dir=cache_dir)
    except Exception as err:  # network, hub or loading-script errors all end here
        raise RuntimeError(
            f"could not load the {dataset_name!r} dataset from the Hugging Face hub ({type(err).__name__}: {err}). "
            "Without network access (or with datasets >= 4, which no longer runs the loading script of "
            "'openwebtext'), download the data yourself, e.g. the parquet files of Skylion007/openwebtext, and pass "
            "them with `scratchformers prepare openwebtext --data-files 'owt/*.parquet'`"
        ) from err


def _tokenize_documents(batch: dict[str, list[str]]) -> dict[str, list]:
    """GPT-2 ids of each document followed by ``<|endoftext|>`` (50256), the separator GPT-2 was trained with."""
    enc = gpt2_encoding()
    ids = [enc.encode_ordinary(text) + [ENDOFTEXT_ID] for text in batch["text"]]
    return {"ids": ids, "len": [len(x) for x in ids]}


def _write_split(dset: Any, path: Path, dtype: np.dtype) -> int:
    """Concatenate the ``ids`` column of every document into one memmap, shard by shard (nanoGPT)."""
    total = int(np.sum(dset["len"], dtype=np.uint64))
    arr = np.memmap(path, dtype=dtype, mode="w+", shape=(total,))
    num_shards = min(1024, len(dset))
    idx = 0
    for i in progress_bar(range(num_shards), desc=f"writing {path.name.removesuffix(STAGED)}", unit="shard"):
        shard = dset.shard(num_shards=num_shards, index=i, contiguous=True).with_format("numpy")
        ids = np.concatenate(list(shard["ids"]))
        arr[idx : idx + len(ids)] = ids
        idx += len(ids)
    arr.flush()
    del arr
    return total


def prepare_openwebtext(
    out_dir: str | Path,
    data_files: list[str | Path] | None = None,
    num_proc: int | None = None,
    val_fraction: float = OPENWEBTEXT_VAL_FRACTION,
    seed: int = OPENWEBTEXT_SPLIT_SEED,
    max_documents: int | None = None,
    cache_dir: str | Path | None = None,
    dataset_name: str = "openwebtext",
) -> dict[str, Any]:
    """Tokenize OpenWebText (or local documents) with GPT-2's BPE into ``out_dir/{train,val}.bin`` + ``meta.json``.

    The recipe of nanoGPT's ``data/openwebtext/prepare.py``: the documents, a shuffled
    ``train_test_split(test_size=val_fraction, seed=seed)`` of them (0.05 %: ~4,000 of 8 M documents),
    ``encode_ordinary`` plus ``<|endoftext|>`` per document in ``num_proc`` worker processes, then every document's
    ids concatenated into a uint16 memmap, 1,024 shards at a time. A dataset already in ``out_dir`` is replaced
    only once the new one is complete (see the module docstring).

    Args:
        out_dir: the directory to write (created if needed).
        data_files: local files or globs instead of the hub dataset (formats, checks and path rules in
            :mod:`scratchformers.train.documents`): ``.jsonl``/``.json`` or ``.parquet`` with a ``text`` column
            (one document per row), or ``.txt`` files (one document per file); ``.gz``, ``.bz2``, ``.xz`` allowed.
        num_proc: worker processes for tokenizing (and loading the hub dataset); default: half the CPU cores.
        val_fraction: the fraction of documents held out (at least one document).
        seed: the shuffle seed of the split.
        max_documents: keep only the first N documents (quick trials; local files are read only that far).
        cache_dir: the ``datasets`` cache (default: ``~/.cache/huggingface/datasets``).
        dataset_name: the hub dataset used when ``data_files`` is not given.

    Returns:
        The metadata, as :func:`load_meta` returns it.

    Raises:
        DataFileError: a data file, or a row of one, that is not a document (one line naming it).
    """
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must lie in (0, 1), got {val_fraction}")
    num_proc = num_proc or max(1, (os.cpu_count() or 2) // 2)
    cache = str(cache_dir) if cache_dir is not None else None
    if data_files is not None:
        files = expand_data_files(data_files)
        content = fingerprint(files)
        dataset = load_documents(files, content["sha256"], cache, limit=max_documents)
        listed = f"{str(files[0])!r}{', ...' if len(files) > 1 else ''}"
        source = {"description": f"{len(files)} local file(s): {listed}",
                  "data_files": [str(pattern) for pattern in data_files], **content}
    else:
        dataset = _load_hub_dataset(dataset_name, num_proc, cache)
        if "text" not in dataset.column_names:
            raise ValueError(f"the documents need a 'text' column; found {dataset.column_names}")
        if max_documents is not None:
            dataset = dataset.select(range(min(max_documents, len(dataset))))
        source = {"description": f"Hugging Face dataset {dataset_name!r}", "dataset": dataset_name}
    if len(dataset) < 2:
        raise ValueError(f"need at least 2 documents to split into train and val, got {len(dataset)}")

    split = dataset.train_test_split(test_size=val_fraction, seed=seed, shuffle=True)
    split["val"] = split.pop("test")
    out = begin(out_dir)
    tokenized = split.map(
        _tokenize_documents,
        batched=True,
        remove_columns=dataset.column_names,
        num_proc=num_proc,
        desc="tokenizing the documents",
    )
    dtype = token_dtype(GPT2Tokenizer().vocab_size)
    counts = {name: _write_split(tokenized[name], staged(out / f"{name}.bin"), dtype) for name in SPLITS}
    meta = {
        "dataset": OPENWEBTEXT_SPEC.to_dict(),
        "tokenizer": {"kind": "gpt2"},
        "vocab_size": GPT2Tokenizer().vocab_size,
        "dtype": dtype.name,
        "tokens": counts,
        "documents": {name: len(split[name]) for name in SPLITS},
        "split": f"documents shuffled with seed {seed}, {val_fraction:g} of them are val",
        "separator": ENDOFTEXT_ID,
        "source": {**source, "max_documents": max_documents},
    }
    commit(out, meta)
    return load_meta(out)
