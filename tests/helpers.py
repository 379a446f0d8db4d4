"""Helpers shared by the test modules: running the CLI, comparing datasets, killing a running job."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def gqn(*args, env=None, check=False) -> subprocess.CompletedProcess:
    """Run ``python -m gqn ARGS`` in a subprocess (the installed CLI, exactly as a user runs it)."""
    result = subprocess.run([sys.executable, "-m", "gqn", *map(str, args)], capture_output=True, text=True,
                            env={**os.environ, **(env or {})}, timeout=600)
    if check and result.returncode != 0:
        raise AssertionError(f"gqn {' '.join(map(str, args))} failed:\n{result.stderr}")
    return result


def shard_files(directory) -> dict[str, bytes]:
    """Name -> bytes of every file in a dataset directory (temporary files included, to catch leftovers)."""
    return {p.name: p.read_bytes() for p in sorted(Path(directory).iterdir())}


def assert_one_line_error(result: subprocess.CompletedProcess, *fragments: str):
    """A failed CLI run that printed a short error mentioning ``fragments`` and no traceback."""
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr, result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr


def kill_when(args, directory, ready, timeout=300.0) -> None:
    """Start ``gqn ARGS``, SIGKILL it as soon as ``ready(directory)`` is true, and wait for it to die."""
    proc = subprocess.Popen([sys.executable, "-m", "gqn", *map(str, args)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout
    try:
        while not (Path(directory).is_dir() and ready(Path(directory))):
            assert proc.poll() is None, "the job finished before it could be killed"
            assert time.monotonic() < deadline, "the job never reached the point to kill it"
            time.sleep(0.02)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()


def has_complete_and_tmp(directory: Path) -> bool:
    """At least one finished shard and one being written: the middle of a run."""
    names = [p.name for p in directory.iterdir()]
    return any(n.endswith(".h5") and not n.startswith(".") for n in names) and any(
        n.endswith(".tmp") for n in names)


def foreground(images: np.ndarray, threshold: int = 8) -> np.ndarray:
    """Boolean mask of pixels brighter than a black background."""
    return images.max(axis=-1) > threshold
