"""`gqn convert tfrecord` and `gqn export tfrecord` end to end, on small synthetic DeepMind-format files."""
import io
import json
import re
import signal
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import simplejpeg
from PIL import Image

from gqn.converters.example import encode_scene, parse_scene
from gqn.converters.tfrecord import RecordReader, RecordWriter, masked_crc32c
from gqn.data import batches
from gqn.shards import Dataset, ShardError, ShardWriter, disk_size
from tests.helpers import group_gone, listing, run_cli, signal_when
from tests.tfrecord_data import Scene, block_jpeg, random_cameras, write_files

SM5 = "shepard_metzler_5_parts"


def convert(*args):
    return run_cli("convert", "tfrecord", *args, "--no-progress", "--workers", "1")


@pytest.fixture(scope="module")
def sm5(tmp_path_factory):
    """A small shepard_metzler_5_parts tree: train/ with 3 files (5, 4, 3 scenes), test/ with 1 (3 scenes)."""
    root = tmp_path_factory.mktemp("deepmind") / SM5
    scenes = {"train": write_files(root / "train", [5, 4, 3], seed=1),
              "test": write_files(root / "test", [3], seed=2)}
    return root, {split: [s for file in files for s in file] for split, files in scenes.items()}


def read_all(directory):
    with Dataset(directory) as dataset:
        return dataset.read(0, len(dataset)), dataset.attrs


def assert_scenes(directory, scenes):
    data, _ = read_all(directory)
    assert len(data["images"]) == len(scenes)
    for got_images, got_cameras, got_viewpoints, scene in zip(data["images"], data["cameras"],
                                                                data["viewpoints"], scenes):
        assert np.array_equal(got_images, scene.images())
        pillow = np.stack([np.asarray(Image.open(io.BytesIO(f)).convert("RGB")) for f in scene.frames])
        assert np.abs(got_images.astype(int) - pillow).mean() < 1.0  # an independent JPEG decoder agrees
        assert np.array_equal(got_cameras, scene.cameras)
        x, y, z, yaw, pitch = scene.cameras.T
        expected = np.stack([x, y, z, np.cos(yaw), np.sin(yaw), np.cos(pitch), np.sin(pitch)], 1)
        assert np.allclose(got_viewpoints, expected, atol=1e-6)


def leftovers(directory):
    return listing(directory) if Path(directory).exists() else []


def test_converts_dataset_directory_into_train_and_test(sm5, tmp_path):
    root, scenes = sm5
    code, out, err = run_cli("convert", "tfrecord", root, tmp_path / "out", "--no-progress",
                             "--workers", "2", "--scenes-per-shard", "5")
    assert code == 0, err
    assert "train: 12 scenes from 3 files" in out and "test: 3 scenes from 1 file " in out
    assert leftovers(tmp_path / "out" / "train") == ["000000.h5", "000001.h5", "000002.h5"]
    assert_scenes(tmp_path / "out" / "train", scenes["train"])
    assert_scenes(tmp_path / "out" / "test", scenes["test"])
    with h5py.File(tmp_path / "out" / "train" / "000001.h5") as f:
        assert f.attrs["family"] == f"deepmind/{SM5}" and f.attrs["first_scene"] == 5
        assert json.loads(f.attrs["source"]) == [{"file": "2-of-3.tfrecord", "records": [0, 4]},
                                                 {"file": "3-of-3.tfrecord", "records": [0, 1]}]
        params = json.loads(f.attrs["params"])
        assert params["dataset"] == SM5 and params["split"] == "train" and params["input_files"] == 3


def test_split_directory_and_single_files(sm5, tmp_path):
    root, scenes = sm5
    assert convert(root / "test", tmp_path / "a")[0] == 0
    assert_scenes(tmp_path / "a" / "test", scenes["test"])
    files = [root / "train" / "3-of-3.tfrecord", root / "train" / "1-of-3.tfrecord"]
    assert convert(*files, tmp_path / "b")[0] == 0  # converted in index order
    assert_scenes(tmp_path / "b" / "train", scenes["train"][:5] + scenes["train"][9:])


