"""Synthetic DeepMind-format TFRecord files for the converter tests and bench/convert.py.

Frames are random coloured blocks on black (Shepard-Matzler-like), so JPEG sizes are realistic
(about 1.5 KB per 64 px frame); files are written with the toolkit's own TFRecord writer.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import simplejpeg

from gqn.converters.datasets import record_file_name
from gqn.converters.example import encode_scene
from gqn.converters.tfrecord import RecordWriter


@dataclass
class Scene:
    frames: list[bytes]  # JPEG
    cameras: np.ndarray  # (V, 5) float32

    def record(self) -> bytes:
        return encode_scene(self.frames, self.cameras)

    def images(self) -> np.ndarray:
        return np.stack([simplejpeg.decode_jpeg(f) for f in self.frames])


def block_frame(rng: np.random.Generator, size: int) -> np.ndarray:
    image = np.zeros((size, size, 3), np.uint8)
    n = rng.integers(3, 7)
    ys, xs = rng.integers(size // 8, size * 3 // 4, (2, n))
    hs, ws = rng.integers(size // 10, size // 4, (2, n))
    for y, x, h, w, color in zip(ys, xs, hs, ws, rng.integers(40, 256, (n, 3))):
        image[y:y + h, x:x + w] = color
    return image


def block_jpeg(rng: np.random.Generator, size: int, quality: int = 90) -> bytes:
    return simplejpeg.encode_jpeg(block_frame(rng, size), quality, colorsubsampling="420")


def random_cameras(rng: np.random.Generator, views: int) -> np.ndarray:
    return np.concatenate([rng.uniform(-2, 2, (views, 3)), rng.uniform(-np.pi, np.pi, (views, 1)),
                           rng.uniform(-np.pi / 2, np.pi / 2, (views, 1))], 1).astype(np.float32)


def write_files(directory, records_per_file: list[int], views: int = 15, size: int = 64, seed: int = 0,
                compress: bool = False, distinct_frames: int | None = None) -> list[list[Scene]]:
    """Write ``{i}-of-{n}.tfrecord`` files holding the given numbers of scenes; returns the scenes per file.

    Every frame is a new image unless ``distinct_frames`` is given: frames are then drawn from a pool of
    that many images (faster to make; scenes still differ by their cameras).
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    pool = [block_jpeg(rng, size) for _ in range(distinct_frames or 0)]

    def frame():
        return pool[rng.integers(len(pool))] if pool else block_jpeg(rng, size)

    files = []
    for i, count in enumerate(records_per_file, 1):
        scenes = [Scene([frame() for _ in range(views)], random_cameras(rng, views)) for _ in range(count)]
        with RecordWriter(directory / record_file_name(i, len(records_per_file)), compress=compress) as w:
            for scene in scenes:
                w.write(scene.record())
        files.append(scenes)
    return files
