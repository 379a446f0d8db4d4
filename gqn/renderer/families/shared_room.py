"""The room shared by the families set in it (rooms, mnist-dice): textured floor and walls, objects on a
3x3 grid, ring or free cameras, a randomised light and a sky-coloured background.

Every flat surface (floor, walls, die faces) is an instance of one textured unit quad, so a whole room costs
one mesh kind and its textures are layers of the texture array chosen per instance.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from gqn.renderer import camera
from gqn.renderer.colors import hsv_to_rgb
from gqn.renderer.families.base import Family, import_pyrender
from gqn.renderer.scene import Instances, SceneSpec
from gqn.renderer.textures import PATTERNS, VARIANTS, texture_bank

ROOM_HALF = 3.0             # the floor spans [-3, 3] x [-3, 3]; y is up
WALL_HEIGHT = 1.0
SKY = (0.62, 0.80, 0.95)
FOV_Y = np.radians(45.0)
NEAR, FAR = 0.05, 20.0
GRID_SPACING = 1.4          # the 3x3 grid's cell centres are at -1.4, 0, 1.4 in x and z
GRID_JITTER = 0.12          # uniform offset of an object from its cell centre, per axis
GRID = np.stack(np.meshgrid([-GRID_SPACING, 0.0, GRID_SPACING], [-GRID_SPACING, 0.0, GRID_SPACING]),
                -1).reshape(9, 2)
RING_RADIUS = 2.5
RING_HEIGHT = 1.4
RING_TARGET = (0.0, 0.6, 0.0)
FREE_MARGIN = 0.2           # free cameras keep this far from the walls
FREE_HEIGHT = (0.4, 0.9)    # below the wall tops: every view has floor or wall in its lower half
FREE_PITCH = np.radians([-35.0, 10.0])
FREE_CLEARANCE = 0.9        # free cameras keep this far from an object's footprint
FREE_DEPTH = 1.5            # and look at least this far before meeting the floor or a wall
TEXTURE_REPEATS = (2, 5)    # the floor texture repeats 2-4 times across the room (walls alike)


def rotations_y(yaw: np.ndarray) -> np.ndarray:
    """(n, 3, 3) rotations by ``yaw`` about the y axis (z turns towards x)."""
    c, s = np.cos(yaw), np.sin(yaw)
    z, o = np.zeros_like(yaw), np.ones_like(yaw)
    return np.stack([np.stack([c, z, s], -1), np.stack([z, o, z], -1), np.stack([-s, z, c], -1)], -2)


def poses(rotation: np.ndarray, scale: np.ndarray, position: np.ndarray) -> np.ndarray:
    """(n, 4, 4) model matrices: scale (n, 3) along the local axes, then rotate (n, 3, 3), then move."""
    m = np.zeros((len(position), 4, 4))
    m[:, :3, :3] = rotation * np.asarray(scale)[:, None, :]
    m[:, :3, 3] = position
    m[:, 3, 3] = 1.0
    return m


def quad_mesh():
    """The unit square (a pyrender.Mesh) in the local xy plane facing +z; texture u runs along +x and v down
    from the top edge (+y), so a texture shows upright, unmirrored, to a viewer in front of it."""
    pyrender = import_pyrender()
    positions = np.array([[-0.5, 0.5, 0], [0.5, 0.5, 0], [0.5, -0.5, 0], [-0.5, -0.5, 0]], np.float32)
    uv = np.array([[0, 0], [1, 0], [1, 1], [0, 1]], np.float32)
    normals = np.tile(np.float32([0, 0, 1]), (4, 1))
    return pyrender.Mesh([pyrender.Primitive(positions, normals, texcoord_0=uv,
                                             indices=np.array([[3, 2, 1], [3, 1, 0]]),
                                             mode=pyrender.constants.GLTF.TRIANGLES)])


def random_colors(rng: np.random.Generator, n: int) -> np.ndarray:
    """(n, 4) RGBA object colours: any hue, saturated."""
    rgb = hsv_to_rgb(rng.random(n), rng.uniform(0.5, 1.0, n), rng.uniform(0.6, 1.0, n))
    return np.hstack([rgb, np.ones((n, 1))])


def grid_positions(rng: np.random.Generator, n: int) -> np.ndarray:
    """(n, 2) floor positions (x, z) in ``n`` different cells of the 3x3 grid, jittered."""
    cells = rng.choice(len(GRID), n, replace=False)
    return GRID[cells] + rng.uniform(-GRID_JITTER, GRID_JITTER, (n, 2))


def ring_cameras(rng: np.random.Generator, views: int) -> np.ndarray:
    """Cameras on a horizontal ring at a fixed height, at random angles, looking at the room centre."""
    angle = rng.uniform(0, 2 * np.pi, views)
    positions = np.stack([RING_RADIUS * np.sin(angle), np.full(views, RING_HEIGHT),
                          RING_RADIUS * np.cos(angle)], -1)
    return camera.look_at(positions, RING_TARGET)


def view_depth(cameras: np.ndarray) -> np.ndarray:
    """How far each camera (raw poses (n, 5)) looks along its line of sight before meeting the floor or a
    wall (walls taken as infinitely tall)."""
    d = camera.directions(cameras[:, 3], cameras[:, 4])
    with np.errstate(divide="ignore", invalid="ignore"):
        floor = np.where(d[:, 1] < 0, cameras[:, 1] / -d[:, 1], np.inf)
        walls = (ROOM_HALF - np.sign(d[:, [0, 2]]) * cameras[:, [0, 2]]) / np.abs(d[:, [0, 2]])
    return np.minimum(floor, walls.min(axis=1))


def free_cameras(rng: np.random.Generator, views: int, obstacles: np.ndarray, radii: np.ndarray) -> np.ndarray:
    """Cameras anywhere inside the room, with random yaw and pitch in FREE_PITCH, that keep FREE_CLEARANCE
    from every object footprint (centres ``obstacles`` (n, 2), radii (n,)) and see at least FREE_DEPTH
    far (so no view is filled by one patch of wall or floor). Candidates are drawn in batches and the good
    ones kept: the result is a pure function of ``rng``."""
    limit = ROOM_HALF - FREE_MARGIN
    found, count = [], 0
    while count < views:
        n = 8 * views
        candidates = np.stack([rng.uniform(-limit, limit, n), rng.uniform(*FREE_HEIGHT, n),
                               rng.uniform(-limit, limit, n), rng.uniform(-np.pi, np.pi, n),
                               rng.uniform(*FREE_PITCH, n)], -1)
        gaps = np.linalg.norm(candidates[:, None, [0, 2]] - obstacles[None], axis=-1) - radii[None]
        good = np.all(gaps > FREE_CLEARANCE, axis=1) & (view_depth(candidates) >= FREE_DEPTH)
        found.append(candidates[good])
        count += good.sum()
    return np.concatenate(found)[:views]


def _surface_poses() -> np.ndarray:
    """(5, 4, 4) quad poses of the floor and the four walls (facing into the room)."""
    floor = poses(np.array([[[1, 0, 0], [0, 0, 1], [0, -1, 0]]], float), [[2 * ROOM_HALF] * 3],
                  np.zeros((1, 3)))
    side = np.arange(4) * np.pi / 2  # the wall in direction (sin a, 0, cos a), turned to face the centre
    centres = np.stack([ROOM_HALF * np.sin(side), np.full(4, WALL_HEIGHT / 2), ROOM_HALF * np.cos(side)], -1)
    walls = poses(rotations_y(side + np.pi), np.tile([2 * ROOM_HALF, WALL_HEIGHT, 1.0], (4, 1)), centres)
    return np.concatenate([floor, walls])


SURFACES = _surface_poses()


def room_surfaces(rng: np.random.Generator) -> Instances:
    """Floor and walls: a bank layer and a tint for the floor and one for all walls; texels stay square."""
    patterns = rng.choice(len(PATTERNS), 2, replace=False)  # floor and walls look different
    layers = patterns * VARIANTS + rng.integers(VARIANTS, size=2)
    tints = 1.0 - rng.uniform(0.0, 0.3, (2, 3))
    repeats = rng.integers(*TEXTURE_REPEATS, size=2).astype(float)
    wall_v = repeats[1] * WALL_HEIGHT / (2 * ROOM_HALF)
    texture = np.array([[layers[0], repeats[0], repeats[0]]] + [[layers[1], repeats[1], wall_v]] * 4)
    colors = np.hstack([np.vstack([tints[:1], np.repeat(tints[1:], 4, axis=0)]), np.ones((5, 1))])
    return Instances(SURFACES, colors, texture)


def random_light(rng: np.random.Generator) -> dict:
    """A directional light from above (elevation 35-75 degrees, any azimuth), slightly tinted, plus ambient."""
    elevation, azimuth = rng.uniform(np.radians(35), np.radians(75)), rng.uniform(0, 2 * np.pi)
    direction = -np.array([np.cos(elevation) * np.sin(azimuth), np.sin(elevation),
                           np.cos(elevation) * np.cos(azimuth)])
    color = rng.uniform(0.6, 0.9) * (1.0 - rng.uniform(0.0, 0.15, 3))
    return {"light_direction": direction, "ambient": rng.uniform(0.35, 0.55), "light_color": tuple(color)}


def merge(*instances: Instances) -> Instances:
    """Instances of one mesh kind from several groups, as one group."""
    return Instances(np.concatenate([i.poses for i in instances]), np.concatenate([i.colors for i in instances]),
                     np.concatenate([i.texture for i in instances]))


class RoomFamily(Family):
    """Base of the families set in the room: perspective camera, sky, the texture bank, the quad mesh.

    Subclasses draw their contents, then call ``room_scene`` to add the room, the light and the cameras.
    """

    background = SKY

    def projection(self):
        return camera.perspective(FOV_Y, NEAR, FAR)

    def meshes(self):
        return {"quad": quad_mesh()}

    def textures(self):
        return texture_bank()

    @staticmethod
    def room_scene(rng: np.random.Generator, objects: dict[str, Instances], cameras: Callable,
                   extras: dict | None = None) -> SceneSpec:
        """The scene: ``objects`` (any ``quad`` instances join the room's) in a room and light drawn from
        ``rng``, seen by ``cameras(rng)``, drawn last so that a scene's content does not depend on its
        number of views."""
        surfaces = room_surfaces(rng)
        quads = merge(surfaces, objects["quad"]) if "quad" in objects else surfaces
        light = random_light(rng)
        return SceneSpec(cameras=cameras(rng), objects={**objects, "quad": quads}, extras=extras or {}, **light)
