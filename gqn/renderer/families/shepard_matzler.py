"""Shepard-Matzler polycubes (GQN paper): a random walk of face-adjacent cubes, orthographic views."""
from __future__ import annotations

import colorsys

import click
import numpy as np

from gqn.renderer import camera
from gqn.renderer.families.base import Family, FamilySpec, Param, import_pyrender
from gqn.renderer.scene import Instances, SceneSpec

HUES = np.array([colorsys.hsv_to_rgb(h / 10, 0.85, 1.0) for h in range(10)])
STEPS = np.array([[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]])
HALF_EXTENT = 1.0       # the orthographic view shows [-1, 1] x [-1, 1] around the centre
CAMERA_DISTANCE = 2.0
LIGHT_DIRECTION = np.array([-0.35, -1.0, -0.55])  # direction the light travels: from above, front-left
AMBIENT = 0.35


def cube_edge(parts: int) -> float:
    """Edge length that keeps any polycube of ``parts`` cubes (worst case: a straight line) in view."""
    return 0.95 * HALF_EXTENT / np.sqrt(parts ** 2 / 4 + 0.5)


def random_walk(rng: np.random.Generator, parts: int) -> np.ndarray:
    """Integer grid cells (parts, 3) of a self-avoiding walk, each cube face-adjacent to the previous."""
    while True:
        cells = [np.zeros(3, int)]
        occupied = {(0, 0, 0)}
        for _ in range(parts - 1):
            free = [c for c in cells[-1] + STEPS if tuple(c) not in occupied]
            if not free:
                break
            nxt = free[rng.integers(len(free))]
            cells.append(nxt)
            occupied.add(tuple(nxt))
        if len(cells) == parts:
            return np.array(cells)


class ShepardMatzler(Family):
    spec = FamilySpec(
        "shepard-matzler", views=15,
        summary="Shepard-Matzler polycubes seen by an orthographic camera on a sphere.",
        examples=("gqn render shepard-matzler --scenes 2M --parts 5 --out data/sm5/train",),
        params=(Param("parts", click.IntRange(2, 20), 5, "Cubes per polycube (the GQN datasets use 5 and 7)."),),
    )

    def __init__(self, views: int, size: int, parts: int = 5):
        super().__init__(views, size, parts=parts)
        self.parts = parts
        self.edge = cube_edge(parts)

    def meshes(self):
        import trimesh

        pyrender = import_pyrender()
        return {"cube": pyrender.Mesh.from_trimesh(trimesh.creation.box((1.0, 1.0, 1.0)), smooth=False)}

    def projection(self):
        return camera.orthographic(HALF_EXTENT, 0.1, 2 * CAMERA_DISTANCE + 2)

    def sample(self, rng):
        cells = random_walk(rng, self.parts).astype(float)
        centres = (cells - cells.mean(axis=0)) * self.edge
        poses = np.tile(np.diag([self.edge, self.edge, self.edge, 1.0]), (self.parts, 1, 1))
        poses[:, :3, 3] = centres
        colors = np.hstack([HUES[rng.integers(len(HUES), size=self.parts)], np.ones((self.parts, 1))])
        cameras = camera.look_at(camera.random_sphere_positions(rng, self.views, CAMERA_DISTANCE))
        return SceneSpec(cameras=cameras, objects={"cube": Instances(poses, colors)},
                         light_direction=LIGHT_DIRECTION, ambient=AMBIENT)
