"""Multi-process jobs under mpiexec (2 ranks on this machine)."""
import os
import subprocess
import sys

import pytest

from tests.helpers import MPI_ENV, mpiexec, run_cli, shard_files

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
    run_cli(*args, "--out", tmp_path / "single", check=True)
    assert shard_files(tmp_path / "mpi") == shard_files(tmp_path / "single")


def test_mpi_training_keeps_ranks_in_sync(tmp_path):
    from tests.model_data import write_dataset

    data = write_dataset(tmp_path / "data")
    result = subprocess.run([*MPIEXEC, "-n", "2", sys.executable, "-m", "tests.mpi_sync_check", data,
                             tmp_path / "run"], capture_output=True, text=True, timeout=600,
                            env={**os.environ, **MPI_ENV})
    assert result.returncode == 0 and "SYNC OK" in result.stdout, result.stderr


def test_mpi_training_from_the_cli_writes_one_log_and_snapshot(tmp_path):
    from tests.model_data import TINY, write_dataset

    data = write_dataset(tmp_path / "data")
    model = [f"--{k.replace('_', '-')}={v}" for k, v in TINY.items()]
    run_mpi("train", data, "--out", tmp_path / "run", "--communicator", "naive", "--iterations", 4,
            "--batch-size", 4, "--log-every", 2, "--no-progress", "--workers", 0, *model)
    log = (tmp_path / "run" / "log.jsonl").read_text().splitlines()
    assert len(log) == 2 and (tmp_path / "run" / "snapshot.npz").exists()
    # the run resumes under MPI from the rank-0 snapshot
    run_mpi("train", data, "--out", tmp_path / "run", "--communicator", "naive", "--iterations", 6,
            "--batch-size", 4, "--log-every", 2, "--no-progress", "--workers", 0, "--resume", *model)
    assert len((tmp_path / "run" / "log.jsonl").read_text().splitlines()) == 3
    # a time limit stops both ranks after the same step; rank 0 alone says so
    result = run_mpi("train", data, "--out", tmp_path / "run", "--communicator", "naive", "--iterations", "1M",
                     "--time-limit", "1s", "--batch-size", 4, "--no-progress", "--workers", 0, "--resume", *model)
    assert result.stdout.count("Time limit reached after iteration") == 1, result.stdout
