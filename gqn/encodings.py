"""How a shard stores its images: raw uint8 frames (optionally compressed by HDF5's filters: lzf, gzip-N) or
the original JPEG bytes of each view (format version 2), and the one JPEG decoder every reader uses.

Light to import (numpy, libdeflate, simplejpeg): the CLI takes its choices from here.
"""
from __future__ import annotations

import deflate as deflate_lib
import numpy as np
import simplejpeg

from gqn.errors import ShardError

IMAGE_ENCODINGS = ("raw", "jpeg")
COMPRESSIONS = ("none", "lzf") + tuple(f"gzip-{level}" for level in range(1, 10))
DEFAULT_COMPRESSION = "gzip-1"  # bench/render.py: ~24x smaller than none at the same speed


def compression_filter(compression: str) -> dict:
    """The h5py dataset options of a raw shard's ``images`` for ``compression``."""
    if compression == "none":
        return {}
    if compression == "lzf":
        return {"compression": "lzf"}
    if compression.startswith("gzip-") and compression in COMPRESSIONS:
        return {"compression": "gzip", "compression_opts": int(compression[5:])}
    raise ShardError(f"unknown compression {compression!r}; choose from {', '.join(COMPRESSIONS)}")


def deflate(data, level: int) -> bytes:
    """A zlib stream, as HDF5's gzip filter stores it, made by libdeflate: 1.2-1.8x zlib's speed at the same
    level and a pure function of the input and level. (ISA-L, 7x faster at level 1, was used before; its
    output varied by a byte now and then between identical runs on a loaded machine, issue F3.)"""
    return deflate_lib.zlib_compress(data, level)


def encode_images(images: np.ndarray, compression: str) -> list | None:
    """Each scene of ``images`` (n, V, H, W, 3) as its stored HDF5 chunk (bytes-like), for
    ``ShardWriter.write(encoded=...)``: lets worker processes compress in parallel instead of the writing
    process. None for lzf, which only HDF5 can encode (the writer then compresses)."""
    compression_filter(compression)
    if compression == "lzf":
        return None
    scenes = np.ascontiguousarray(images, np.uint8)
    if compression == "none":
        return list(scenes)
    level = int(compression[5:])
    return [deflate(scene, level) for scene in scenes]


def decode_jpeg(data, out: np.ndarray) -> tuple[int, int]:
    """Decode one JPEG frame into ``out`` (H, W, 3) uint8; returns the frame's (height, width).

    The toolkit's one JPEG decoder (libjpeg-turbo through simplejpeg, RGB, accurate DCT and upsampling): used
    by ``gqn convert``'s workers and by the readers of jpeg shards, so a raw and a jpeg conversion of the same
    records hold the same pixels. Raises ValueError for data that is not a decodable JPEG or is larger than
    ``out``; a smaller frame is decoded into the top of ``out`` and its size returned (the caller checks).
    """
    return simplejpeg.decode_jpeg(data, colorspace="RGB", buffer=out).shape[:2]


def jpeg_header_size(data) -> tuple[int, int] | None:
    """(height, width) from a JPEG header; None if it has none."""
    try:
        return tuple(simplejpeg.decode_jpeg_header(data)[:2])
    except ValueError:
        return None
