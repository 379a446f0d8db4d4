"""Helpers shared by the test modules: running the CLI, comparing datasets, killing a running job.

Running the CLI: ``run_cli`` (in this process) is the default; ``gqn``, ``start_gqn`` and ``signal_when`` run it
as a process of its own, for the tests that need one. Both kinds return a ``Result``.
"""
from __future__ import annotations

import contextlib
import io
import os
import signal
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest

from gqn.ownership import LOCK_NAME


class Result(NamedTuple):
    """How a CLI run ended: its exit status (as ``subprocess`` reports it: -N when killed by signal N), what it
    wrote to stdout and to stderr."""
    code: int
    out: str
    err: str


def _check(args, result: Result) -> Result:
    if result.code != 0:
        raise AssertionError(f"gqn {' '.join(map(str, args))} failed with status {result.code}:\n{result.err}")
    return result


def _exit_status(code) -> int:
    """The process exit status that ``sys.exit(code)`` gives (a message is printed to stderr, status 1)."""
    if code is None or isinstance(code, int):
        return code or 0
    print(code, file=sys.stderr)
    return 1


def run_cli(*args, check: bool = False) -> Result:
    """Run ``gqn ARGS`` in this process, through the console script's entry point ``gqn.cli.main``, and return
    its exit status and what it printed (to ``sys.stdout`` and ``sys.stderr``). An exception that escapes
    ``main`` ends the run as it ends the process: a traceback on stderr and status 1. ``sys.argv`` and the
    SIGINT and SIGTERM handlers the CLI installs are restored afterwards. With ``check``, a failed run fails
    the test.

    The way to run the CLI in a test. Use ``gqn`` (or ``start_gqn``, ``signal_when``), which start a process of
    its own, only where the test needs one: to signal or kill the job (Ctrl-C, SIGTERM, ``kill -9``), to run
    jobs side by side, or where the job must start with fresh process-wide state (environment variables read
    when a library loads, MPI, resource limits, a registry patched before ``gqn.cli`` is imported). What worker
    processes write straight to the file descriptors is not in the result; a test about that needs ``gqn``.
    """
    from gqn.cli import main

    out, err = io.StringIO(), io.StringIO()
    argv, handlers = sys.argv, {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    sys.argv = ["gqn", *map(str, args)]
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                main()
                code = 0
            except SystemExit as e:
                code = _exit_status(e.code)
            except Exception:  # as the interpreter ends on an uncaught exception: a traceback, status 1
                traceback.print_exc()
                code = 1
    finally:
        sys.argv = argv
        for s, handler in handlers.items():
            if handler is not None:
                signal.signal(s, handler)
    result = Result(code, out.getvalue(), err.getvalue())
    return _check(args, result) if check else result


def gqn(*args, env=None, check: bool = False, timeout: float = 600, **popen) -> Result:
    """Run ``python -m gqn ARGS`` in a process of its own (exactly as a user runs it) with ``env`` added to the
    environment and ``popen`` passed to ``subprocess.run`` (a ``preexec_fn``, say). For the tests that need a
    separate process (see ``run_cli``, the default); with ``check``, a failed run fails the test."""
    completed = subprocess.run([sys.executable, "-m", "gqn", *map(str, args)], capture_output=True, text=True,
                               env={**os.environ, **(env or {})}, timeout=timeout, **popen)
    result = Result(completed.returncode, completed.stdout, completed.stderr)
    return _check(args, result) if check else result


def start_gqn(*args, **popen) -> subprocess.Popen:
    """Start ``python -m gqn ARGS`` in a process of its own, its output piped; ``finish`` waits for it."""
    return subprocess.Popen([sys.executable, "-m", "gqn", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **popen)


def finish(proc: subprocess.Popen, timeout: float = 300) -> Result:
    """Wait for a job ``start_gqn`` started to end."""
    out, err = proc.communicate(timeout=timeout)
    return Result(proc.returncode, out, err)


def wait_until(condition, timeout: float, what: str, interval: float = 0.01) -> None:
    """Wait until ``condition()`` holds, checking every ``interval`` s; fail, naming ``what``, after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"gave up after {timeout:g} s waiting for {what}"
        time.sleep(interval)


@contextlib.contextmanager
def paused(proc: subprocess.Popen, group: bool = False):
    """``proc`` (with ``group``, its whole process group: workers too) stopped by SIGSTOP inside the block, and
    let go on (SIGCONT) after it. Yields whether it is paused: True once ``proc`` has surely stopped (it holds
    its locks and its files stand still), False if it had ended (its return code is then set)."""
    if proc.poll() is not None:
        yield False
        return
    send = os.killpg if group else os.kill
    send(proc.pid, signal.SIGSTOP)
    try:
        _, status = os.waitpid(proc.pid, os.WUNTRACED)  # returns once it has stopped, or ended
        if not os.WIFSTOPPED(status):
            proc.returncode = os.waitstatus_to_exitcode(status)
        yield os.WIFSTOPPED(status)
    finally:
        with contextlib.suppress(ProcessLookupError):
            send(proc.pid, signal.SIGCONT)


def shard_files(directory) -> dict[str, bytes]:
    """Name -> bytes of every file in a dataset directory (temporary files included, to catch leftovers)
    but the jobs' lock file."""
    return {p.name: p.read_bytes() for p in sorted(Path(directory).iterdir()) if p.name != LOCK_NAME}


def listing(directory) -> list[str]:
    """The sorted names in ``directory`` but the jobs' lock file (``gqn.ownership.LOCK_NAME``)."""
    return sorted(name for name in os.listdir(directory) if name != LOCK_NAME)


def assert_one_line_error(result: Result, *fragments: str):
    """A failed CLI run that printed a short error mentioning ``fragments`` and no traceback."""
    assert result.code != 0, result.out
    assert "Traceback" not in result.err, result.err
    for fragment in fragments:
        assert fragment in result.err, result.err


def signal_when(args, directory, ready, sig=signal.SIGKILL, timeout=300.0,
                whole_group: bool = True) -> tuple[Result, int]:
    """Start ``gqn ARGS`` in a process group of its own, send ``sig`` to the whole group (as a terminal's Ctrl-C
    or a job scheduler would) or, unless ``whole_group``, to the gqn process alone (its workers then have to
    notice) once ``ready(directory)`` holds, and wait for the job to end. Returns its result and its process
    group.

    The signal reaches a job that is surely running and in the ready state: when ``ready`` holds, the group is
    paused (SIGSTOP), ``ready`` checked again while nothing moves, the signal sent, and the group let go on
    (SIGCONT); had the state passed meanwhile, the wait goes on. The jobs are sized never to finish before
    that; one that does all the same (a much faster machine) skips the test, one that fails fails it."""
    directory = Path(directory)
    proc = start_gqn(*args, start_new_session=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline, sent = time.monotonic() + timeout, False
    try:
        while not sent and proc.poll() is None:
            wait_until(lambda: proc.poll() is not None or (directory.is_dir() and ready(directory)),
                       deadline - time.monotonic(), "the job to reach the point to send the signal")
            with paused(proc, group=True) as running:
                if running and directory.is_dir() and ready(directory):
                    (os.killpg if whole_group else os.kill)(proc.pid, sig)
                    sent = True
    finally:
        if not sent and proc.poll() is None:  # a failed wait: leave no job behind
            os.killpg(proc.pid, signal.SIGKILL)
        result = finish(proc)
    if not sent:
        assert result.code == 0, f"the job failed before it could be signalled:\n{result.err}"
        pytest.skip("the job finished before it could be signalled in the state the test needs; make it larger")
    return result, proc.pid


def group_gone(group: int, timeout: float = 10) -> bool:
    """Whether process group ``group`` empties within ``timeout`` s; kills what is left of it if not."""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            os.killpg(group, 0)
            time.sleep(0.01)
        os.killpg(group, signal.SIGKILL)
    except ProcessLookupError:
        return True
    return False


def has_complete_and_tmp(directory: Path) -> bool:
    """At least one finished shard and one being written: the middle of a run."""
    names = [p.name for p in directory.iterdir()]
    return any(n.endswith(".h5") and not n.startswith(".") for n in names) and any(
        n.endswith(".tmp") for n in names)


def foreground(images: np.ndarray, threshold: int = 8) -> np.ndarray:
    """Boolean mask of pixels brighter than a black background."""
    return images.max(axis=-1) > threshold


def mpiexec() -> list[str] | None:
    """The ``mpiexec`` command next to this Python (the `mpi` extra installs Open MPI there), or None."""
    import shutil

    found = shutil.which("mpiexec", path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    return [found, "--oversubscribe"] if found else None


MPI_ENV = {"OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"}  # CI runs as root


def family_renderer(family, size: int, max_tiles: int = 64):
    """A TiledRenderer with ``family``'s meshes, textures and background, without anti-aliasing (so flat
    surfaces render as exact colours)."""
    from gqn.renderer.tiled import TiledRenderer

    return TiledRenderer(size, family.meshes(), family.projection(), family.background, family.textures(),
                         samples=0, max_tiles=max_tiles)


def unlit(spec, cameras=None):
    """``spec`` with ambient light only, so every pixel shows its surface's colour times its texture, seen
    from ``cameras`` (raw poses) if given."""
    from dataclasses import replace

    return replace(spec, ambient=1.0, light_color=(0.0, 0.0, 0.0),
                   cameras=spec.cameras if cameras is None else np.asarray(cameras, float))


def color_of(rgb) -> np.ndarray:
    """The uint8 pixel a float colour renders as."""
    return np.round(np.asarray(rgb, float) * 255).astype(np.uint8)
