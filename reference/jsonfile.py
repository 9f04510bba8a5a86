"""Saving and loading the tokenizers' JSON files safely: never a half-written file, never a bare ``KeyError``.

:func:`save_json` encodes everything first (a value that cannot be written fails before the file is touched), then
:func:`write_atomically`: a temporary file next to the target, flushed to disk and renamed over the target, so the
path holds the old file or the new one, whole, whatever happens (training checkpoints are written the same way).
:func:`load_json` checks the file's ``format`` and ``version`` and that every field it needs is there with the right
type, so a damaged file is one ``ValueError`` naming the field.
"""
from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO


def write_atomically(path: str | Path, write: Callable[[BinaryIO], object]) -> None:
    """``write(file)`` into a temporary file next to ``path``, fsync it, rename it over ``path`` (atomic)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def save_json(path: str | Path, data: dict[str, Any]) -> None:
    """Write ``data`` as UTF-8 JSON to ``path`` atomically (temporary file, fsync, rename)."""
    path = Path(path)
    try:
        payload = json.dumps(data, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as err:
        raise ValueError(f"cannot save {path}: the data holds text that has no UTF-8 form ({err.reason}: "
                         f"{err.object[err.start:err.end]!r}); nothing was written") from None
    write_atomically(path, lambda f: f.write(payload))


def load_json(path: str | Path, file_format: str, version: int, fields: dict[str, type]) -> dict[str, Any]:
    """Read a file written by :func:`save_json` and check its header and fields.

    Args:
        path: the file.
        file_format, version: the values its ``format`` and ``version`` keys must hold.
        fields: ``{key: type}`` every key the caller reads, with the type its value must have.

    Raises:
        ValueError: not JSON, another format or version, or a field missing or of the wrong type.
    """
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not a JSON file: {error}") from None
    except UnicodeDecodeError as error:
        raise ValueError(f"{path} is not a UTF-8 text file ({error.reason} at byte {error.start})") from None
    if not isinstance(data, dict) or data.get("format") != file_format or data.get("version") != version:
        raise ValueError(f"{path} is not a {file_format} file of version {version}")
    for key, kind in fields.items():
        if key not in data:
            raise ValueError(f"{path} is damaged: the {key!r} field is missing; save the tokenizer again")
        if not isinstance(data[key], kind):
            raise ValueError(f"{path} is damaged: {key!r} should be a {kind.__name__}, not "
                             f"{type(data[key]).__name__}; save the tokenizer again")
    return data
