"""Where training gets its batches: shards on disk or scenes rendered on the fly, behind one interface.

A *source* is what a run trains on, as chosen on the command line: ``ShardSource`` (`gqn train DATA`) or
``RenderSource`` (`gqn train --render FAMILY`). Every source has

* ``height``, ``width``, ``views``: the images' size and the views per scene (a new run's configuration
  comes from them);
* ``describe()``: the data in words, stored as ``"data"`` in ``config.json`` and snapshots and named in
  messages (the shard directory as given, or ``--render FAMILY``);
* ``dataset``: the shards it reads (the test baseline's mean image is theirs), None for rendered scenes;
* ``open(batch_size, context, seed, rank, ranks)``: its ``BatchSource`` for one run on rank ``rank`` of
  ``ranks``.

A ``BatchSource`` has the same ``height``, ``width``, ``views`` and ``describe()``, and
``batches(start, stop=None)``: batches ``start``, ``start + 1``, ... (up to ``stop``, or forever) in order,
as a generator that the trainer closes after its last batch. Batch ``i`` depends only on the run's
parameters and ``i``, so a resumed run continues with the data it would have had. ``PrefetchedShards``
draws ``gqn.data.ShardBatches``' random batches in loader worker processes (``loader``);
``online.RenderedBatches`` renders never-seen scenes.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterator, Protocol

from gqn.data import Batch, ShardBatches
from gqn.renderer.stream import RenderConfig, ShardOutput
from gqn.runs.loader import prefetch
from gqn.runs.online import RenderedBatches
from gqn.shards import Dataset


class BatchSource(Protocol):
    """A run's training batches (see the module docstring)."""
    height: int
    width: int
    views: int

    def describe(self) -> str: ...

    def batches(self, start: int, stop: int | None = None) -> Iterator[Batch]: ...


class Source(Protocol):
    """What a run trains on (see the module docstring)."""
    height: int
    width: int
    views: int
    dataset: Dataset | None

    def describe(self) -> str: ...

    def open(self, batch_size: int, context: tuple[int, int], seed: int, rank: int = 0,
             ranks: int = 1) -> BatchSource: ...


class ShardSource:
    """Training on the shards in ``directory``, loaded by ``workers`` processes (0: in the trainer)."""

    def __init__(self, directory, workers: int = 1):
        self.directory = str(directory)
        self.dataset = Dataset(directory)
        self.workers = workers
        self.height, self.width, self.views = self.dataset.height, self.dataset.width, self.dataset.views

    def describe(self) -> str:
        return self.directory

    def open(self, batch_size: int, context: tuple[int, int], seed: int, rank: int = 0,
             ranks: int = 1) -> PrefetchedShards:
        batches = ShardBatches(self.dataset, batch_size, context, seed, rank=rank, ranks=ranks)
        return PrefetchedShards(batches, self.workers, self.directory)


class PrefetchedShards:
    """``ShardBatches``' random batches as a BatchSource, made ahead by loader workers (``loader.prefetch``)."""

    def __init__(self, shards: ShardBatches, workers: int, name: str):
        self.shards = shards
        self.workers = workers
        self.name = name
        self.height, self.width, self.views = shards.height, shards.width, shards.views

    def describe(self) -> str:
        return self.name

    def batches(self, start: int, stop: int | None = None) -> Iterator[Batch]:
        return prefetch(self.shards, start, stop, workers=self.workers)


@dataclass(frozen=True)
class RenderSource:
    """Training on freshly rendered scenes instead of shards (`gqn train --render FAMILY`), rendered by
    ``workers`` processes (None: one per core) and also saved as shards with ``save``."""
    config: RenderConfig
    workers: int | None = None
    save: ShardOutput | None = None

    @property
    def height(self) -> int:
        return self.config.size

    @property
    def width(self) -> int:
        return self.config.size

    @property
    def views(self) -> int:
        return self.config.views

    @property
    def dataset(self) -> None:
        """Rendered scenes have no shards to read (a test set's mean image stands in for theirs)."""
        return None

    def describe(self) -> str:
        return f"--render {self.config.family}"

    def open(self, batch_size: int, context: tuple[int, int], seed: int, rank: int = 0,
             ranks: int = 1) -> RenderedBatches:
        return RenderedBatches(self.config, batch_size, context, seed, self.workers, rank, ranks, self.save)


def training_source(data, workers: int = 1) -> Source:
    """``data`` as a Source: a shard directory (a str or path) becomes a ``ShardSource`` loaded by
    ``workers`` processes; a Source is returned as it is."""
    return ShardSource(data, workers) if isinstance(data, (str, os.PathLike)) else data
