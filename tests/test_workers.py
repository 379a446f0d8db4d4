"""The shared worker pool (gqn.workers) and how commands built on it stop: ordered results, one-line setup
errors, a dead worker as an error, workers that die with a ``kill -9``-ed parent, SIGTERM as a clean stop."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from gqn.errors import GqnError
from gqn.workers import WorkerError, WorkerPool
from tests.helpers import group_gone, has_complete_and_tmp, signal_when
from tests.model_data import TINY, write_dataset


def _offset(base, item):
    time.sleep(0.02 * (item % 3))  # later items often finish first
    return base + item


def _fail(_):
    raise GqnError("no EGL here")


def _pid(state, item):
    return os.getpid()


def _die(state, item):
    os.kill(os.getpid(), signal.SIGKILL)


def test_results_come_in_order_with_the_state_each_worker_built():
    with WorkerPool(2, int, ("100",)) as pool:
        assert list(pool.map(_offset, range(12), ahead=3)) == [100 + i for i in range(12)]


def test_a_failed_setup_is_raised_by_the_tasks_as_it_was():
    with WorkerPool(1, _fail, (None,)) as pool, pytest.raises(GqnError, match="^no EGL here$"):
        list(pool.map(_pid, range(3)))


def test_a_killed_worker_is_an_error_not_a_hang():
    with WorkerPool(1) as pool, pytest.raises(WorkerError, match="ended unexpectedly"):
        list(pool.map(_die, range(2)))


def test_workers_die_with_a_parent_killed_outright():
    script = textwrap.dedent("""
        import time
        from gqn.workers import WorkerPool
        from tests.test_workers import _pid
        pool = WorkerPool(2)
        print(*sorted(set(pool.map(_pid, range(8)))), flush=True)
        time.sleep(600)
    """)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                              start_new_session=True, cwd=root)
    workers = [int(pid) for pid in parent.stdout.readline().split()]
    assert workers and parent.pid not in workers
    parent.kill()
    parent.wait()
    assert group_gone(parent.pid), "workers outlived their parent"


def _rendering(directory):
    return has_complete_and_tmp(directory)


def _training(directory):
    return (directory / "log.jsonl").exists() and len((directory / "log.jsonl").read_text().splitlines()) >= 2


@pytest.fixture(scope="module")
def train_data(tmp_path_factory):
    directory = tmp_path_factory.mktemp("data")
    write_dataset(directory, scenes=24, views=5, size=16)
    return directory


def render_args(out):
    return ["render", "shepard-matzler", "--scenes", 200_000, "--scenes-per-shard", 40, "--size", 16,
            "--views", 3, "--workers", 2, "--no-progress", "--out", out]


def train_args(data, out):
    model = [x for key, value in TINY.items() for x in (f"--{key.replace('_', '-')}", value)]
    return ["train", data, "--out", out, "--iterations", 1_000_000, "--log-every", 1, "--batch-size", 2,
            "--workers", 1, "--no-progress", *model]


@pytest.mark.parametrize("job", ["render", "train"])
def test_kill_9_of_the_command_leaves_no_process_behind(job, train_data, tmp_path):
    out = tmp_path / "out"
    args, ready = (render_args(out), _rendering) if job == "render" else (train_args(train_data, out), _training)
    blocks = set(os.listdir("/dev/shm"))
    result, group = signal_when(args, out, ready, sig=signal.SIGKILL, whole_group=False)
    assert result.code == -signal.SIGKILL
    assert group_gone(group), f"worker processes of gqn {job} outlived it"
    assert set(os.listdir("/dev/shm")) == blocks  # the loader's shared batch blocks went with it


@pytest.mark.parametrize("job", ["render", "train"])
def test_sigterm_stops_cleanly_with_status_143(job, train_data, tmp_path):
    out = tmp_path / "out"
    args, ready = (render_args(out), _rendering) if job == "render" else (train_args(train_data, out), _training)
    result, group = signal_when(args, out, ready, sig=signal.SIGTERM, whole_group=False)
    assert result.code == 143, result.err
    assert "Traceback" not in result.err and "leaked" not in result.err, result.err
    last = result.err.strip().splitlines()[-1]
    if job == "render":
        assert last == "Interrupted; complete shards are kept: re-run the same command to resume."
        assert not [p.name for p in out.iterdir() if p.name.endswith(".tmp")]
    else:
        assert last.startswith("Interrupted after iteration") and "--resume" in last
    assert group_gone(group)
