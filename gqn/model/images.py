"""The model's image convention: uint8 (..., H, W, 3) frames <-> float32 (..., 3, H, W) in [-0.5, 0.5)."""
from __future__ import annotations

import numpy as np

LEVELS = 256    # 8-bit data: value v enters as v / 256 - 0.5, the lower edge of a bin of width 1/256


def to_model(images, xp=np):
    """uint8 (..., H, W, 3) -> float32 (..., 3, H, W) = value / 256 - 0.5 (on the device of ``xp``)."""
    x = xp.asarray(images).astype(np.float32) * np.float32(1 / LEVELS) - np.float32(0.5)
    return xp.ascontiguousarray(xp.moveaxis(x, -1, -3))


def to_uint8(x) -> np.ndarray:
    """Host float (..., 3, H, W) model output -> uint8 (..., H, W, 3): the 1/256 bin each value falls in."""
    x = np.moveaxis(np.asarray(x), -3, -1)
    return np.clip(np.floor((x + 0.5) * LEVELS), 0, LEVELS - 1).astype(np.uint8)


def model_inputs(batch, device):
    """A loader ``Batch`` sent to ``device`` in the model's convention (images are sent as uint8)."""
    xp = device.xp
    return (to_model(device.send(batch.context_images), xp), device.send(batch.context_viewpoints),
            to_model(device.send(batch.query_image), xp), device.send(batch.query_viewpoint))
