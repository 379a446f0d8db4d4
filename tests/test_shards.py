import json
import shutil
import subprocess
import sys

import h5py
import numpy as np
import pytest
import simplejpeg

from gqn import encodings, shards
from gqn.ownership import release_output
from gqn.shards import Dataset, ShardError, ShardWriter, claim_output, read_attrs, viewpoints_from_cameras
from tests.helpers import assert_one_line_error, listing, run_cli

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
    assert listing(tmp_path) == []


def test_commit_refuses_missing_scenes(tmp_path):
    with pytest.raises(ShardError, match="1 of 2 scenes"):
        with ShardWriter(tmp_path, 0, 2, 3, 8, family="test", scenes_per_shard=2, params=PARAMS) as w:
            w.write(np.zeros((1, 3, 8, 8, 3), np.uint8), np.zeros((1, 3, 5)))
            w.commit()
    assert listing(tmp_path) == []


def test_killed_writer_leaves_only_a_temporary_file(tmp_path):
    code = (f"import os, numpy as np\nfrom gqn.shards import ShardWriter\n"
            f"w = ShardWriter({str(tmp_path)!r}, 3, 2, 3, 8, family='t', scenes_per_shard=2, params={{}})\n"
            f"w.write(np.zeros((1, 3, 8, 8, 3), np.uint8), np.zeros((1, 3, 5)))\nos._exit(9)\n")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 9
    assert listing(tmp_path) == [".000003.h5.tmp"]
    with pytest.raises(ShardError, match="no shards"):
        Dataset(tmp_path)
    assert claim_output(tmp_path, "t", {}) == set()
    release_output(tmp_path)
    assert listing(tmp_path) == []


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


def test_claim_output_refuses_other_parameters(tmp_path):
    write(tmp_path, 0, 4)
    assert claim_output(tmp_path, "test", PARAMS) == {0}
    release_output(tmp_path)
    with pytest.raises(ShardError, match="other parameters"):
        claim_output(tmp_path, "test", {**PARAMS, "size": 16})


def test_claim_output_only_removes_its_own_temporary_files(tmp_path):
    for k in (0, 5):
        (tmp_path / shards.tmp_name(k)).write_bytes(b"partial")
    claim_output(tmp_path, "test", PARAMS, indices=range(0, 3))
    release_output(tmp_path)
    assert listing(tmp_path) == [".000005.h5.tmp"]


def test_unknown_compression():
    with pytest.raises(ShardError, match="unknown compression"):
        encodings.compression_filter("zstd")


@pytest.mark.parametrize("compression", ["none", "gzip-1", "gzip-9"])
def test_pre_encoded_chunks_read_back_as_the_images(tmp_path, compression):
    images = np.random.default_rng(0).integers(0, 4, (3, 3, 8, 8, 3), dtype=np.uint8)
    cameras = np.zeros((3, 3, 5), np.float32)
    with ShardWriter(tmp_path, 0, 3, 3, 8, family="t", scenes_per_shard=3, params={},
                     compression=compression) as w:
        w.write(None, cameras, encoded=encodings.encode_images(images, compression))
        w.commit()
    with Dataset(tmp_path) as ds:
        np.testing.assert_array_equal(ds.read(0, 3)["images"], images)
    assert encodings.encode_images(images, "lzf") is None


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
    assert listing(tmp_path) == ["000000.h5"]
    with pytest.raises(ShardError, match="does not start shard"):
        shards.ShardSequence(tmp_path, 4, 10, 3, 8, family="t", params={}).write(5, images, np.zeros((5, 3, 5)))


def write_three(directory):
    """Shards 000000..000002 of 4, 4 and 2 scenes (4 per shard)."""
    for index, n in enumerate((4, 4, 2)):
        write(directory, index, n)


