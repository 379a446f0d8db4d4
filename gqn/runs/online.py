"""Freshly rendered batches: the data source of `gqn train --render FAMILY`.

Rendering is reached only through the renderer's door, ``gqn.renderer.stream``, whose ``SceneStream`` worker
processes own the GL contexts; this module sees numpy arrays. Batch ``i`` of rank ``r`` (of ``R``) holds scenes
``(i*R + r)*B .. (i*R + r)*B + B-1``: every scene index is used once, in order, so the model never sees
a scene twice, and a resumed run continues with the next unseen scene. The stream renders ahead of the
trainer (``2 * workers`` chunks in flight).

With ``save`` (a ``ShardOutput``) the stream also writes the scenes as shards (scene i of the run = scene i of
the dataset, exactly what `gqn render` with the same parameters writes, by the same code). A resumed run
first re-renders the scenes of the shard that was incomplete when it stopped, so the saved dataset has no gap.
"""
from __future__ import annotations

import itertools
from typing import Iterator

import numpy as np

from gqn.data import Batch, batch_rng, check_context, choose_views, split_views
from gqn.errors import GqnError
from gqn.renderer.stream import RenderConfig, SceneStream, ShardOutput, build_family
from gqn.shards import viewpoints_from_cameras


class RenderedBatches:
    """Batches of never-seen scenes rendered on the fly (see the module docstring): a BatchSource
    (``gqn.runs.sources``)."""

    def __init__(self, config: RenderConfig, batch_size: int, context: tuple[int, int], seed: int,
                 workers: int | None = None, rank: int = 0, ranks: int = 1, save: ShardOutput | None = None):
        check_context(config.views, context, f"--render {config.family}")
        build_family(config)  # bad family parameters fail before the run directory is written
        if save and ranks > 1:
            raise GqnError("--save-rendered works with one training process; under MPI render the data "
                           "with `mpiexec gqn render` instead")
        self.config = config
        self.batch_size = batch_size
        self.context = context
        self.seed = seed
        self.workers = workers
        self.rank, self.ranks = rank, ranks
        self.save = save
        self.height = self.width = config.size
        self.views = config.views

    def describe(self) -> str:
        return f"--render {self.config.family}"

    def first_scene(self, index: int) -> int:
        return (index * self.ranks + self.rank) * self.batch_size

    def batches(self, start: int, stop: int | None = None) -> Iterator[Batch]:
        """Batches ``start``, ``start + 1``, ... (up to ``stop``, or until closed) in order. The saved
        dataset keeps its last, partial shard only when batch ``stop - 1`` was reached."""
        train_from = self.first_scene(start)
        stream = SceneStream(self.config, self.workers, save=self.save)
        images, cameras, index = [], [], start
        try:
            if self.save:
                stream.claim()
            ranges = self._ranges(min(stream.resume_from, train_from) if self.save else train_from, start, stop)
            for chunk in stream.render(ranges):
                if chunk.start < train_from:  # rendered only to be saved
                    continue
                images.append(chunk.images)
                cameras.append(chunk.cameras)
                if sum(map(len, cameras)) == self.batch_size:
                    batch = self._batch(index, np.concatenate(images), np.concatenate(cameras))
                    images, cameras, index = [], [], index + 1
                    yield batch
        finally:  # closed by the trainer after its last batch, or on an error
            stream.close(keep_partial=index == stop)

    def _ranges(self, first: int, start: int, stop: int | None):
        """Scene ranges to render: those only to be saved (a resumed run's backfill), then every batch's."""
        yield first, self.first_scene(start)
        for index in itertools.count(start) if stop is None else range(start, stop):
            yield self.first_scene(index), self.first_scene(index) + self.batch_size

    def _batch(self, index: int, images: np.ndarray, cameras: np.ndarray) -> Batch:
        rng = batch_rng(self.seed, index * self.ranks + self.rank)
        views = choose_views(rng, len(images), self.views, self.context)
        rows = np.arange(len(images))[:, None]
        return split_views(images[rows, views], viewpoints_from_cameras(cameras)[rows, views])
