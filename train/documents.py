"""Local documents for ``scratchformers prepare openwebtext --data-files``: which files, their content fingerprint,
and every document exactly as its file holds it, or one clear error naming the file and row.

Formats, chosen from the extension (``.gz``, ``.bz2`` and ``.xz`` compression is looked through):

- ``.jsonl``, or ``.json`` holding JSON Lines: one JSON object per line with a string ``text``; blank lines are
  skipped, other fields ignored.
- ``.json`` holding one JSON array of such objects.
- ``.parquet``: a string column ``text``.
- ``.txt`` / ``.text``: the whole file is one document (OpenWebText's original form, one web page per file), decoded
  as UTF-8 and kept byte for byte: ``\\r\\n`` stays ``\\r\\n``.

Nothing is skipped or repaired: a row whose ``text`` is missing, null, a number or a list, a file that is not UTF-8,
a string with a lone surrogate (``"\\ud800"`` in JSON, which has no UTF-8 form), a file without a single document:
each stops the preparation with a :class:`DataFileError` naming the file (and line or row) and what to fix. The
tokens then hold exactly the documents of the files; a null is a gap in the data to fix, not a row that vanishes.

Paths: one that exists is taken literally (``part[1].jsonl`` is that file, not a pattern); anything else is a glob
(``owt/*.parquet``; ``**`` reaches into sub-folders). A directory is an error that names it: pass its files.

Change detection: :func:`fingerprint` hashes the files' contents (sha256, in order). ``meta.json`` records it, and
:func:`load_documents` makes it part of the ``datasets`` cache key, so a file rewritten with the same size and
modification time is read again instead of served from the cache.
"""
from __future__ import annotations

import bz2
import glob
import gzip
import hashlib
import json
import lzma
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

FORMATS = {".jsonl": "json", ".json": "json", ".parquet": "parquet", ".txt": "text", ".text": "text"}
OPENERS: dict[str, Callable[..., IO[bytes]]] = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}
_MISSING = object()
_KINDS = {type(None): "null", bool: "a boolean", int: "a number", float: "a number", list: "a list", dict: "an object"}


class DataFileError(ValueError):
    """A data file that cannot be prepared; the message names the file (and row) and says what to fix."""


def expand_data_files(patterns: Sequence[str | Path]) -> list[Path]:
    """The files named by ``patterns``, resolved, sorted and without repeats.

    Raises:
        DataFileError: no pattern given, a directory, or a pattern that matches no file.
    """
    if not patterns:
        raise DataFileError("--data-files: no file given; name the .jsonl/.json/.parquet/.txt files to prepare")
    files: set[Path] = set()
    for pattern in map(str, patterns):
        path = Path(pattern)
        if path.is_dir():
            raise DataFileError(f"--data-files: {pattern!r} is a directory; name its files, e.g. "
                                f"'{path / '*.jsonl'}' ('{path / '**' / '*.jsonl'}' with its sub-folders)")
        if path.is_file():
            files.add(path.resolve())
            continue
        matches = [Path(m) for m in glob.glob(pattern, recursive=True)]
        found = [m.resolve() for m in matches if m.is_file()]
        if not found:
            what = "only directories" if matches else "nothing"
            raise DataFileError(f"--data-files: {what} matches {pattern!r}; name existing files")
        files.update(found)
    return sorted(files)


def _suffixes(path: Path) -> tuple[str, str | None]:
    """``(format extension, compression extension or None)``: ``a.jsonl.gz`` gives ``(".jsonl", ".gz")``."""
    suffixes = [s.lower() for s in path.suffixes]
    compression = suffixes.pop() if suffixes and suffixes[-1] in OPENERS else None
    return (suffixes[-1] if suffixes else ""), compression


def file_format(path: Path) -> str:
    """``"json"``, ``"parquet"`` or ``"text"``, from the extension; :class:`DataFileError` for any other."""
    ext, _ = _suffixes(path)
    if ext not in FORMATS:
        raise DataFileError(f"--data-files: cannot tell the format of {str(path)!r}; use .jsonl/.json, .parquet or "
                            ".txt/.text files (optionally .gz, .bz2 or .xz compressed)")
    return FORMATS[ext]


def _open(path: Path) -> IO[bytes]:
    _, compression = _suffixes(path)
    return OPENERS[compression](path, "rb") if compression else open(path, "rb")


def fingerprint(files: Sequence[Path]) -> dict[str, Any]:
    """The files' count, total size and content sha256 (each file's sha256, in order, hashed together)."""
    combined, total = hashlib.sha256(), 0
    for path in files:
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
                total += len(block)
        combined.update(digest.hexdigest().encode() + b"\n")
    return {"files": len(files), "bytes": total, "sha256": combined.hexdigest()}


# ------------------------------------------------------------------------------------------------ reading, checked


