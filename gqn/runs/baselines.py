"""Baselines a prediction has to beat, measured on the same scenes and query views as the model.

* mean image: predict every query with the training set's mean image (what a model that ignores the context
  and the viewpoint converges to under squared error);
* nearest context view: predict the query with the context image whose camera looks in the direction
  closest to the query camera's (what copying the best-placed observation gives).

Images are in the model's convention (float, [-0.5, 0.5), channels first); this module needs numpy only.
"""
from __future__ import annotations

import numpy as np

from gqn.model.images import to_model
from gqn.renderer.stream import directions
from gqn.shards import Dataset

MEAN_IMAGE_SCENES = 2048    # scenes averaged for the mean image: its error is far below the MSEs compared


def mean_image(dataset: Dataset, scenes: int = MEAN_IMAGE_SCENES, chunk: int = 256) -> np.ndarray:
    """The mean image (3, H, W) over every view of the first ``scenes`` scenes, in the model's convention."""
    scenes = min(scenes, dataset.num_scenes)
    total = np.zeros((dataset.height, dataset.width, 3), np.float64)
    for start in range(0, scenes, chunk):
        images = dataset.read(start, min(start + chunk, scenes), ("images",))["images"]
        total += images.sum(axis=(0, 1), dtype=np.float64)
    return to_model(total / (scenes * dataset.views))


def look_directions(viewpoints: np.ndarray) -> np.ndarray:
    """Unit look directions (..., 3) from 7-D viewpoints (x, y, z, cos yaw, sin yaw, cos pitch, sin pitch)."""
    yaw = np.arctan2(viewpoints[..., 4], viewpoints[..., 3])
    pitch = np.arctan2(viewpoints[..., 6], viewpoints[..., 5])
    return directions(yaw, pitch)


def nearest_context(context_viewpoints: np.ndarray, query_viewpoint: np.ndarray) -> np.ndarray:
    """Index (B,) of the context view (B, K, 7) whose look direction is closest to the query's (B, 7)."""
    cosine = np.einsum("bkd,bd->bk", look_directions(context_viewpoints), look_directions(query_viewpoint))
    return np.argmax(cosine, axis=1)


def baseline_errors(batch, mean: np.ndarray | None) -> dict[str, np.ndarray]:
    """Per-scene MSE (B,) of the baselines for a loader ``Batch``: the nearest context view's, and the mean
    image's when ``mean`` is given."""
    query = to_model(batch.query_image)
    nearest = nearest_context(batch.context_viewpoints, batch.query_viewpoint)
    copied = to_model(batch.context_images[np.arange(len(nearest)), nearest])
    errors = {"nearest_view_mse": ((query - copied) ** 2).mean(axis=(1, 2, 3))}
    if mean is not None:
        errors["mean_image_mse"] = ((query - mean) ** 2).mean(axis=(1, 2, 3))
    return errors