def test_dataset_from_option_or_error(sm5, tmp_path):
    root, scenes = sm5
    (tmp_path / "mydata").symlink_to(root / "test")
    code, _, err = convert(tmp_path / "mydata", tmp_path / "out")
    assert code == 1 and "cannot tell the dataset" in err and "--dataset" in err
    assert convert(tmp_path / "mydata", tmp_path / "out", "--dataset", SM5)[0] == 0
    assert_scenes(tmp_path / "out", scenes["test"])  # not in a train/test directory: straight into OUT
    code, _, err = convert(tmp_path / "mydata", tmp_path / "out2", "--dataset", "rooms_ring_camera")
    assert code == 1 and "record 0: scene has 15 frames" in err and "10 views" in err


def test_gzip_input(tmp_path):
    scenes = write_files(tmp_path / SM5 / "train", [3, 2], seed=3, compress=True)
    assert convert(tmp_path / SM5, tmp_path / "out")[0] == 0
    assert_scenes(tmp_path / "out" / "train", scenes[0] + scenes[1])


def corrupt(path, offset_in_record, record, xor=0x55):
    """Flip bits at ``offset_in_record`` bytes into record ``record`` (0 = its length field)."""
    raw = bytearray(path.read_bytes())
    start = 0
    for _ in range(record):
        start += 16 + int.from_bytes(raw[start:start + 8], "little")
    raw[start + offset_in_record] ^= xor
    path.write_bytes(bytes(raw))


def write_bad_file(path, defect):
    """A file of 3 scenes whose record 1 has ``defect``."""
    rng = np.random.default_rng(7)
    records = [Scene([block_jpeg(rng, 64) for _ in range(15)], random_cameras(rng, 15)) for _ in range(3)]
    frames, cameras = records[1].frames, records[1].cameras
    payload = {
        "not_example": b"\xff" * 40,
        "not_jpeg": encode_scene(frames[:2] + [b"\x89PNG\r\n\x1a\n" + bytes(64)] + frames[3:], cameras),
        "wrong_size": encode_scene([block_jpeg(rng, 32)] + frames[1:], cameras),
        "wrong_views": encode_scene(frames[:14], cameras[:14]),
        "nan_camera": encode_scene(frames, np.where(np.arange(5) == 1, np.nan, cameras)),
        "inf_camera": encode_scene(frames, np.where(np.arange(15)[:, None] == 4, -np.inf, cameras)),
    }
    with RecordWriter(path) as w:
        for i, scene in enumerate(records):
            w.write(payload[defect] if i == 1 and defect in payload else scene.record())
    if defect == "data_crc":
        corrupt(path, 100, 1)
    elif defect == "length_crc":
        corrupt(path, 9, 1)
    elif defect == "truncated":
        path.write_bytes(path.read_bytes()[:-500])
    elif defect == "huge_length":
        claim_length(path, 1, 1 << 40)


def claim_length(path, record, length):
    """Rewrite record ``record``'s header to claim ``length`` bytes, with a valid length CRC."""
    raw = bytearray(path.read_bytes())
    start = 0
    for _ in range(record):
        start += 16 + int.from_bytes(raw[start:start + 8], "little")
    header = length.to_bytes(8, "little")
    raw[start:start + 12] = header + masked_crc32c(header).to_bytes(4, "little")
    path.write_bytes(bytes(raw))


BAD_INPUTS = {
    "data_crc": "data CRC mismatch",
    "length_crc": "length CRC mismatch",
    "truncated": r"record 2: truncated file",
    "not_example": "not a tf.train.Example",
    "not_jpeg": "frame 2 is not a decodable JPEG image",
    "wrong_size": "frame 0 is 32x32 pixels; the dataset has 64x64",
    "wrong_views": "scene has 14 frames and 70 camera values; the dataset has 15 views",
    "nan_camera": r"camera of view 0 holds a NaN or infinite value \(15 of 15 views\)",
    "inf_camera": r"camera of view 4 holds a NaN or infinite value \(1 of 15 views\)",
    "huge_length": "record length of 1099511627776 bytes exceeds the 1 GiB limit",
}


