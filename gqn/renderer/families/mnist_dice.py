"""MNIST-dice (GQN paper): a cube with six different handwritten digits on its faces, in a room, ring camera.

The die is six instances of the room's textured quad, one per face, each showing its own layer of the
texture array (the room's texture bank followed by the worker's digit bank). The shards' extra dataset
``labels`` (int8, (n, 6)) holds each face's digit class in FACE_ORDER (-1 when the source has no labels).
"""
from __future__ import annotations

import os

import click
import numpy as np

from gqn.renderer.digits import DigitBank
from gqn.renderer.families.base import FamilySpec, Param
from gqn.renderer.families.shared_room import RoomFamily, grid_positions, poses, ring_cameras, rotations_y
from gqn.renderer.scene import Instances
from gqn.renderer.textures import texture_bank

DIE_EDGE = 1.0
# Faces in the die's own frame (before its yaw): +x, -x, +y (top), -y (bottom), +z, -z. Side faces show
# their digit upright; the top face's digit has its top towards -z.
FACE_ORDER = ("+x", "-x", "+y", "-y", "+z", "-z")
_QUARTER = np.array([np.pi / 2, -np.pi / 2, 0.0, 0.0, 0.0, np.pi])


def _face_matrices() -> np.ndarray:
    """(6, 4, 4): the unit quad (facing +z) moved onto each face of the unit cube standing on the origin."""
    rotation = rotations_y(_QUARTER)
    tilt_up = np.array([[1, 0, 0], [0, 0, 1], [0, -1, 0]], float)    # +z -> +y, quad top -> -z
    tilt_down = np.array([[1, 0, 0], [0, 0, -1], [0, 1, 0]], float)  # +z -> -y
    rotation[2], rotation[3] = tilt_up, tilt_down
    normals = rotation[:, :, 2]
    return poses(rotation, np.ones((6, 3)), normals * 0.5 + [0.0, 0.5, 0.0])


FACES = _face_matrices()


class MnistDice(RoomFamily):
    spec = FamilySpec(
        "mnist-dice", views=10,
        summary="A die with six different handwritten digits on its faces, in a room, seen by a ring camera.",
        details="Each face's digit class is stored in the dataset `labels` (n, 6), faces in the order +x, -x, +y, "
                "-y, +z, -z of the die's own frame.",
        examples=("gqn render mnist-dice --digits mnist/train-images-idx3-ubyte.gz --out data/dice/train",),
        params=(Param("digits", click.Path(exists=True, dir_okay=False), None,
                      "MNIST IDX images (train-images-idx3-ubyte, gzipped or not; labels read from the labels file "
                      "next to it) or a .npz with x_train [default: scikit-learn's bundled 8x8 digits].",
                      store=lambda path: os.path.abspath(path) if path else None),),
    )
    extras = {"labels": ((6,), "int8")}

    def __init__(self, views: int, size: int, digits: str | None = None):
        super().__init__(views, size, digits=digits)
        self.bank = DigitBank.from_path(digits)
        self.first_digit_layer = len(texture_bank())

    def textures(self):
        return np.concatenate([texture_bank(), self.bank.textures])

    def sample(self, rng):
        (x, z), = grid_positions(rng, 1)
        yaw = rng.uniform(0, 2 * np.pi, 1)
        layers, labels = self.bank.faces(rng)
        tint = 1.0 - rng.uniform(0.0, 0.15, 3)
        die = poses(rotations_y(yaw), [[DIE_EDGE] * 3], [[x, 0.0, z]])[0]
        texture = np.stack([layers + self.first_digit_layer, np.ones(6), np.ones(6)], -1)
        faces = Instances(die @ FACES, np.tile([*tint, 1.0], (6, 1)), texture)
        return self.room_scene(rng, {"quad": faces}, lambda r: ring_cameras(r, self.views),
                               extras={"labels": labels.astype(np.int8)})
