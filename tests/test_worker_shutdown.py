"""Worker processes never outlive their parent: `kill -9` of `gqn train` or `gqn render` leaves no loader
or render worker (nor multiprocessing's resource tracker) behind, and SIGTERM stops a render like Ctrl-C,
with exit status 143, a one-line message and no worker tracebacks."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gqn.shards import Dataset
from tests.helpers import gqn, has_complete_and_tmp, signal_when
from tests.model_data import write_dataset

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="PR_SET_PDEATHSIG and /proc are Linux only")

TINY = ["--steps", 2, "--hidden", 8, "--canvas", 8, "--r-channels", 16, "--batch-size", 4]


def children(pid: int) -> set[int]:
    """The pids of the live child processes of ``pid`` (from /proc/<pid>/task/*/children)."""
    found = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found.update(int(c) for c in (task / "children").read_text().split())
        except OSError:  # the thread ended meanwhile
            pass
    return found


def alive(pid: int) -> bool:
    """Whether ``pid`` is a process that has not exited (a zombie counts as exited)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def kill_parent_only(args, expected_children: int, timeout: float = 120.0) -> set[int]:
    """Start ``gqn ARGS``, wait until it has ``expected_children`` children (its workers and the resource
    tracker), SIGKILL the parent alone and return the children's pids."""
    proc = subprocess.Popen([sys.executable, "-m", "gqn", *map(str, args)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + timeout
    try:
        while len(kids := children(proc.pid)) < expected_children:
            assert proc.poll() is None, "the job ended before its workers all started"
            assert time.monotonic() < deadline, f"only {len(kids)} children started"
            time.sleep(0.05)
        time.sleep(0.5)  # let the workers get to work
        kids = children(proc.pid)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    except BaseException:
        os.killpg(proc.pid, signal.SIGKILL)
        raise
    return kids


def assert_all_exit(pids: set[int], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while (left := {p for p in pids if alive(p)}) and time.monotonic() < deadline:
        time.sleep(0.05)
    for pid in left:  # don't leave them to the next test
        os.kill(pid, signal.SIGKILL)
    assert not left, f"processes outlived their killed parent: {sorted(left)}"


def test_kill_9_of_train_leaves_no_loader_worker(tmp_path):
    data = write_dataset(tmp_path / "data", scenes=8)
    args = ["train", data, "--out", tmp_path / "run", "--iterations", 100_000, "--workers", 1,
            "--no-progress", *TINY]
    kids = kill_parent_only(args, expected_children=2)  # the loader worker and the resource tracker
    assert_all_exit(kids)


def render_args(out, scenes=10, per_shard=4, size=16, workers=2):
    return ["render", "shepard-matzler", "--scenes", scenes, "--scenes-per-shard", per_shard, "--size", size,
            "--views", 3, "--seed", 3, "--out", out, "--workers", workers, "--no-progress"]


def test_kill_9_of_render_leaves_no_render_worker(tmp_path):
    kids = kill_parent_only(render_args(tmp_path / "out", scenes=100_000, per_shard=1000), expected_children=3)
    assert_all_exit(kids)


@pytest.mark.parametrize("group", [True, False], ids=["group", "parent"])
def test_sigterm_of_render_stops_cleanly_and_resumes(tmp_path, group):
    out = tmp_path / "out"
    args = render_args(out, scenes=960, per_shard=47, size=32)
    if group:  # as a job scheduler does
        result = signal_when(args, out, has_complete_and_tmp, sig=signal.SIGTERM)
    else:
        result = signal_parent_when(args, out, has_complete_and_tmp, signal.SIGTERM)
    assert result.returncode == 143, result.stderr
    assert "Terminated; complete shards are kept: re-run the same command to resume." in result.stderr
    for noise in ("Traceback", "BrokenPipeError", "leaked semaphore"):
        assert noise not in result.stderr, result.stderr
    assert any(p.name.endswith(".h5") for p in out.iterdir())
    gqn(*args, check=True)
    with Dataset(out) as ds:
        assert ds.num_scenes == 960
    assert not [p.name for p in out.iterdir() if p.name.endswith(".tmp")]


def signal_parent_when(args, directory, ready, sig, timeout=300.0) -> subprocess.CompletedProcess:
    """Like ``signal_when``, but ``sig`` goes to the parent process alone."""
    proc = subprocess.Popen([sys.executable, "-m", "gqn", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + timeout
    try:
        while not (Path(directory).is_dir() and ready(Path(directory))):
            assert proc.poll() is None, "the job finished before the signal could be sent"
            assert time.monotonic() < deadline, "the job never reached the point to send the signal"
            time.sleep(0.02)
    finally:
        os.kill(proc.pid, sig)
        out, err = proc.communicate(timeout=60)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
