import json
import subprocess
import sys

import h5py
import numpy as np
import pytest

from gqn import shards
from gqn.shards import Dataset, ShardError, ShardWriter, prepare_output, read_attrs, viewpoints_from_cameras

PARAMS = {"size": 8, "views": 3}


def write(directory, index, n, scenes_per_shard=4, value=None, **kw):
    rng = np.random.default_rng(index)
    images = rng.integers(0, 256, (n, 3, 8, 8, 3), dtype=np.uint8) if value is None else \
        np.full((n, 3, 8, 8, 3), value, np.uint8)
    cameras = rng.normal(size=(n, 3, 5)).astype(np.float32)
    with ShardWriter(directory, index, n, 3, 8, family="test", scenes_per_shard=scenes_per_shard,
                     params=PARAMS, seed=7, **kw) as w:
        w.write(images[:1], cameras[:1])
        w.write(images[1:], cameras[1:])
        w.commit()
    return images, cameras


def test_round_trip_dtypes_shapes_attributes(tmp_path):
    images, cameras = write(tmp_path, 0, 4, compression="gzip-4")
    path = tmp_path / "000000.h5"
    with h5py.File(path) as f:
        assert f["images"].dtype == np.uint8 and f["images"].shape == (4, 3, 8, 8, 3)
        assert f["images"].chunks == (1, 3, 8, 8, 3)
        assert f["images"].compression == "gzip"
        assert f["viewpoints"].dtype == np.float32 and f["viewpoints"].shape == (4, 3, 7)
        assert f["cameras"].shape == (4, 3, 5)
        attrs = dict(f.attrs)
    assert attrs["format"] == "gqn-shard" and attrs["format_version"] == 1
    assert attrs["family"] == "test" and attrs["first_scene"] == 0 and attrs["scenes_per_shard"] == 4
    assert attrs["seed"] == 7 and json.loads(attrs["params"]) == PARAMS
    assert attrs["generator"].startswith("gqn-toolkit ")
    with Dataset(tmp_path) as ds:
        got = ds.read(0, 4)
    np.testing.assert_array_equal(got["images"], images)
    np.testing.assert_array_equal(got["cameras"], cameras)
    np.testing.assert_allclose(got["viewpoints"], viewpoints_from_cameras(cameras))


def test_viewpoint_formula():
    vp = viewpoints_from_cameras(np.array([[1.0, 2.0, 3.0, np.pi / 2, -np.pi / 6]]))
    np.testing.assert_allclose(vp, [[1, 2, 3, 0, 1, np.cos(np.pi / 6), -0.5]], atol=1e-6)


def test_reads_across_shards_and_selected_views(tmp_path):
    a, _ = write(tmp_path, 0, 4)
    b, _ = write(tmp_path, 1, 2)
    with Dataset(tmp_path) as ds:
        assert ds.num_scenes == 6 and ds.views == 3 and ds.image_size == 8
        np.testing.assert_array_equal(ds.read(2, 6)["images"], np.concatenate([a[2:], b]))
        np.testing.assert_array_equal(ds.read_views(5, [2, 0])["images"], b[1][[2, 0]])
        with pytest.raises(IndexError):
            ds.read_views(6, [0])


def test_failed_writer_leaves_no_shard(tmp_path):
    with pytest.raises(RuntimeError):
        with ShardWriter(tmp_path, 0, 2, 3, 8, family="test", scenes_per_shard=2, params=PARAMS) as w:
            w.write(np.zeros((1, 3, 8, 8, 3), np.uint8), np.zeros((1, 3, 5)))
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_commit_refuses_missing_scenes(tmp_path):
    with pytest.raises(ShardError, match="1 of 2 scenes"):
        with ShardWriter(tmp_path, 0, 2, 3, 8, family="test", scenes_per_shard=2, params=PARAMS) as w:
            w.write(np.zeros((1, 3, 8, 8, 3), np.uint8), np.zeros((1, 3, 5)))
            w.commit()
    assert list(tmp_path.iterdir()) == []


def test_killed_writer_leaves_only_a_temporary_file(tmp_path):
    code = (f"import os, numpy as np\nfrom gqn.shards import ShardWriter\n"
            f"w = ShardWriter({str(tmp_path)!r}, 3, 2, 3, 8, family='t', scenes_per_shard=2, params={{}})\n"
            f"w.write(np.zeros((1, 3, 8, 8, 3), np.uint8), np.zeros((1, 3, 5)))\nos._exit(9)\n")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 9
    assert [p.name for p in tmp_path.iterdir()] == [".000003.h5.tmp"]
    with pytest.raises(ShardError, match="no shards"):
        Dataset(tmp_path)
    assert prepare_output(tmp_path, "t", {}) == set()
    assert list(tmp_path.iterdir()) == []


