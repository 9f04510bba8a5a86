"""Data preparation: text in, a flat file of token ids out (nanoGPT's ``prepare.py`` scripts as functions).

A prepared dataset is a directory with three files::

    train.bin   the training tokens, one after the other, as raw uint16 (uint32 if the vocabulary exceeds 65,536)
    val.bin     the validation tokens, same format
    meta.json   how they were made: tokenizer, vocab_size, dtype, token counts, source and its sha256

The ``.bin`` files have no header, so ``np.memmap(path, dtype=meta["dtype"], mode="r")`` reads them back without
loading them into memory (OpenWebText's 9 B tokens are 17 GB). Because nothing in the file itself says how long it
should be, :func:`load_meta` compares each file's size with the count recorded in ``meta.json`` and refuses a
truncated or mismatched file; :func:`check_vocab` refuses a model whose embedding table is smaller than the data's
vocabulary. ``meta.json`` is written last, so an interrupted run never looks finished.
"""
from __future__ import annotations

import glob
import hashlib
import json
import os
from pathlib import Path
from typing import Any, Literal

import numpy as np
from tqdm import tqdm

from scratchformers.encoding import ENDOFTEXT_ID, gpt2_encoding
from scratchformers.train.data import shakespeare
from scratchformers.train.tokenizers import CharTokenizer, GPT2Tokenizer

META_FILE = "meta.json"
BPE_FILE = "bpe.json"
SPLITS = ("train", "val")
TokenizerKind = Literal["gpt2", "char", "bpe"]
# load_dataset builders for local files, chosen from the file extension.
BUILDERS = {".json": "json", ".jsonl": "json", ".parquet": "parquet", ".txt": "text", ".text": "text"}
COMPRESSIONS = (".gz", ".bz2", ".xz", ".zst", ".lz4")


def token_dtype(vocab_size: int) -> np.dtype:
    """The smallest unsigned dtype that holds every id of the vocabulary: uint16 up to 65,536 tokens (GPT-2's
    50,257 fit), uint32 beyond."""
    return np.dtype(np.uint16 if vocab_size <= 2**16 else np.uint32)


def sha256_text(text: str) -> str:
    """Hex sha256 of a string's UTF-8 bytes."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _start_output(out_dir: str | Path) -> Path:
    """Create ``out_dir`` and remove a previous ``meta.json`` so that a half-written dataset never validates."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / META_FILE).unlink(missing_ok=True)
    return out


def _write_meta(out: Path, meta: dict[str, Any]) -> dict[str, Any]:
    """Write ``meta.json`` atomically (temp file + rename) and return the validated metadata."""
    tmp = out / (META_FILE + ".tmp")
    tmp.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, out / META_FILE)
    return load_meta(out)


# ---------------------------------------------------------------------------------------------- loading and checks


def load_meta(data_dir: str | Path) -> dict[str, Any]:
    """Read ``meta.json`` of a prepared dataset and check that every ``.bin`` file has the recorded size.

    Returns the metadata with one extra key, ``data_dir`` (the directory, as given), so that
    :func:`scratchformers.train.tokenizers.load_tokenizer` can find files stored next to the data.

    Raises:
        FileNotFoundError: the directory was never prepared, or a ``.bin`` file is missing.
        ValueError: ``meta.json`` is malformed, or a ``.bin`` file's size does not match its token count.
    """
    data_dir = Path(data_dir)
    path = data_dir / META_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"no prepared dataset in {data_dir} ({META_FILE} is missing): "
            f"run `scratchformers prepare shakespeare --out {data_dir}` first"
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
    """Build (and for BPE, train and save) the tokenizer; the vocabulary is fitted on the whole corpus, as in
    nanoGPT's ``shakespeare_char``, so the validation text never holds an unknown character."""
    if kind == "gpt2":
        return GPT2Tokenizer()
    if kind == "char":
        return CharTokenizer.from_text(text)
    if kind == "bpe":
        # The fast trainer learns the reference's exact merge list (4,000 merges on the full corpus in seconds
        # instead of ~20 minutes) and saves the same file, which load_tokenizer reads with the reference class.
        from scratchformers.fast.bpe import WordBPE

        bpe = WordBPE()
        bpe.train(text, bpe_merges)
        bpe.save(str(out / BPE_FILE))
        return bpe
    raise ValueError(f"unknown tokenizer {kind!r}; choose 'gpt2', 'char' or 'bpe'")


