"""Reading gqn shards from any framework (PyTorch, JAX, numpy): scenes and training batches as numpy arrays.

Two entry points, both plain numpy (this module imports neither Chainer nor any other framework):

* ``Scenes(path)``: a map-style dataset of whole scenes, ``scenes[i]`` a dict of ``images`` uint8
  (V, H, W, 3), ``viewpoints`` float32 (V, 7) and ``cameras`` float32 (V, 5). It can be handed directly
  to ``torch.utils.data.DataLoader`` (also with worker processes: it pickles without open files).
* ``batches(path, batch_size)``: the batches ``gqn train`` draws, as ``Batch`` tuples of numpy arrays:
  B random scenes, K context views each (K drawn from ``context``, the same for a whole batch) and one
  query view that is never a context view. Batch ``i`` is a function of ``seed`` and ``i`` alone.

Images are RGB uint8, channels last; ``to_float`` turns them into float32 in [0, 1] (channels first on
request). Training (``gqn.runs``) reads its batches through ``ShardBatches`` here too, so users and
training share one sampling: ``ShardBatches.batch(index)`` is a pure function of its parameters and
``index`` (and the object pickles, for loader processes). The shard format itself is described in
``gqn.shards``.
"""
from __future__ import annotations

import copy
import itertools
import operator
import os
from typing import Iterator, NamedTuple

import numpy as np

from gqn.errors import GqnError
from gqn.shards import Dataset


class Batch(NamedTuple):
    context_images: np.ndarray       # uint8 (B, K, H, W, 3)
    context_viewpoints: np.ndarray   # float32 (B, K, 7)
    query_image: np.ndarray          # uint8 (B, H, W, 3)
    query_viewpoint: np.ndarray      # float32 (B, 7)


DATA_STREAM, NOISE_STREAM = 0, 1     # independent random streams per batch: data choice, latent noise


