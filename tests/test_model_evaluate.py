"""Evaluation outputs (metrics, PNG grid, orbit GIFs) and the orbit's camera poses."""
import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from gqn.model.images import to_model
from gqn.pictures import GAP, GAP_COLOUR, HEADING
from gqn.renderer.camera import look_at
from gqn.renderer.stream import SceneStream, dataset_render_config
from gqn.runs.baselines import mean_image, nearest_context
from gqn.runs.evaluate import run_evaluation
from gqn.runs.orbit import look_target, orbit_cameras
from gqn.runs.run import RunOptions
from gqn.runs.train import run_training
from gqn.shards import Dataset, viewpoints_from_cameras
from tests.helpers import run_cli
from tests.model_data import TINY, scene_cameras, write_dataset


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("evaluate")
    data = write_dataset(root / "data", scenes=10, views=5)
    run_training(data, root / "run", {**TINY, "batch_size": 4}, set(), RunOptions(2, workers=0, progress=False))
    return root / "run", data


def gif_frames(path) -> list[np.ndarray]:
    """Every frame of a GIF as RGB arrays; Pillow merges identical consecutive frames, keeping their time."""
    frames = []
    with Image.open(path) as gif:
        for frame in range(gif.n_frames):
            gif.seek(frame)
            frames += [np.asarray(gif.convert("RGB"))] * (gif.info["duration"] // 100)
    return frames


def test_evaluate_writes_metrics_grid_gifs_and_curves(run, tmp_path):
    run_dir, data = run
    metrics = run_evaluation(run_dir, data, tmp_path, scenes=6, batch_size=4, context=(3, 3), samples=2,
                             rows=5, gifs=2, frames=6)
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved == metrics and metrics["scenes"] == 6 and metrics["iteration"] == 2
    assert metrics["neg_elbo"] == pytest.approx(metrics["nll"] + metrics["kl"])
    assert metrics["sigma"] == pytest.approx(np.sqrt(metrics["mse"]))
    assert all(np.isfinite(metrics[k]) for k in ("bits_per_pixel", "mse", "prediction_mse", "nearest_view_mse"))
    assert metrics["prediction_ratio"] == pytest.approx(metrics["prediction_mse"] / metrics["mean_image_mse"])
    assert metrics["mean_image_of"] == str(data)    # the run trained on this directory
    columns, scale = 3 + 1 + 1 + 2, 4   # context views, ground truth, mean, samples; 16 px enlarged to 64
    grid = np.asarray(Image.open(tmp_path / "predictions.png").convert("RGB"))
    panel = 16 * scale
    assert grid.shape == (HEADING + 5 * panel + 4 * GAP, columns * panel + (columns - 1) * GAP, 3)
    band = grid[:HEADING]
    for j in range(columns):   # white heading text over every column on a black band
        column = band[:, j * (panel + GAP):j * (panel + GAP) + panel]
        assert column.min(axis=-1).max() > 200 and (column == 0).all(axis=-1).mean() > 0.5
    frames = gif_frames(tmp_path / "orbit_000000.gif")
    assert [p.name for p in sorted(tmp_path.glob("orbit_*.gif"))] == ["orbit_000000.gif", "orbit_000001.gif"]
    assert len(frames) == 6 and frames[0].shape == (HEADING + panel, 2 * panel + GAP, 3)   # mean | sample
    body = [f[HEADING:] for f in frames]
    assert all((f[:, panel:panel + GAP] == GAP_COLOUR).all() for f in body)
    assert any((f[:, :panel] != f[:, panel + GAP:]).any() for f in body)   # the sample is not the mean
    assert Image.open(tmp_path / "curves.png").size[0] > 600


def test_mean_image_and_nearest_context_baselines(run):
    _, data = run
    dataset = Dataset(data)
    images = dataset.read(0, dataset.num_scenes, ("images",))["images"]
    expected = to_model(images.reshape(-1, 16, 16, 3).astype(np.float64).mean(axis=0))
    assert np.allclose(mean_image(dataset), expected, atol=1e-6)
    yaws = np.array([[0.0, np.pi / 2, np.pi], [0.0, -np.pi / 2, np.pi / 4]])
    context = np.zeros((2, 3, 7), np.float32)
    context[..., 3], context[..., 4], context[..., 5] = np.cos(yaws), np.sin(yaws), 1.0
    query = np.array([[0, 0, 0, np.cos(1.4), np.sin(1.4), 1, 0], [0, 0, 0, 1, 0, 1, 0]], np.float32)
    assert nearest_context(context, query).tolist() == [1, 0]


def test_orbit_gifs_show_the_true_rendered_scene_beside_the_model(tmp_path):
    data = tmp_path / "sm"
    run_cli("render", "shepard-matzler", "--scenes", 4, "--size", 16, "--views", 4, "--seed", 3, "--out", data,
            "--no-progress", check=True)
    run_training(data, tmp_path / "run", {**TINY, "batch_size": 2}, set(), RunOptions(1, workers=0, progress=False))
    run_evaluation(tmp_path / "run", data, tmp_path / "eval", scenes=4, batch_size=2, rows=2, gifs=1, frames=8)
    frames = gif_frames(tmp_path / "eval" / "orbit_000000.gif")
    panel = 64
    assert len(frames) == 8 and frames[0].shape == (HEADING + panel, 3 * panel + 2 * GAP, 3)  # truth|mean|sample
    truth = np.stack([f[HEADING:, :panel] for f in frames])
    config = dataset_render_config(Dataset(data).attrs, 8)
    cameras = Dataset(data).read(0, 1, ("cameras",))["cameras"][0]
    with SceneStream(config, workers=1) as stream:
        expected, = stream.render_posed([(0, orbit_cameras(cameras, 8))])
    # the same frames, up to the GIF's 256-colour palette
    assert np.abs(truth.astype(int) - expected.repeat(4, axis=1).repeat(4, axis=2)).mean() < 2
    assert (truth > 40).any(axis=-1).mean() > 0.02                       # the polycube is in view
    assert np.abs(truth[0].astype(int) - truth[4]).mean() > 1            # and turns as the camera circles


def test_render_posed_with_a_scenes_own_cameras_reproduces_its_frames(tmp_path):
    data = tmp_path / "sm"
    run_cli("render", "shepard-matzler", "--scenes", 3, "--size", 16, "--views", 5, "--parts", 7, "--seed", 2,
            "--out", data, "--no-progress", check=True)
    dataset = Dataset(data)
    stored = dataset.read(0, 3, ("images", "cameras"))
    config = dataset_render_config(dataset.attrs, 5)
    assert (config.family, config.params, config.seed, config.size) == ("shepard-matzler", {"parts": 7}, 2, 16)
    with SceneStream(config, workers=1) as stream:
        images = np.stack(list(stream.render_posed((i, stored["cameras"][i]) for i in range(3))))
    # the same scenes from the same cameras; only vertex rounding at another atlas tile may move an edge pixel
    assert np.abs(images.astype(int) - stored["images"]).mean() < 1.0
    assert dataset_render_config({"family": "deepmind/jaco", "params": "{}"}, 5) is None


def test_orbit_circles_what_the_cameras_look_at():
    """Cameras on a ring at height 1.5 looking at (0.3, 0.5, -0.2), as rooms-ring cameras look at a point
    above the floor: the orbit circles that point at the ring's height and radius, looking at it."""
    target = np.array([0.3, 0.5, -0.2])
    angles = np.random.default_rng(1).uniform(0, 2 * np.pi, 6)
    positions = target + np.stack([2 * np.sin(angles), np.ones(6), 2 * np.cos(angles)], -1)
    cameras = look_at(positions, target)
    assert np.allclose(look_target(cameras), target, atol=1e-9)
    orbit = orbit_cameras(cameras, 12)
    assert np.allclose(orbit[:, 1], 1.5, atol=1e-6)
    assert np.allclose(np.hypot(orbit[:, 0] - 0.3, orbit[:, 2] + 0.2), 2, atol=1e-5)
    assert np.allclose(orbit, look_at(orbit[:, :3], target), atol=1e-5)


def test_orbit_looks_at_the_origin_from_the_scenes_height_and_distance():
    cameras = scene_cameras(np.random.default_rng(0), 5)
    orbit = orbit_cameras(cameras, 8)
    assert np.allclose(orbit[:, 1], 1) and np.allclose(np.hypot(orbit[:, 0], orbit[:, 2]), 2)
    assert np.allclose(orbit[0, :3], cameras[0, :3], atol=1e-6)
    d = -orbit[:, :3] / np.linalg.norm(orbit[:, :3], axis=1, keepdims=True)
    yaw, pitch = orbit[:, 3], orbit[:, 4]
    looking = np.stack([np.cos(pitch) * np.sin(yaw), np.sin(pitch), np.cos(pitch) * np.cos(yaw)], -1)
    assert np.allclose(looking, d, atol=1e-6)
    viewpoints = viewpoints_from_cameras(orbit)
    assert viewpoints.shape == (8, 7) and np.allclose(viewpoints[:, 3], np.cos(yaw))
    assert np.allclose(viewpoints[:, 6], np.sin(pitch))


def test_the_model_side_never_loads_opengl():
    """Training and evaluation (true orbits included) reach the renderer only through its stream interface,
    whose worker processes own the GL contexts."""
    code = ("import sys, gqn.runs.train, gqn.runs.evaluate; "
            "loaded = {'pyrender', 'OpenGL', 'trimesh'} & set(sys.modules); assert not loaded, loaded")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
