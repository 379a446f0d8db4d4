"""Camera poses and projections, vectorised over views.

Convention (SPEC section 2): world y is up; a camera at position p looks along the unit vector
d = (target - p) / |target - p|, with yaw = atan2(d_x, d_z) and pitch = asin(d_y). The raw pose stored in
the shards is (x, y, z, yaw, pitch). Matrices follow OpenGL: the camera looks down its own -z axis.
"""
from __future__ import annotations

import numpy as np


def look_at(positions: np.ndarray, target=(0.0, 0.0, 0.0)) -> np.ndarray:
    """Raw poses (n, 5) of cameras at ``positions`` (n, 3) looking at ``target``."""
    positions = np.asarray(positions, dtype=np.float64)
    d = np.asarray(target, dtype=np.float64) - positions
    d /= np.linalg.norm(d, axis=-1, keepdims=True)
    yaw = np.arctan2(d[:, 0], d[:, 2])
    pitch = np.arcsin(np.clip(d[:, 1], -1.0, 1.0))
    return np.concatenate([positions, yaw[:, None], pitch[:, None]], axis=1)


def directions(yaw: np.ndarray, pitch: np.ndarray) -> np.ndarray:
    """Unit look directions (n, 3) for yaw and pitch (inverse of the convention above)."""
    cp = np.cos(pitch)
    return np.stack([np.sin(yaw) * cp, np.sin(pitch), np.cos(yaw) * cp], axis=-1)


def view_matrices(poses: np.ndarray) -> np.ndarray:
    """World-to-camera matrices (n, 4, 4) for raw poses (n, 5); roll is zero (the image's up is world y)."""
    poses = np.asarray(poses, dtype=np.float64)
    f = directions(poses[:, 3], poses[:, 4])
    yaw = poses[:, 3]
    right = np.stack([-np.cos(yaw), np.zeros(len(f)), np.sin(yaw)], axis=-1)  # cross(f, y) / |.|
    up = np.cross(right, f)
    rot = np.stack([right, up, -f], axis=1)  # rows: camera axes in world coordinates
    m = np.zeros((len(poses), 4, 4))
    m[:, :3, :3] = rot
    m[:, :3, 3] = -np.einsum("nij,nj->ni", rot, poses[:, :3])
    m[:, 3, 3] = 1.0
    return m


def camera_to_world(poses: np.ndarray) -> np.ndarray:
    """Camera-to-world matrices (n, 4, 4): the node pose pyrender expects for a camera."""
    return np.linalg.inv(view_matrices(poses))


def orthographic(half_extent: float, near: float, far: float) -> np.ndarray:
    """Orthographic projection showing [-half_extent, half_extent] in x and y."""
    m = np.eye(4)
    m[0, 0] = m[1, 1] = 1.0 / half_extent
    m[2, 2] = -2.0 / (far - near)
    m[2, 3] = -(far + near) / (far - near)
    return m


def perspective(fov_y: float, near: float, far: float, aspect: float = 1.0) -> np.ndarray:
    """Perspective projection with vertical field of view ``fov_y`` (radians)."""
    t = 1.0 / np.tan(fov_y / 2)
    m = np.zeros((4, 4))
    m[0, 0] = t / aspect
    m[1, 1] = t
    m[2, 2] = (far + near) / (near - far)
    m[2, 3] = 2 * far * near / (near - far)
    m[3, 2] = -1.0
    return m


def random_sphere_positions(rng: np.random.Generator, n: int, radius: float) -> np.ndarray:
    """``n`` points uniformly distributed on a sphere of ``radius`` around the origin."""
    v = rng.normal(size=(n, 3))
    return radius * v / np.linalg.norm(v, axis=1, keepdims=True)
