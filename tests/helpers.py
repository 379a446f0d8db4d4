"""Helpers shared by the test modules: running the CLI, comparing datasets, killing a running job."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from gqn.ownership import LOCK_NAME


def gqn(*args, env=None, check=False) -> subprocess.CompletedProcess:
    """Run ``python -m gqn ARGS`` in a subprocess (the installed CLI, exactly as a user runs it)."""
    result = subprocess.run([sys.executable, "-m", "gqn", *map(str, args)], capture_output=True, text=True,
                            env={**os.environ, **(env or {})}, timeout=600)
    if check and result.returncode != 0:
        raise AssertionError(f"gqn {' '.join(map(str, args))} failed:\n{result.stderr}")
    return result


def shard_files(directory) -> dict[str, bytes]:
    """Name -> bytes of every file in a dataset directory (temporary files included, to catch leftovers)
    but the jobs' lock file."""
    return {p.name: p.read_bytes() for p in sorted(Path(directory).iterdir()) if p.name != LOCK_NAME}


def listing(directory) -> list[str]:
    """The sorted names in ``directory`` but the jobs' lock file (``gqn.ownership.LOCK_NAME``)."""
    return sorted(name for name in os.listdir(directory) if name != LOCK_NAME)


def assert_one_line_error(result: subprocess.CompletedProcess, *fragments: str):
    """A failed CLI run that printed a short error mentioning ``fragments`` and no traceback."""
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr, result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr


def signal_when(args, directory, ready, sig=signal.SIGKILL, timeout=300.0,
                whole_group: bool = True) -> subprocess.CompletedProcess:
    """Start ``gqn ARGS`` in its own process group, send ``sig`` to the whole group (as a terminal's Ctrl-C
    or a job scheduler would) or, unless ``whole_group``, to the gqn process alone (its workers then have
    to notice), as soon as ``ready(directory)`` is true, and wait for it to end. The result's ``pid`` is
    the process group."""
    proc = subprocess.Popen([sys.executable, "-m", "gqn", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + timeout
    try:
        while not (Path(directory).is_dir() and ready(Path(directory))):
            assert proc.poll() is None, "the job finished before the signal could be sent"
            assert time.monotonic() < deadline, "the job never reached the point to send the signal"
            time.sleep(0.02)
    finally:
        (os.killpg if whole_group else os.kill)(proc.pid, sig)
        out, err = proc.communicate(timeout=60)
    result = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    result.pid = proc.pid
    return result


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
