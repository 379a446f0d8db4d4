"""``gqn export tfrecord``: shards (rendered or converted) into TFRecord files in DeepMind's GQN format.

Scenes keep their order: file ``{i}-of-{n}.tfrecord`` holds scenes ``(i-1)*R .. i*R-1`` for ``R`` records
per file. Frames are JPEG-encoded (4:4:4 chroma, ``quality``), cameras are written as stored (raw x, y, z,
yaw, pitch), so converting the files back gives the same cameras exactly and the frames up to JPEG loss.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import simplejpeg
from tqdm import tqdm

from gqn.converters.datasets import SPLITS, record_file_name
from gqn.converters.example import encode_scene
from gqn.converters.tfrecord import RecordWriter
from gqn.errors import GqnError
from gqn.shards import Dataset, list_shards

READ_BLOCK = 64  # scenes read from the shards at a time


class ExportError(GqnError):
    """An export that would overwrite or mix with existing TFRecord files."""


@dataclass
class ExportSummary:
    out: Path
    scenes: int
    files: int

    def __str__(self):
        return f"{self.scenes} scenes into {self.files} TFRecord files in {self.out}"


def export_tfrecord(data, out, *, records_per_file: int = 2000, quality: int = 95, compress: bool = False,
                    progress: bool = True) -> list[ExportSummary]:
    """Export a shard directory, or a directory holding ``train/`` and ``test/`` shard directories."""
    data, out = Path(data), Path(out)
    pairs = [] if list_shards(data) else [(data / s, out / s) for s in SPLITS if (data / s).is_dir()]
    return [_export(src, dst, records_per_file, quality, compress, progress)
            for src, dst in pairs or [(data, out)]]


def _export(src: Path, out: Path, records_per_file: int, quality: int, compress: bool,
            progress: bool) -> ExportSummary:
    with Dataset(src) as dataset:
        out.mkdir(parents=True, exist_ok=True)
        if any(out.glob("*.tfrecord*")):
            raise ExportError(f"{out} already holds TFRecord files; export into a new directory")
        n_files = -(-len(dataset) // records_per_file)
        with tqdm(total=len(dataset), unit="scenes", disable=not progress, desc=src.name,
                  dynamic_ncols=True) as bar:
            for i in range(n_files):
                first, stop = i * records_per_file, min((i + 1) * records_per_file, len(dataset))
                with RecordWriter(out / record_file_name(i + 1, n_files), compress=compress) as writer:
                    for start in range(first, stop, READ_BLOCK):
                        block = dataset.read(start, min(start + READ_BLOCK, stop), names=("images", "cameras"))
                        for images, cameras in zip(block["images"], block["cameras"]):
                            frames = [simplejpeg.encode_jpeg(image, quality, colorsubsampling="444")
                                      for image in images]
                            writer.write(encode_scene(frames, cameras))
                        bar.update(len(block["images"]))
        return ExportSummary(out, len(dataset), n_files)
