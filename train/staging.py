"""Replacing a prepared dataset all or nothing: a rerun of ``prepare`` that fails or is killed never leaves a mix.

A run writes its files under staged names (``train.bin.new``, ...) while the previous dataset stays untouched; then it
writes ``meta.json.new`` (the commit point) and renames the staged files over the old ones, ``meta.json`` last. A
run that fails or is killed before the commit leaves the old dataset as it was (the next run removes the
leftovers); one killed after it is finished by the next :func:`~scratchformers.train.meta.load_meta` or prepare (the
staged files are complete by then). Either way the folder reads as the old dataset or the new one, never a mix.
"""
from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

from scratchformers.reference.jsonfile import save_json

META_FILE = "meta.json"
BPE_FILE = "bpe.json"
SPLITS = ("train", "val")
STAGED = ".new"  # suffix of a file written by a run that has not committed yet


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


def finish_commit(out: Path) -> None:
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


def begin(out_dir: str | Path) -> Path:
    """Create ``out_dir``, finish a committed replacement and remove the staged files of an uncommitted one."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    finish_commit(out)
    for name in (*(f"{split}.bin" for split in SPLITS), BPE_FILE):
        staged(out / name).unlink(missing_ok=True)
    for leftover in out.glob(f".*{STAGED}.*.tmp"):  # save_json's temporary file, from a run that was killed
        leftover.unlink()
    return out


def commit(out: Path, meta: dict[str, Any]) -> None:
    """Make the staged files the dataset: flush them, write ``meta.json.new`` (the commit point), rename."""
    for name in _dataset_files(meta):
        _fsync(staged(out / name))
    save_json(staged(out / META_FILE), meta)
    _fsync(out)
    finish_commit(out)
    _fsync(out)
