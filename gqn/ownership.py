"""One owner per output directory: the record locks through which jobs writing into one directory coordinate.

Every job writing into a directory (`gqn render` and its --shard parts or MPI ranks, `gqn convert`,
`gqn train --save-rendered`, `gqn export`) coordinates through POSIX record locks on the hidden file
LOCK_NAME there (``gqn.shards.claim_output`` is how shard writers start). Record locks belong to a process
and vanish when it ends, even by kill -9, so a lock that can be taken is never a live job's: that is what
makes removing a stale temporary file safe. A process opens each directory's lock file once
(``_OUTPUT_LOCKS``), because closing any descriptor of a file drops all of that process's locks on it.

Bytes of the lock file: _STARTUP, held exclusively while a job checks and claims the directory (start-ups
take turns); _ALIVE, held shared by every live job for its life; _ITEMS + k, held exclusively while shard
(or exported file) k is written or is still to be written by a live job. The file's text is the identity
of the last job that claimed the directory: {"family": ..., "params": <params_json>}.
"""
from __future__ import annotations

import errno
import fcntl
import json
import logging
import math
import os
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from gqn.errors import GqnError
from gqn.files import os_reason, write_error


class OwnershipError(GqnError):
    """An output directory, or a part of it, that another running job writes."""


logger = logging.getLogger(__name__)

LOCK_NAME = ".gqn-lock"
_STARTUP, _ALIVE, _ITEMS = 0, 1, 1024
_BUSY = (errno.EACCES, errno.EAGAIN)
_NO_LOCKS = (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS)  # a file system without record locks


class _OutputLock:
    """This process's descriptor of one directory's lock file, shared by all its claims and writers."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.path = directory / LOCK_NAME
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        self.claims: list[tuple[tuple[str, str], list[tuple[int, float]]]] = []  # (identity, item ranges)
        self.writers: dict[int, int] = {}  # item -> ShardWriters of this process writing it
        self.users = 0  # start-ups in progress in this process
        self.starting = threading.Lock()  # POSIX locks do not exclude threads of one process
        self.supported = True

    def lockf(self, cmd: int, start: int, stop: float) -> bool:
        """Apply ``cmd`` to bytes ``start .. stop-1`` (``stop`` inf: all from ``start`` on). False when
        another process holds a conflicting lock (a non-blocking ``cmd``)."""
        if not self.supported:
            return True
        try:
            fcntl.lockf(self.fd, cmd, 0 if stop == math.inf else int(stop - start), start, os.SEEK_SET)
        except OSError as e:
            if e.errno in _BUSY:
                return False
            if e.errno in _NO_LOCKS:
                self.supported = False
                logger.warning(f"{self.directory}: the file system does not support file locks; jobs writing "
                               "into this directory at the same time are not detected")
                return True
            raise OwnershipError(f"{self.path}: cannot lock the output directory ({os_reason(e)})") from None
        return True

    def current(self) -> bool:
        """Whether the descriptor is still the directory's lock file (not removed or replaced since)."""
        try:
            here, ours = os.stat(self.path), os.fstat(self.fd)
        except OSError:
            return False
        return (here.st_dev, here.st_ino) == (ours.st_dev, ours.st_ino)

    def unused(self) -> bool:
        return not (self.claims or self.writers or self.users)

    def recorded(self) -> tuple[str, str] | None:
        """The identity (family, params JSON) of the last job that claimed the directory, if any."""
        try:
            data = json.loads(os.pread(self.fd, os.fstat(self.fd).st_size, 0) or b"null")
            return (data["family"], data["params"]) if data else None
        except (ValueError, KeyError, TypeError):
            return None

    def record(self, identity: tuple[str, str]) -> None:
        text = json.dumps({"family": identity[0], "params": identity[1]}, sort_keys=True) + "\n"
        try:
            os.ftruncate(self.fd, 0)
            os.pwrite(self.fd, text.encode(), 0)
        except OSError as e:
            raise write_error("lock file", self.path, e) from None

    def others_alive(self) -> bool:
        """Whether another process holds the alive byte, i.e. a job writing here is running."""
        if not self.lockf(fcntl.LOCK_EX | fcntl.LOCK_NB, _ALIVE, _ALIVE + 1):
            return True
        self.lockf(fcntl.LOCK_SH if self.claims else fcntl.LOCK_UN, _ALIVE, _ALIVE + 1)  # back to ours
        return False

    def covered(self, item: int) -> bool:
        """Whether a claim of this process holds ``item``."""
        return any(a <= item < b for _, ranges in self.claims for a, b in ranges)

    def probe(self, item: int) -> bool:
        """Whether no other process holds ``item`` (its byte is left as this process had it)."""
        if self.writers.get(item) or self.covered(item):
            return True
        free = self.lockf(fcntl.LOCK_EX | fcntl.LOCK_NB, _ITEMS + item, _ITEMS + item + 1)
        if free:
            self.lockf(fcntl.LOCK_UN, _ITEMS + item, _ITEMS + item + 1)
        return free

    def unlock_items(self, ranges) -> None:
        """Unlock the items in ``ranges`` except those a claim or a writer of this process still holds."""
        kept = sorted([(k, k + 1) for k in self.writers] + [r for _, rs in self.claims for r in rs])
        for start, stop in ranges:
            for a, b in _subtract(start, stop, kept):
                self.lockf(fcntl.LOCK_UN, _ITEMS + a, _ITEMS + b)

    def hold(self, item: int) -> bool:
        """Take ``item`` for a ShardWriter of this process; False when another process holds it."""
        if not (self.writers.get(item) or self.covered(item)):
            if not self.lockf(fcntl.LOCK_EX | fcntl.LOCK_NB, _ITEMS + item, _ITEMS + item + 1):
                return False
        self.writers[item] = self.writers.get(item, 0) + 1
        return True

    def unhold(self, item: int) -> None:
        self.writers[item] -= 1
        if not self.writers[item]:
            del self.writers[item]
            self.unlock_items([(item, item + 1)])


