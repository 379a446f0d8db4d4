"""Ctrl-C and SIGTERM handled at a safe point: long loops (shard writing, training) finish their step, keep
their output consistent and then stop. Also the set-up every worker process of a pool runs
(``start_worker``): it dies with its parent and leaves stopping to it."""
from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import threading


class Interrupted(KeyboardInterrupt):
    """Ctrl-C after a clean stop; the message tells the user what was kept."""


_terminated = False  # whether the stop came from SIGTERM (a job scheduler) rather than Ctrl-C


def terminated() -> bool:
    """Whether this process was asked to stop by SIGTERM (exit status 143) rather than Ctrl-C (130)."""
    return _terminated


def _raise_terminated(signum, frame):
    """SIGTERM outside a deferred section: stop at once, like Ctrl-C does."""
    global _terminated
    _terminated = True
    raise KeyboardInterrupt


def sigterm_like_ctrl_c() -> None:
    """Make SIGTERM raise KeyboardInterrupt (recording ``terminated()``) in this process."""
    signal.signal(signal.SIGTERM, _raise_terminated)


@contextlib.contextmanager
def deferred_ctrl_c():
    """Turn the first Ctrl-C (or SIGTERM) into a flag that the loop checks between steps (an interrupt
    raised inside HDF5's or BLAS's C code could otherwise be swallowed or leave a half-done step); a second
    one interrupts at once."""
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():  # only the main thread gets signals
        yield stop
        return

    def handler(signum, frame):
        global _terminated
        _terminated = _terminated or signum == signal.SIGTERM
        stop.set()
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, _raise_terminated)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, action in previous.items():
            signal.signal(sig, action)


PR_SET_PDEATHSIG = 1


def stop_flag(context):
    """A shared flag for ``start_worker``: the parent sets ``flag.value = 1`` just before it terminates the
    pool, so that its workers obey that SIGTERM (and only that one)."""
    return context.RawValue("b", 0)


def start_worker(parent: int, stopping=None) -> None:
    """Set up a pool worker process: SIGKILL when its ``parent`` dies, even by ``kill -9`` (Linux), and Ctrl-C
    ignored. SIGTERM makes it exit quietly once the parent has set ``stopping`` (see ``stop_flag``) or is
    gone, and is ignored before: a SIGTERM sent to the whole process group (as a job scheduler does) leaves
    the parent to finish the step in progress and stop its workers itself."""
    if sys.platform == "linux":
        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # the parent died before prctl took effect (see prctl(2))
            os._exit(1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def on_sigterm(signum, frame):
        if (stopping is not None and stopping.value) or os.getppid() != parent:
            os._exit(0)

    signal.signal(signal.SIGTERM, on_sigterm)
