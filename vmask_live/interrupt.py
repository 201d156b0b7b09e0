"""Stopping long jobs cleanly: ``kill`` (SIGTERM) is handled like Ctrl-C.

Jobs that write files (collect, train, record) finalise what they hold in ``finally`` blocks or
``except KeyboardInterrupt``; :func:`sigterm_as_interrupt` makes a plain ``kill`` (a scheduler,
``timeout``, a closed terminal) go through the same path instead of killing the process mid-write.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["sigterm_as_interrupt"]


@contextmanager
def sigterm_as_interrupt(message: str = "terminated (SIGTERM)") -> Iterator[None]:
    """Within the block, SIGTERM raises ``KeyboardInterrupt(message)`` in the main thread.

    Outside the main thread (where Python cannot install signal handlers) this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def _raise(signum, frame):  # noqa: ARG001 - the signal API's signature
        raise KeyboardInterrupt(message)

    previous = signal.signal(signal.SIGTERM, _raise)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