def _subtract(start: int, stop: float, kept: list[tuple[int, float]]) -> list[tuple[int, float]]:
    """The parts of ``start .. stop-1`` outside the sorted ranges ``kept``."""
    pieces, position = [], start
    for a, b in kept:
        if b <= position or a >= stop:
            continue
        if a > position:
            pieces.append((position, a))
        position = max(position, b)
    if position < stop:
        pieces.append((position, stop))
    return pieces


def _runs(items) -> list[tuple[int, int]]:
    """Sorted items as ranges of consecutive ones: [0, 1, 2, 5] -> [(0, 3), (5, 6)]."""
    runs: list[tuple[int, int]] = []
    for k in sorted(set(items)):
        if runs and runs[-1][1] == k:
            runs[-1] = (runs[-1][0], k + 1)
        else:
            runs.append((k, k + 1))
    return runs


_OUTPUT_LOCKS: dict[str, _OutputLock] = {}
_GUARD = threading.RLock()


def _output_lock(directory) -> _OutputLock:
    """This process's lock of ``directory`` (opening its lock file once); call with ``_GUARD`` held."""
    key = os.path.realpath(directory)
    lock = _OUTPUT_LOCKS.get(key)
    if lock is not None and not lock.current():  # the file was removed: its locks guard nothing any more
        del _OUTPUT_LOCKS[key]
        lock = None
    if lock is None:
        lock = _OUTPUT_LOCKS[key] = _OutputLock(Path(key))
    return lock


def _close_if_unused(lock: _OutputLock) -> None:
    """Close a lock nothing of this process uses any more (which drops all its locks); with ``_GUARD``."""
    if lock.unused():
        if _OUTPUT_LOCKS.get(str(lock.directory)) is lock:
            del _OUTPUT_LOCKS[str(lock.directory)]
        os.close(lock.fd)


def _forget_output_locks() -> None:
    """In a forked child: it holds none of its parent's record locks, so it starts with no registry."""
    global _GUARD
    _GUARD = threading.RLock()
    _OUTPUT_LOCKS.clear()


os.register_at_fork(after_in_child=_forget_output_locks)


