"""Ctrl-C and SIGTERM as a request to stop after the current step, not an exception in the middle of one."""
from __future__ import annotations

import signal
import threading
from typing import Any


class StopRequest:
    """SIGINT/SIGTERM set :attr:`requested` instead of raising, so the current step can finish cleanly.

    After the first signal, SIGINT is back to its default: a second Ctrl-C raises ``KeyboardInterrupt`` at once.
    """

    def __init__(self) -> None:
        self.requested = False
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        self.requested = True
        signal.signal(signal.SIGINT, signal.default_int_handler)

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
