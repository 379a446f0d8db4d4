"""The toolkit's one worker pool: rendering, TFRecord decoding and batch prefetch all run on it.

A ``WorkerPool`` is a ``concurrent.futures.ProcessPoolExecutor`` whose workers each build a state once
(``setup(*args)``: a renderer with its GL context, a dataset's open files) and then run tasks
``task(state, item)``; ``map`` yields the results in the order of the items with a bounded number in
flight, so memory stays bounded however long the input is. The same rules hold for every use:

* a ``setup`` that fails is raised again, as it was, by every task (a one-line error stays one line;
  an exception in an executor's initializer would only say that the pool broke);
* workers ignore SIGINT (Ctrl-C reaches a terminal's whole process group; the parent decides what to do)
  and die of SIGTERM without a traceback;
* workers die with their parent, even after ``kill -9`` of the parent: a thread in each worker watches
  the parent's pid (``PR_SET_PDEATHSIG`` would fire when the parent *thread* that started a worker ends);
* a worker that dies (killed, out of memory) makes the pool raise ``WorkerError``, never hang.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import signal
import threading
import time
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Callable, Iterable, Iterator

from gqn.errors import GqnError

PARENT_POLL_S = 0.2  # how often a worker checks that its parent is alive

_state: Any = None  # this worker's state: what ``setup`` returned, or the exception it raised


class WorkerError(GqnError):
    """A worker process ended without finishing its task."""


def _start_worker(parent: int, setup: Callable | None, args: tuple) -> None:
    global _state
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True, name="watch-parent").start()
    try:
        _state = setup(*args) if setup else None
    except Exception as e:
        _state = e


def _watch_parent(parent: int) -> None:
    """Exit this worker as soon as its parent is gone (a worker is re-parented when its parent dies)."""
    while os.getppid() == parent:
        time.sleep(PARENT_POLL_S)
    os._exit(1)


def _run(task: Callable, item):
    if isinstance(_state, Exception):
        raise _state
    return task(_state, item)


def _ready(_state, _item) -> None:
    return None


class WorkerPool:
    """``workers`` processes started with ``start`` ("spawn", or "fork" where workers must inherit memory
    mappings); each runs ``setup(*args)`` once. Use as a context manager."""

    def __init__(self, workers: int, setup: Callable | None = None, args: tuple = (), start: str = "spawn"):
        self.workers = workers
        self._executor = ProcessPoolExecutor(workers, mp_context=mp.get_context(start),
                                             initializer=_start_worker, initargs=(os.getpid(), setup, args))
        if start == "fork":  # fork every worker now, before the caller starts threads (progress bars)
            self._result(self._executor.submit(_run, _ready, None))

    def map(self, task: Callable, items: Iterable, ahead: int | None = None) -> Iterator:
        """``task(state, item)`` for each item, in order, with at most ``ahead`` (default 2 per worker)
        submitted and not yet yielded."""
        ahead = ahead or 2 * self.workers
        pending: deque[Future] = deque()
        for item in items:
            pending.append(self._executor.submit(_run, task, item))
            if len(pending) >= ahead:
                yield self._result(pending.popleft())
        while pending:
            yield self._result(pending.popleft())

    @staticmethod
    def _result(future: Future):
        try:
            return future.result()
        except BrokenProcessPool:
            raise WorkerError("a worker process ended unexpectedly (killed, or out of memory?)") from None

    def close(self) -> None:
        """Cancel what has not started, let running tasks finish and stop the workers."""
        self._executor.shutdown(wait=True, cancel_futures=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
