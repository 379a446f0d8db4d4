"""DeepMind's published GQN datasets (https://github.com/deepmind/gqn-datasets): sizes and file naming, and
how `gqn convert` stores them by default."""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

SPLITS = ("train", "test")
_FILE_RE = re.compile(r"^(\d+)-of-(\d+)\.tfrecord")

# the defaults of `gqn convert tfrecord` (here, where the CLI can read them without loading the converter)
# Converted frames are decoded JPEGs, whose noise deflates only ~3.5x (rendered scenes: ~24x), and
# compressing costs more CPU than decoding them: 0.45x the records/s of uncompressed output (bench/convert.py).
CONVERT_COMPRESSION = "none"
# Frames are kept as the JPEG files they came as: ~8x smaller than decoded pixels, lossless with respect to the
# source, and converted without decoding; readers decode them (gqn.shards.Dataset).
CONVERT_IMAGES = "jpeg"


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    train_files: int
    test_files: int
    size: int  # frame width and height in pixels
    views: int  # frames (and camera poses) per scene

    def files(self, split: str) -> int:
        return self.train_files if split == "train" else self.test_files


DATASETS = {d.name: d for d in (
    DatasetInfo("jaco", 3600, 400, 64, 11),
    DatasetInfo("mazes", 1080, 120, 84, 300),
    DatasetInfo("rooms_free_camera_with_object_rotations", 2034, 226, 128, 10),
    DatasetInfo("rooms_ring_camera", 2160, 240, 64, 10),
    DatasetInfo("rooms_free_camera_no_object_rotations", 2160, 240, 64, 10),
    DatasetInfo("shepard_metzler_5_parts", 900, 100, 64, 15),
    DatasetInfo("shepard_metzler_7_parts", 900, 100, 64, 15),
)}


def record_file_name(i: int, n: int) -> str:
    """DeepMind's name of file ``i`` (from 1) of ``n``: both zero-padded to the digits of n."""
    width = len(str(n))
    return f"{i:0{width}d}-of-{n:0{width}d}.tfrecord"


def file_sort_key(path) -> tuple:
    """Sort key putting ``{i}-of-{n}.tfrecord`` files in index order (other names after them, by name)."""
    name = Path(path).name
    m = _FILE_RE.match(name)
    return (0, int(m.group(1)), name) if m else (1, 0, name)


def infer_dataset(path) -> str | None:
    """The dataset named by ``path`` or by one of its parent directories, if any."""
    for part in reversed(Path(path).absolute().parts):
        if part in DATASETS:
            return part
    return None
