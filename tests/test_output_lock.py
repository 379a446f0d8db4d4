"""One owner per output directory (``gqn.shards.claim_output``, the lock file ``.gqn-lock``): a job with other
parameters is refused while another job writes the directory, the same job started twice never deletes or
overwrites what the other is writing, --shard K/N parts run side by side, and a temporary file is removed only
when no running process writes it (record locks vanish with a killed process).

The tests synchronise on files and on the locks themselves; where two jobs race, every ordering is accepted
and the test checks that each gives a consistent result.
"""
import filecmp
import subprocess
import sys
from pathlib import Path

import pytest

from gqn.converters.datasets import record_file_name
from gqn.ownership import OwnershipError, release_output
from gqn.shards import Dataset, ShardWriter, claim_output, shard_name
from tests.helpers import Result, assert_one_line_error, finish, listing, paused, run_cli, start_gqn, wait_until
from tests.model_data import write_dataset
from tests.tfrecord_data import write_files

SM5 = "shepard_metzler_5_parts"


def render_args(out, scenes, per_shard, seed=3, *extra):
    return ["render", "shepard-matzler", "--scenes", scenes, "--scenes-per-shard", per_shard, "--size", 16,
            "--views", 3, "--seed", seed, "--workers", 1, "--no-progress", "--out", out, *extra]


def wait_for(condition, proc: subprocess.Popen, timeout: float = 120.0) -> None:
    """Wait until ``condition()`` holds or ``proc`` has ended (it may finish first on a fast machine)."""
    wait_until(lambda: condition() or proc.poll() is not None, timeout, "the job to get there")


def writing(directory) -> bool:
    return Path(directory).is_dir() and any(name.endswith(".tmp") for name in listing(directory))


def one_line(result: Result, *fragments: str) -> None:
    assert result.code == 1, result.err
    assert_one_line_error(result, *fragments)
    assert len(result.err.strip().splitlines()) == 1, result.err


# ---- gqn render ----------------------------------------------------------------------------------------

def test_renders_with_other_parameters_into_one_directory_one_is_refused(tmp_path):
    out = tmp_path / "out"
    jobs = {seed: start_gqn(*render_args(out, 40, 4, seed)) for seed in (1, 2)}
    results = {seed: finish(proc) for seed, proc in jobs.items()}
    winners = [seed for seed, result in results.items() if result.code == 0]
    assert len(winners) == 1, {seed: r.err for seed, r in results.items()}
    (loser,) = set(results) - set(winners)
    # refused while the other runs, or (had it finished already) because of its shards
    one_line(results[loser], str(out), "other parameters", "shepard-matzler: {", "use a new --out directory")
    assert "Traceback" not in results[winners[0]].err
    # the winner's dataset, whole: the refused job wrote nothing and deleted nothing
    assert listing(out) == [shard_name(k) for k in range(10)]
    with Dataset(out) as dataset:
        assert len(dataset) == 40 and dataset.params["seed"] == winners[0]
    info = run_cli("info", out)
    assert info.code == 0, info.err


def test_the_same_render_started_twice_never_breaks_the_first(tmp_path):
    out = tmp_path / "out"
    args = render_args(out, 600, 20)
    first = start_gqn(*args)
    wait_for(lambda: writing(out), first)  # the first is writing a shard
    with paused(first):  # so that it surely still runs while the others start
        before = listing(out)
        second = finish(start_gqn(*args))
        other = finish(start_gqn(*render_args(out, 600, 20, 4)))  # another seed
        if second.code:  # the usual case: the first was still running
            one_line(second, f"{out}: shard ", "is being written by another running job; run one job per output "
                     "directory, or split the work with --shard K/N")
            assert listing(out) == before  # it wrote and deleted nothing
        else:  # the first had finished its shards before it was paused: nothing left to do
            assert "nothing to do" in second.err
        one_line(other, str(out), "other parameters", "use a new --out directory")
    first = finish(first)
    assert first.code == 0, first.err
    assert "Error" not in first.err and "Traceback" not in first.err
    assert listing(out) == [shard_name(k) for k in range(30)]
    with Dataset(out) as dataset:
        assert len(dataset) == 600 and dataset.params["seed"] == 3


