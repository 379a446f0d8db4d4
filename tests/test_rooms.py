"""The rooms family: layout, cameras and pixels (sky, floor textures, objects, free views)."""
from dataclasses import replace

import numpy as np
import pytest

from gqn.errors import GqnError
from gqn.renderer.families import shared_room, stored_family
from gqn.renderer.families.mnist_dice import MnistDice
from gqn.renderer.families.rooms import SHAPES, Rooms, shape_mesh
from gqn.renderer.stream import RenderConfig
from gqn.renderer.scene import Instances
from gqn.shards import Dataset
from tests.helpers import assert_one_line_error, color_of, family_renderer, run_cli, unlit

SIZE = 32
TOP_DOWN = [[0.0, 6.0, 0.0, 0.0, -np.pi / 2 + 1e-4]]  # above the room centre, looking straight down
PALETTE = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [1, 0, 1], [0, 1, 1], [1, 0.5, 0],
                    [0.5, 0, 1], [0, 0.5, 0]], float)


@pytest.fixture(scope="module")
def renderer():
    r = family_renderer(Rooms(10, SIZE), SIZE, max_tiles=160)
    yield r
    r.close()


def object_instances(spec) -> list[tuple[str, np.ndarray]]:
    """(shape, pose) of every object of a scene (everything but the room's quads)."""
    return [(name, pose) for name, inst in spec.objects.items() if name != "quad" for pose in inst.poses]


def footprints(spec) -> tuple[np.ndarray, np.ndarray]:
    """Object centres on the floor (n, 2) and footprint radii (n,)."""
    placed = [pose for _, pose in object_instances(spec)]
    centres = np.array([p[[0, 2], 3] for p in placed])
    sizes = np.array([np.linalg.norm(p[:3, 0]) for p in placed])
    return centres, sizes * np.sqrt(0.5)


def without_objects(spec):
    return replace(spec, objects={"quad": spec.objects["quad"]})


def sky_mask(images: np.ndarray) -> np.ndarray:
    return np.all(np.abs(images.astype(int) - color_of(shared_room.SKY)) <= 1, axis=-1)


def test_shapes_stand_on_the_origin_with_unit_extent():
    for name in SHAPES:
        mesh = shape_mesh(name)
        low, high = mesh.bounds
        assert abs(low[1]) < 1e-9 and abs(mesh.extents.max() - 1) < 1e-9, name
        np.testing.assert_allclose((low + high)[[0, 2]], 0, atol=1e-9, err_msg=name)


def test_objects_stand_on_distinct_grid_cells_without_overlap():
    family = Rooms(3, SIZE, objects=(9, 9))
    for i in range(100):
        spec = family.scene(0, i)
        centres, radii = footprints(spec)
        assert len(centres) == 9
        cells = np.abs(centres[:, None] - shared_room.GRID[None]).max(-1) <= shared_room.GRID_JITTER
        assert np.all(cells.sum(axis=1) == 1) and np.all(cells.sum(axis=0) == 1)
        gaps = np.linalg.norm(centres[:, None] - centres[None], axis=-1) - radii[:, None] - radii[None]
        assert gaps[~np.eye(9, dtype=bool)].min() > 0
        assert all(abs(pose[1, 3]) < 1e-12 for _, pose in object_instances(spec))  # on the floor


def test_object_count_and_rotation_follow_the_parameters():
    counts = [len(object_instances(Rooms(3, SIZE, objects=(2, 4)).scene(0, i))) for i in range(60)]
    assert set(counts) == {2, 3, 4}
    turned, upright = (Rooms(3, SIZE, object_rotation=flag).scene(1, 7) for flag in (True, False))
    for (_, a), (_, b) in zip(object_instances(turned), object_instances(upright)):
        size = np.linalg.norm(b[:3, 0])
        np.testing.assert_allclose(b[:3, :3], size * np.eye(3), atol=1e-12)     # no yaw
        assert not np.allclose(a[:3, :3], size * np.eye(3))                     # a random yaw
        np.testing.assert_array_equal(a[:3, 3], b[:3, 3])                       # same places


