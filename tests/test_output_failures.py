"""Outputs that cannot be written: refused up front with a one-line error naming the option and the path (an
unwritable place), or reported as one line naming the file being written (a disk that fills up while
writing), never a traceback and never a temporary file left behind."""
import errno
import os
import resource
import signal
from pathlib import Path

import h5py
import numpy as np
import pytest

from gqn.converters.tfrecord import RecordWriter
from gqn.files import WriteError
from gqn.shards import ShardWriter
from tests.helpers import Result, assert_one_line_error, gqn, listing, run_cli
from tests.model_data import TINY, write_dataset
from tests.tfrecord_data import write_files

MODEL = [f"--{key.replace('_', '-')}={value}" for key, value in TINY.items()]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("data") / "train", scenes=6, views=3, size=16, per_shard=4)


def leftovers(directory) -> list[str]:
    """Temporary files anywhere under ``directory``."""
    return sorted(str(p) for p in Path(directory).rglob("*") if p.name.endswith(".tmp"))


# ---- unwritable output paths (refused before any work) ----

COMMANDS = {  # command -> (arguments with OUT standing for the output path, the option that names it)
    "train --out": (["train", "DATA", "--out", "OUT", "--iterations", 1, "--no-progress", *MODEL], "--out"),
    "train --save-rendered": (["train", "--render", "shepard-matzler", "--render-size", 16, "--save-rendered", "OUT",
                               "--out", "RUN", "--iterations", 1, "--no-progress", *MODEL], "--save-rendered"),
    "evaluate --out": (["evaluate", "RUN", "--data", "DATA", "--out", "OUT"], "--out"),
    "export tfrecord OUT": (["export", "tfrecord", "DATA", "OUT", "--no-progress"], "OUT"),
    "info --preview": (["info", "DATA", "--preview", "OUT"], "--preview"),
}


def command(name, data, tmp_path, out):
    args, option = COMMANDS[name]
    swap = {"DATA": data, "OUT": out, "RUN": tmp_path / "run"}
    return [swap.get(a, a) if isinstance(a, str) else a for a in args], option


@pytest.mark.parametrize("name", COMMANDS)
def test_output_under_a_regular_file_is_refused_before_any_work(data, tmp_path, name):
    (tmp_path / "notes.txt").write_text("a file, not a folder")
    out = tmp_path / "notes.txt" / ("p.png" if name == "info --preview" else "out")
    args, option = command(name, data, tmp_path, out)
    result = run_cli(*args)
    assert result.code == 1
    assert_one_line_error(result, f"Error: {option} {out}: cannot ", f"{tmp_path / 'notes.txt'} is a file, "
                          "not a directory")
    assert result.err.count("\n") == 1 and result.out == ""  # info did not describe DATA first
    assert not (tmp_path / "run").exists()  # train did not start a run


@pytest.mark.parametrize("name", COMMANDS)
def test_output_in_a_folder_nothing_can_be_created_in_is_refused(data, tmp_path, name):
    if not os.path.isdir("/proc/self"):
        pytest.skip("needs /proc")
    out = Path("/proc/self/gqn-test-output" + (".png" if name == "info --preview" else ""))
    args, option = command(name, data, tmp_path, out)
    result = run_cli(*args)
    assert result.code == 1
    assert_one_line_error(result, f"Error: {option} {out}: cannot ")
    assert result.out == "" and not (tmp_path / "run").exists()


@pytest.mark.parametrize("name", COMMANDS)
def test_an_existing_file_as_output_directory_or_a_folder_as_output_file(data, tmp_path, name):
    if name == "info --preview":
        out = tmp_path / "folder.png"
        out.mkdir()
    else:
        out = tmp_path / "notes.txt"
        out.write_text("a file, not a folder")
    args, option = command(name, data, tmp_path, out)
    result = run_cli(*args)
    assert result.code in (1, 2)  # 2: click's own check of the option's type
    assert_one_line_error(result, str(out.name))
    assert "is a file" in result.err or "is a directory" in result.err
    assert result.out == "" and not (tmp_path / "run").exists()


def test_preview_into_a_missing_folder(data, tmp_path):
    out = tmp_path / "missing" / "p.png"
    result = run_cli("info", data, "--preview", out)
    assert result.code == 1 and result.out == ""
    assert_one_line_error(result, f"Error: --preview {out}: cannot write the file: folder {out.parent} does not "
                          "exist")


def test_writable_outputs_pass_the_checks_and_leave_no_probe_behind(data, tmp_path):
    (tmp_path / "preview").mkdir()
    result = run_cli("info", data, "--preview", tmp_path / "preview" / "p.png")
    assert result.code == 0, result.err
    assert os.listdir(tmp_path / "preview") == ["p.png"]
    assert run_cli("export", "tfrecord", data, tmp_path / "new" / "deeper" / "tf", "--no-progress").code == 0
    assert listing(tmp_path / "new" / "deeper" / "tf") == [".gqn-export.json", "1-of-1.tfrecord"]


# ---- a disk that fills up while writing ----

def gqn_with_file_size_limit(limit: int, *args) -> Result:
    """Run the CLI (in a process of its own: the limit holds for a whole process) where no file may grow past
    ``limit`` bytes: writes beyond fail with EFBIG, as they fail with ENOSPC on a full disk."""
    def limit_files():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))

    return gqn(*args, preexec_fn=limit_files, timeout=180,
               # only the data files may meet the limit: no bytecode or GL shader cache written
               env={"PYTHONDONTWRITEBYTECODE": "1", "MESA_SHADER_CACHE_DISABLE": "true"})


