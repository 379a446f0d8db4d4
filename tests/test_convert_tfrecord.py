"""TFRecord framing and tf.train.Example parsing, checked against hand-computed bytes."""
import gzip
import struct

import numpy as np
import pytest

from gqn.converters.datasets import file_sort_key, infer_dataset, record_file_name
from gqn.converters.example import ExampleError, encode_scene, parse_scene
from gqn.converters.tfrecord import RecordError, RecordReader, RecordWriter, masked_crc32c


def crc32c_bitwise(data: bytes) -> int:
    """Reference CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), one bit at a time."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def mask(crc: int) -> int:
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


def framed(data: bytes) -> bytes:
    length = struct.pack("<Q", len(data))
    return length + struct.pack("<I", mask(crc32c_bitwise(length))) + data + struct.pack(
        "<I", mask(crc32c_bitwise(data)))


def test_masked_crc_of_check_string():
    assert crc32c_bitwise(b"123456789") == 0xE3069283  # the standard CRC-32C check value
    # by hand: 0xE3069283 >> 15 = 0x0001C60D; (0xE3069283 << 17) mod 2**32 = 0x25060000;
    # rotated 0x2507C60D; + 0xA282EAD8 = 0xC78AB0E5 (mod 2**32)
    assert masked_crc32c(b"123456789") == 0xC78AB0E5


def test_writer_bytes_match_hand_framing(tmp_path):
    records = [b"123456789", b"", bytes(range(256)) * 10]
    with RecordWriter(tmp_path / "a.tfrecord") as w:
        for r in records:
            w.write(r)
    assert (tmp_path / "a.tfrecord").read_bytes() == b"".join(framed(r) for r in records)
    assert [p.name for p in tmp_path.iterdir()] == ["a.tfrecord"]


@pytest.mark.parametrize("compress", [False, True])
def test_read_back_plain_and_gzip(tmp_path, compress):
    records = [bytes([i]) * (i * 37) for i in range(20)]
    path = tmp_path / "a.tfrecord"
    with RecordWriter(path, compress=compress) as w:
        for r in records:
            w.write(r)
    assert (path.read_bytes()[:2] == b"\x1f\x8b") == compress
    with RecordReader(path) as reader:
        assert list(reader) == list(enumerate(records))
    with RecordReader(path, start=15) as reader:
        assert list(reader) == list(enumerate(records))[15:]


def test_reader_accepts_gzip_written_by_other_tools(tmp_path):
    path = tmp_path / "b.tfrecord.gz"
    path.write_bytes(gzip.compress(framed(b"abc") + framed(b"defg")))
    assert list(RecordReader(path)) == [(0, b"abc"), (1, b"defg")]


def write_raw(path, records):
    path.write_bytes(b"".join(framed(r) for r in records))
    return path


def test_data_crc_mismatch_names_record_and_can_be_skipped(tmp_path):
    path = write_raw(tmp_path / "c.tfrecord", [b"a" * 10, b"b" * 10, b"c" * 10])
    raw = bytearray(path.read_bytes())
    raw[len(framed(b"a" * 10)) + 12 + 3] ^= 0x40  # a data byte of record 1
    path.write_bytes(bytes(raw))
    with pytest.raises(RecordError, match=r"c\.tfrecord: record 1: data CRC mismatch"):
        list(RecordReader(path))
    errors = []
    assert list(RecordReader(path, on_corrupt=errors.append)) == [(0, b"a" * 10), (2, b"c" * 10)]
    assert [(e.index, e.fatal) for e in errors] == [(1, False)]


@pytest.mark.parametrize("cut, message", [(5, "incomplete record header"), (30, "cut short")])
def test_truncated_file(tmp_path, cut, message):
    path = write_raw(tmp_path / "d.tfrecord", [b"x" * 20, b"y" * 20])
    path.write_bytes(path.read_bytes()[:len(framed(b"x" * 20)) + cut])
    with pytest.raises(RecordError, match=f"record 1: truncated file .*{message}"):
        list(RecordReader(path))
    errors = []
    assert list(RecordReader(path, on_corrupt=errors.append)) == [(0, b"x" * 20)]
    assert errors[0].fatal
    with pytest.raises(RecordError, match="record 1: truncated file"):  # also when skipping to a start
        list(RecordReader(path, start=2))


@pytest.mark.parametrize("compress", [False, True])
def test_offsets_from_headers_then_reading_a_range_from_one(tmp_path, compress):
    records = [bytes([65 + i]) * (10 + 7 * i) for i in range(6)]
    path = tmp_path / "r.tfrecord"
    with RecordWriter(path, compress=compress) as writer:
        for record in records:
            writer.write(record)
    with RecordReader(path) as reader:
        offsets, error = reader.offsets()
    assert error is None and offsets == np.cumsum([0] + [16 + len(r) for r in records]).tolist()
    with RecordReader(path, 2, offset=offsets[2], stop=4) as reader:
        assert list(reader) == [(2, records[2]), (3, records[3])]
    with RecordReader(path, 5, offset=offsets[5]) as reader:
        assert list(reader) == [(5, records[5])]


def test_offsets_of_a_truncated_file_end_at_the_last_whole_record(tmp_path):
    path = write_raw(tmp_path / "t.tfrecord", [b"x" * 20, b"y" * 20, b"z" * 20])
    path.write_bytes(path.read_bytes()[:2 * len(framed(b"x" * 20)) + 30])
    with RecordReader(path) as reader:
        offsets, error = reader.offsets()
    assert offsets == [0, 36, 72] and error.fatal and "record 2: truncated file" in str(error)


def test_length_crc_mismatch_ends_the_file(tmp_path):
    path = write_raw(tmp_path / "e.tfrecord", [b"x", b"y", b"z"])
    raw = bytearray(path.read_bytes())
    raw[len(framed(b"x")) + 8] ^= 1  # the length CRC of record 1
    path.write_bytes(bytes(raw))
    errors = []
    assert list(RecordReader(path, on_corrupt=errors.append)) == [(0, b"x")]
    assert "record 1: length CRC mismatch" in str(errors[0]) and errors[0].fatal


@pytest.mark.parametrize("compress", [False, True])
def test_huge_length_with_valid_crc_is_a_corrupt_header(tmp_path, compress):
    length = struct.pack("<Q", 1 << 40)  # a 1 TiB record: its CRC checks out, reading it would not fit memory
    huge = length + struct.pack("<I", mask(crc32c_bitwise(length))) + b"z" * 100
    raw = framed(b"x") + huge + framed(b"y")
    path = tmp_path / "g.tfrecord"
    path.write_bytes(gzip.compress(raw) if compress else raw)
    with pytest.raises(RecordError, match=r"g\.tfrecord: record 1: record length of 1099511627776 bytes exceeds "
                                          r"the 1 GiB limit \(corrupt record header\)"):
        list(RecordReader(path))
    errors = []
    assert list(RecordReader(path, on_corrupt=errors.append)) == [(0, b"x")]
    assert [(e.index, e.fatal) for e in errors] == [(1, True)]
    with pytest.raises(RecordError, match="record 1: record length"):  # also when skipping to a start
        list(RecordReader(path, start=2))


def test_length_past_the_end_of_a_plain_file_is_truncation(tmp_path):
    length = struct.pack("<Q", 1 << 29)  # under the limit, but far more than the file holds
    path = tmp_path / "h.tfrecord"
    path.write_bytes(framed(b"x") + length + struct.pack("<I", mask(crc32c_bitwise(length))) + b"z" * 10)
    with pytest.raises(RecordError, match="record 1: truncated file \\(record of 536870912 bytes cut short"):
        list(RecordReader(path))


def test_truncated_gzip(tmp_path):
    path = tmp_path / "f.tfrecord.gz"
    path.write_bytes(gzip.compress(framed(b"q" * 1000) * 5)[:-30])
    with pytest.raises(RecordError, match="record [0-4]: unreadable data"):
        list(RecordReader(path))


def test_example_wire_format_by_hand():
    # Example{features{feature{key:"cameras" value{float_list{value:[1.0, -2.5]}}}}} plus a frames entry,
    # with the floats both packed (TensorFlow's encoding) and unpacked; tags: field << 3 | wire type
    def ld(tag, payload):
        return bytes([tag, len(payload)]) + payload

    def entry(key, feature):
        return ld(0x0A, ld(0x0A, key) + ld(0x12, feature))

    frames = ld(0x0A, ld(0x0A, b"jpeg0") + ld(0x0A, b"jpeg1"))  # Feature.bytes_list
    for floats in (ld(0x0A, struct.pack("<ff", 1.0, -2.5)),  # packed FloatList.value
                   b"\x0d" + struct.pack("<f", 1.0) + b"\x0d" + struct.pack("<f", -2.5)):
        data = ld(0x0A, entry(b"frames", frames) + entry(b"cameras", ld(0x12, floats)))
        got_frames, cameras = parse_scene(data)
        assert got_frames == [b"jpeg0", b"jpeg1"]
        assert cameras.dtype == np.float32 and cameras.tolist() == [1.0, -2.5]


def test_example_round_trip_and_rejections():
    cameras = np.random.default_rng(0).normal(size=(3, 5)).astype(np.float32)
    frames, back = parse_scene(encode_scene([b"a", b"bb", b"ccc"], cameras))
    assert frames == [b"a", b"bb", b"ccc"] and np.array_equal(back, cameras.ravel())
    with pytest.raises(ExampleError, match="not a tf.train.Example"):
        parse_scene(b"\xff\xff\xff\xff")
    with pytest.raises(ExampleError, match="lacks the frames/cameras"):
        parse_scene(b"")


def test_file_names_and_dataset_inference(tmp_path):
    assert record_file_name(1, 900) == "001-of-900.tfrecord"
    assert record_file_name(12, 3600) == "0012-of-3600.tfrecord"
    names = ["10-of-12.tfrecord", "2-of-12.tfrecord", "notes.tfrecord", "01-of-12.tfrecord.gz"]
    assert sorted(names, key=file_sort_key) == ["01-of-12.tfrecord.gz", "2-of-12.tfrecord", "10-of-12.tfrecord",
                                                "notes.tfrecord"]
    assert infer_dataset(tmp_path / "jaco" / "train" / "01-of-12.tfrecord") == "jaco"
    assert infer_dataset(tmp_path / "somewhere") is None
