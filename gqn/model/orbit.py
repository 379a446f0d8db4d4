"""Camera orbits around a scene, for rendering it with the model from viewpoints no camera took.

Pose convention (SPEC section 2): world y axis up; a camera at p looking at the origin looks along
d = -p / |p|, with yaw = atan2(d_x, d_z) and pitch = asin(d_y).
"""
from __future__ import annotations

import numpy as np


def orbit_cameras(cameras: np.ndarray, frames: int) -> np.ndarray:
    """Raw poses (frames, 5) = x, y, z, yaw, pitch on a horizontal circle around the y axis, looking at the
    origin, at the mean height and mean horizontal distance of a scene's own ``cameras`` (V, 5); the orbit
    starts at the first camera's azimuth."""
    x, y, z = cameras[:, 0], cameras[:, 1], cameras[:, 2]
    radius, height = float(np.mean(np.hypot(x, z))), float(np.mean(y))
    angles = np.arctan2(x[0], z[0]) + np.linspace(0, 2 * np.pi, frames, endpoint=False)
    position = np.stack([radius * np.sin(angles), np.full(frames, height), radius * np.cos(angles)], -1)
    direction = -position / np.linalg.norm(position, axis=1, keepdims=True)
    yaw = np.arctan2(direction[:, 0], direction[:, 2])
    pitch = np.arcsin(direction[:, 1])
    return np.concatenate([position, yaw[:, None], pitch[:, None]], 1).astype(np.float32)
