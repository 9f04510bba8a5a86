"""A run's output folder: one training run at a time, and a finished run is never overwritten by mistake.

Lightning gives every run its own ``lightning_logs/version_N``; Hugging Face's training scripts refuse a non-empty
output folder without ``--overwrite_output_dir``. Here a run names its folder (``--out-dir``), and before anything
is written:

- the folder is checked: it must be a folder (not a file, not under a file) that this process can write to;
- the run **locks** it: an OS-level lock (``flock``) on ``out_dir/.lock``, which also records who holds it. A
  second run into the same folder is refused at once, naming the holder. The operating system drops the lock when
  the process ends, however it ends (``kill -9`` included), so a stale lock never blocks the next run;
- a **fresh** run refuses a folder that already holds a run's files (``last.pt``, ``best.pt``, ``log.jsonl``,
  ...): continue it with ``--resume``, train into another ``--out-dir``, or replace it with ``--overwrite``, which
  removes the old run's files first (so no stale ``best.pt`` is left beside the new run).
"""
from __future__ import annotations

import contextlib
import datetime
import os
import socket
import sys
from pathlib import Path
from typing import IO

LOCK_FILE = ".lock"
RUN_FILES = ("last.pt", "best.pt", "log.jsonl", "samples.txt", "curves.png")


class RunDirError(ValueError):
    """The output folder cannot take this run: not a writable folder, in use, or holding another run."""


def check_writable_folder(path: Path, flag: str = "--out-dir") -> None:
    """Refuse ``path`` if it is a file, lies under a file, or cannot be created or written (one-line errors)."""
    for parent in (path, *path.parents):
        if parent.exists():
            if not parent.is_dir():
                where = "is a file" if parent == path else f"lies under {parent}, which is a file"
                raise RunDirError(f"{flag} {path} {where}, not a folder; choose another {flag}")
            break
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise RunDirError(f"cannot create {flag} {path}: {error.strerror}") from None


def _holder(handle: IO[str]) -> str:
    handle.seek(0)
    return handle.read().strip() or "another process"


class RunLock:
    """An exclusive OS-level lock on ``out_dir/.lock``, held until :meth:`release` or the end of the process.

    Raises:
        RunDirError: the folder cannot be written, or another run holds the lock (the message names it).
    """

    def __init__(self, out_dir: Path) -> None:
        self.path = out_dir / LOCK_FILE
        try:
            self._handle: IO[str] | None = open(self.path, "a+")  # noqa: SIM115 - held open: the lock lives with it
        except OSError as error:
            raise RunDirError(f"cannot write to --out-dir {out_dir}: {error.strerror}") from None
        if not _try_lock(self._handle):
            holder = _holder(self._handle)
            self._handle.close()
            self._handle = None
            raise RunDirError(f"{out_dir} is in use by another training run ({holder}); wait for it to end, or "
                              "choose another --out-dir")
        self._handle.seek(0)
        self._handle.truncate()
        started = datetime.datetime.now().isoformat(timespec="seconds")
        self._handle.write(f"pid {os.getpid()} on {socket.gethostname()}, started {started}: "
                           f"{' '.join(sys.argv) or sys.executable}\n")
        self._handle.flush()

    def release(self) -> None:
        """Drop the lock (idempotent). The lock file stays: deleting it would race with a run about to lock it."""
        if self._handle is not None:
            with contextlib.suppress(OSError):
                self._handle.truncate(0)
            self._handle.close()  # closing the file releases the lock
            self._handle = None

    def __enter__(self) -> RunLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _try_lock(handle: IO[str]) -> bool:
    """Take an exclusive, non-blocking lock on the open file; False if another open file holds it. (Windows has no
    ``flock``: there the folder is not locked, and the other checks still apply.)"""
    try:
        import fcntl
    except ImportError:
        return True
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def run_files(out_dir: Path) -> list[str]:
    """The names of a run's files present in ``out_dir``."""
    return [name for name in RUN_FILES if (out_dir / name).exists()]


def claim(out_dir: str | Path, resuming: bool, overwrite: bool) -> RunLock:
    """Check and lock ``out_dir`` for a run, before anything of the run is written.

    A fresh run (not ``resuming``) refuses a folder that holds a run's files unless ``overwrite``, which removes
    them once the lock is held.
    """
    out_dir = Path(out_dir)
    check_writable_folder(out_dir)
    lock = RunLock(out_dir)
    found = run_files(out_dir)
    if found and not resuming:
        if not overwrite:
            lock.release()
            raise RunDirError(f"{out_dir} already holds a training run ({', '.join(found)}); continue it with "
                              "--resume, train into a new --out-dir, or pass --overwrite to replace it")
        for name in found:
            (out_dir / name).unlink()
    return lock
