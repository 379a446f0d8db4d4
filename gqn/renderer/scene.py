"""The scene model: what a scene family produces and a renderer draws, in numpy arrays only.

A family turns (parameters, seed, scene index) into one ``SceneSpec``; the renderer (``gqn.renderer.tiled``,
OpenGL through EGL) draws a batch of them. Nothing here imports OpenGL, pyrender or trimesh, so scenes can be
sampled, inspected and tested without a graphics stack.

Conventions (the same as ``gqn.renderer.camera`` and the shard format): world y is up; a camera is a raw
pose (x, y, z, yaw, pitch) with yaw = atan2(d_x, d_z) and pitch = asin(d_y) of its unit look direction d and
no roll; a model matrix maps a mesh kind's own coordinates to world coordinates.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Instances:
    """Objects of one mesh kind in one scene: poses (n, 4, 4), RGBA colours (n, 4), texture (n, 3).

    ``texture`` holds (layer, u scale, v scale); layer -1 means untextured.
    """

    poses: np.ndarray
    colors: np.ndarray
    texture: np.ndarray | None = None

    def __post_init__(self):
        if self.texture is None:
            self.texture = np.tile([-1.0, 1.0, 1.0], (len(self.poses), 1))


@dataclass
class SceneSpec:
    """Everything the renderer needs for one scene: objects per mesh kind, cameras and light."""

    cameras: np.ndarray                       # (V, 5) raw poses x, y, z, yaw, pitch
    objects: dict[str, Instances]
    light_direction: np.ndarray               # (3,) direction the light travels
    ambient: float = 0.3
    light_color: tuple = (1.0, 1.0, 1.0)
    extras: dict = field(default_factory=dict)  # per-scene metadata stored in the shards (e.g. labels)
