"""Camera orbits around a scene, for rendering it with the model from viewpoints no camera took.

Pose convention (SPEC section 2): world y axis up; a camera at p looking at a target t looks along
d = (t - p) / |t - p|, with yaw = atan2(d_x, d_z) and pitch = asin(d_y) (``gqn.renderer.camera``, numpy only,
imported through the renderer's door ``gqn.renderer.stream``).
"""
from __future__ import annotations

import numpy as np

from gqn.renderer.stream import directions, look_at


def look_target(cameras: np.ndarray) -> np.ndarray:
    """The point (3,) nearest to every camera's line of sight in the least-squares sense: what a scene's
    cameras (V, 5) look at (the origin for Shepard-Matzler, the ring's target for rooms-ring)."""
    d = directions(cameras[:, 3].astype(np.float64), cameras[:, 4].astype(np.float64))
    across = np.eye(3)[None] - d[:, :, None] * d[:, None, :]   # projects onto the plane across each ray
    target, *_ = np.linalg.lstsq(across.sum(0), np.einsum("nij,nj->i", across, cameras[:, :3]), rcond=None)
    return target


def orbit_cameras(cameras: np.ndarray, frames: int) -> np.ndarray:
    """Raw poses (frames, 5) = x, y, z, yaw, pitch on a horizontal circle around the vertical axis through
    ``look_target(cameras)``, looking at that target, at the mean height and mean horizontal distance of a
    scene's own ``cameras`` (V, 5); the orbit starts at the first camera's azimuth."""
    target = look_target(cameras)
    x, z = cameras[:, 0] - target[0], cameras[:, 2] - target[2]
    radius, height = float(np.mean(np.hypot(x, z))), float(np.mean(cameras[:, 1]))
    angles = np.arctan2(x[0], z[0]) + np.linspace(0, 2 * np.pi, frames, endpoint=False)
    positions = np.stack([target[0] + radius * np.sin(angles), np.full(frames, height),
                          target[2] + radius * np.cos(angles)], -1)
    return look_at(positions, target).astype(np.float32)
