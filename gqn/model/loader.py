"""Batch sources: numbered, deterministic batches of scenes for training and evaluation.

A *batch source* is what the training loop draws its data from. It is any picklable object with

* ``height``, ``width``, ``views``: the image size and the views per scene it produces, and
* ``batch(index) -> Batch``: batch ``index``, a pure function of the source's parameters (seed included)
  and ``index``, so that resuming at iteration ``i`` continues with the same data order.

``ShardBatches`` reads HDF5 shards (``gqn.shards.Dataset``); an online source that renders scenes on the
fly (a future ``gqn train --render FAMILY``) only has to provide the same members. ``prefetch`` runs any
source's ``batch`` in background worker processes. This module does not import Chainer, so workers start
quickly.
"""
from __future__ import annotations

import itertools
import signal
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
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


_worker_source = None


def _start_worker(source) -> None:
    global _worker_source
    signal.signal(signal.SIGINT, signal.SIG_IGN)    # Ctrl-C is the parent's to handle
    _worker_source = source


def _make_batch(index: int) -> Batch:
    return _worker_source.batch(index)


def prefetch(source, start: int = 0, stop: int | None = None, workers: int = 1,
             depth: int = 4) -> Iterator[Batch]:
    """Batches ``start``, ``start + 1``, ... (up to ``stop``, or forever) in order, made ``depth`` ahead by
    ``workers`` processes (0: in this process). Worker processes are spawned fresh and get a pickled
    ``source`` (a ``Dataset`` reopens its files there)."""
    indices = itertools.count(start) if stop is None else iter(range(start, stop))
    if workers == 0:
        yield from map(source.batch, indices)
        return
    pool = ProcessPoolExecutor(workers, mp_context=get_context("spawn"), initializer=_start_worker,
                               initargs=(source,))
    try:
        pending = deque(pool.submit(_make_batch, i) for i in itertools.islice(indices, depth))
        while pending:
            batch = pending.popleft().result()
            pending.extend(pool.submit(_make_batch, i) for i in itertools.islice(indices, 1))
            yield batch
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