def test_four_parts_started_at_once_equal_one_run(tmp_path):
    parts = [start_gqn(*render_args(tmp_path / "parts", 20, 2, 3, "--shard", f"{k}/4")) for k in range(4)]
    whole = start_gqn(*render_args(tmp_path / "whole", 20, 2))
    for result in map(finish, parts + [whole]):
        assert result.code == 0, result.err
    names = listing(tmp_path / "whole")
    assert names == [shard_name(k) for k in range(10)] and listing(tmp_path / "parts") == names
    different = [n for n in names if not filecmp.cmp(tmp_path / "parts" / n, tmp_path / "whole" / n, shallow=False)]
    assert not different


# ---- the locks themselves, held by child processes --------------------------------------------------------

WRITER = """
import sys
import numpy as np
from gqn.shards import ShardWriter
writer = ShardWriter(sys.argv[1], int(sys.argv[2]), 2, 3, 8, family="t", scenes_per_shard=2, params={})
writer.write(np.zeros((1, 3, 8, 8, 3), np.uint8), np.zeros((1, 3, 5), np.float32))
print("ready", flush=True)
sys.stdin.readline()
writer.write(np.zeros((1, 3, 8, 8, 3), np.uint8), np.zeros((1, 3, 5), np.float32))
writer.commit()
"""

CLAIMER = """
import sys
from gqn.shards import claim_output
claim_output(sys.argv[1], "a", {"seed": 1}, indices=range(0, 2))
print("ready", flush=True)
sys.stdin.readline()
"""


