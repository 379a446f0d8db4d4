"""Freshly rendered batches: the data source of `gqn train --render FAMILY`.

Rendering is reached only through ``gqn.renderer.stream.SceneStream``, whose worker processes own the GL
contexts; this module sees numpy arrays. Batch ``i`` of rank ``r`` (of ``R``) holds scenes
``(i*R + r)*B .. (i*R + r)*B + B-1``: every scene index is used once, in order, so the model never sees
a scene twice, and a resumed run continues with the next unseen scene. The stream renders ahead of the
trainer (``2 * workers`` chunks in flight).

With ``save`` the scenes are also written as shards (scene i of the run = scene i of the dataset, exactly
what `gqn render` with the same parameters writes). A resumed run first re-renders the scenes of the shard
that was incomplete when it stopped, so the saved dataset has no gap.
"""
from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from gqn.data import Batch, batch_rng, check_context, choose_views, split_views
from gqn.errors import GqnError
from gqn.ownership import release_output
from gqn.renderer.stream import RenderConfig, SceneStream, build_family, split
from gqn.shards import (DEFAULT_COMPRESSION, ShardSequence, claim_output, list_shards, read_attrs, shard_index,
                        viewpoints_from_cameras)


@dataclass(frozen=True)
class SaveOptions:
    directory: str
    scenes_per_shard: int = 2000
    compression: str = DEFAULT_COMPRESSION


class RenderedBatches:
    """Batches of never-seen scenes rendered on the fly (see the module docstring): a BatchSource
    (``gqn.runs.sources``)."""

    def __init__(self, config: RenderConfig, batch_size: int, context: tuple[int, int], seed: int,
                 workers: int | None = None, rank: int = 0, ranks: int = 1, save: SaveOptions | None = None):
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
        save_from = self._prepare_save(train_from) if self.save else train_from
        ranges = self._ranges(min(save_from, train_from), start, stop)
        saver = self._saver() if self.save else None
        images, cameras, index = [], [], start
        try:
            with SceneStream(self.config, self.workers, encode=self.save and self.save.compression,
                             keep_images=True) as stream:
                for chunk in stream.render(ranges):
                    if saver and chunk.start >= save_from:
                        saver.write(chunk.start, chunk.images, chunk.cameras, chunk.encoded, **chunk.extras)
                    if chunk.start < train_from:
                        continue
                    images.append(chunk.images)
                    cameras.append(chunk.cameras)
                    if sum(map(len, cameras)) == self.batch_size:
                        batch = self._batch(index, np.concatenate(images), np.concatenate(cameras))
                        images, cameras, index = [], [], index + 1
                        yield batch
        finally:  # closed by the trainer after its last batch, or on an error
            if saver:
                try:
                    saver.close(keep_partial=index == stop)
                finally:
                    release_output(self.save.directory)

    def _ranges(self, first: int, start: int, stop: int | None):
        """Scene ranges to render: those only to be saved (a resumed run's backfill), then every batch's."""
        step = self.config.chunk_scenes
        yield from split(first, self.first_scene(start), step)
        for index in itertools.count(start) if stop is None else range(start, stop):
            yield from split(self.first_scene(index), self.first_scene(index) + self.batch_size, step)

    def _batch(self, index: int, images: np.ndarray, cameras: np.ndarray) -> Batch:
        rng = batch_rng(self.seed, index * self.ranks + self.rank)
        views = choose_views(rng, len(images), self.views, self.context)
        rows = np.arange(len(images))[:, None]
        return split_views(images[rows, views], viewpoints_from_cameras(cameras)[rows, views])

    # --- saving ----------------------------------------------------------------------------------
    def _params(self) -> dict:
        """The saved shards' ``params``: what `gqn render` stores for the same scenes (the family's defaults
        included), less the scene count."""
        from gqn.renderer.job import dataset_params, family_params

        config = dataclasses.replace(self.config, params=family_params(self.config.family, self.config.params))
        params = dataset_params(config, 0, self.save.scenes_per_shard, self.save.compression)
        del params["scenes"]  # open-ended: the run decides how many
        return params

    def _prepare_save(self, train_from: int) -> int:
        """Make the save directory ready; returns the first scene it still needs."""
        directory = Path(self.save.directory)
        done = claim_output(directory, self.config.stored_family, self._params(),
                              option="--save-rendered")
        for path in list_shards(directory):  # a previous run's last, partial shard is redone
            if read_attrs(path)["_shapes"]["images"][0] < self.save.scenes_per_shard:
                path.unlink()
                done.discard(shard_index(path))
        complete = next(k for k in range(len(done) + 1) if k not in done)
        return complete * self.save.scenes_per_shard

    def _saver(self) -> ShardSequence:
        return ShardSequence(self.save.directory, self.save.scenes_per_shard, None, self.views, self.height,
                             family=self.config.stored_family, params=self._params(),
                             compression=self.save.compression, seed=self.config.seed)

