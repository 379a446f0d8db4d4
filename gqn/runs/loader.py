"""Background loading: ``prefetch`` makes the batches of an indexed sampler in worker processes.

An indexed sampler (``gqn.data.ShardBatches``, which reads HDF5 shards) is any picklable object with
``batch(index) -> Batch``, a pure function of the sampler's parameters (seed included) and ``index``, so
that resuming at iteration ``i`` continues with the same data order. Training reaches this module through
``sources.PrefetchedShards``. It does not import Chainer, so workers start quickly.
"""
from __future__ import annotations

import itertools
from typing import Iterator

from gqn.data import Batch
from gqn.workers import WorkerPool


def _keep(source):
    return source


def _make_batch(source, index: int) -> Batch:
    return source.batch(index)


def prefetch(source, start: int = 0, stop: int | None = None, workers: int = 1,
             depth: int = 4) -> Iterator[Batch]:
    """Batches ``start``, ``start + 1``, ... (up to ``stop``, or forever) in order, made ``depth`` ahead by
    ``workers`` processes of the shared worker pool (0: in this process). The workers get a pickled
    ``source`` (a ``Dataset`` reopens its files there)."""
    indices = itertools.count(start) if stop is None else iter(range(start, stop))
    if workers == 0:
        yield from map(source.batch, indices)
        return
    with WorkerPool(workers, _keep, (source,)) as pool:
        yield from pool.map(_make_batch, indices, ahead=depth)
