"""The framework-neutral data API (gqn.data): scenes as a map-style dataset, training batches, the examples."""
import multiprocessing
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from gqn.data import Batch, Scenes, ShardBatches, batches, to_float
from gqn.errors import GqnError
from gqn.shards import Dataset
from tests.model_data import write_dataset

ROOT = Path(__file__).resolve().parents[1]
SCENES, VIEWS, SIZE = 24, 5, 16


@pytest.fixture(scope="module")
def directory(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("data_api") / "data", scenes=SCENES, views=VIEWS, size=SIZE,
                         per_shard=10)


_worker_scenes = None


def _start_worker(scenes):
    global _worker_scenes
    _worker_scenes = scenes


def _read_scene(index):
    return _worker_scenes[index]


def assert_batches_equal(a: Batch, b: Batch):
    for name, x, y in zip(Batch._fields, a, b):
        assert x.dtype == y.dtype and np.array_equal(x, y), name


def test_scenes_length_shapes_dtypes_and_values_match_dataset_read(directory):
    scenes, dataset = Scenes(directory), Dataset(directory)
    assert len(scenes) == SCENES and (scenes.views, scenes.height, scenes.width) == (VIEWS, SIZE, SIZE)
    stored = dataset.read(0, SCENES)
    for i in range(SCENES):     # scenes 10 and 20 start the second and third shard
        scene = scenes[i]
        assert set(scene) == {"images", "viewpoints", "cameras"}
        assert scene["images"].shape == (VIEWS, SIZE, SIZE, 3) and scene["images"].dtype == np.uint8
        assert scene["viewpoints"].shape == (VIEWS, 7) and scene["viewpoints"].dtype == np.float32
        assert scene["cameras"].shape == (VIEWS, 5) and scene["cameras"].dtype == np.float32
        for name, array in scene.items():
            assert np.array_equal(array, stored[name][i]), (i, name)
    assert np.array_equal(scenes[np.int64(-1)]["images"], stored["images"][-1])
    with pytest.raises(IndexError):
        scenes[SCENES]
    assert len(list(scenes)) == SCENES    # the sequence protocol stops at the IndexError


def test_scenes_pickle_round_trip_and_worker_processes(directory):
    scenes = Scenes(Dataset(directory))
    expected = [scenes[i] for i in range(SCENES)]    # the parent's files are open now
    copy = pickle.loads(pickle.dumps(scenes))
    assert len(copy) == SCENES and copy.names == scenes.names
    assert all(np.array_equal(copy[i]["images"], expected[i]["images"]) for i in range(SCENES))
    # DataLoader workers: a pickled copy (spawn) or the parent's object inherited as it is (fork)
    for start_method in ("spawn", "fork"):
        with multiprocessing.get_context(start_method).Pool(2, _start_worker, (scenes,)) as pool:
            got = pool.map(_read_scene, range(SCENES), chunksize=3)
        for a, b in zip(expected, got):
            assert all(np.array_equal(a[name], b[name]) for name in a)


@pytest.mark.parametrize("context, low_high", [((1, None), (1, VIEWS - 1)), ((2, 3), (2, 3)), (2, (2, 2))])
def test_batches_are_the_training_batches(directory, context, low_high):
    """Users and ``gqn train`` share one sampling: batch i of ``batches`` is ``ShardBatches.batch(i)``."""
    source = ShardBatches(Dataset(directory), 4, low_high, seed=5)
    got = list(batches(directory, 4, context=context, seed=5, start=3, stop=9))
    assert len(got) == 6
    for index, batch in zip(range(3, 9), got):
        assert_batches_equal(batch, source.batch(index))
        k = batch.context_images.shape[1]
        assert low_high[0] <= k <= low_high[1]
        assert batch.context_images.shape == (4, k, SIZE, SIZE, 3) and batch.context_images.dtype == np.uint8
        assert batch.context_viewpoints.shape == (4, k, 7) and batch.context_viewpoints.dtype == np.float32
        assert batch.query_image.shape == (4, SIZE, SIZE, 3) and batch.query_viewpoint.shape == (4, 7)


def test_batches_take_a_dataset_or_scenes_and_run_on_without_stop(directory):
    first = [next(batches(data, 3, seed=1)) for data in (directory, str(directory), Dataset(directory),
                                                          Scenes(directory))]
    for batch in first[1:]:
        assert_batches_equal(batch, first[0])
    endless = batches(directory, 3, seed=1, start=1000)
    assert_batches_equal(next(endless), ShardBatches(Dataset(directory), 3, (1, VIEWS - 1), 1).batch(1000))


@pytest.mark.parametrize("context", [(0, 2), (1, VIEWS), 0])
def test_batches_refuse_impossible_context_ranges_at_once(directory, context):
    with pytest.raises(GqnError, match="context views"):
        batches(directory, 4, context=context)


def test_to_float_scales_to_unit_range_and_moves_channels(directory):
    images = np.array([[[[0, 128, 255]]]], np.uint8)          # (1, 1, 1, 3)
    x = to_float(images)
    assert x.dtype == np.float32 and x.shape == (1, 1, 1, 3)
    assert x.min() == 0 and x.max() == 1 and np.isclose(x[0, 0, 0, 1], 128 / 255)
    batch = next(batches(directory, 2, context=(2, 2)))
    chw = to_float(batch, channels_first=True)
    assert chw.context_images.shape == (2, 2, 3, SIZE, SIZE) and chw.query_image.shape == (2, 3, SIZE, SIZE)
    assert chw.context_images.dtype == chw.query_image.dtype == np.float32
    assert np.array_equal(chw.query_image, np.moveaxis(batch.query_image, -1, -3) / np.float32(255))
    assert chw.query_viewpoint is batch.query_viewpoint


def run_example(name, directory):
    result = subprocess.run([sys.executable, str(ROOT / "examples" / name), str(directory)], cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_numpy_example_prints_the_training_batch_shapes(directory):
    lines = run_example("numpy_batches.py", directory).splitlines()
    source = ShardBatches(Dataset(directory), 4, (1, VIEWS - 1), seed=0)
    expected = []
    for step in range(3):
        k = source.plan(step)[1].shape[1] - 1
        expected.append(f"batch {step}: context (4, {k}, {SIZE}, {SIZE}, 3) (4, {k}, 7), "
                        f"query (4, {SIZE}, {SIZE}, 3) (4, 7)")
    assert lines == expected


def test_pytorch_example_loads_float_nchw_batches(directory):
    pytest.importorskip("torch")
    lines = run_example("pytorch_loader.py", directory).splitlines()
    assert lines == [f"batch {step}: images (8, {VIEWS}, 3, {SIZE}, {SIZE}) torch.float32, "
                     f"viewpoints (8, {VIEWS}, 7)" for step in range(3)]


def test_importing_gqn_data_imports_no_framework():
    code = "import sys, gqn.data; print(' '.join(sorted(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    modules = result.stdout.split()
    assert "gqn.data" in modules
    heavy = ("chainer", "cupy", "torch", "jax", "tensorflow", "OpenGL", "pyrender", "gqn.model", "gqn.renderer")
    assert [m for m in modules if m.split(".")[0] in heavy or m.startswith(heavy)] == []


@pytest.mark.parametrize("name", ["numpy_batches.py", "pytorch_loader.py"])
def test_readme_shows_the_examples_as_written(name):
    assert (ROOT / "examples" / name).read_text().strip() in (ROOT / "README.md").read_text()
