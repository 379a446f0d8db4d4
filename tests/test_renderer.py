"""Pixel-level checks of the tiled renderer, the pose convention and the Shepard-Matzler family."""
import colorsys

import numpy as np
import pytest

from gqn.renderer import camera
from gqn.renderer.families.shepard_matzler import HALF_EXTENT, HUES, ShepardMatzler, random_walk
from gqn.renderer.scene import Instances, SceneSpec
from gqn.renderer.tiled import TiledRenderer
from tests.helpers import foreground

SIZE = 64


@pytest.fixture(scope="module")
def family():
    return ShepardMatzler(views=6, size=SIZE, parts=5)


@pytest.fixture(scope="module")
def renderer(family):
    r = TiledRenderer(SIZE, family.meshes(), family.projection(), samples=0, max_tiles=64)
    yield r
    r.close()


def axis_cameras(distance=2.0):
    """Cameras on the +/-x, +/-y (slightly tilted to keep a yaw) and +/-z axes looking at the origin."""
    positions = np.array([[0, 0, -distance], [0, 0, distance], [distance, 0, 0], [-distance, 0, 0]])
    return camera.look_at(positions)


def test_pose_convention_on_known_cameras():
    poses = camera.look_at(np.array([[0.0, 0.0, -2.0], [3.0, 0.0, 0.0], [0.0, 1.0, -1.0]]))
    np.testing.assert_allclose(poses[0], [0, 0, -2, 0, 0], atol=1e-12)               # looks along +z
    np.testing.assert_allclose(poses[1, 3:], [-np.pi / 2, 0], atol=1e-12)           # looks along -x
    np.testing.assert_allclose(poses[2, 3:], [0, -np.pi / 4], atol=1e-12)           # looks down 45 deg
    d = camera.directions(poses[:, 3], poses[:, 4])
    np.testing.assert_allclose(d[2], [0, -np.sqrt(0.5), np.sqrt(0.5)], atol=1e-12)
    # the view matrix puts the target straight ahead (-z in camera space) at the camera's distance
    target = camera.view_matrices(poses) @ np.array([0, 0, 0, 1.0])
    np.testing.assert_allclose(target[:, :3], [[0, 0, -2], [0, 0, -3], [0, 0, -np.sqrt(2)]], atol=1e-12)


def cube_scene(cameras, offset, color=(1.0, 0.0, 0.0)):
    pose = np.diag([0.5, 0.5, 0.5, 1.0])
    pose[:3, 3] = offset
    return SceneSpec(cameras=cameras, objects={"cube": Instances(pose[None], np.array([[*color, 1.0]]))},
                     light_direction=np.array([0.0, 0.0, 1.0]), ambient=1.0, light_color=(0, 0, 0))


def centroid(mask):
    ys, xs = np.nonzero(mask)
    return xs.mean(), ys.mean()


def test_image_orientation_follows_the_convention(renderer):
    # a cube at world +x, +y seen from (0, 0, -2) looking along +z (yaw 0): world +x is image left
    # (the camera's right is -x), world +y is image top.
    images = renderer.render([cube_scene(axis_cameras()[:1], (0.5, 0.5, 0.0))])
    x, y = centroid(foreground(images[0, 0]))
    assert x < SIZE / 2 - 10 and y < SIZE / 2 - 10
    # flat ambient-only shading: exactly the base colour
    assert tuple(images[0, 0, int(y), int(x)]) == (255, 0, 0)


def test_orthographic_scale_and_tiles_do_not_bleed(renderer):
    # a 0.5-wide cube fills 0.5 / (2 * HALF_EXTENT) of the image width in every axis view
    images = renderer.render([cube_scene(axis_cameras(), (0, 0, 0))] * 3)
    expected = 0.5 / (2 * HALF_EXTENT) * SIZE
    for view in images.reshape(-1, SIZE, SIZE, 3):
        mask = foreground(view)
        ys, xs = np.nonzero(mask)
        assert abs(xs.max() - xs.min() + 1 - expected) <= 1 and abs(ys.max() - ys.min() + 1 - expected) <= 1
        assert abs(xs.mean() - (SIZE - 1) / 2) < 0.6 and abs(ys.mean() - (SIZE - 1) / 2) < 0.6


def test_random_walk_is_face_adjacent_and_self_avoiding():
    rng = np.random.default_rng(0)
    for parts in (5, 7):
        for _ in range(50):
            cells = random_walk(rng, parts)
            assert len({tuple(c) for c in cells}) == parts
            assert np.all(np.abs(np.diff(cells, axis=0)).sum(axis=1) == 1)


def hue_bins(images):
    """Which of the 10 palette hues appear in the lit (non-black) pixels of the images."""
    pixels = images[foreground(images, 30)].astype(float) / 255
    hues = np.array([colorsys.rgb_to_hsv(*p)[0] for p in pixels[:: max(1, len(pixels) // 4000)]])
    counts = np.bincount(np.round(hues * 10).astype(int) % 10, minlength=10)
    return set(np.nonzero(counts > 5)[0])


def test_shepard_matzler_scene_pixels(family, renderer):
    specs = [family.scene(seed=0, index=i) for i in range(4)]
    images = renderer.render(specs)
    assert images.shape == (4, 6, SIZE, SIZE, 3) and images.dtype == np.uint8
    # background black, object present in every view, centred
    assert np.all(images[:, :, 0, :] == 0) and np.all(images[:, :, :, 0] == 0)
    masks = foreground(images)
    assert masks.sum(axis=(2, 3)).min() > 40
    ys, xs = np.nonzero(masks.reshape(-1, SIZE, SIZE).sum(0))
    assert abs(np.average(xs) - SIZE / 2) < 6 and abs(np.average(ys) - SIZE / 2) < 6
    # the cube colours seen are the palette hues the scene drew
    for spec, scene_images in zip(specs, images):
        drawn = {int(np.argmin(np.abs(HUES - c[:3]).sum(1))) for c in spec.objects["cube"].colors}
        assert hue_bins(scene_images) == drawn


def test_scene_is_a_pure_function_of_seed_and_index(family):
    a, b = family.scene(seed=5, index=123), family.scene(seed=5, index=123)
    np.testing.assert_array_equal(a.cameras, b.cameras)
    np.testing.assert_array_equal(a.objects["cube"].poses, b.objects["cube"].poses)
    c = family.scene(seed=5, index=124)
    assert not np.array_equal(a.cameras, c.cameras)
    assert np.allclose(np.linalg.norm(a.cameras[:, :3], axis=1), 2.0)


def test_render_ranges_never_cross_a_chunk_boundary():
    from gqn.renderer.stream import split

    assert split(5, 70, 32) == [(5, 32), (32, 64), (64, 70)]
    assert split(64, 96, 32) == [(64, 96)]
    assert split(3, 4, 32) == [(3, 4)]
    assert split(7, 7, 32) == []
