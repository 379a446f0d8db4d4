"""`gqn info`: a dataset's description and a preview contact sheet."""
from __future__ import annotations

import json
from pathlib import Path

from PIL import Image

from gqn.files import write_error
from gqn.pictures import panel_grid
from gqn.shards import Dataset, disk_size


def describe(directory) -> str:
    """Human-readable summary of a shard dataset."""
    with Dataset(directory) as ds:
        size = disk_size(directory)
        raw = ds.num_scenes * ds.views * ds.height * ds.width * 3
        jpeg = ds.image_encoding == "jpeg"
        lines = [
            f"dataset     {directory}",
            f"family      {ds.family}",
            f"scenes      {ds.num_scenes}",
            f"views       {ds.views}",
            f"image size  {ds.height}x{ds.width}",
            f"images      {'jpeg (original frames, no re-encoding)' if jpeg else 'raw uint8'}",
            f"shards      {len(ds.shards)} ({ds.attrs['scenes_per_shard']} scenes per shard)",
            f"disk size   {size / 1e6:.1f} MB ({raw / max(size, 1):.2f}x "
            + ("smaller than raw uint8 pixels)" if jpeg else "compression)"),
            f"generator   {ds.attrs['generator']}",
            f"parameters  {json.dumps(ds.params, sort_keys=True)}",
        ]
        if "source" in ds.attrs:
            lines.append(f"source      {ds.attrs['source']}")
    return "\n".join(lines)


def write_preview(directory, path, scenes: int = 6) -> None:
    """PNG contact sheet of the first ``scenes`` scenes (all views of each in a row)."""
    with Dataset(directory) as ds:
        images = ds.read(0, min(scenes, ds.num_scenes), names=("images",))["images"]
    try:
        # PNG unless the name asks for another format Pillow writes
        file_format = Image.registered_extensions().get(Path(path).suffix.lower(), "PNG")
        panel_grid(images).save(path, format=file_format)
    except OSError as e:  # a full disk: no partial PNG is left
        Path(path).unlink(missing_ok=True)
        raise write_error("preview", path, e) from None
