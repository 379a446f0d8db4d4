"""The renderer's one door: everything outside ``gqn.renderer`` that renders goes through this module.

A ``RenderConfig`` (made from the command's options by ``render_config``, which refuses what cannot render)
says what to render: family, parameters, views, image size, seed, anti-aliasing. A ``SceneStream`` renders
scene ranges of it on the shared worker pool (``gqn.workers``): each worker owns one EGL context, one
TiledRenderer and the family's meshes and textures for its whole life; chunks come back in order, at most
``2 * workers`` in flight, so memory is bounded however many scenes are asked for. Consumers see numpy arrays
only; nothing OpenGL crosses the process boundary.

* Byte identity: the stream cuts every range it is asked for at the multiples of ``config.chunk_scenes``
  (``split``), so scene i always takes the same place in a render pass and its bytes do not depend on the
  ranges (resumes, --shard parts, training batches).
* Saving: given a ``ShardOutput`` the stream also writes what it renders as shards (``claim`` the directory,
  ``render``, ``close``): the one code path of `gqn render` (``gqn.renderer.job``) and of `gqn train --render
  --save-rendered` (``gqn.runs.online``).
* For the runs, also: ``dataset_render_config`` and ``SceneStream.render_posed`` (a rendered dataset's scenes
  from cameras of one's own: evaluation's orbits), and the pose helpers ``look_at`` and ``directions``
  (``gqn.renderer.camera``, numpy only, re-exported here), and ``family_of_stored`` (which family wrote a
  dataset, or None for data gqn render did not write).
"""
from __future__ import annotations

import dataclasses
import json
import os
import threading
from dataclasses import dataclass
from typing import Iterable, Iterator

import numpy as np

from gqn.encodings import DEFAULT_COMPRESSION, encode_images
from gqn.errors import GqnError
from gqn.ownership import release_output
from gqn.renderer.camera import directions, look_at
from gqn.renderer.families import family_of_stored, family_spec, get_family, stored_family
from gqn.shards import ShardSequence, claim_output, list_shards, read_attrs, shard_index
from gqn.workers import WorkerPool

__all__ = ["DATASET_KEYS", "RenderConfig", "RenderedChunk", "SceneStream", "ShardOutput", "build_family",
           "check_render_size", "dataset_params", "dataset_render_config", "directions", "family_params",
           "look_at", "render_config", "split"]

PIXEL_BUDGET = 1 << 21  # pixels per render pass: bounds framebuffer memory (64 px: 512 tiles)
# what a rendered dataset's ``params`` attribute holds besides the family's own parameters (dataset_params)
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


def render_config(family: str, params: dict, views: int, size: int, seed: int, anti_aliasing: bool = True, *,
                  size_option: str = "--size", views_option: str = "--views") -> RenderConfig:
    """What a command's options ask to render, after refusing an image size whose views do not fit the
    renderer's framebuffer (``check_render_size``; the options named as the command calls them)."""
    config = RenderConfig(family, dict(params), views, size, seed, anti_aliasing)
    check_render_size(config, size_option, views_option)
    return config


def check_render_size(config: RenderConfig, size_option: str = "--size", views_option: str = "--views") -> None:
    """Refuse, before any worker starts, an image size and view count whose views do not fit side by side
    in the renderer's framebuffer (``tiled.MAX_ATLAS_SIDE`` px a side); the message names the largest size
    that works with those views. The options are named as the command calls them."""
    from gqn.renderer.tiled import MAX_ATLAS_SIDE, atlas_fits  # numpy only: no OpenGL before a worker starts

    def fits(size: int) -> bool:
        return atlas_fits(size, dataclasses.replace(config, size=size).chunk_scenes * config.views)

    if fits(config.size):
        return
    largest = next((s for s in range(config.size - 4, 7, -4) if fits(s)), None)
    raise GqnError(f"{size_option} {config.size} with {views_option} {config.views} does not fit the renderer's "
                   f"{MAX_ATLAS_SIDE}x{MAX_ATLAS_SIDE} px framebuffer (a scene's views are drawn side by side): "
                   + (f"with {views_option} {config.views}, {size_option} can be at most {largest}"
                      if largest else f"use fewer {views_option}"))