@pytest.mark.parametrize("images", ["jpeg", "raw"])
@pytest.mark.parametrize("defect", sorted(BAD_INPUTS))
def test_bad_input_is_a_one_line_error(sm5, tmp_path, defect, images):
    root, _ = sm5
    train = tmp_path / SM5 / "train"
    train.mkdir(parents=True)
    (train / "1-of-2.tfrecord").symlink_to(root / "train" / "1-of-3.tfrecord")
    write_bad_file(train / "2-of-2.tfrecord", defect)
    code, out, err = convert(tmp_path / SM5, tmp_path / "out", "--images", images)
    assert code == 1
    assert err.count("\n") == 1 and err.startswith(f"Error: {train / '2-of-2.tfrecord'}: record ")
    record = "2" if defect == "truncated" else "1"
    assert f"record {record}: " in err and re.search(BAD_INPUTS[defect], err)
    assert leftovers(tmp_path / "out" / "train") == []  # nothing partial: no NNNNNN.h5, no temporary file


def test_directory_without_tfrecords(tmp_path):
    (tmp_path / SM5 / "train").mkdir(parents=True)
    code, _, err = convert(tmp_path / SM5, tmp_path / "out")
    assert code == 1 and err.strip() == f"Error: {tmp_path / SM5}: no TFRecord files (*.tfrecord, " \
                                        "*.tfrecord.gz) found in train/ or test/"


def bad_files_then_a_good_one(sm5, tmp_path, defects) -> None:
    """SM5/train/ in ``tmp_path``: one file per defect (2 good records around a bad one), then a good file."""
    train = tmp_path / SM5 / "train"
    train.mkdir(parents=True)
    for i, defect in enumerate(defects, 1):
        write_bad_file(train / f"{i}-of-{len(defects) + 1}.tfrecord", defect)
    (train / f"{len(defects) + 1}-of-{len(defects) + 1}.tfrecord").symlink_to(sm5[0] / "train" / "1-of-3.tfrecord")


def test_skip_corrupt_converts_the_rest(sm5, tmp_path):
    scenes = sm5[1]
    bad_files_then_a_good_one(sm5, tmp_path, ["not_jpeg", "data_crc", "truncated"])
    code, out, err = convert(tmp_path / SM5, tmp_path / "out", "--skip-corrupt", "--scenes-per-shard", "4")
    assert code == 0, err
    assert "train: 11 scenes from 4 files" in out and "3 corrupt records skipped" in out
    assert "skipped" in err and "1-of-4.tfrecord: record 1: frame 2 is not a decodable JPEG" in err
    assert "3-of-4.tfrecord: record 2: truncated file" in err and "rest of the file skipped" in err
    data, _ = read_all(tmp_path / "out" / "train")
    assert len(data["images"]) == 11  # 2 + 2 + 2 good records of the bad files, then 5 more
    assert np.array_equal(data["cameras"][6:], np.stack([s.cameras for s in scenes["train"][:5]]))
    # shard k holds records 4k..4k+3 of the split (3 + 3 + 2 + 5 after the truncated file's end), less the
    # skipped ones, which keep their scene numbers
    train = tmp_path / "out" / "train"
    shards = {}
    for path in sorted(train.glob("*.h5")):
        with h5py.File(path) as f:
            shards[path.name] = (int(f.attrs["first_scene"]), len(f["cameras"]), int(f.attrs.get("skipped_records", 0)))
    assert shards == {"000000.h5": (0, 3, 1), "000001.h5": (4, 3, 1), "000002.h5": (8, 4, 0), "000003.h5": (12, 1, 0)}
    before = (train / "000001.h5").read_bytes()
    (train / "000001.h5").unlink()  # a shard missing between complete ones: the re-run writes just that one
    code, out, _ = convert(tmp_path / SM5, tmp_path / "out", "--skip-corrupt", "--scenes-per-shard", "4")
    assert code == 0 and "train: 3 scenes" in out and "3 kept from an earlier run" in out
    assert (train / "000001.h5").read_bytes() == before