def prepare_shakespeare(
    out_dir: str | Path,
    tokenizer: TokenizerKind = "gpt2",
    variant: Literal["full", "tiny"] = "full",
    val_fraction: float = 0.1,
    bpe_merges: int = 4000,
) -> dict[str, Any]:
    """Tokenize the embedded Shakespeare corpus into ``out_dir/{train,val}.bin`` and ``meta.json``.

    The validation split is the last ``val_fraction`` of the characters, one contiguous piece (nanoGPT's
    ``shakespeare_char``): random documents would leak neighbouring lines of the same play into both splits.
    Each split is encoded on its own, so decoding ``val.bin`` gives back exactly the validation text.

    Args:
        out_dir: the directory to write (created if needed).
        tokenizer: ``"gpt2"`` (tiktoken's GPT-2 BPE, 50,257 tokens), ``"char"`` (one token per distinct character)
            or ``"bpe"`` (the classic word BPE, trained here with ``bpe_merges`` merges and saved as ``bpe.json``;
            it keeps words, not whitespace, so its data decodes to the words joined by single spaces).
        variant: ``"full"`` (5.06 M characters) or ``"tiny"`` (the first 1.1 M, tinyshakespeare's size).
        val_fraction: the fraction of characters held out, in (0, 1).
        bpe_merges: number of merges learned by the word BPE (ignored by the other tokenizers).

    Returns:
        The metadata, as :func:`load_meta` returns it.
    """
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must lie in (0, 1), got {val_fraction}")
    text = shakespeare(variant)
    out = _start_output(out_dir)
    tok = _shakespeare_tokenizer(tokenizer, text, out, bpe_merges)
    dtype = token_dtype(tok.vocab_size)
    n = int(len(text) * (1.0 - val_fraction))
    pieces = {"train": text[:n], "val": text[n:]}
    counts = {}
    for split, piece in pieces.items():
        ids = np.array(tok.encode(piece), dtype=dtype)
        ids.tofile(out / f"{split}.bin")
        counts[split] = len(ids)
    meta = {
        "tokenizer": {"kind": "bpe", "path": BPE_FILE} if tokenizer == "bpe" else tok.to_dict(),
        "vocab_size": tok.vocab_size,
        "dtype": dtype.name,
        "tokens": counts,
        "characters": {split: len(piece) for split, piece in pieces.items()},
        "split": f"contiguous: the last {val_fraction:g} of the characters is val",
        "source": {
            "description": f"embedded Shakespeare corpus, variant {variant!r} (scratchformers.train.data.shakespeare)",
            "sha256": sha256_text(text),
        },
    }
    return _write_meta(out, meta)


# --------------------------------------------------------------------------------------------------- OpenWebText


def _expand_data_files(data_files: list[str | Path]) -> list[str]:
    """Expand globs into sorted absolute paths; every pattern must match at least one file."""
    files: list[str] = []
    for pattern in data_files:
        matches = sorted(glob.glob(str(pattern), recursive=True))
        if not matches:
            raise FileNotFoundError(f"--data-files: nothing matches {str(pattern)!r}")
        files.extend(str(Path(m).resolve()) for m in matches if Path(m).is_file())
    return sorted(set(files))


def _builder_for(files: list[str]) -> str:
    """The ``load_dataset`` builder for the files' extension (compression suffixes like ``.gz`` are looked through)."""
    builders = set()
    for name in files:
        suffixes = [s.lower() for s in Path(name).suffixes]
        while suffixes and suffixes[-1] in COMPRESSIONS:
            suffixes.pop()
        ext = suffixes[-1] if suffixes else ""
        if ext not in BUILDERS:
            raise ValueError(
                f"--data-files: cannot tell the format of {name!r}; use .jsonl/.json, .parquet or .txt files"
            )
        builders.add(BUILDERS[ext])
    if len(builders) != 1:
        raise ValueError(f"--data-files mixes formats ({', '.join(sorted(builders))}); prepare one format at a time")
    return builders.pop()