def batch_rng(seed: int, index: int, stream: int = DATA_STREAM) -> np.random.Generator:
    """The random stream ``stream`` of batch ``index``."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(stream, index)))


class ShardBatches:
    """Batches from a shard dataset: B scenes, K context views (the same K for the whole batch, drawn from
    ``context``) and one query view per scene, the query never among the context views.

    Random mode (training) draws the scenes of every batch at random; sequential mode (evaluation) takes
    scenes ``index * B ...`` in order, so ``num_batches`` batches cover the first ``scenes`` scenes once.
    Each scene is read with one chunk read (``Dataset.read_views``).
    """

    def __init__(self, dataset: Dataset, batch_size: int, context: tuple[int, int], seed: int,
                 sequential: bool = False, scenes: int | None = None, rank: int = 0, ranks: int = 1):
        check_context(dataset.views, context, dataset.directory)
        low, high = context
        self.dataset = dataset
        self.batch_size = batch_size
        self.context = (low, high)
        self.seed = seed
        self.sequential = sequential
        self.rank, self.ranks = rank, ranks    # data-parallel training: rank r of R draws its own batches
        self.scenes = min(scenes or dataset.num_scenes, dataset.num_scenes)
        self.height, self.width, self.views = dataset.height, dataset.width, dataset.views

    @property
    def max_batch_bytes(self) -> int:
        """The size of the largest batch (``context[1]`` context views), for ``prefetch``'s shared blocks."""
        return self.batch_size * (self.context[1] + 1) * (self.height * self.width * 3 + 7 * 4)

    @property
    def num_batches(self) -> int:
        return -(-self.scenes // self.batch_size)

    def plan(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Scene ids (B,) and view ids (B, K + 1) of batch ``index``: K context views, then the query."""
        rng = batch_rng(self.seed, index * self.ranks + self.rank)
        if self.sequential:
            scenes = np.arange(index * self.batch_size, min((index + 1) * self.batch_size, self.scenes))
        else:
            scenes = rng.choice(self.scenes, self.batch_size, replace=self.scenes < self.batch_size)
        return scenes, choose_views(rng, len(scenes), self.views, self.context)

    def batch(self, index: int) -> Batch:
        scenes, views = self.plan(index)
        parts = [self.dataset.read_views(int(s), v) for s, v in zip(scenes, views)]
        return split_views(np.stack([p["images"] for p in parts]), np.stack([p["viewpoints"] for p in parts]))


def check_context(views: int, context: tuple[int, int], source) -> None:
    """Refuse a context range that scenes of ``views`` views cannot give (one view is the query)."""
    if views < 2:
        raise GqnError(f"{source}: {views} view per scene; training needs at least 2 (context and query)")
    low, high = context
    if not 1 <= low <= high <= views - 1:
        raise GqnError(f"context views {low}-{high} impossible with {views} views per scene "
                       f"(one is the query): use a range within 1-{views - 1}")


def choose_views(rng: np.random.Generator, scenes: int, views: int, context: tuple[int, int]) -> np.ndarray:
    """View ids (scenes, K + 1) for one batch: K context views (K drawn from ``context``, the same for the
    whole batch), then the query, all distinct within a scene."""
    k = int(rng.integers(context[0], context[1] + 1))
    return np.argsort(rng.random((scenes, views)), axis=1)[:, :k + 1]


def split_views(images: np.ndarray, viewpoints: np.ndarray) -> Batch:
    """Selected views (B, K + 1, ...) of a batch's scenes -> a Batch (the last view is the query)."""
    return Batch(images[:, :-1], viewpoints[:, :-1], images[:, -1], viewpoints[:, -1])


def _dataset(data) -> Dataset:
    """A shard directory (str or Path), a ``Dataset`` or ``Scenes`` -> its ``Dataset``."""
    if isinstance(data, Scenes):
        return data.dataset
    return data if isinstance(data, Dataset) else Dataset(data)


class Scenes:
    """The scenes of a shard directory as a map-style dataset (``len``, ``[i]``), e.g. for
    ``torch.utils.data.DataLoader``.

    ``scenes[i]`` is a dict of numpy arrays for scene ``i`` (0 <= i < len): ``images`` uint8 (V, H, W, 3),
    RGB, channels last; ``viewpoints`` float32 (V, 7) = x, y, z, cos(yaw), sin(yaw), cos(pitch),
    sin(pitch); ``cameras`` float32 (V, 5) = x, y, z, yaw, pitch (radians). ``names`` picks other per-scene
    arrays too (``"labels"`` of mnist-dice). Files are opened on first use in each process: a Scenes
    pickles without open files, and one copied into a forked worker reopens them there.
    """

    def __init__(self, path_or_dataset, names=("images", "viewpoints", "cameras")):
        self.dataset = _dataset(path_or_dataset)
        self.names = tuple(names)
        self.views, self.height, self.width = self.dataset.views, self.dataset.height, self.dataset.width
        self._pid = os.getpid()

    def __len__(self) -> int:
        return self.dataset.num_scenes

    def __getitem__(self, index) -> dict[str, np.ndarray]:
        index = operator.index(index)
        if index < 0:
            index += len(self)
        if self._pid != os.getpid():    # forked: use this process's own file handles, not the parent's
            self.dataset, self._pid = copy.copy(self.dataset), os.getpid()
        return {name: array[0] for name, array in self.dataset.read(index, index + 1, self.names).items()}


def batches(path_or_dataset, batch_size: int, context=(1, None), seed: int = 0, start: int = 0,
            stop: int | None = None) -> Iterator[Batch]:
    """Batches ``start``, ``start + 1``, ... (up to ``stop``, or forever) drawn as ``gqn train`` draws them
    (``ShardBatches`` in random mode): each holds ``batch_size`` = B random scenes, and of each scene K
    context views and one query view, never among the context. K is drawn per batch from ``context``
    (low, high), inclusive; high None means views - 1, an int k means exactly k. Batch ``i`` depends only on
    the dataset, ``seed`` and ``i``.

    Each ``Batch`` holds numpy arrays: ``context_images`` uint8 (B, K, H, W, 3), ``context_viewpoints``
    float32 (B, K, 7), ``query_image`` uint8 (B, H, W, 3), ``query_viewpoint`` float32 (B, 7)
    (``to_float`` converts the images).
    """
    dataset = _dataset(path_or_dataset)
    low, high = (context, context) if isinstance(context, int) else context
    source = ShardBatches(dataset, batch_size, (low, dataset.views - 1 if high is None else high), seed)
    indices = itertools.count(start) if stop is None else range(start, stop)
    return map(source.batch, indices)


def to_float(images, channels_first: bool = False):
    """uint8 images (..., H, W, 3) -> float32 (..., H, W, 3) in [0, 1] (value / 255), or (..., 3, H, W)
    with ``channels_first``. Given a ``Batch``, converts its two image arrays and keeps the viewpoints."""
    if isinstance(images, Batch):
        return images._replace(context_images=to_float(images.context_images, channels_first),
                               query_image=to_float(images.query_image, channels_first))
    x = np.asarray(images, np.float32) / np.float32(255)
    return np.ascontiguousarray(np.moveaxis(x, -1, -3)) if channels_first else x
