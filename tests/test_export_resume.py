"""`gqn export tfrecord` resumes like `gqn convert`: complete files are kept, stale temporary files removed,
the rest written; a re-run with other parameters is refused. The result equals an uninterrupted export."""
import pytest
import simplejpeg

from gqn.converters.convert import find_inputs
from tests.helpers import assert_one_line_error, listing, run_cli, shard_files
from tests.model_data import write_dataset

ARGS = ["--records-per-file", 4, "--gzip", "--no-progress"]  # 10 scenes: 3 files of 4, 4 and 2 records


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A dataset (train/ and test/) and its uninterrupted export."""
    root = tmp_path_factory.mktemp("export")
    write_dataset(root / "data" / "train", scenes=10, views=3, size=16, per_shard=3, seed=1)
    write_dataset(root / "data" / "test", scenes=3, views=3, size=16, per_shard=3, seed=2)
    result = run_cli("export", "tfrecord", root / "data", root / "whole", *ARGS)
    assert result.code == 0, result.err
    return root / "data", root / "whole"


def test_export_is_deterministic(exported, tmp_path):
    data, whole = exported
    assert run_cli("export", "tfrecord", data, tmp_path / "again", *ARGS).code == 0
    for split in ("train", "test"):
        assert shard_files(tmp_path / "again" / split) == shard_files(whole / split)


def test_killed_export_resumes_to_the_same_bytes(exported, tmp_path):
    """As after `kill -9`: one file never finished (only its temporary file is there), the others are whole."""
    data, whole = exported
    out = tmp_path / "out"
    assert run_cli("export", "tfrecord", data, out, *ARGS).code == 0
    (out / "train" / "2-of-3.tfrecord").unlink()
    (out / "train" / ".2-of-3.tfrecord.tmp").write_bytes(b"half a file")
    kept = (out / "train" / "1-of-3.tfrecord").stat()
    result = run_cli("export", "tfrecord", data, out, *ARGS)
    assert result.code == 0, result.err
    assert f"10 scenes into 3 TFRecord files in {out / 'train'} (2 kept from an earlier run)" in result.out
    assert f"3 scenes into 1 TFRecord files in {out / 'test'} (1 kept from an earlier run)" in result.out
    for split in ("train", "test"):
        assert shard_files(out / split) == shard_files(whole / split)  # temporary files included: none left
    again = (out / "train" / "1-of-3.tfrecord").stat()
    assert (again.st_ino, again.st_mtime_ns) == (kept.st_ino, kept.st_mtime_ns)  # kept, not rewritten


def test_ctrl_c_then_rerun_gives_the_uninterrupted_export(exported, tmp_path, monkeypatch):
    data, whole = exported
    out = tmp_path / "out"
    encode, calls = simplejpeg.encode_jpeg, []

    def ctrl_c_at_scene_6(*args, **kwargs):  # in the middle of the second file (scenes 4..7)
        calls.append(1)
        if len(calls) == 6 * 3 + 1:
            raise KeyboardInterrupt
        return encode(*args, **kwargs)

    monkeypatch.setattr(simplejpeg, "encode_jpeg", ctrl_c_at_scene_6)
    code, _, err = run_cli("export", "tfrecord", data, out, *ARGS)
    assert code == 130 and "Traceback" not in err
    assert f"Interrupted; the complete TFRecord files in {out} are kept: re-run the same command to resume." in err
    assert listing(out / "train") == [".gqn-export.json", "1-of-3.tfrecord"]  # no temporary file
    monkeypatch.setattr(simplejpeg, "encode_jpeg", encode)
    code, stdout, err = run_cli("export", "tfrecord", data, out, *ARGS)
    assert code == 0, err
    assert "(1 kept from an earlier run)" in stdout
    for split in ("train", "test"):
        assert shard_files(out / split) == shard_files(whole / split)


@pytest.mark.parametrize("other", [["--quality", 80], ["--records-per-file", 5], "no --gzip"])
def test_rerun_with_other_parameters_is_refused(exported, tmp_path, other):
    data, whole = exported
    out = tmp_path / "out"
    assert run_cli("export", "tfrecord", data / "train", out, *ARGS).code == 0
    (out / "1-of-3.tfrecord").unlink()  # an interrupted export
    before = shard_files(out)
    args = [a for a in ARGS if a != "--gzip"] if other == "no --gzip" else [*ARGS, *other]
    result = run_cli("export", "tfrecord", data / "train", out, *args)
    assert result.code == 1
    assert_one_line_error(result, f"Error: {out} already holds TFRecord files exported with other parameters")
    assert shard_files(out) == before


def test_rerun_with_another_source_dataset_is_refused(exported, tmp_path):
    data, _ = exported
    out = tmp_path / "out"
    assert run_cli("export", "tfrecord", data / "train", out, *ARGS).code == 0
    other = write_dataset(tmp_path / "other", scenes=10, views=3, size=16, per_shard=3, seed=7)
    result = run_cli("export", "tfrecord", other, out, *ARGS)
    assert_one_line_error(result, "already holds TFRecord files exported with other parameters")


def test_foreign_tfrecord_files_are_not_mixed_with(exported, tmp_path):
    data, _ = exported
    out = tmp_path / "out"
    out.mkdir()
    (out / "1-of-3.tfrecord").write_bytes(b"someone else's")
    result = run_cli("export", "tfrecord", data / "train", out, *ARGS)
    assert_one_line_error(result, f"{out} already holds TFRecord files that gqn export did not write")
    assert listing(out) == ["1-of-3.tfrecord"]


def test_convert_ignores_temporary_files_of_an_unfinished_export(exported, tmp_path):
    _, whole = exported
    (whole / "train" / ".3-of-3.tfrecord.tmp").write_bytes(b"half a file")
    try:
        found = find_inputs([whole])
    finally:
        (whole / "train" / ".3-of-3.tfrecord.tmp").unlink()
    assert [p.name for p in found["train"]] == ["1-of-3.tfrecord", "2-of-3.tfrecord", "3-of-3.tfrecord"]