class JobStart:
    """A job's start in an output directory, under the exclusive start-up lock (see ``starting_job``)."""

    def __init__(self, lock: _OutputLock, directory: Path):
        self._lock, self.directory = lock, directory

    def refuse_other_job(self, family: str, params: str, option: str) -> None:
        """Refuse to start while a running job with another identity (``family``, ``params`` JSON) writes
        here; the message names the directory, the command's ``option`` for it and the other job."""
        lock = self._lock
        with _GUARD:
            recorded = lock.recorded()
            if recorded is None or recorded == (family, params):
                return
            if any(identity == recorded for identity, _ in lock.claims) or lock.others_alive():
                raise OwnershipError(f"{self.directory} is being written by another running job with other "
                                 f"parameters ({recorded[0]}: {recorded[1]}); use a new {option} directory")

    def claim(self, family: str, params: str, items, busy, open_from: int = 0) -> None:
        """Hold ``items`` (shard or file indices; None: all from ``open_from`` on) for this job's life, as a
        live job of identity (``family``, ``params``). An item another running process holds raises
        ``OwnershipError(busy(item))``: it is being written by another job."""
        lock = self._lock
        ranges = [(open_from, math.inf)] if items is None else _runs(items)
        with _GUARD:
            for i, (start, stop) in enumerate(ranges):
                if not lock.lockf(fcntl.LOCK_EX | fcntl.LOCK_NB, _ITEMS + start, _ITEMS + stop):
                    lock.unlock_items(ranges[:i])
                    raise OwnershipError(busy(next(
                        (k for k in range(start, int(min(stop, start + 4096))) if not lock.probe(k)), start)))
            if lock.recorded() != (family, params):
                lock.record((family, params))
            lock.lockf(fcntl.LOCK_SH, _ALIVE, _ALIVE + 1)
            lock.claims.append(((family, params), ranges))

    def remove_stale(self, files) -> None:
        """Remove the temporary files in ``files`` ((item, path) pairs) that no running process is writing:
        those whose item lock this process holds or can take."""
        lock = self._lock
        with _GUARD:
            for item, path in files:
                if not lock.writers.get(item) and lock.probe(item):
                    path.unlink(missing_ok=True)


@contextmanager
def starting_job(directory) -> Iterator[JobStart]:
    """The exclusive start-up lock of output ``directory`` (which must exist): jobs starting there take turns
    to check the directory and claim their part of it (``JobStart``)."""
    directory = Path(directory)
    with _GUARD:
        try:
            lock = _output_lock(directory)
        except OSError as e:
            raise OwnershipError(f"{directory}: cannot create the lock file {LOCK_NAME} ({os_reason(e)})") from None
        lock.users += 1
    try:
        with lock.starting:
            lock.lockf(fcntl.LOCK_EX, _STARTUP, _STARTUP + 1)
            try:
                yield JobStart(lock, directory)
            finally:
                lock.lockf(fcntl.LOCK_UN, _STARTUP, _STARTUP + 1)
    finally:
        with _GUARD:
            lock.users -= 1
            _close_if_unused(lock)


def release_output(directory) -> None:
    """End this process's latest claim on ``directory`` (``claim_output``, ``JobStart.claim``): its items
    and, with its last claim, its alive lock are released. A process that ends releases everything."""
    with _GUARD:
        lock = _OUTPUT_LOCKS.get(os.path.realpath(directory))
        if lock is None or not lock.claims:
            return
        _, ranges = lock.claims.pop()
        lock.unlock_items(ranges)
        if not lock.claims:
            lock.lockf(fcntl.LOCK_UN, _ALIVE, _ALIVE + 1)
        _close_if_unused(lock)


def hold_item(directory, item: int, busy: str):
    """Lock ``item`` (a shard or file index) of output ``directory`` for a writer of this process; returns
    the function that releases it. Raises ``OwnershipError(busy)`` when another running process holds it."""
    with _GUARD:
        try:
            lock = _output_lock(directory)
        except OSError:  # no lock file in a directory that cannot be written: the writer reports that itself
            return lambda: None
        if not lock.hold(item):
            _close_if_unused(lock)
            raise OwnershipError(busy)

    def release():
        with _GUARD:
            lock.unhold(item)
            _close_if_unused(lock)
    return release