def test_skip_corrupt_handles_huge_lengths_and_bad_cameras(sm5, tmp_path):
    scenes = sm5[1]
    bad_files_then_a_good_one(sm5, tmp_path, ["huge_length", "nan_camera", "inf_camera"])
    code, out, err = convert(tmp_path / SM5, tmp_path / "out", "--skip-corrupt")
    assert code == 0, err
    assert "train: 10 scenes from 4 files" in out and "3 corrupt records skipped" in out
    assert "1-of-4.tfrecord: record 1: record length of 1099511627776 bytes exceeds the 1 GiB limit" in err
    assert "rest of the file skipped" in err and "Traceback" not in err
    assert "2-of-4.tfrecord: record 1: camera of view 0 holds a NaN or infinite value" in err
    assert "3-of-4.tfrecord: record 1: camera of view 4 holds a NaN or infinite value" in err
    data, _ = read_all(tmp_path / "out" / "train")
    assert np.isfinite(data["cameras"]).all() and np.isfinite(data["viewpoints"]).all()
    assert np.array_equal(data["cameras"][5:], np.stack([s.cameras for s in scenes["train"][:5]]))


def test_resume_refuses_other_parameters(sm5, tmp_path):
    root, _ = sm5
    assert convert(root / "test", tmp_path / "out", "--scenes-per-shard", "2")[0] == 0
    code, _, err = convert(root / "test", tmp_path / "out", "--scenes-per-shard", "3")
    assert code == 1 and "other parameters" in err
    code, out, _ = convert(root / "test", tmp_path / "out", "--scenes-per-shard", "2")
    assert code == 0 and "test: 0 scenes" in out and "2 kept from an earlier run" in out


def assert_same_datasets(a, b):
    names = leftovers(a)
    assert names == leftovers(b) and all(n.endswith(".h5") for n in names)
    for name in names:
        with h5py.File(a / name) as fa, h5py.File(b / name) as fb:
            assert dict(fa.attrs) == dict(fb.attrs)
            for key in ("images", "cameras", "viewpoints"):
                assert np.array_equal(fa[key][()], fb[key][()])


@pytest.mark.parametrize("images", ["jpeg", "raw"])
def test_resume_after_sigkill_matches_uninterrupted(tmp_path, images):
    src = tmp_path / SM5
    write_files(src / "train", [200, 200], seed=4, distinct_frames=40)
    args = ["convert", "tfrecord", src, None, "--no-progress", "--workers", "1", "--scenes-per-shard", "10",
            "--images", images]
    killed = tmp_path / "killed"
    # kill -9 of the converter alone, while it runs with 3 or more of its 40 shards written
    _, group = signal_when([*args[:3], killed, *args[4:]], killed / "train",
                           lambda train: len(list(train.glob("*.h5"))) >= 3, sig=signal.SIGKILL,
                           whole_group=False)
    assert group_gone(group), "worker processes outlived the killed converter"
    assert 3 <= len(list((killed / "train").glob("*.h5"))) < 40
    code, out, err = run_cli(*args[:3], killed, *args[4:])
    assert code == 0, err
    assert "kept from an earlier run" in out
    args[3] = tmp_path / "whole"
    assert run_cli(*args)[0] == 0
    assert_same_datasets(killed / "train", tmp_path / "whole" / "train")
    for path in (killed / "train").glob("*.h5"):  # the same bytes, those written after the resume too
        assert path.read_bytes() == (tmp_path / "whole" / "train" / path.name).read_bytes(), path.name


