"""What every scene family provides to the render loop."""
from __future__ import annotations

import numpy as np

from gqn.renderer.tiled import SceneSpec


def scene_rng(seed: int, index: int) -> np.random.Generator:
    """The random stream of scene ``index``: a pure function of (seed, index), independent of workers."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(index,)))


class Family:
    """Base class. Subclasses set the class attributes and implement ``meshes`` and ``sample``.

    ``params`` are the family's own generation parameters (e.g. ``parts``); ``views`` and ``size`` are common.
    """

    name: str = ""
    background: tuple = (0.0, 0.0, 0.0)
    extras: dict = {}  # name -> (per-scene shape, dtype): extra shard datasets this family fills

    def __init__(self, views: int, size: int, **params):
        self.views = views
        self.size = size
        self.params = params

    def meshes(self) -> dict:
        """Mesh kinds (name -> pyrender.Mesh), built once per worker."""
        raise NotImplementedError

    def textures(self) -> np.ndarray | None:
        """Texture layers (L, T, T, 3) uint8 uploaded once per worker, or None."""
        return None

    def projection(self) -> np.ndarray:
        raise NotImplementedError

    def sample(self, rng: np.random.Generator) -> SceneSpec:
        raise NotImplementedError

    def scene(self, seed: int, index: int) -> SceneSpec:
        return self.sample(scene_rng(seed, index))
