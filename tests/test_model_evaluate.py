"""Evaluation outputs (metrics, PNG grid, orbit GIFs) and the orbit's camera poses."""
import json

import numpy as np
import pytest
from PIL import Image

from gqn.model.evaluate import run_evaluation
from gqn.model.figures import GAP, GAP_COLOUR
from gqn.model.orbit import orbit_cameras, orbit_viewpoints
from gqn.model.train import RunOptions, run_training
from tests.model_data import TINY, scene_cameras, write_dataset


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("evaluate")
    data = write_dataset(root / "data", scenes=10, views=5)
    run_training(data, root / "run", {**TINY, "batch_size": 4}, set(), RunOptions(2, workers=0, progress=False))
    return root / "run", data


def test_evaluate_writes_metrics_grid_and_gifs(run, tmp_path):
    run_dir, data = run
    metrics = run_evaluation(run_dir, data, tmp_path, scenes=6, batch_size=4, context=(3, 3), samples=2,
                             rows=5, gifs=2, frames=6)
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved == metrics and metrics["scenes"] == 6 and metrics["iteration"] == 2
    assert metrics["neg_elbo"] == pytest.approx(metrics["nll"] + metrics["kl"])
    assert all(np.isfinite(metrics[k]) for k in ("bits_per_pixel", "mse", "prediction_mse"))
    columns = 3 + 1 + 1 + 2   # context views, ground truth, mean, samples
    grid = Image.open(tmp_path / "predictions.png")
    assert grid.size == (columns * 16 + (columns - 1) * GAP, 5 * 16 + 4 * GAP)
    gifs = sorted(tmp_path.glob("orbit_*.gif"))
    assert [p.name for p in gifs] == ["orbit_000000.gif", "orbit_000001.gif"]
    with Image.open(gifs[0]) as gif:
        assert gif.size == (2 * 16 + GAP, 16)   # mean | fixed-noise sample
        durations, frames = [], []
        for frame in range(gif.n_frames):   # Pillow merges identical consecutive frames, keeping the time
            gif.seek(frame)
            durations.append(gif.info["duration"])
            frames.append(np.asarray(gif.convert("RGB")))
        assert sum(durations) == 6 * 100
        assert all((f[:, 16:16 + GAP] == GAP_COLOUR).all() for f in frames)
        assert any((f[:, :16] != f[:, 16 + GAP:]).any() for f in frames)   # the sample is not the mean


def test_orbit_looks_at_the_origin_from_the_scenes_height_and_distance():
    cameras = scene_cameras(np.random.default_rng(0), 5)
    orbit = orbit_cameras(cameras, 8)
    assert np.allclose(orbit[:, 1], 1) and np.allclose(np.hypot(orbit[:, 0], orbit[:, 2]), 2)
    assert np.allclose(orbit[0, :3], cameras[0, :3], atol=1e-6)
    d = -orbit[:, :3] / np.linalg.norm(orbit[:, :3], axis=1, keepdims=True)
    yaw, pitch = orbit[:, 3], orbit[:, 4]
    looking = np.stack([np.cos(pitch) * np.sin(yaw), np.sin(pitch), np.cos(pitch) * np.cos(yaw)], -1)
    assert np.allclose(looking, d, atol=1e-6)
    viewpoints = orbit_viewpoints(cameras, 8)
    assert viewpoints.shape == (8, 7) and np.allclose(viewpoints[:, 3], np.cos(yaw))
    assert np.allclose(viewpoints[:, 6], np.sin(pitch))
