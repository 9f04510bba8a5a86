"""Progress reports that suit where the output goes: a live tqdm bar on a terminal, plain lines in a log.

A tqdm bar redraws itself with carriage returns many times a second. On a terminal that is one line that moves; in a
file (CI, ``nohup``, ``2> log``) it is thousands of fragments glued together. :func:`progress_bar` looks at stderr,
where both report: a terminal gets tqdm, anything else gets :class:`PlainProgress`, which writes one complete line
every ``interval`` seconds and one at the end::

    with progress_bar(total=len(shards), desc="writing train.bin", unit="shard") as bar:
        for shard in shards:
            ...
            bar.update(1)

    for shard in progress_bar(shards, desc="writing train.bin", unit="shard"):   # or wrap an iterable
        ...

:func:`write` prints a message without breaking a live bar.
"""
from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any, TextIO

from tqdm import tqdm

PLAIN_INTERVAL_S = 30.0


def _duration(seconds: float) -> str:
    """``1:02:03`` or ``02:03``."""
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


class PlainProgress:
    """The part of tqdm's interface the library uses (``update``, ``close``, iteration, ``with``), reported as one
    complete line every ``interval`` seconds and a last one on :meth:`close`::

        training: 1,200/2,500 steps (48%), 10.31 steps/s, 01:56 elapsed, 02:06 left
    """

    def __init__(self, iterable: Iterable[Any] | None = None, total: float | None = None, desc: str | None = None,
                 unit: str = "item", initial: float = 0, disable: bool = False, interval: float = PLAIN_INTERVAL_S,
                 file: TextIO | None = None) -> None:
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)  # type: ignore[arg-type]
        self.iterable = iterable
        self.total = total
        self.desc = desc
        self.unit = unit
        self.n = initial
        self.disable = disable
        self.interval = interval
        self.file = file
        self._initial = initial
        self._start = self._last_line = time.monotonic()
        self._closed = False

    def __iter__(self) -> Iterator[Any]:
        if self.iterable is None:
            raise TypeError("this progress report was made without an iterable; call update() instead")
        try:
            for item in self.iterable:
                yield item
                self.update(1)
        finally:
            self.close()

    def __enter__(self) -> PlainProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def update(self, n: float = 1) -> None:
        """Count ``n`` more units done; write a line if ``interval`` seconds passed since the last one."""
        self.n += n
        now = time.monotonic()
        if now - self._last_line >= self.interval:
            self._last_line = now
            self._write_line(now)

    def close(self) -> None:
        """Write the final line (once)."""
        if not self._closed:
            self._closed = True
            self._write_line(time.monotonic())

    def line(self, now: float | None = None) -> str:
        """The report as of ``now`` (default: the current time)."""
        elapsed = (time.monotonic() if now is None else now) - self._start
        done = self.n - self._initial
        rate = done / elapsed if elapsed > 0 else 0.0
        units = self.unit if self.unit.endswith("s") else f"{self.unit}s"
        parts = [f"{self.n:,.0f}/{self.total:,.0f} {units}" if self.total else f"{self.n:,.0f} {units}"]
        if self.total:
            parts[0] += f" ({100 * self.n / self.total:.0f}%)"
        parts.append(f"{rate:.2f} {units}/s")
        parts.append(f"{_duration(elapsed)} elapsed")
        if self.total and rate > 0 and self.n < self.total:
            parts.append(f"{_duration((self.total - self.n) / rate)} left")
        return f"{self.desc}: " * bool(self.desc) + ", ".join(parts)

    def _write_line(self, now: float) -> None:
        if not self.disable:
            print(self.line(now), file=self.file or sys.stderr, flush=True)


def progress_bar(iterable: Iterable[Any] | None = None, *, total: float | None = None, desc: str | None = None,
                 unit: str = "item", initial: float = 0, disable: bool = False) -> tqdm | PlainProgress:
    """A tqdm bar when stderr is a terminal, else a :class:`PlainProgress` (a line every 30 s and at the end).

    Args:
        iterable: optional; iterating the result iterates it and counts each item.
        total: the number of units expected (taken from ``len(iterable)`` when not given).
        desc: a short label in front.
        unit: what is counted ("step", "shard", ...).
        initial: units already done (a resumed run).
        disable: report nothing.
    """
    if sys.stderr.isatty():
        return tqdm(iterable, total=total, desc=desc, unit=unit, initial=initial, disable=disable,
                    dynamic_ncols=True)
    return PlainProgress(iterable, total=total, desc=desc, unit=unit, initial=initial, disable=disable)


def write(message: str) -> None:
    """Print ``message`` on stdout without breaking a live tqdm bar."""
    tqdm.write(message)
