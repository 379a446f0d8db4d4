"""The shard batch loader: context/query selection, determinism, prefetching."""
import os

import numpy as np
import pytest

from gqn.data import ShardBatches
from gqn.errors import GqnError
from gqn.runs.loader import prefetch
from gqn.shards import Dataset
from tests.model_data import write_dataset


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return Dataset(write_dataset(tmp_path_factory.mktemp("loader") / "data", scenes=24, views=6))


def test_batch_shapes_and_dtypes(dataset):
    batch = ShardBatches(dataset, 5, (2, 2), seed=0).batch(0)
    assert batch.context_images.shape == (5, 2, 16, 16, 3) and batch.context_images.dtype == np.uint8
    assert batch.context_viewpoints.shape == (5, 2, 7) and batch.context_viewpoints.dtype == np.float32
    assert batch.query_image.shape == (5, 16, 16, 3) and batch.query_viewpoint.shape == (5, 7)


def test_query_is_never_a_context_view_and_views_match_their_scene(dataset):
    source = ShardBatches(dataset, 8, (1, 5), seed=3)
    sizes = set()
    for index in range(40):
        scenes, views = source.plan(index)
        sizes.add(views.shape[1] - 1)
        for scene, chosen in zip(scenes, views):
            assert chosen[-1] not in chosen[:-1] and len(set(chosen)) == len(chosen)
        batch = source.batch(index)
        stored = dataset.read(int(scenes[0]), int(scenes[0]) + 1)
        assert np.array_equal(batch.query_image[0], stored["images"][0, views[0, -1]])
        assert np.array_equal(batch.context_viewpoints[0], stored["viewpoints"][0, views[0, :-1]])
    assert sizes == {1, 2, 3, 4, 5}


def test_batches_are_a_function_of_seed_and_index(dataset):
    a, b = ShardBatches(dataset, 4, (1, 5), seed=7), ShardBatches(dataset, 4, (1, 5), seed=7)
    assert all(np.array_equal(x, y) for x, y in zip(a.batch(5), b.batch(5)))
    assert not np.array_equal(a.plan(5)[0], a.plan(6)[0])
    assert not np.array_equal(a.plan(5)[0], ShardBatches(dataset, 4, (1, 5), seed=8).plan(5)[0])


def test_sequential_batches_cover_the_first_scenes_once(dataset):
    source = ShardBatches(dataset, 5, (1, 3), seed=0, sequential=True, scenes=12)
    assert source.num_batches == 3
    scenes = np.concatenate([source.plan(i)[0] for i in range(3)])
    assert np.array_equal(scenes, np.arange(12))


def test_prefetch_in_worker_processes_gives_the_same_batches(dataset):
    source = ShardBatches(dataset, 4, (1, 5), seed=1)
    local = list(prefetch(source, 3, 7, workers=0))
    background = list(prefetch(source, 3, 7, workers=2, depth=2))
    assert len(local) == len(background) == 4
    for x, y in zip(local, background):
        assert all(np.array_equal(a, b) for a, b in zip(x, y))


@pytest.mark.parametrize("context", [(0, 2), (3, 6), (4, 3)])
def test_impossible_context_ranges_are_refused(dataset, context):
    with pytest.raises(GqnError, match="context views"):
        ShardBatches(dataset, 4, context, seed=0)


class WithoutSize:
    """A sampler that does not tell its batches' size: prefetch pickles them through the pool's pipe."""

    def __init__(self, source):
        self.source = source

    def batch(self, index):
        return self.source.batch(index)


def shared_blocks():
    return {name for name in os.listdir("/dev/shm") if name.startswith("psm_")}


@pytest.mark.parametrize("through_memory", [True, False])
def test_prefetch_through_shared_memory_or_the_pipe_gives_the_same_batches(dataset, through_memory):
    source = ShardBatches(dataset, 4, (1, 5), seed=2)
    before = shared_blocks()
    batches = prefetch(source if through_memory else WithoutSize(source), 0, workers=2, depth=3)
    got = [next(batches) for _ in range(9)]
    assert len(shared_blocks() - before) == (4 if through_memory else 0)  # depth + 1 blocks, reused
    batches.close()  # a consumer that stops early: the blocks are removed
    assert shared_blocks() == before
    for index, batch in enumerate(got):
        assert all(np.array_equal(a, b) and a.dtype == b.dtype for a, b in zip(batch, source.batch(index)))
