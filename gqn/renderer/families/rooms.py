"""Rooms (GQN paper): objects of six shapes on a 3x3 grid in a textured room, seen by a ring or free camera.

Stored in shards as family ``rooms-ring`` or ``rooms-free`` (``FamilySpec.stored_by``).
"""
from __future__ import annotations

import click
import numpy as np

from gqn.errors import GqnError
from gqn.paramtypes import MinMax
from gqn.renderer.families.base import FamilySpec, Param, import_pyrender
from gqn.renderer.families.shared_room import (GRID, RoomFamily, free_cameras, grid_positions, poses,
                                               random_colors, ring_cameras, rotations_y)
from gqn.renderer.scene import Instances

CAMERAS = ("ring", "free")
OBJECT_SIZE = (0.5, 0.75)   # largest extent of an object; its footprint fits a square of this side

SHAPES = ("box", "sphere", "cylinder", "capsule", "icosahedron", "cone")
FLAT_SHADED = ("box", "icosahedron")


def _trimesh_shape(name: str):
    """Shape ``name`` as trimesh makes it (imported here: family modules load without it, see base.py)."""
    import trimesh

    upright = trimesh.transformations.rotation_matrix(-np.pi / 2, [1, 0, 0])  # trimesh's z axis -> our y (up)
    make = {
        "box": lambda: trimesh.creation.box((1.0, 1.0, 1.0)),
        "sphere": lambda: trimesh.creation.icosphere(subdivisions=2, radius=0.5),
        "cylinder": lambda: trimesh.creation.cylinder(0.5, 1.0, sections=24, transform=upright),
        "capsule": lambda: trimesh.creation.capsule(0.4, 0.3, count=[16, 12], transform=upright),
        "icosahedron": trimesh.creation.icosahedron,
        "cone": lambda: trimesh.creation.cone(0.5, 1.0, sections=24, transform=upright),
    }
    return make[name]()


def shape_mesh(name: str):
    """Shape ``name`` (a trimesh.Trimesh) standing on the origin: centred in x and z, bottom at y = 0, largest
    extent 1."""
    mesh = _trimesh_shape(name)
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
    spec = FamilySpec(
        "rooms", views=10,
        summary="Objects (box, sphere, cylinder, capsule, icosahedron, cone) in a room with textured floor and "
                "walls.",
        examples=("gqn render rooms --scenes 2M --out data/rooms-ring/train",
                  "gqn render rooms --camera free --no-object-rotation --scenes 2M --out data/rooms-free/train"),
        params=(
            Param("camera", click.Choice(CAMERAS), "ring",
                  "ring: on a circle at a fixed height looking at the room centre; free: anywhere in the room, "
                  "random yaw and pitch. Stored as family rooms-ring / rooms-free."),
            Param("objects", MinMax(), "1-3", "Objects per scene, drawn uniformly from MIN-MAX (at most 9).",
                  store=list),
            Param("object_rotation", bool, True, "Turn each object by a random yaw."),
        ),
        stored_by="camera",
    )

    def __init__(self, views: int, size: int, camera: str = "ring", objects=(1, 3), object_rotation: bool = True):
        if camera not in CAMERAS:
            raise GqnError(f"rooms: camera must be one of {', '.join(CAMERAS)}, not {camera!r}")
        super().__init__(views, size, camera=camera, objects=objects, object_rotation=object_rotation)
        self.camera = camera
        self.objects = object_count(objects)
        self.object_rotation = bool(object_rotation)

    def meshes(self):
        pyrender = import_pyrender()
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
