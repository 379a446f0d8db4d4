"""`gqn info`: a dataset's description and a preview contact sheet."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from gqn.shards import Dataset, disk_size, write_error


def describe(directory) -> str:
    """Human-readable summary of a shard dataset."""
    with Dataset(directory) as ds:
        size = disk_size(directory)
        raw = ds.num_scenes * ds.views * ds.height * ds.width * 3
        lines = [
            f"dataset     {directory}",
            f"family      {ds.family}",
            f"scenes      {ds.num_scenes}",
            f"views       {ds.views}",
            f"image size  {ds.height}x{ds.width}",
            f"shards      {len(ds.shards)} ({ds.attrs['scenes_per_shard']} scenes per shard)",
            f"disk size   {size / 1e6:.1f} MB ({raw / max(size, 1):.2f}x compression)",
            f"generator   {ds.attrs['generator']}",
            f"parameters  {json.dumps(ds.params, sort_keys=True)}",
        ]
        if "source" in ds.attrs:
            lines.append(f"source      {ds.attrs['source']}")
    return "\n".join(lines)


def contact_sheet(images: np.ndarray, gap: int = 2) -> np.ndarray:
    """(n, V, H, W, 3) -> one image: a row per scene, its views side by side, separated by white gaps."""
    n, v, h, w, _ = images.shape
    sheet = np.full((n * (h + gap) - gap, v * (w + gap) - gap, 3), 255, np.uint8)
    for i in range(n):
        for j in range(v):
            sheet[i * (h + gap):i * (h + gap) + h, j * (w + gap):j * (w + gap) + w] = images[i, j]
    return sheet


def write_preview(directory, path, scenes: int = 6) -> None:
    """PNG contact sheet of the first ``scenes`` scenes (all views of each in a row)."""
    with Dataset(directory) as ds:
        images = ds.read(0, min(scenes, ds.num_scenes), names=("images",))["images"]
    try:
        # PNG unless the name asks for another format Pillow writes
        file_format = Image.registered_extensions().get(Path(path).suffix.lower(), "PNG")
        Image.fromarray(contact_sheet(images)).save(path, format=file_format)
    except OSError as e:  # a full disk: no partial PNG is left
        Path(path).unlink(missing_ok=True)
        raise write_error("preview", path, e) from None