@pytest.mark.parametrize("images", ["jpeg", "raw"])
def test_export_round_trip(sm5, tmp_path, images):
    root, scenes = sm5
    assert convert(root, tmp_path / "shards", "--images", images)[0] == 0
    exported = tmp_path / "export" / SM5
    code, out, _ = run_cli("export", "tfrecord", tmp_path / "shards", exported, "--records-per-file", "5",
                           "--no-progress")
    assert code == 0 and "12 scenes into 3 TFRecord files" in out
    assert leftovers(exported / "train") == [".gqn-export.json", "1-of-3.tfrecord", "2-of-3.tfrecord",
                                             "3-of-3.tfrecord"]
    assert convert(exported, tmp_path / "again")[0] == 0
    for split in ("train", "test"):
        first, _ = read_all(tmp_path / "shards" / split)
        second, _ = read_all(tmp_path / "again" / split)
        assert np.array_equal(first["cameras"], second["cameras"])  # exact
        assert np.array_equal(first["viewpoints"], second["viewpoints"])
        if images == "jpeg":  # the frames were copied
            assert np.array_equal(first["images"], second["images"])
        else:
            assert np.abs(first["images"].astype(int) - second["images"]).mean() < 1.5  # JPEG re-encoding
    code, _, err = run_cli("export", "tfrecord", tmp_path / "shards", exported, "--no-progress")
    assert code == 1 and "already holds TFRecord files" in err


def test_export_rendered_shards(tmp_path):
    rng = np.random.default_rng(5)
    images = rng.integers(0, 256, (4, 15, 64, 64, 3), dtype=np.uint8) // 64 * 64  # flat-ish, JPEG friendly
    cameras = np.stack([random_cameras(rng, 15) for _ in range(4)])
    (tmp_path / "rendered").mkdir()
    with ShardWriter(tmp_path / "rendered", 0, 4, 15, 64, family="shepard-matzler", scenes_per_shard=4,
                     params={"parts": 5}, seed=0) as writer:
        writer.write(images, cameras)
        writer.commit()
    assert run_cli("export", "tfrecord", tmp_path / "rendered", tmp_path / "tf", "--gzip", "--quality",
                   "100", "--no-progress")[0] == 0
    assert (tmp_path / "tf" / "1-of-1.tfrecord").read_bytes()[:2] == b"\x1f\x8b"
    assert convert(tmp_path / "tf", tmp_path / "back", "--dataset", SM5)[0] == 0
    back, attrs = read_all(tmp_path / "back")
    assert attrs["family"] == f"deepmind/{SM5}"
    assert np.array_equal(back["cameras"], cameras)
    decoded = np.stack([[simplejpeg.decode_jpeg(simplejpeg.encode_jpeg(v, 100, colorsubsampling="444"))
                         for v in scene] for scene in images])
    assert np.array_equal(back["images"], decoded)


def test_converters_import_neither_tensorflow_nor_chainer():
    code = ("import sys, gqn.converters.convert, gqn.converters.export; "
            "assert not {'tensorflow', 'chainer'} & set(sys.modules), sorted(sys.modules)")
    subprocess.run([sys.executable, "-c", code], check=True)


def frames_of(path):
    """(frames, cameras) of every record of a TFRecord file."""
    return [parse_scene(data) for _, data in RecordReader(path)]


