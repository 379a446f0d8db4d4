"""Synthetic multi-view datasets for the model tests: a coloured square that moves with the camera."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from gqn.shards import ShardWriter

FAMILY = "test-squares"


def scene_cameras(rng: np.random.Generator, views: int) -> np.ndarray:
    """Cameras (views, 5) on a ring of radius 2 at height 1, looking at the origin (SPEC pose convention)."""
    angles = rng.uniform(0, 2 * np.pi, views)
    position = np.stack([2 * np.sin(angles), np.ones(views), 2 * np.cos(angles)], -1)
    d = -position / np.linalg.norm(position, axis=1, keepdims=True)
    return np.concatenate([position, np.arctan2(d[:, :1], d[:, 2:]), np.arcsin(d[:, 1:2])], 1)


def scene_images(rng: np.random.Generator, cameras: np.ndarray, size: int) -> np.ndarray:
    """A square of a random colour whose horizontal position follows the camera's yaw."""
    colour = rng.integers(64, 256, 3)
    phase, row = rng.uniform(0, 2 * np.pi), rng.integers(0, size - size // 4)
    side = size // 4
    images = np.zeros((len(cameras), size, size, 3), np.uint8)
    for v, yaw in enumerate(cameras[:, 3]):
        col = int((np.sin(yaw + phase) + 1) / 2 * (size - side))
        images[v, row:row + side, col:col + side] = colour
    return images


def write_dataset(directory, scenes: int = 24, views: int = 5, size: int = 16, per_shard: int = 10,
                  seed: int = 0, nan_viewpoints: bool = False) -> Path:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    params = {"views": views, "size": size, "nan": nan_viewpoints}
    for index, first in enumerate(range(0, scenes, per_shard)):
        n = min(per_shard, scenes - first)
        with ShardWriter(directory, index, n, views, size, family=FAMILY, scenes_per_shard=per_shard,
                         params=params, seed=seed) as writer:
            for _ in range(n):
                cameras = scene_cameras(rng, views)
                images = scene_images(rng, cameras, size)
                if nan_viewpoints:
                    cameras[:, :3] = np.nan
                writer.write(images[None], cameras[None])
            writer.commit()
    return directory


TINY = {"steps": 2, "hidden": 8, "latent": 3, "canvas": 8, "r_channels": 16}   # a model for 16 px tests
