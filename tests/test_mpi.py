"""Multi-process jobs under mpiexec (2 ranks on this machine)."""
import os
import subprocess
import sys

import pytest

from tests.helpers import MPI_ENV, gqn, mpiexec, shard_files

MPIEXEC = mpiexec()
pytestmark = pytest.mark.skipif(MPIEXEC is None, reason="MPI is not installed (pip install '.[mpi]')")


def run_mpi(*args, ranks=2):
    result = subprocess.run([*MPIEXEC, "-n", str(ranks), sys.executable, "-m", "gqn", *map(str, args)],
                            capture_output=True, text=True, env={**os.environ, **MPI_ENV}, timeout=600)
    assert result.returncode == 0, result.stderr
    return result


def test_mpi_render_equals_a_single_process_run(tmp_path):
    args = ["render", "shepard-matzler", "--scenes", 14, "--scenes-per-shard", 4, "--size", 16, "--views", 3,
            "--workers", 1, "--no-progress"]
    result = run_mpi(*args, "--out", tmp_path / "mpi")
    assert result.stderr.count("rendered 14 scenes into 4 shards") == 1 and "on 2 ranks" in result.stderr
    gqn(*args, "--out", tmp_path / "single", check=True)
    assert shard_files(tmp_path / "mpi") == shard_files(tmp_path / "single")