def check_text(value: object, where: str) -> str:
    """``value`` if it is a document: a string that is valid Unicode; else :class:`DataFileError` at ``where``."""
    if value is _MISSING:
        raise DataFileError(f"{where} has no `text` field; every row needs a string `text` (add it or drop the row)")
    if not isinstance(value, str):
        kind = _KINDS.get(type(value), type(value).__name__)
        raise DataFileError(f"{where}: `text` is {kind}, not a string; fix the row or remove it")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as err:
        raise DataFileError(f"{where}: `text` holds a lone surrogate (\\u{ord(value[err.start]):04x} at character "
                            f"{err.start}), which is not valid Unicode; fix the row or remove it") from None
    return value


def _row_text(row: object, where: str) -> str:
    """The ``text`` of one parsed JSON row."""
    if not isinstance(row, dict):
        kind = _KINDS.get(type(row), "a " + type(row).__name__)
        raise DataFileError(f"{where} is {kind}, not a JSON object with a `text` field; fix the row or remove it")
    return check_text(row.get("text", _MISSING), where)


def _json_line(line: bytes, where: str) -> str:
    try:
        row = json.loads(line.decode("utf-8"))
    except UnicodeDecodeError as err:
        raise DataFileError(f"{where} is not valid UTF-8 (byte {err.start}); save the file as UTF-8") from None
    except json.JSONDecodeError as err:
        raise DataFileError(f"{where} is not valid JSON ({err.msg}, column {err.colno}); fix the line") from None
    return _row_text(row, where)


def _json_documents(path: Path) -> Iterator[str]:
    """JSON Lines, or (a ``.json`` file starting with ``[``) one array of objects."""
    with _open(path) as f:
        head = f.read(4096).lstrip()
        if not head.startswith(b"["):
            f.seek(0)
            for number, line in enumerate(f, 1):
                if line.strip():
                    yield _json_line(line, f"{path}, line {number}")
            return
        f.seek(0)
        raw = f.read()
    try:
        rows = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DataFileError(f"{path} is not a valid UTF-8 JSON array ({err}); fix the file") from None
    for number, row in enumerate(rows, 1):
        yield _row_text(row, f"{path}, item {number}")


def _parquet_documents(path: Path) -> Iterator[str]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    with _open(path) as f:
        try:
            parquet = pq.ParquetFile(f)
        except pa.ArrowException as err:
            raise DataFileError(f"{path} is not a readable parquet file ({err})") from None
        schema = parquet.schema_arrow
        if "text" not in schema.names:
            raise DataFileError(f"{path} has no `text` column (its columns: {', '.join(schema.names)}); "
                                "name the column that holds the documents `text`")
        kind = schema.field("text").type
        if not (pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_null(kind)):
            raise DataFileError(f"{path}: column `text` holds {kind} values, not strings")
        row = 0
        for batch in parquet.iter_batches(columns=["text"]):
            for value in batch.column(0).to_pylist():
                row += 1
                yield check_text(value, f"{path}, row {row}")


def _text_document(path: Path) -> Iterator[str]:
    with _open(path) as f:
        raw = f.read()
    if raw:
        try:
            yield raw.decode("utf-8")
        except UnicodeDecodeError as err:
            raise DataFileError(f"{path} is not valid UTF-8 (byte {err.start}: {raw[err.start:err.start + 1]!r}); "
                                "save it as UTF-8 or leave it out") from None


READERS: dict[str, Callable[[Path], Iterator[str]]] = {
    "json": _json_documents,
    "parquet": _parquet_documents,
    "text": _text_document,
}


def read_documents(path: Path) -> Iterator[str]:
    """Every document of one file, checked (see the module docstring); a file without any is an error."""
    count = 0
    for document in READERS[file_format(path)](path):
        count += 1
        yield document
    if count == 0:
        raise DataFileError(f"{path} holds no document (it is empty); remove it from --data-files")


def generate_documents(files: list[str], content_sha256: str, limit: int | None) -> Iterator[dict[str, str]]:
    """``{"text": document}`` for every document of ``files`` in order, or the first ``limit`` of them (for
    ``Dataset.from_generator``).

    ``content_sha256`` is not read: ``datasets`` hashes the generator's arguments into its cache key, so passing
    the files' content hash makes changed contents a new cache entry.
    """
    count = 0
    for name in files:
        for document in read_documents(Path(name)):
            if count == limit:
                return
            count += 1
            yield {"text": document}


def load_documents(files: Sequence[Path], content_sha256: str, cache_dir: str | None = None,
                   limit: int | None = None) -> Any:
    """The documents of ``files`` (the first ``limit`` of them, if given) as one ``datasets.Dataset`` with a
    ``text`` column, cached by content.

    Raises:
        DataFileError: the first file or row that is not a document (see the module docstring).
    """
    from datasets import Dataset, Features, Value
    from datasets.exceptions import DatasetGenerationError

    try:
        return Dataset.from_generator(
            generate_documents,
            features=Features({"text": Value("string")}),
            gen_kwargs={"files": [str(f) for f in files], "content_sha256": content_sha256, "limit": limit},
            cache_dir=cache_dir,
        )
    except DatasetGenerationError as err:
        cause: BaseException | None = err
        while cause is not None and not isinstance(cause, (DataFileError, OSError)):
            cause = cause.__cause__ or cause.__context__
        if cause is None:
            raise
        raise cause from None
