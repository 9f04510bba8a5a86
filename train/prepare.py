"""Data preparation: text in, a flat file of token ids out (nanoGPT's ``prepare.py`` scripts as functions).

A prepared dataset is a directory with three files (four with the word BPE, whose ``bpe.json`` lies beside them)::

    train.bin   the training tokens, one after the other, as raw uint16 (uint32 if the vocabulary exceeds 65,536)
    val.bin     the validation tokens, same format
    meta.json   what they are and how they were made (below)

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
vocabulary.

Replacing a dataset is all or nothing. A run writes its files under staged names (``train.bin.new``, ...) while the
previous dataset stays untouched; then it writes ``meta.json.new`` (the commit point) and renames the staged files
over the old ones, ``meta.json`` last. A run that fails or is killed before the commit leaves the old dataset as it
was (the next run removes the leftovers); one killed after it is finished by the next :func:`load_meta` or prepare
(the staged files are complete by then). Either way the folder reads as the old dataset or the new one, never a mix.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from tqdm import tqdm

from scratchformers.reference.gpt2_encoding import ENDOFTEXT_ID, gpt2_encoding
from scratchformers.reference.jsonfile import save_json
from scratchformers.train import ddp
from scratchformers.train.data import shakespeare
from scratchformers.train.datasets import (
    DEFAULT_BPE_MERGES,
    OPENWEBTEXT_SPEC,
    OPENWEBTEXT_SPLIT_SEED,
    OPENWEBTEXT_VAL_FRACTION,
    SHAKESPEARE,
    SHAKESPEARE_VAL_FRACTION,
    check_spec,
    requested_spec,
    shakespeare_spec,
)
from scratchformers.train.documents import expand_data_files, fingerprint, load_documents
from scratchformers.train.tokenizers import CharTokenizer, GPT2Tokenizer

if TYPE_CHECKING:
    from scratchformers.train.config import TrainConfig

META_FILE = "meta.json"
BPE_FILE = "bpe.json"
SPLITS = ("train", "val")
STAGED = ".new"  # suffix of a file written by a run that has not committed yet


class DatasetMissingError(FileNotFoundError):
    """The folder holds no prepared dataset (no ``meta.json``)."""


def token_dtype(vocab_size: int) -> np.dtype:
    """The smallest unsigned dtype that holds every id of the vocabulary: uint16 up to 65,536 tokens (GPT-2's
    50,257 fit), uint32 beyond."""
    return np.dtype(np.uint16 if vocab_size <= 2**16 else np.uint32)


def sha256_text(text: str) -> str:
    """Hex sha256 of a string's UTF-8 bytes."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# ------------------------------------------------------------------------------------- replacing a dataset safely


def staged(path: Path) -> Path:
    """Where a run writes ``path`` before it commits: ``train.bin`` -> ``train.bin.new``."""
    return path.with_name(path.name + STAGED)


def _dataset_files(meta: dict[str, Any]) -> list[str]:
    """The files of a dataset besides ``meta.json``: the splits and, for the word BPE, its tokenizer file."""
    tokenizer = meta.get("tokenizer", {})
    return [f"{split}.bin" for split in SPLITS] + ([tokenizer["path"]] if "path" in tokenizer else [])


def _fsync(path: Path) -> None:
    """Flush a file (or a directory's entries) to disk, so that a commit never names data still in the page cache."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _finish_commit(out: Path) -> None:
    """Complete a committed replacement (``meta.json.new`` exists): rename the staged files, ``meta.json`` last.

    Idempotent and safe to run from several processes at once: a file already renamed is skipped."""
    pending = staged(out / META_FILE)
    try:
        meta = json.loads(pending.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return
    for name in _dataset_files(meta):
        with contextlib.suppress(FileNotFoundError):
            os.replace(staged(out / name), out / name)
    with contextlib.suppress(FileNotFoundError):
        os.replace(pending, out / META_FILE)
    if BPE_FILE not in _dataset_files(meta):  # the tokenizer file of a previous word-BPE dataset
        (out / BPE_FILE).unlink(missing_ok=True)


def _begin(out_dir: str | Path) -> Path:
    """Create ``out_dir``, finish a committed replacement and remove the staged files of an uncommitted one."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _finish_commit(out)
    for name in (*(f"{split}.bin" for split in SPLITS), BPE_FILE):
        staged(out / name).unlink(missing_ok=True)
    for leftover in out.glob(f".*{STAGED}.*.tmp"):  # save_json's temporary file, from a run that was killed
        leftover.unlink()
    return out


def _commit(out: Path, meta: dict[str, Any]) -> dict[str, Any]:
    """Make the staged files the dataset: flush them, write ``meta.json.new`` (the commit point), rename."""
    for name in _dataset_files(meta):
        _fsync(staged(out / name))
    save_json(staged(out / META_FILE), meta)
    _fsync(out)
    _finish_commit(out)
    _fsync(out)
    return load_meta(out)


# ---------------------------------------------------------------------------------------------- loading and checks


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
    _finish_commit(data_dir)
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


# ---------------------------------------------------------------------------------------------------- Shakespeare


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
    out = _begin(out_dir)
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
    return _commit(out, meta)


# --------------------------------------------------------------------------------------------------- OpenWebText


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
    for i in tqdm(range(num_shards), desc=f"writing {path.name.removesuffix(STAGED)}"):
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
    out = _begin(out_dir)
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
    return _commit(out, meta)


# -------------------------------------------------------------------------------------------------- for training


def ensure_data(config: TrainConfig, ctx: ddp.DistContext) -> dict[str, Any]:
    """The metadata of the dataset a run asks for, checked against what was asked.

    The embedded Shakespeare is prepared first (by process 0; the others wait) when its folder holds no dataset.
    Data whose ``meta.json`` records another dataset, tokenizer, variant or number of BPE merges than the
    configuration asks for is refused with a message naming both (:func:`.datasets.check_spec`); so is data that
    records none (prepared by an older version). A dataset of another name (``--dataset NAME``) is taken as it is.
    """
    data_dir = config.resolved_data_dir()
    wanted = requested_spec(config)
    with ddp.main_process_first(ctx):
        missing = not (Path(data_dir) / META_FILE).is_file() and not staged(Path(data_dir) / META_FILE).is_file()
        if ctx.is_main and missing and wanted is not None and wanted.name == SHAKESPEARE:
            print(f"preparing the embedded Shakespeare ({wanted.variant}, {wanted.tokenizer} tokens) into {data_dir}")
            prepare_shakespeare(data_dir, wanted.tokenizer, wanted.variant, bpe_merges=config.bpe_merges)
    try:
        meta = load_meta(data_dir)
    except DatasetMissingError:
        if wanted is None:
            raise
        raise DatasetMissingError(f"no prepared dataset in {data_dir} ({META_FILE} is missing): run "
                                  f"`{wanted.prepare_command(data_dir)}` first") from None
    if wanted is not None:
        check_spec(meta, wanted, data_dir)
    return meta