def test_raw_and_jpeg_conversions_read_back_the_same_pixels(sm5, tmp_path):
    root, scenes = sm5
    assert convert(root, tmp_path / "raw", "--images", "raw", "--scenes-per-shard", "5")[0] == 0
    code, _, err = run_cli("convert", "tfrecord", root, tmp_path / "jpeg", "--no-progress", "--workers",
                           "2", "--scenes-per-shard", "5")  # jpeg is the default
    assert code == 0, err
    for split in ("train", "test"):
        raw, raw_attrs = read_all(tmp_path / "raw" / split)
        jpeg, jpeg_attrs = read_all(tmp_path / "jpeg" / split)
        for name in ("images", "viewpoints", "cameras"):
            assert raw[name].dtype == jpeg[name].dtype and np.array_equal(raw[name], jpeg[name]), name
        assert raw_attrs["format_version"] == 1 and "image_encoding" not in raw_attrs
        assert jpeg_attrs["format_version"] == 2 and jpeg_attrs["image_encoding"] == "jpeg"
        assert "images" not in json.loads(raw_attrs["params"])  # raw: the parameters of the converter before
        assert json.loads(jpeg_attrs["params"])["images"] == "jpeg"
        assert disk_size(tmp_path / "jpeg" / split) < disk_size(tmp_path / "raw" / split)
    assert_scenes(tmp_path / "jpeg" / "train", scenes["train"])
    assert convert(root, tmp_path / "jpeg1", "--scenes-per-shard", "5")[0] == 0  # 1 worker: same bytes
    for split in ("train", "test"):
        names = leftovers(tmp_path / "jpeg" / split)
        assert names == leftovers(tmp_path / "jpeg1" / split)
        for name in names:
            assert (tmp_path / "jpeg" / split / name).read_bytes() == (tmp_path / "jpeg1" / split / name).read_bytes()
    with Dataset(tmp_path / "raw" / "train") as raw, Dataset(tmp_path / "jpeg" / "train") as jpeg:
        assert (raw.image_encoding, jpeg.image_encoding) == ("raw", "jpeg")
        for scene, views in ((0, [3, 1, 14]), (7, [0]), (11, list(range(15)))):
            assert np.array_equal(raw.read_views(scene, views)["images"], jpeg.read_views(scene, views)["images"])
        for a, b in zip(batches(raw, 4, seed=3, stop=3), batches(jpeg, 4, seed=3, stop=3)):  # the training batches
            assert all(np.array_equal(x, y) for x, y in zip(a, b))
    with h5py.File(tmp_path / "raw" / "train" / "000000.h5") as f:  # raw: format version 1 as before
        assert f["images"].shape == (5, 15, 64, 64, 3) and f["images"].chunks == (1, 15, 64, 64, 3)
        assert set(f) == {"images", "viewpoints", "cameras"}


def test_jpeg_output_is_about_the_size_of_the_input(tmp_path):
    """Frames of ~1.4 KB (64 px Shepard-Matzler-like), one 120-scene shard: the shard holds the input's bytes
    plus cameras, viewpoints and offsets; raw pixels take several times more."""
    write_files(tmp_path / SM5 / "train", [60, 60], seed=6)
    input_bytes = sum(p.stat().st_size for p in (tmp_path / SM5 / "train").iterdir())
    assert convert(tmp_path / SM5, tmp_path / "jpeg")[0] == 0
    assert convert(tmp_path / SM5, tmp_path / "raw", "--images", "raw")[0] == 0
    jpeg, raw = disk_size(tmp_path / "jpeg" / "train"), disk_size(tmp_path / "raw" / "train")
    assert jpeg <= 1.1 * input_bytes, (jpeg, input_bytes)
    assert raw > 5 * jpeg, (raw, jpeg)


def test_jpeg_round_trip_reproduces_the_source_records(sm5, tmp_path):
    root, scenes = sm5
    assert convert(root, tmp_path / "shards")[0] == 0
    exported = tmp_path / "export"
    code, _, err = run_cli("export", "tfrecord", tmp_path / "shards", exported, "--records-per-file", "5",
                           "--no-progress")
    assert code == 0, err
    got = [scene for path in sorted((exported / "train").glob("*.tfrecord"), key=lambda p: p.name)
           for scene in frames_of(path)]
    assert len(got) == len(scenes["train"])
    for (frames, cameras), scene in zip(got, scenes["train"]):
        assert frames == scene.frames  # the source JPEG files, byte for byte
        assert np.array_equal(cameras, scene.cameras.ravel())
    # the test split's one file holds the same records as its source (written by the same serialiser)
    assert (exported / "test" / "1-of-1.tfrecord").read_bytes() == (root / "test" / "1-of-1.tfrecord").read_bytes()
    code, out, err = run_cli("export", "tfrecord", tmp_path / "shards", exported, "--records-per-file", "5",
                             "--quality", "50", "--no-progress")  # the quality does not apply: resumed
    assert code == 0 and "(3 kept from an earlier run)" in out, err