def test_missing_shard_between_others_is_refused(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    write_three(data)
    (data / "000001.h5").unlink()
    with pytest.raises(ShardError) as error:
        Dataset(data)
    assert str(error.value) == f"{data}: shard 000001.h5 is missing (scenes 4..7 between 000000.h5 and 000002.h5)"
    assert_one_line_error(run_cli("info", data), "shard 000001.h5 is missing")
    result = run_cli("train", data, "--out", tmp_path / "run", "--iterations", 1, "--no-progress")
    assert_one_line_error(result, "shard 000001.h5 is missing")
    assert not (tmp_path / "run" / "snapshot.npz").exists()


def test_duplicated_shard_is_refused(tmp_path):
    write_three(tmp_path)
    shutil.copy(tmp_path / "000000.h5", tmp_path / "000003.h5")
    with pytest.raises(ShardError, match=r"000003\.h5: holds scenes 0\.\.3, those of 000000\.h5, which is also "
                                         r"present: a duplicated shard"):
        Dataset(tmp_path)
    assert_one_line_error(run_cli("info", tmp_path), "000003.h5: holds scenes 0..3", "duplicated shard")
    (tmp_path / "000000.h5").unlink()
    with pytest.raises(ShardError, match=r"000003\.h5: holds scenes 0\.\.3, those of 000000\.h5: a renamed"):
        Dataset(tmp_path)


def test_short_shard_before_the_last_is_refused(tmp_path):
    write(tmp_path, 0, 2)
    write(tmp_path, 1, 4)
    with pytest.raises(ShardError, match=r"000000\.h5 holds 2 of its 4 scenes but is not the last shard "
                                         r"\(scenes 2\.\.3 between 000000\.h5 and 000001\.h5\)"):
        Dataset(tmp_path)


def test_a_run_of_consecutive_shards_is_accepted(tmp_path):
    """What a `--shard K/N` part (or a run still going) leaves: shards missing only before or after."""
    write_three(tmp_path)
    (tmp_path / "000000.h5").unlink()
    with Dataset(tmp_path) as ds:
        assert ds.num_scenes == 6 and [p.name for p in ds.shards] == ["000001.h5", "000002.h5"]
    (tmp_path / "000002.h5").unlink()
    with Dataset(tmp_path) as ds:
        assert ds.num_scenes == 4


def corrupt_chunk(path, scene):
    """Overwrite bytes inside the stored (compressed) image chunk of ``scene``."""
    with h5py.File(path) as f:
        info = f["images"].id.get_chunk_info(scene)
    raw = bytearray(path.read_bytes())
    start = info.byte_offset + info.size // 4
    raw[start:start + 16] = bytes(b ^ 0xFF for b in raw[start:start + 16])
    path.write_bytes(bytes(raw))


def test_corrupt_image_chunk_names_shard_and_scene(tmp_path):
    write(tmp_path, 0, 4, compression="gzip-1")
    write(tmp_path, 1, 4, compression="gzip-1")
    corrupt_chunk(tmp_path / "000001.h5", 2)
    message = r"000001\.h5: scene 6 \(scene 2 of this shard\) cannot be read: its images data is corrupt \(.+\)"
    with Dataset(tmp_path) as ds:
        with pytest.raises(ShardError, match=message):
            ds.read(0, 8)
        with pytest.raises(ShardError, match=message):
            ds.read_views(6, [0, 2])
        assert ds.read_views(5, [1])["images"].shape == (1, 8, 8, 3)  # the other scenes still read
        assert ds.read(0, 8, names=("cameras",))["cameras"].shape == (8, 3, 5)
    result = run_cli("info", tmp_path, "--preview", tmp_path / "p.png", "--preview-scenes", 8)
    assert_one_line_error(result, "000001.h5: scene 6 (scene 2 of this shard) cannot be read")
    result = run_cli("export", "tfrecord", tmp_path, tmp_path / "tf", "--no-progress")
    assert_one_line_error(result, "000001.h5: scene 6 (scene 2 of this shard) cannot be read")
    assert not list((tmp_path / "tf").glob("*.tfrecord*"))  # no partial TFRecord file is left behind


def jpeg_scenes(n, views=3, size=16, seed=0):
    """``n`` scenes of JPEG frames (bytes) of varied lengths, and their cameras."""
    rng = np.random.default_rng(seed)
    frames = [[simplejpeg.encode_jpeg(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
                                      // int(rng.integers(1, 128)), 90) for _ in range(views)] for _ in range(n)]
    return frames, rng.normal(size=(n, views, 5)).astype(np.float32)


def write_jpeg(directory, frames, cameras, blocks, scenes_per_shard=5, size=16):
    """Write ``frames`` as jpeg shards through a ShardSequence, in blocks of the given sizes."""
    directory.mkdir(exist_ok=True)
    with shards.ShardSequence(directory, scenes_per_shard, len(frames), len(frames[0]), size, family="test",
                              params=PARAMS, compression="none", image_encoding="jpeg") as sequence:
        start = 0
        for block in blocks:
            sequence.write(start, None, cameras[start:start + block], encoded=frames[start:start + block])
            start += block


def test_jpeg_shards_store_the_frames_and_read_back_decoded(tmp_path, monkeypatch):
    monkeypatch.setattr(shards, "JPEG_CHUNK", 4096)  # frames and scenes straddle chunks
    frames, cameras = jpeg_scenes(8)
    write_jpeg(tmp_path / "a", frames, cameras, [8])
    write_jpeg(tmp_path / "b", frames, cameras, [1, 2, 4, 1])
    assert listing(tmp_path / "a") == ["000000.h5", "000001.h5"]
    for name in ("000000.h5", "000001.h5"):  # the bytes do not depend on how the scenes came in blocks
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    with h5py.File(tmp_path / "a" / "000001.h5") as f:
        attrs = dict(f.attrs)
        stored = f["images"][()]
        offsets = f["image_offsets"][()]
        assert f["images"].dtype == np.uint8 and f["images"].compression is None
    assert attrs["format_version"] == 2 and attrs["image_encoding"] == "jpeg"
    assert attrs["image_height"] == 16 and attrs["image_width"] == 16
    assert offsets.shape == (3, 4) and offsets[0, 0] == 0 and offsets[-1, -1] == len(stored)
    assert stored[offsets[1, 2]:offsets[1, 3]].tobytes() == frames[6][2]  # view 2 of scene 1 of the shard
    assert read_attrs(tmp_path / "a" / "000001.h5")["_shapes"]["images"] == (3, 3, 16, 16, 3)
    decoded = np.stack([[simplejpeg.decode_jpeg(f, colorspace="RGB") for f in scene] for scene in frames])
    with Dataset(tmp_path / "a") as ds:
        assert ds.image_encoding == "jpeg" and (ds.num_scenes, ds.views, ds.height, ds.width) == (8, 3, 16, 16)
        got = ds.read(0, 8)
        assert got["images"].dtype == np.uint8 and np.array_equal(got["images"], decoded)
        assert np.array_equal(got["cameras"], cameras)
        np.testing.assert_allclose(got["viewpoints"], viewpoints_from_cameras(cameras))
        assert np.array_equal(ds.read(3, 7)["images"], decoded[3:7])  # across the shard boundary
        views = ds.read_views(6, np.array([2, 0]))
        assert np.array_equal(views["images"], decoded[6][[2, 0]])
        assert ds.read_jpeg(2, 8) == frames[2:]


def test_jpeg_shards_refuse_compression_and_raw_shards_stay_version_1(tmp_path):
    with pytest.raises(ShardError, match="compression gzip-1 applies to raw images only"):
        ShardWriter(tmp_path, 0, 1, 3, 8, family="test", scenes_per_shard=1, params=PARAMS,
                    compression="gzip-1", image_encoding="jpeg")
    assert listing(tmp_path) == []
    write(tmp_path, 0, 4)
    with h5py.File(tmp_path / "000000.h5") as f:
        assert f.attrs["format_version"] == 1 and "image_encoding" not in f.attrs and "image_offsets" not in f
    with Dataset(tmp_path) as ds:
        assert ds.image_encoding == "raw"
        with pytest.raises(ShardError, match="holds raw images"):
            ds.read_jpeg(0, 1)


def test_unknown_format_version_or_encoding_is_refused(tmp_path):
    write(tmp_path, 0, 4)
    with h5py.File(tmp_path / "000000.h5", "a") as f:
        f.attrs["format_version"] = 3
    with pytest.raises(ShardError, match="format version 3 is not supported"):
        read_attrs(tmp_path / "000000.h5")
    with h5py.File(tmp_path / "000000.h5", "a") as f:
        f.attrs["format_version"] = 2
        f.attrs["image_encoding"] = "png"
    with pytest.raises(ShardError, match="image encoding 'png' is not supported"):
        read_attrs(tmp_path / "000000.h5")


def test_corrupt_jpeg_in_a_jpeg_shard_names_shard_and_scene(tmp_path):
    frames, cameras = jpeg_scenes(8)
    write_jpeg(tmp_path, frames, cameras, [8], scenes_per_shard=4)
    path = tmp_path / "000001.h5"
    raw = path.read_bytes()
    start = raw.index(frames[6][1])  # stored as they came: view 1 of scene 6 (scene 2 of shard 1)
    path.write_bytes(raw[:start] + b"\0" * 4 + raw[start + 4:])  # its JPEG start marker and header are gone
    message = (r"000001\.h5: scene 6 \(scene 2 of this shard\) cannot be read: view 1 is not a decodable "
               r"JPEG image \(.+\)")
    with Dataset(tmp_path) as ds:
        with pytest.raises(ShardError, match=message):
            ds.read(0, 8)
        with pytest.raises(ShardError, match=message):
            ds.read_views(6, [2, 1])
        assert ds.read_views(6, [0, 2])["images"].shape == (2, 16, 16, 3)  # the other views still decode
        assert ds.read(7, 8)["images"].shape == (1, 3, 16, 16, 3)
    result = run_cli("info", tmp_path, "--preview", tmp_path / "p.png", "--preview-scenes", 8)
    assert_one_line_error(result, "000001.h5: scene 6 (scene 2 of this shard) cannot be read: view 1 is not")
    assert result.err.count("\n") == 1