def test_object_count_matches_the_pixels(renderer):
    """Painted in distinct flat colours on a black room and seen from above, every object of the scene's
    metadata shows up, and nothing else does."""
    family = Rooms(1, SIZE, objects=(1, 9))
    specs = []
    for i in range(12):
        spec = family.scene(0, i)
        quads = spec.objects["quad"]
        objects = {"quad": Instances(quads.poses, np.tile([0, 0, 0, 1.0], (len(quads.poses), 1)))}
        k = 0
        for name, inst in spec.objects.items():
            if name != "quad":
                n = len(inst.poses)
                objects[name] = Instances(inst.poses, np.hstack([PALETTE[k:k + n], np.ones((n, 1))]))
                k += n
        specs.append(unlit(replace(spec, objects=objects), TOP_DOWN))
    images = renderer.render(specs)[:, 0]
    for spec, image in zip(specs, images):
        seen = [np.sum(np.all(image == color_of(c), axis=-1)) >= 3 for c in PALETTE]
        n = len(object_instances(spec))
        assert seen == [True] * n + [False] * (len(PALETTE) - n)


@pytest.mark.parametrize("family", [Rooms, lambda v, s: Rooms(v, s, camera="free"), MnistDice])
def test_scene_content_does_not_depend_on_the_number_of_views(family):
    """The room builder draws cameras last: more views see the same room, objects and light."""
    for i in range(5):
        few, many = family(2, SIZE).scene(3, i), family(12, SIZE).scene(3, i)
        assert few.objects.keys() == many.objects.keys() and few.extras.keys() == many.extras.keys()
        for name in few.objects:
            for field in ("poses", "colors", "texture"):
                np.testing.assert_array_equal(getattr(few.objects[name], field), getattr(many.objects[name], field))
        for name in few.extras:
            np.testing.assert_array_equal(few.extras[name], many.extras[name])
        np.testing.assert_array_equal(few.light_direction, many.light_direction)
        assert (few.ambient, few.light_color) == (many.ambient, many.light_color)
        assert len(few.cameras) == 2 and len(many.cameras) == 12


def test_ring_cameras_circle_the_room_centre():
    spec = Rooms(10, SIZE).scene(2, 5)
    xz = spec.cameras[:, [0, 2]]
    np.testing.assert_allclose(np.linalg.norm(xz, axis=1), shared_room.RING_RADIUS)
    np.testing.assert_allclose(spec.cameras[:, 1], shared_room.RING_HEIGHT)
    from gqn.renderer import camera

    np.testing.assert_allclose(spec.cameras, camera.look_at(spec.cameras[:, :3], shared_room.RING_TARGET))
    assert np.ptp(spec.cameras[:, 3]) > 1.0  # views spread over the ring


