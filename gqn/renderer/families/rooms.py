"""Rooms (GQN paper): objects of six shapes on a 3x3 grid in a textured room, seen by a ring or free camera.

Stored in shards as family ``rooms-ring`` or ``rooms-free`` (see ``families.stored_family``).
"""
from __future__ import annotations

import numpy as np
import pyrender
import trimesh

from gqn.errors import GqnError
from gqn.renderer.families.room import (GRID, RoomFamily, free_cameras, grid_positions, poses, random_colors,
                                        ring_cameras, rotations_y)
from gqn.renderer.tiled import Instances

CAMERAS = ("ring", "free")
OBJECT_SIZE = (0.5, 0.75)   # largest extent of an object; its footprint fits a square of this side

_UPRIGHT = trimesh.transformations.rotation_matrix(-np.pi / 2, [1, 0, 0])  # trimesh's z axis -> our y (up)
SHAPES = {
    "box": lambda: trimesh.creation.box((1.0, 1.0, 1.0)),
    "sphere": lambda: trimesh.creation.icosphere(subdivisions=2, radius=0.5),
    "cylinder": lambda: trimesh.creation.cylinder(0.5, 1.0, sections=24, transform=_UPRIGHT),
    "capsule": lambda: trimesh.creation.capsule(0.4, 0.3, count=[16, 12], transform=_UPRIGHT),
    "icosahedron": trimesh.creation.icosahedron,
    "cone": lambda: trimesh.creation.cone(0.5, 1.0, sections=24, transform=_UPRIGHT),
}
FLAT_SHADED = ("box", "icosahedron")


def shape_mesh(name: str) -> trimesh.Trimesh:
    """Shape ``name`` standing on the origin: centred in x and z, bottom at y = 0, largest extent 1."""
    mesh = SHAPES[name]()
    low, high = mesh.bounds
    mesh.apply_translation([-(low[0] + high[0]) / 2, -low[1], -(low[2] + high[2]) / 2])
    mesh.apply_scale(1.0 / mesh.extents.max())
    return mesh if name in FLAT_SHADED else mesh.smooth_shaded


def object_count(objects) -> tuple[int, int]:
    """``objects`` as (min, max): a count K or a pair [MIN, MAX], within one object per grid cell."""
    low, high = (objects, objects) if np.isscalar(objects) else tuple(objects)
    if not 1 <= low <= high <= len(GRID):
        raise GqnError(f"objects must be MIN-MAX with 1 <= MIN <= MAX <= {len(GRID)}, not {objects}")
    return int(low), int(high)


class Rooms(RoomFamily):
    name = "rooms"

    def __init__(self, views: int, size: int, camera: str = "ring", objects=(1, 3), object_rotation: bool = True):
        if camera not in CAMERAS:
            raise GqnError(f"rooms: camera must be one of {', '.join(CAMERAS)}, not {camera!r}")
        super().__init__(views, size, camera=camera, objects=objects, object_rotation=object_rotation)
        self.camera = camera
        self.objects = object_count(objects)
        self.object_rotation = bool(object_rotation)

    def meshes(self):
        shapes = {name: pyrender.Mesh.from_trimesh(shape_mesh(name), smooth=name not in FLAT_SHADED)
                  for name in SHAPES}
        return {**shapes, **super().meshes()}  # objects first: early depth tests skip the room behind them

    def sample(self, rng):
        n = int(rng.integers(self.objects[0], self.objects[1] + 1))
        xz = grid_positions(rng, n)
        kinds = rng.integers(len(SHAPES), size=n)
        sizes = rng.uniform(*OBJECT_SIZE, n)
        yaw = rng.uniform(0, 2 * np.pi, n) * self.object_rotation
        colors = random_colors(rng, n)
        placed = poses(rotations_y(yaw), np.repeat(sizes[:, None], 3, 1), np.insert(xz, 1, 0.0, axis=1))
        objects = {name: Instances(placed[kinds == k], colors[kinds == k])
                   for k, name in enumerate(SHAPES) if np.any(kinds == k)}
        if self.camera == "ring":
            return self.room_scene(rng, objects, lambda r: ring_cameras(r, self.views))
        return self.room_scene(rng, objects, lambda r: free_cameras(r, self.views, xz, sizes * np.sqrt(0.5)))
