"""Colour conversions shared by the procedural textures and the scene families."""
from __future__ import annotations

import numpy as np


def hsv_to_rgb(h, s, v) -> np.ndarray:
    """RGB (..., 3) in [0, 1] of hue, saturation and value (arrays (...) or numbers in [0, 1])."""
    h, s, v = (np.asarray(x, float)[..., None] for x in (h, s, v))
    k = np.mod(np.array([5.0, 3.0, 1.0]) + h * 6, 6)
    return v - v * s * np.clip(np.minimum(k, 4 - k), 0, 1)