def test_render_into_a_full_disk_names_the_shard_and_leaves_no_temporary_file(tmp_path):
    out = tmp_path / "sm"
    result = gqn_with_file_size_limit(8000, "render", "shepard-matzler", "--scenes", 4, "--size", 16, "--views", 4,
                                      "--scenes-per-shard", 2, "--compression", "none", "--workers", 1,
                                      "--no-progress", "--out", out)
    assert result.code == 1
    assert_one_line_error(result, f"Error: writing shard {out}/.000000.h5.tmp: File too large")
    assert "Exception ignored" not in result.err and result.err.count("\n") == 1
    assert listing(out) == []


def test_convert_into_a_full_disk_names_the_shard_and_leaves_no_temporary_file(tmp_path):
    write_files(tmp_path / "src" / "train", [2], distinct_frames=4)
    out = tmp_path / "out"
    result = gqn_with_file_size_limit(20000, "convert", "tfrecord", tmp_path / "src", out, "--dataset",
                                      "shepard_metzler_5_parts", "--workers", 1, "--no-progress")
    assert result.code == 1
    assert_one_line_error(result, f"Error: writing shard {out}/train/.000000.h5.tmp: File too large")
    assert listing(out / "train") == []


def test_shard_writer_reports_a_full_disk_in_one_line(tmp_path, monkeypatch):
    """HDF5 reports a failed write(2) as an OSError whose message holds the errno; a full disk on the first
    dataset write removes the temporary file."""
    def full(self, key, value):
        raise OSError(errno.ENOSPC, "Can't write data (file write failed: time = now, filename = 'x', file "
                      "descriptor = 3, errno = 28, error message = 'No space left on device', buf = 0x1)")

    monkeypatch.setattr(h5py.Dataset, "__setitem__", full)
    with pytest.raises(WriteError) as error:
        with ShardWriter(tmp_path, 3, 2, 3, 8, family="test", scenes_per_shard=2, params={}) as writer:
            writer.write(np.zeros((2, 3, 8, 8, 3), np.uint8), np.zeros((2, 3, 5), np.float32))
            writer.commit()
    assert str(error.value) == f"writing shard {tmp_path}/.000003.h5.tmp: No space left on device"
    assert listing(tmp_path) == []


def test_record_writer_reports_a_full_disk_in_one_line(tmp_path):
    if not os.path.exists("/dev/full"):
        pytest.skip("needs /dev/full")
    (tmp_path / ".1-of-1.tfrecord.tmp").symlink_to("/dev/full")  # writes there fail with ENOSPC
    with pytest.raises(WriteError) as error:
        with RecordWriter(tmp_path / "1-of-1.tfrecord") as writer:
            writer.write(b"x" * (2 << 20))  # more than the write buffer
    assert str(error.value) == f"writing TFRecord file {tmp_path}/.1-of-1.tfrecord.tmp: No space left on device"
    assert os.listdir(tmp_path) == []


def test_export_into_a_full_disk_names_the_file(data, tmp_path):
    out = tmp_path / "tf"
    result = gqn_with_file_size_limit(1000, "export", "tfrecord", data, out, "--records-per-file", 2, "--quality",
                                      100, "--no-progress")
    assert result.code == 1
    assert_one_line_error(result, f"Error: writing TFRecord file {out}/.1-of-3.tfrecord.tmp: File too large")
    assert listing(out) == [".gqn-export.json"]


def test_training_snapshot_on_a_full_disk_is_one_line_and_keeps_no_temporary_file(data, tmp_path):
    if not os.path.exists("/dev/full"):
        pytest.skip("needs /dev/full")
    run = tmp_path / "run"
    run.mkdir()
    (run / ".snapshot.npz.tmp").symlink_to("/dev/full")  # the snapshot's writes fail with ENOSPC
    result = run_cli("train", data, "--out", run, "--iterations", 2, "--snapshot-every", 1, "--batch-size", 2,
                     "--workers", 0, "--no-progress", *MODEL)
    assert result.code == 1
    assert_one_line_error(result, f"Error: writing snapshot {run}/.snapshot.npz.tmp: No space left on device")
    assert "seek of closed file" not in result.err and result.err.count("\n") == 1
    assert not (run / ".snapshot.npz.tmp").exists() and not (run / "snapshot.npz").exists()


def test_an_os_error_no_writer_reports_is_still_one_line(data, tmp_path):
    run = tmp_path / "run"
    (run / "config.json").mkdir(parents=True)  # the run's config cannot be written
    result = run_cli("train", data, "--out", run, "--iterations", 1, "--workers", 0, "--no-progress", *MODEL)
    assert result.code == 1
    assert result.err == f"Error: Is a directory: {run / 'config.json'}\n"


def test_preview_on_a_full_disk_is_one_line_and_leaves_no_file(data, tmp_path):
    if not os.path.exists("/dev/full"):
        pytest.skip("needs /dev/full")
    (tmp_path / "p.png").symlink_to("/dev/full")
    result = run_cli("info", data, "--preview", tmp_path / "p.png")
    assert result.code == 1
    assert_one_line_error(result, f"Error: writing preview {tmp_path / 'p.png'}: No space left on device")
    assert not os.path.lexists(tmp_path / "p.png")


def test_preview_without_a_known_extension_is_a_png(data, tmp_path):
    assert run_cli("info", data, "--preview", tmp_path / "sheet").code == 0
    assert (tmp_path / "sheet").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