def test_sky_shows_above_the_walls_in_ring_views(renderer):
    images = renderer.render([Rooms(10, SIZE).scene(0, i) for i in range(8)]).reshape(-1, SIZE, SIZE, 3)
    sky = sky_mask(images)
    assert sky[:, 0].all()                     # the top row is sky in every view
    assert not sky[:, -1].any()                # the bottom row never is (floor)
    assert sky[:, :2, SIZE // 2].all()         # a band, not a line
    below = np.cumsum(~sky, axis=1) > 0        # at or below the first non-sky pixel of each column
    assert not np.any(sky & below)             # walls and floor never have sky below them


def test_floor_texture_differs_between_seeds(renderer):
    """The floor seen from above (objects removed, flat light): the same seed gives the same floor, other
    seeds other textures or colours."""
    family = Rooms(1, SIZE)
    specs = [unlit(without_objects(family.scene(seed, 0)), TOP_DOWN) for seed in (0, 1, 2, 3, 0)]
    floors = renderer.render(specs)[:, 0].astype(float)
    np.testing.assert_array_equal(floors[0], floors[4])
    assert all(floor.std() > 8 for floor in floors)  # textured, not flat
    for a in range(4):
        for b in range(a + 1, 4):
            assert np.abs(floors[a] - floors[b]).mean() > 15, (a, b)


def test_free_cameras_stay_inside_the_room_and_away_from_objects():
    family = Rooms(10, SIZE, camera="free", objects=(1, 9))
    limit = shared_room.ROOM_HALF - shared_room.FREE_MARGIN
    for i in range(200):
        spec = family.scene(0, i)
        cams = spec.cameras
        assert np.abs(cams[:, [0, 2]]).max() <= limit
        assert np.all((cams[:, 1] >= shared_room.FREE_HEIGHT[0]) & (cams[:, 1] <= shared_room.FREE_HEIGHT[1]))
        assert shared_room.FREE_HEIGHT[1] < shared_room.WALL_HEIGHT
        assert np.all((cams[:, 4] >= shared_room.FREE_PITCH[0]) & (cams[:, 4] <= shared_room.FREE_PITCH[1]))
        centres, radii = footprints(spec)
        gaps = np.linalg.norm(cams[:, None, [0, 2]] - centres[None], axis=-1) - radii[None]
        assert gaps.min() > shared_room.FREE_CLEARANCE
        assert shared_room.view_depth(cams).min() >= shared_room.FREE_DEPTH


def test_free_views_are_never_one_flat_colour(renderer):
    family = Rooms(10, SIZE, camera="free")
    images = np.concatenate([renderer.render([family.scene(4, i) for i in range(start, start + 16)])
                             for start in (0, 16)]).reshape(-1, SIZE * SIZE, 3)
    for view in images:
        assert view.astype(float).std(axis=0).max() > 4
        assert len(np.unique(view, axis=0)) > 10
    assert not sky_mask(images).all(axis=1).any()


def test_stored_family_names_the_camera():
    assert stored_family("rooms", {"camera": "free"}) == "rooms-free"
    assert stored_family("rooms", {}) == "rooms-ring"
    assert stored_family("shepard-matzler", {"parts": 7}) == "shepard-matzler"
    assert RenderConfig("rooms", {"camera": "free"}, 10, 64, 0).stored_family == "rooms-free"


def test_bad_parameters_are_refused():
    with pytest.raises(GqnError, match="camera"):
        Rooms(10, SIZE, camera="sideways")
    with pytest.raises(GqnError, match="MIN <= MAX <= 9"):
        Rooms(10, SIZE, objects=[3, 12])


@pytest.mark.parametrize("args, message", [
    (["--camera", "sideways"], "'sideways' is not one of"),
    (["--objects", "2-12"], "1 <= MIN <= MAX <= 9"),
    (["--objects", "0"], "1 <= MIN <= MAX"),
])
def test_bad_cli_arguments_give_one_line_errors(tmp_path, args, message):
    assert_one_line_error(run_cli("render", "rooms", "--out", tmp_path / "x", *args), message)
    assert not (tmp_path / "x").exists()


def test_online_training_renders_and_saves_rooms_free(tmp_path):
    train = ["train", "--render", "rooms", "--render-size", 16, "--render-views", 3, "--render-workers", 1,
             "--iterations", 2, "--batch-size", 2, "--hidden", 8, "--steps", 2, "--canvas", 8, "--r-channels", 8,
             "--representation", "pool", "--no-progress"]
    run_cli(*train, "--render-param", "camera=free", "--save-rendered", tmp_path / "saved", "--out", tmp_path / "run",
            check=True)
    with Dataset(tmp_path / "saved") as ds:
        assert ds.family == "rooms-free" and ds.num_scenes == 4
    result = run_cli(*train, "--render-param", "camera=sideways", "--out", tmp_path / "bad")
    assert_one_line_error(result, "camera must be one of ring, free")