def test_foreign_and_truncated_files_are_rejected(tmp_path):
    write(tmp_path, 0, 4)
    data = (tmp_path / "000000.h5").read_bytes()
    (tmp_path / "000000.h5").write_bytes(data[: len(data) // 3])
    with pytest.raises(ShardError, match="000000.h5: not a readable HDF5 file"):
        Dataset(tmp_path)
    with h5py.File(tmp_path / "000000.h5", "w") as f:
        f["x"] = 1
    with pytest.raises(ShardError, match="not a gqn shard"):
        read_attrs(tmp_path / "000000.h5")


def test_prepare_output_refuses_other_parameters(tmp_path):
    write(tmp_path, 0, 4)
    assert prepare_output(tmp_path, "test", PARAMS) == {0}
    with pytest.raises(ShardError, match="other parameters"):
        prepare_output(tmp_path, "test", {**PARAMS, "size": 16})


def test_prepare_output_only_removes_its_own_temporary_files(tmp_path):
    for k in (0, 5):
        (tmp_path / shards.tmp_name(k)).write_bytes(b"partial")
    prepare_output(tmp_path, "test", PARAMS, indices=range(0, 3))
    assert [p.name for p in tmp_path.iterdir()] == [".000005.h5.tmp"]


def test_unknown_compression():
    with pytest.raises(ShardError, match="unknown compression"):
        shards._filter_args("zstd")


@pytest.mark.parametrize("compression", ["none", "gzip-1", "gzip-9"])
def test_pre_encoded_chunks_read_back_as_the_images(tmp_path, compression):
    images = np.random.default_rng(0).integers(0, 4, (3, 3, 8, 8, 3), dtype=np.uint8)
    cameras = np.zeros((3, 3, 5), np.float32)
    with ShardWriter(tmp_path, 0, 3, 3, 8, family="t", scenes_per_shard=3, params={},
                     compression=compression) as w:
        w.write(None, cameras, encoded=shards.encode_images(images, compression))
        w.commit()
    with Dataset(tmp_path) as ds:
        np.testing.assert_array_equal(ds.read(0, 3)["images"], images)
    assert shards.encode_images(images, "lzf") is None


def test_shard_sequence_splits_blocks_at_shard_boundaries(tmp_path):
    images = np.arange(7 * 3 * 8 * 8 * 3, dtype=np.uint64).astype(np.uint8).reshape(7, 3, 8, 8, 3)
    cameras = np.random.default_rng(1).normal(size=(7, 3, 5)).astype(np.float32)
    labels = np.arange(7 * 2, dtype=np.int8).reshape(7, 2)
    with shards.ShardSequence(tmp_path, 3, None, 3, 8, family="t", params={}) as seq:
        seq.write(0, images[:2], cameras[:2], labels=labels[:2])
        seq.write(2, images[2:7], cameras[2:7], labels=labels[2:7])  # spans shards 0, 1 and 2
        with pytest.raises(ShardError, match="not the next scene"):
            seq.write(9, images[:1], cameras[:1], labels=labels[:1])
        seq.close(keep_partial=True)
    with Dataset(tmp_path) as ds:
        assert [p.name for p in ds.shards] == ["000000.h5", "000001.h5", "000002.h5"]
        got = ds.read(0, 7, names=("images", "cameras", "labels"))
    np.testing.assert_array_equal(got["images"], images)
    np.testing.assert_array_equal(got["labels"], labels)


def test_shard_sequence_drops_a_partial_shard_unless_kept(tmp_path):
    images = np.zeros((5, 3, 8, 8, 3), np.uint8)
    with shards.ShardSequence(tmp_path, 4, 10, 3, 8, family="t", params={}) as seq:
        seq.write(0, images, np.zeros((5, 3, 5)))
    assert [p.name for p in tmp_path.iterdir()] == ["000000.h5"]
    with pytest.raises(ShardError, match="does not start shard"):
        shards.ShardSequence(tmp_path, 4, 10, 3, 8, family="t", params={}).write(5, images, np.zeros((5, 3, 5)))