def _load_documents(data_files: list[str] | None, dataset_name: str, num_proc: int, cache_dir: str | None) -> Any:
    """The raw documents as one ``datasets.Dataset`` with a ``text`` column."""
    from datasets import load_dataset

    if data_files:
        builder = _builder_for(data_files)
        # A .txt file is one document (OpenWebText's original form: one web page per file).
        extra = {"sample_by": "document"} if builder == "text" else {}
        return load_dataset(builder, data_files=data_files, split="train", cache_dir=cache_dir, **extra)
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
    for i in tqdm(range(num_shards), desc=f"writing {path.name}"):
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
    val_fraction: float = 0.0005,
    seed: int = 2357,
    max_documents: int | None = None,
    cache_dir: str | Path | None = None,
    dataset_name: str = "openwebtext",
) -> dict[str, Any]:
    """Tokenize OpenWebText (or local documents) with GPT-2's BPE into ``out_dir/{train,val}.bin`` + ``meta.json``.

    The recipe of nanoGPT's ``data/openwebtext/prepare.py``: ``datasets.load_dataset``, a shuffled
    ``train_test_split(test_size=val_fraction, seed=seed)`` of the documents (0.05 %: ~4,000 of 8 M documents),
    ``encode_ordinary`` plus ``<|endoftext|>`` per document in ``num_proc`` worker processes, then every document's
    ids concatenated into a uint16 memmap, 1,024 shards at a time.

    Args:
        out_dir: the directory to write (created if needed).
        data_files: local files or globs instead of the hub dataset: ``.jsonl``/``.json`` or ``.parquet`` with a
            ``text`` column (one document per row), or ``.txt`` files (one document per file); ``.gz`` etc. allowed.
        num_proc: worker processes for loading and tokenizing (default: half the CPU cores).
        val_fraction: the fraction of documents held out (at least one document).
        seed: the shuffle seed of the split.
        max_documents: keep only the first N documents (quick trials).
        cache_dir: the ``datasets`` cache (default: ``~/.cache/huggingface/datasets``).
        dataset_name: the hub dataset used when ``data_files`` is not given.

    Returns:
        The metadata, as :func:`load_meta` returns it.
    """
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must lie in (0, 1), got {val_fraction}")
    num_proc = num_proc or max(1, (os.cpu_count() or 2) // 2)
    files = _expand_data_files(data_files) if data_files else None
    cache = str(cache_dir) if cache_dir is not None else None
    dataset = _load_documents(files, dataset_name, num_proc, cache)
    if "text" not in dataset.column_names:
        raise ValueError(f"the documents need a 'text' column; found {dataset.column_names}")
    if max_documents is not None:
        dataset = dataset.select(range(min(max_documents, len(dataset))))
    if len(dataset) < 2:
        raise ValueError(f"need at least 2 documents to split into train and val, got {len(dataset)}")

    split = dataset.train_test_split(test_size=val_fraction, seed=seed, shuffle=True)
    split["val"] = split.pop("test")
    out = _start_output(out_dir)
    tokenized = split.map(
        _tokenize_documents,
        batched=True,
        remove_columns=dataset.column_names,
        num_proc=num_proc,
        desc="tokenizing the documents",
    )
    dtype = token_dtype(GPT2Tokenizer().vocab_size)
    counts = {name: _write_split(tokenized[name], out / f"{name}.bin", dtype) for name in SPLITS}
    if files:
        source = {"description": f"{len(files)} local file(s): {files[0]!r}{', ...' if len(files) > 1 else ''}"}
        fingerprint = "\n".join(files)
    else:
        source = {"description": f"Hugging Face dataset {dataset_name!r}", "dataset": dataset_name}
        fingerprint = dataset_name
    meta = {
        "tokenizer": {"kind": "gpt2"},
        "vocab_size": GPT2Tokenizer().vocab_size,
        "dtype": dtype.name,
        "tokens": counts,
        "documents": {name: len(split[name]) for name in SPLITS},
        "split": f"documents shuffled with seed {seed}, {val_fraction:g} of them are val",
        "separator": ENDOFTEXT_ID,
        "source": {**source, "max_documents": max_documents, "sha256": sha256_text(fingerprint)},
    }
    return _write_meta(out, meta)
