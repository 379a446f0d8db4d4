"""Viewpoint frames: turning viewpoints about the vertical axis, and the query frame's symmetry."""
import chainer
import numpy as np
import pytest

from gqn.errors import GqnError
from gqn.model.config import ModelConfig
from gqn.model.frames import context_in_query_frame, query_in_own_frame, turned
from gqn.model.gqn import build_model
from gqn.model.images import to_uint8
from gqn.renderer.camera import look_at, random_sphere_positions
from gqn.runs.evaluate import _orbit_frames
from gqn.shards import viewpoints_from_cameras
from tests.helpers import assert_one_line_error, run_cli
from tests.model_data import TINY, write_dataset

rng = np.random.default_rng(0)


def turn_y(positions, psi):
    """Positions (n, 3) in the world turned by -psi about y."""
    x, y, z = positions.T
    return np.stack([x * np.cos(psi) - z * np.sin(psi), y, x * np.sin(psi) + z * np.cos(psi)], -1)


def test_turned_viewpoints_are_the_viewpoints_of_turned_cameras():
    positions, psi = random_sphere_positions(rng, 6, 2.0), 1.234
    expected = viewpoints_from_cameras(look_at(turn_y(positions, psi)))
    result = turned(viewpoints_from_cameras(look_at(positions)), np.cos(psi), np.sin(psi))
    assert np.allclose(result, expected, atol=1e-5)


def test_query_frame_puts_the_query_at_yaw_zero_and_keeps_relative_poses():
    viewpoints = viewpoints_from_cameras(look_at(random_sphere_positions(rng, 8, 2.0))).reshape(2, 4, 7)
    context, query = viewpoints[:, :3], viewpoints[:, 3]
    own = query_in_own_frame(query)
    assert np.allclose(own[:, 3:5], [1, 0], atol=1e-6) and np.allclose(own[:, 5:], query[:, 5:])
    assert np.allclose(np.linalg.norm(own[:, :3], axis=1), 2, atol=1e-5)
    moved = context_in_query_frame(context, query)
    yaw = np.arctan2(context[..., 4], context[..., 3]) - np.arctan2(query[:, None, 4], query[:, None, 3])
    assert np.allclose(moved[..., 3:5], np.stack([np.cos(yaw), np.sin(yaw)], -1), atol=1e-5)
    assert np.allclose(np.linalg.norm(moved[..., :3], axis=-1), 2, atol=1e-5)


@pytest.mark.parametrize("frame", ["world", "query"])
def test_only_the_query_frame_ignores_a_turn_of_the_whole_scene(frame):
    model = build_model(ModelConfig(16, 16, frame=frame, **TINY), seed=0)
    context = rng.uniform(-0.5, 0.5, (2, 3, 3, 16, 16)).astype(np.float32)
    viewpoints = viewpoints_from_cameras(look_at(random_sphere_positions(rng, 8, 2.0))).reshape(2, 4, 7)

    def prediction(v):
        return model.predict(model.represent(context, v[:, :3], v[:, 3]), v[:, 3]).array

    turned_scene = turned(viewpoints, np.cos(0.9), np.sin(0.9)).astype(np.float32)
    difference = np.abs(prediction(viewpoints) - prediction(turned_scene)).max()
    assert (difference < 1e-5) == (frame == "query")


@pytest.mark.parametrize("frame", ["world", "query"])
def test_orbit_frames_are_the_mean_predictions_from_each_camera_alone(frame):
    """The orbit GIF's mean panels equal one prediction per viewpoint, each with its own representation (in
    the query frame sharing the first frame's would be off by up to 15 levels)."""
    model, own = build_model(ModelConfig(16, 16, frame=frame, **TINY), seed=0), np.random.default_rng(1)
    context = own.uniform(-0.5, 0.5, (3, 3, 16, 16)).astype(np.float32)
    viewpoints = viewpoints_from_cameras(look_at(random_sphere_positions(own, 7, 2.0))).astype(np.float32)
    frames = _orbit_frames(model, context, viewpoints[:3], viewpoints[3:], own, chainer.get_device("@numpy"))
    for panels, query in zip(frames, viewpoints[3:, None]):
        expected = to_uint8(model.predict(model.represent(context[None], viewpoints[None, :3], query), query).array)
        assert np.abs(panels[0].astype(int) - expected[0]).max() <= 1


def test_unknown_frame_is_refused():
    with pytest.raises(GqnError, match="unknown viewpoint frame 'camera'"):
        ModelConfig(16, 16, frame="camera")


def test_query_frame_refuses_data_the_renderer_did_not_make(tmp_path):
    data = write_dataset(tmp_path / "squares", scenes=2)
    result = run_cli("train", str(data), "--out", str(tmp_path / "run"), "--frame", "query", "--iterations", "1")
    assert_one_line_error(result, "'test-squares' scenes, which it did not render: use --frame world")
    assert not (tmp_path / "run").exists()