def build_family(config: RenderConfig):
    """The scene family of ``config``; a bad parameter is a one-line GqnError.

    Consumers call this once before they write anything, so bad parameters (an object count, a digit file)
    fail in the parent; each worker builds its own copy again for rendering.
    """
    try:
        return get_family(config.family)(config.views, config.size, **config.params)
    except TypeError as e:  # an unknown or missing family parameter
        raise GqnError(f"{config.family}: bad parameters {config.params} ({e})") from None


def family_params(family: str, params: dict) -> dict:
    """``params`` completed with the family's defaults for the parameters not given (its declared ones,
    ``FamilySpec.defaults``), as `gqn render`, whose options carry those defaults, passes them."""
    return {**family_spec(family).defaults(), **params}


def dataset_params(config: RenderConfig, scenes: int | None, scenes_per_shard: int, compression: str) -> dict:
    """Every parameter that determines a rendered dataset's content (stored in each shard; compared on
    resume): the family's own and ``DATASET_KEYS``."""
    return {**config.params, "views": config.views, "size": config.size, "seed": config.seed,
            "anti_aliasing": config.anti_aliasing, "scenes": scenes, "scenes_per_shard": scenes_per_shard,
            "compression": compression}


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


def _pieces(ranges: Iterable[tuple[int, int | None]], step: int) -> Iterator[tuple[int, int]]:
    """Every range of ``ranges`` cut as ``split`` cuts it; a range without a stop (None) goes on for ever."""
    for start, stop in ranges:
        if stop is not None:
            yield from split(start, stop, step)
            continue
        while True:
            end = (start // step + 1) * step
            yield start, end
            start = end


@dataclass(frozen=True)
class ShardOutput:
    """A shard dataset that a SceneStream writes the scenes it renders into (``gqn.shards``): scene i of the
    stream is scene i of the dataset, exactly what `gqn render` with the same parameters writes."""

    directory: str
    scenes_per_shard: int = 2000
    compression: str = DEFAULT_COMPRESSION
    scenes: int | None = None   # the dataset's scenes (`gqn render --scenes`); None: open-ended (a training run
    #                             decides as it goes, and its last shard may be partial)
    option: str = "--out"       # the command's option for the directory, named in refusals


class SceneStream:
    """Renders scene ranges of ``config`` with ``workers`` processes (None: one per core) and yields
    RenderedChunks in order; with ``save`` it also writes them as shards (see ``claim``, ``render``,
    ``close``). ``images=False``: a saving stream's chunks carry only the images as the shards store them
    (``encoded``; ``images`` None unless the compression is lzf), which spares copying the decoded ones.

    Use it as a context manager (or call ``close``): that stops the workers and, when saving, drops the
    shard being written and releases the directory. Workers start at the first ``render``.
    """

    def __init__(self, config: RenderConfig, workers: int | None = None, *, save: ShardOutput | None = None,
                 images: bool = True):
        self.config = config
        self.workers = workers or os.cpu_count() or 1
        self.save = save
        self.images = images
        self.resume_from = 0  # the first scene ``save`` still needs (``claim``)
        self._pool: WorkerPool | None = None
        self._sequence: ShardSequence | None = None
        self._claimed = False
        self._params = None
        if save is not None:  # what the shards store as ``params``: the family's defaults included
            complete = dataclasses.replace(config, params=family_params(config.family, config.params))
            self._params = dataset_params(complete, save.scenes, save.scenes_per_shard, save.compression)
            if save.scenes is None:
                del self._params["scenes"]  # open-ended: the run decides how many

    def claim(self, shards: Iterable[int] | None = None) -> set[int]:
        """Claim the ``save`` directory for this stream until ``close``; returns the shards complete there.

        Refuses, in one line naming ``save.option``, a directory that holds another dataset or that a running
        job with other parameters writes, and shards another running process writes
        (``gqn.shards.claim_output``). ``shards``: those this stream may write (a --shard K/N part's); None:
        all from the first missing one. A fixed-size output is written with every scene rendered: ask
        ``render`` for the shards still missing. An open-ended output's last, partial shard (where a run
        stopped) is removed, and ``resume_from`` becomes the first scene of its first missing shard: scenes
        before it are rendered if asked for, but not written again.
        """
        save = self.save
        done = claim_output(save.directory, self.config.stored_family, self._params, shards, option=save.option)
        self._claimed = True
        if save.scenes is None:
            for path in list_shards(save.directory):  # a previous run's last, partial shard is redone
                if read_attrs(path)["_shapes"]["images"][0] < save.scenes_per_shard:
                    path.unlink()
                    done.discard(shard_index(path))
            complete = next(k for k in range(len(done) + 1) if k not in done)
            self.resume_from = complete * save.scenes_per_shard
        return done

    def render(self, ranges: Iterable[tuple[int, int | None]],
               stop: threading.Event | None = None) -> Iterator[RenderedChunk]:
        """Chunks of the scene ranges ``ranges`` ((start, stop) pairs; a stop of None: without end), in order,
        each range cut at the multiples of ``config.chunk_scenes``, with bounded prefetch. With ``save`` (claimed
        first if ``claim`` was not called) each chunk is written before it is yielded; a chunk that arrives after
        ``stop`` was set is not: KeyboardInterrupt instead (Ctrl-C under ``gqn.interrupt.deferred_interrupt``).
        """
        if self.save is not None and not self._claimed:
            self.claim()
        for chunk in self._map(_render_range, _pieces(ranges, self.config.chunk_scenes)):
            if stop is not None and stop.is_set():
                raise KeyboardInterrupt
            if self.save is not None:
                self._write(chunk)
            yield chunk

    def render_posed(self, requests: Iterable[tuple[int, np.ndarray]]) -> Iterator[np.ndarray]:
        """For each (scene index, raw poses (F, 5) with F <= ``config.views``) the scene's frames from those
        cameras (F, H, W, 3), in order: e.g. the true views along an orbit no dataset camera took. A scene's
        content does not depend on its number of views (families draw the cameras last), so ``config`` may
        ask for more views than the dataset has."""
        return self._map(_render_posed, requests)

    def _map(self, task, items) -> Iterator:
        if self._pool is None:
            encode = self.save.compression if self.save is not None else None
            self._pool = WorkerPool(self.workers, _build_worker, (self.config, encode, self.images))
        return self._pool.map(task, items)

    def _write(self, chunk: RenderedChunk) -> None:
        """The chunk's scenes from ``resume_from`` on, into their shards."""
        skip = max(0, self.resume_from - chunk.start)
        if skip >= len(chunk.cameras):
            return
        if self._sequence is None:
            save = self.save
            self._sequence = ShardSequence(save.directory, save.scenes_per_shard, save.scenes, self.config.views,
                                           self.config.size, family=self.config.stored_family,
                                           params=self._params, compression=save.compression,
                                           seed=self.config.seed)
        part = slice(skip, None)
        self._sequence.write(chunk.start + skip, None if chunk.images is None else chunk.images[part],
                             chunk.cameras[part], None if chunk.encoded is None else chunk.encoded[part],
                             **{name: a[part] for name, a in chunk.extras.items()})

    def close(self, keep_partial: bool = False) -> None:
        """Stop the workers; when saving, commit the shard being written if ``keep_partial`` (an open-ended
        output's last shard, where a training run ends) or else drop it, and release the directory."""
        try:
            if self._sequence is not None:
                self._sequence.close(keep_partial=keep_partial)
        finally:
            try:
                if self._pool is not None:
                    self._pool.close()
            finally:
                self._sequence = self._pool = None
                if self._claimed:
                    self._claimed = False
                    release_output(self.save.directory)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
