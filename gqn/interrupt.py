"""Ctrl-C handled at a safe point: long loops (shard writing, training) finish their step, keep their
output consistent and then stop."""
from __future__ import annotations

import contextlib
import signal
import threading


class Interrupted(KeyboardInterrupt):
    """Ctrl-C after a clean stop; the message tells the user what was kept."""


@contextlib.contextmanager
def deferred_ctrl_c():
    """Turn the first Ctrl-C into a flag that the loop checks between steps (an interrupt raised inside
    HDF5's or BLAS's C code could otherwise be swallowed or leave a half-done step); a second Ctrl-C
    interrupts at once."""
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():  # only the main thread gets signals
        yield stop
        return

    def handler(signum, frame):
        stop.set()
        signal.signal(signal.SIGINT, signal.default_int_handler)

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield stop
    finally:
        signal.signal(signal.SIGINT, previous)