def test_damaged_jpeg_data_surfaces_when_read(sm5, tmp_path):
    """A frame whose JPEG header is whole but whose data is cut short: a jpeg conversion (headers only)
    stores it and reading that scene is a one-line error naming shard and scene; a raw conversion (which
    decodes) refuses the record."""
    root, _ = sm5
    rng = np.random.default_rng(8)
    good = [Scene([block_jpeg(rng, 64) for _ in range(15)], random_cameras(rng, 15)) for _ in range(3)]
    frames = list(good[2].frames)
    frames[4] = frames[4][:len(frames[4]) // 2]
    (tmp_path / SM5 / "test").mkdir(parents=True)
    with RecordWriter(tmp_path / SM5 / "test" / "1-of-1.tfrecord") as writer:
        for record in (good[0].record(), good[1].record(), encode_scene(frames, good[2].cameras)):
            writer.write(record)
    code, out, err = convert(tmp_path / SM5, tmp_path / "raw", "--images", "raw")
    assert code == 1 and "record 2: frame 4 is not a decodable JPEG image" in err
    assert convert(tmp_path / SM5, tmp_path / "jpeg", "--scenes-per-shard", "2")[0] == 0
    message = (r"000001\.h5: scene 2 \(scene 0 of this shard\) cannot be read: view 4 is not a decodable JPEG "
               r"image \(.+\)")
    with Dataset(tmp_path / "jpeg" / "test") as ds:
        assert ds.read(0, 2)["images"].shape == (2, 15, 64, 64, 3)
        with pytest.raises(ShardError, match=message):
            ds.read(0, 3)
    code, _, err = run_cli("export", "tfrecord", tmp_path / "jpeg" / "test", tmp_path / "tf",
                           "--no-progress")
    assert code == 0, err  # an export copies the frames: nothing to decode
    code, _, err = run_cli("info", tmp_path / "jpeg" / "test", "--preview", tmp_path / "p.png")
    assert code == 1 and err.count("\n") == 1 and re.search(message, err), err


def test_info_shows_the_image_encoding(sm5, tmp_path):
    root, _ = sm5
    assert convert(root / "test", tmp_path / "jpeg")[0] == 0
    assert convert(root / "test", tmp_path / "raw", "--images", "raw")[0] == 0
    code, out, _ = run_cli("info", tmp_path / "jpeg" / "test")
    assert code == 0 and "\nimages      jpeg (original frames, no re-encoding)\n" in out
    assert re.search(r"\ndisk size   [0-9.]+ MB \([0-9.]+x smaller than raw uint8 pixels\)\n", out)
    code, out, _ = run_cli("info", tmp_path / "raw" / "test")
    assert code == 0 and "\nimages      raw uint8\n" in out
    assert re.search(r"\ndisk size   [0-9.]+ MB \([0-9.]+x compression\)\n", out)


def test_images_option_errors_and_resume(sm5, tmp_path):
    root, _ = sm5
    code, _, err = convert(root / "test", tmp_path / "out", "--compression", "gzip-1")
    assert code == 1 and err.count("\n") == 1
    assert "--compression gzip-1 applies to --images raw only" in err
    assert not (tmp_path / "out").exists()
    assert convert(root / "test", tmp_path / "out", "--compression", "none")[0] == 0
    code, _, err = convert(root / "test", tmp_path / "out", "--images", "raw")
    assert code == 1 and "other parameters" in err  # the encoding is a conversion parameter
    code, out, _ = convert(root / "test", tmp_path / "out")
    assert code == 0 and "1 kept from an earlier run" in out