def child(code: str, *args) -> subprocess.Popen:
    """A Python process running ``code``, once it has printed "ready" (holding its locks)."""
    proc = subprocess.Popen([sys.executable, "-c", code, *map(str, args)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline() == "ready\n"
    return proc


def let_finish(proc: subprocess.Popen) -> int:
    proc.stdin.write("\n")
    proc.stdin.close()
    return proc.wait(timeout=60)


def test_a_killed_writers_temporary_file_is_removed_by_the_next_run(tmp_path):
    writer = child(WRITER, tmp_path, 0)
    writer.kill()  # kill -9: its record locks go with it
    writer.wait()
    assert listing(tmp_path) == [".000000.h5.tmp"]
    assert claim_output(tmp_path, "t", {}, indices=range(2)) == set()
    release_output(tmp_path)
    assert listing(tmp_path) == []


def test_a_live_writers_temporary_file_is_kept(tmp_path):
    writer = child(WRITER, tmp_path, 0)
    try:
        busy = f"{tmp_path}: shard 000000.h5 is being written by another running job; run one job per output"
        for indices in (range(2), None):  # a job that needs shard 0
            with pytest.raises(OwnershipError) as error:
                claim_output(tmp_path, "t", {}, indices=indices)
            assert str(error.value).startswith(busy)
        with pytest.raises(OwnershipError, match="being written by another running job"):
            ShardWriter(tmp_path, 0, 2, 3, 8, family="t", scenes_per_shard=2, params={})
        assert listing(tmp_path) == [".000000.h5.tmp"]
        # a part of the job that does not need shard 0 starts and leaves the file alone
        assert claim_output(tmp_path, "t", {}, indices=range(1, 3)) == set()
        release_output(tmp_path)
        assert listing(tmp_path) == [".000000.h5.tmp"]
    finally:
        code = let_finish(writer)
    assert code == 0  # the writer finished its shard undisturbed
    assert listing(tmp_path) == ["000000.h5"]


def test_a_running_job_with_other_parameters_refuses_until_it_is_gone(tmp_path):
    job = child(CLAIMER, tmp_path)
    try:
        with pytest.raises(OwnershipError) as error:
            claim_output(tmp_path, "b", {"seed": 2}, option="OUT")
        assert str(error.value) == (f'{tmp_path} is being written by another running job with other parameters '
                                    '(a: {"seed": 1}); use a new OUT directory')
        # a part of the same job (other shards) runs beside it; the same shards are refused
        assert claim_output(tmp_path, "a", {"seed": 1}, indices=range(2, 4)) == set()
        release_output(tmp_path)
        with pytest.raises(OwnershipError, match="shard 000001.h5 is being written by another running job"):
            claim_output(tmp_path, "a", {"seed": 1}, indices=range(1, 3))
    finally:
        job.kill()
        job.wait()
    # the dead job left no shards: the directory is free for a job with other parameters
    assert claim_output(tmp_path, "b", {"seed": 2}) == set()
    release_output(tmp_path)


PROBE = """
import sys
from gqn.ownership import OwnershipError
from gqn.shards import claim_output
try:
    claim_output(sys.argv[1], "t", {}, indices=[int(k) for k in sys.argv[2:]])
except OwnershipError as e:
    print(e)
else:
    print("free")
"""


def other_process_claims(directory, *shards) -> str:
    return subprocess.run([sys.executable, "-c", PROBE, str(directory), *map(str, shards)], capture_output=True,
                          text=True, check=True).stdout.strip()


def test_a_shard_stays_locked_while_this_process_writes_it_after_its_claim_ends(tmp_path):
    """Claims and writers of one process share one descriptor and release only what none of them holds."""
    assert claim_output(tmp_path, "t", {}, indices=range(3)) == set()
    writer = ShardWriter(tmp_path, 1, 2, 3, 8, family="t", scenes_per_shard=2, params={})
    assert other_process_claims(tmp_path, 2).endswith("shard 000002.h5 is being written by another running job; "
                                                      "run one job per output directory, or split the work with "
                                                      "--shard K/N")
    release_output(tmp_path)
    assert other_process_claims(tmp_path, 0, 2) == "free"
    assert "shard 000001.h5 is being written" in other_process_claims(tmp_path, 1)
    assert listing(tmp_path) == [".000001.h5.tmp"]
    writer.abort()
    assert other_process_claims(tmp_path, 1) == "free"


# ---- gqn convert and gqn export ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def records(tmp_path_factory):
    src = tmp_path_factory.mktemp("deepmind") / SM5
    write_files(src / "train", [150, 150], seed=4, distinct_frames=20)
    return src


def convert_args(src, out, per_shard):
    return ["convert", "tfrecord", src, out, "--workers", 1, "--no-progress", "--scenes-per-shard", per_shard]


def test_converts_with_other_parameters_into_one_output_one_is_refused(records, tmp_path):
    out = tmp_path / "out"
    jobs = {per_shard: start_gqn(*convert_args(records, out, per_shard)) for per_shard in (10, 20)}
    results = {per_shard: finish(proc) for per_shard, proc in jobs.items()}
    winners = [k for k, result in results.items() if result.code == 0]
    assert len(winners) == 1, {k: r.err for k, r in results.items()}
    (loser,) = set(results) - set(winners)
    one_line(results[loser], f"{out / 'train'}", "other parameters", "use a new OUT directory")
    assert listing(out / "train") == [shard_name(k) for k in range(300 // winners[0])]
    with Dataset(out / "train") as dataset:
        assert len(dataset) == 300


def test_the_same_convert_started_twice(records, tmp_path):
    out = tmp_path / "out"
    first = start_gqn(*convert_args(records, out, 10), start_new_session=True)
    wait_for(lambda: writing(out / "train"), first)
    with paused(first, group=True):  # its workers too: they write the shards
        before = listing(out / "train")
        second = finish(start_gqn(*convert_args(records, out, 10)))
        if second.code:
            one_line(second, f"{out / 'train'}: shard ", "is being written by another running job; run one job "
                     "per output directory")
            assert listing(out / "train") == before
        assert "Traceback" not in second.err
    first = finish(first)
    assert first.code == 0, first.err
    assert listing(out / "train") == [shard_name(k) for k in range(30)]
    with Dataset(out / "train") as dataset:
        assert len(dataset) == 300


def test_exports_with_other_parameters_into_one_output_one_is_refused(tmp_path):
    data = write_dataset(tmp_path / "data", scenes=40, views=3, size=16, per_shard=10)
    out = tmp_path / "tf"
    jobs = {n: start_gqn("export", "tfrecord", data, out, "--records-per-file", n, "--no-progress") for n in (4, 5)}
    results = {n: finish(proc) for n, proc in jobs.items()}
    winners = [n for n, result in results.items() if result.code == 0]
    assert len(winners) == 1, {n: r.err for n, r in results.items()}
    (loser,) = set(results) - set(winners)
    one_line(results[loser], str(out), "other parameters")
    files = 40 // winners[0]
    assert listing(out) == [".gqn-export.json"] + [record_file_name(i, files) for i in range(1, files + 1)]
