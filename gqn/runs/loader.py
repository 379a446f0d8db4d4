"""Background loading: ``prefetch`` makes the batches of an indexed sampler in worker processes.

An indexed sampler (``gqn.data.ShardBatches``, which reads HDF5 shards) is any picklable object with
``batch(index) -> Batch``, a pure function of the sampler's parameters (seed included) and ``index``, so
that resuming at iteration ``i`` continues with the same data order. Training reaches this module through
``sources.PrefetchedShards``. It does not import Chainer, so workers start quickly.

Batches come back through shared memory when the sampler tells the largest batch's size
(``max_batch_bytes``): each worker writes its batch into one of ``depth + 1`` blocks this process made,
and only the arrays' shapes travel through the pool's pipe. Pickled through the pipe, a batch of 36 scenes
at 64 px (2.6 MB) cost more than reading it: two loader workers made fewer batches per second than one
process without workers (``bench/loader.py``).
"""
from __future__ import annotations

import itertools
from multiprocessing import shared_memory
from typing import Iterator

import numpy as np

from gqn.data import Batch
from gqn.workers import WorkerPool

_ALIGN = 64  # each array of a batch starts at a multiple of this in its block


class _Worker:
    """A loader worker's sampler and the shared blocks it has attached."""

    def __init__(self, source):
        self.source = source
        self.blocks: dict[str, shared_memory.SharedMemory] = {}

    def block(self, name: str) -> shared_memory.SharedMemory:
        block = self.blocks.get(name)
        if block is None:
            # attaching registers the name with the resource tracker the workers share with the parent
            # again, a no-op: the parent's unlink unregisters it, and the tracker removes it if the parent
            # is killed
            block = self.blocks[name] = shared_memory.SharedMemory(name)
        return block


def _make_batch(worker: _Worker, task: tuple[int, str | None]):
    """Batch ``index``, written into the shared block ``name`` (its layout returned), or itself when there
    is no block or it does not fit."""
    index, name = task
    batch = worker.source.batch(index)
    if name is None:
        return batch
    block = worker.block(name)
    layout, offset = [], 0
    for array in batch:
        if offset + array.nbytes > block.size:
            return batch
        np.ndarray(array.shape, array.dtype, block.buf, offset)[...] = array
        layout.append((array.shape, array.dtype.str, offset))
        offset += -(-array.nbytes // _ALIGN) * _ALIGN
    return layout


def _read(block: shared_memory.SharedMemory | None, result) -> Batch:
    """The batch a worker returned: itself, or copied out of ``block`` (which the next task may reuse)."""
    if isinstance(result, Batch):
        return result
    return Batch(*(np.ndarray(shape, dtype, block.buf, offset).copy() for shape, dtype, offset in result))


def prefetch(source, start: int = 0, stop: int | None = None, workers: int = 1,
             depth: int = 4) -> Iterator[Batch]:
    """Batches ``start``, ``start + 1``, ... (up to ``stop``, or forever) in order, made ``depth`` ahead by
    ``workers`` processes of the shared worker pool (0: in this process). The workers get a pickled
    ``source`` (a ``Dataset`` reopens its files there)."""
    indices = itertools.count(start) if stop is None else iter(range(start, stop))
    if workers == 0:
        yield from map(source.batch, indices)
        return
    nbytes = getattr(source, "max_batch_bytes", None)
    # a block is written again only after its batch was copied out: at most `depth` tasks are in flight
    blocks = [shared_memory.SharedMemory(create=True, size=nbytes + len(Batch._fields) * _ALIGN)
              for _ in range(depth + 1)] if nbytes else [None]
    try:
        tasks = ((index, block and block.name) for index, block in zip(indices, itertools.cycle(blocks)))
        with WorkerPool(workers, _Worker, (source,)) as pool:
            for block, result in zip(itertools.cycle(blocks), pool.map(_make_batch, tasks, ahead=depth)):
                yield _read(block, result)
    finally:
        for block in blocks:
            if block is not None:
                block.close()
                block.unlink()
