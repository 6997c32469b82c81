"""Graceful stop: SIGTERM (``carexpert runs stop``) or Ctrl-C ends the run at the next step.

The handler only sets a flag; the trainer checks it after every optimizer step,
saves a checkpoint there and exits with status "stopped". A second Ctrl-C while
stopping interrupts at once (the previous checkpoint stays valid).
"""

from __future__ import annotations

import signal
import threading
from types import FrameType


class GracefulStop:
    """A stop request flag fed by SIGTERM/SIGINT while installed."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self) -> None:
        self.requested = False
        self.signal_name: str | None = None
        self._previous: dict[int, object] = {}

    def request(self, reason: str = "request") -> None:
        self.requested = True
        self.signal_name = self.signal_name or reason

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.request(signal.Signals(signum).name)

    def install(self) -> GracefulStop:
        """Install the handlers (only possible in the main thread; elsewhere a no-op)."""
        if threading.current_thread() is threading.main_thread() and not self._previous:
            for sig in self.SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]
        self._previous.clear()
