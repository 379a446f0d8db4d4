"""The narrow interface between rendering and its consumers (the dataset writer, online training).

A SceneStream renders scene index ranges on the shared worker pool (``gqn.workers``): each worker owns one
EGL context, one TiledRenderer and the family's meshes and textures for its whole life; chunks come back in
order, at most ``2 * workers`` in flight, so memory is bounded however many scenes are asked for.
Consumers see numpy arrays only; nothing OpenGL crosses the process boundary.
"""
from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from typing import Iterable, Iterator

import numpy as np

from gqn.errors import GqnError
from gqn.renderer.families import family_of_stored, get_family, stored_family
from gqn.shards import encode_images
from gqn.workers import WorkerPool

PIXEL_BUDGET = 1 << 21  # pixels per render pass: bounds framebuffer memory (64 px: 512 tiles)
# what a rendered dataset's ``params`` attribute holds besides the family's own parameters (job.dataset_params)
DATASET_KEYS = ("views", "size", "seed", "anti_aliasing", "scenes", "scenes_per_shard", "compression")


@dataclass
class RenderedChunk:
    start: int                      # global index of the first scene
    images: np.ndarray              # (n, V, H, W, 3) uint8
    cameras: np.ndarray             # (n, V, 5) float32 raw poses
    extras: dict                    # name -> (n, ...) per-scene arrays
    encoded: list | None = None     # per-scene stored image chunks (then ``images`` is None)


@dataclass(frozen=True)
class RenderConfig:
    """Everything a worker needs to build its family and renderer (picklable)."""

    family: str
    params: dict
    views: int
    size: int
    seed: int
    anti_aliasing: bool = True

    @property
    def stored_family(self) -> str:
        """The ``family`` attribute of shards holding these scenes (e.g. ``rooms-free``)."""
        return stored_family(self.family, self.params)

    @property
    def chunk_scenes(self) -> int:
        """Scenes per render pass: as many as fit the pixel budget, at most 32, at least 1."""
        return max(1, min(32, PIXEL_BUDGET // (self.size * self.size * self.views)))


def build_family(config: RenderConfig):
    """The scene family of ``config``; a bad parameter is a one-line GqnError.

    Consumers call this once before they write anything, so bad parameters (an object count, a digit file)
    fail in the parent; each worker builds its own copy again for rendering.
    """
    try:
        return get_family(config.family)(config.views, config.size, **config.params)
    except TypeError as e:  # an unknown or missing family parameter
        raise GqnError(f"{config.family}: bad parameters {config.params} ({e})") from None


def dataset_render_config(attrs: dict, views: int) -> RenderConfig | None:
    """The RenderConfig that renders the scenes of a rendered dataset (from its shards' root attributes),
    with ``views`` views each; None for data the renderer did not make (converted or foreign shards)."""
    name = family_of_stored(attrs.get("family", ""))
    if name is None or "seed" not in attrs:
        return None
    stored = json.loads(attrs["params"])
    params = {key: value for key, value in stored.items() if key not in DATASET_KEYS}
    size = attrs["_shapes"]["images"][2]
    return RenderConfig(name, params, views, size, int(attrs["seed"]), bool(stored.get("anti_aliasing", True)))


def _build_worker(config: RenderConfig, encode: str | None, keep_images: bool):
    """A render worker's state: its family, and a renderer that owns the worker's GL context."""
    from gqn.renderer.tiled import TiledRenderer

    family = build_family(config)
    renderer = TiledRenderer(config.size, family.meshes(), family.projection(), family.background,
                             family.textures(), samples=4 if config.anti_aliasing else 0,
                             max_tiles=config.chunk_scenes * config.views)
    return config, family, renderer, encode, keep_images


def _render_range(worker, bounds: tuple[int, int]) -> RenderedChunk:
    config, family, renderer, encode, keep_images = worker
    start, stop = bounds
    scenes = [family.scene(config.seed, i) for i in range(start, stop)]
    # scene i always takes slot i mod chunk_scenes of the atlas: where a view lies in the framebuffer changes
    # the rounding of its vertex positions, so this keeps the bytes independent of resumes and --shard splits
    images = renderer.render(scenes, first_tile=(start % config.chunk_scenes) * config.views)
    cameras = np.stack([s.cameras for s in scenes]).astype(np.float32)
    extras = {name: np.stack([s.extras[name] for s in scenes]) for name in family.extras}
    encoded = encode_images(images, encode) if encode else None
    return RenderedChunk(start, images if keep_images or not encoded else None, cameras, extras, encoded)


def _render_posed(worker, request: tuple[int, np.ndarray]) -> np.ndarray:
    """Scene ``index`` seen from the raw camera poses ``cameras`` (F, 5) instead of its own: (F, H, W, 3)."""
    config, family, renderer, _, _ = worker
    index, cameras = request
    spec = dataclasses.replace(family.scene(config.seed, index), cameras=np.asarray(cameras, np.float64))
    return renderer.render([spec])[0]


def split(start: int, stop: int, step: int) -> list[tuple[int, int]]:
    """[start, stop) cut at the multiples of ``step``: ranges of at most ``step`` scenes that never cross
    one, so every scene index always gets the same place in a render pass (see ``_render_range``)."""
    if start >= stop:
        return []
    cuts = [start, *range((start // step + 1) * step, stop, step), stop]
    return list(zip(cuts[:-1], cuts[1:]))


class SceneStream:
    """Renders scene ranges with ``workers`` processes and yields RenderedChunks in request order.

    With ``encode`` (a shard compression) the workers also compress the images for the shard writer and,
    unless ``keep_images``, send only the compressed chunks.
    """

    def __init__(self, config: RenderConfig, workers: int | None = None, encode: str | None = None,
                 keep_images: bool = False):
        self.config = config
        self.workers = workers or os.cpu_count() or 1
        self._pool = WorkerPool(self.workers, _build_worker, (config, encode, keep_images))

    def render(self, ranges: Iterable[tuple[int, int]]) -> Iterator[RenderedChunk]:
        """Chunks for ``ranges`` (each at most ``config.chunk_scenes`` scenes), in order, bounded prefetch."""
        return self._pool.map(_render_range, ranges)

    def render_posed(self, requests: Iterable[tuple[int, np.ndarray]]) -> Iterator[np.ndarray]:
        """For each (scene index, raw poses (F, 5) with F <= ``config.views``) the scene's frames from those
        cameras (F, H, W, 3), in order: e.g. the true views along an orbit no dataset camera took. A scene's
        content does not depend on its number of views (families draw the cameras last), so ``config`` may
        ask for more views than the dataset has."""
        return self._pool.map(_render_posed, requests)

    def close(self):
        self._pool.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
