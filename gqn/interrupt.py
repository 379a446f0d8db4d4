"""Ctrl-C and SIGTERM handled at a safe point: long loops (shard writing, training) finish their step, keep
their output consistent and then stop. Both signals stop a command the same way, with the same message; the
exit status says which one it was (128 + signal number: 130 for Ctrl-C, 143 for SIGTERM)."""
from __future__ import annotations

import contextlib
import signal
import threading

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)

_received = signal.SIGINT  # the stop signal that arrived last


class Interrupted(KeyboardInterrupt):
    """A clean stop after Ctrl-C or SIGTERM; the message tells the user what was kept."""


def exit_status() -> int:
    """The exit status of a command stopped by a signal: 130 after Ctrl-C, 143 after SIGTERM."""
    return 128 + int(_received)


def _stop_now(signum, frame):
    global _received
    _received = signum
    raise KeyboardInterrupt


def stop_on_sigterm() -> None:
    """Make SIGTERM (sent by ``kill``, ``timeout`` and batch schedulers at their time limit) stop this
    process the way Ctrl-C does. Main thread only."""
    signal.signal(signal.SIGTERM, _stop_now)


@contextlib.contextmanager
def deferred_interrupt():
    """Turn the first Ctrl-C or SIGTERM into a flag that the loop checks between steps (an interrupt raised
    inside HDF5's or BLAS's C code could otherwise be swallowed or leave a half-done step); a second one
    interrupts at once."""
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():  # only the main thread gets signals
        yield stop
        return

    def handler(signum, frame):
        global _received
        _received = signum
        stop.set()
        for s in STOP_SIGNALS:
            signal.signal(s, _stop_now)

    previous = {s: signal.signal(s, handler) for s in STOP_SIGNALS}
    try:
        yield stop
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
