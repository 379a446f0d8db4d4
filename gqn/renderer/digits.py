"""Handwritten digits for mnist-dice: reading digit sources and the per-worker bank of digit textures.

Sources: MNIST IDX image files (``train-images-idx3-ubyte``, gzipped or not; labels are read from the
``...-labels-idx1-ubyte`` file next to them when present), a ``.npz`` with an ``x_train`` array (and
optionally ``y_train``), or by default the 1,797 8x8 digits that scikit-learn ships
(``sklearn/datasets/data/digits.csv.gz``, read straight from the installed package: sklearn is never
imported and nothing is downloaded).
"""
from __future__ import annotations

import gzip
import importlib.util
import re
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from gqn.errors import GqnError
from gqn.renderer.textures import TEXTURE_SIZE

PER_CLASS = 32      # bank images per digit class (or 320 images when the source has no labels)
FACES = 6
BANK_SEED = 1998
INK_BOX = 0.75      # fraction of a face's width that the digit's box covers
IDX_UBYTE = 0x08


@dataclass
class DigitSource:
    images: np.ndarray  # (n, h, w) uint8, white ink on black as in MNIST
    labels: np.ndarray  # (n,) int, -1 where unknown


def _read_bytes(path: Path) -> bytes:
    data = path.read_bytes()
    if data[:2] != b"\x1f\x8b":
        return data
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as e:
        raise GqnError(f"{path}: damaged gzip file ({e})") from None


def read_idx(path, ndim: int) -> np.ndarray:
    """An IDX array of unsigned bytes with ``ndim`` dimensions (3: images, 1: labels)."""
    path = Path(path)
    data = _read_bytes(path)
    kind = "image" if ndim == 3 else "label"
    header = 4 + 4 * ndim
    if len(data) < header or data[:2] != b"\0\0" or data[2] != IDX_UBYTE or data[3] != ndim:
        raise GqnError(f"{path}: not an MNIST IDX {kind} file (expected magic 0x0000080{ndim})")
    shape = tuple(int(d) for d in np.frombuffer(data, ">u4", ndim, 4))
    if len(data) - header != int(np.prod(shape)):
        raise GqnError(f"{path}: truncated or damaged IDX file (header says {shape}, "
                       f"{len(data) - header} bytes of data)")
    return np.frombuffer(data, np.uint8, offset=header).reshape(shape)


def labels_path(images_path: Path) -> Path | None:
    """The IDX labels file next to an images file (``train-images-idx3-ubyte`` -> ``train-labels-idx1-ubyte``,
    gzipped or not), or None."""
    stem = re.sub(r"\.gz$", "", images_path.name).replace("images", "labels").replace("idx3", "idx1")
    for name in (stem, stem + ".gz"):
        if name != images_path.name and (images_path.parent / name).is_file():
            return images_path.parent / name
    return None


def load_idx(path) -> DigitSource:
    path = Path(path)
    images = read_idx(path, 3)
    found = labels_path(path)
    labels = read_idx(found, 1).astype(int) if found else np.full(len(images), -1)
    if len(labels) != len(images):
        raise GqnError(f"{found}: {len(labels)} labels for {len(images)} images in {path.name}")
    return DigitSource(images, labels)


def load_npz(path) -> DigitSource:
    try:
        with np.load(path, allow_pickle=False) as f:
            if "x_train" not in f:
                raise GqnError(f"{path}: no x_train array (has {', '.join(f.files) or 'nothing'})")
            images = f["x_train"]
            labels = f["y_train"].astype(int).reshape(-1) if "y_train" in f else np.full(len(images), -1)
    except (OSError, EOFError, ValueError, zlib.error) as e:
        raise GqnError(f"{path}: not a readable .npz file ({e})") from None
    if images.ndim == 4 and images.shape[-1] == 1:
        images = images[..., 0]
    if images.ndim != 3 or len(labels) != len(images):
        raise GqnError(f"{path}: x_train must be (n, height, width) with as many y_train labels; "
                       f"got {images.shape} and {labels.shape}")
    if images.dtype != np.uint8:  # floats in [0, 1] (or [0, 255])
        images = images.astype(float)
        images = np.clip(images * (255 if images.max() <= 1 else 1), 0, 255).astype(np.uint8)
    return DigitSource(images, labels)


def sklearn_digits_path() -> Path:
    spec = importlib.util.find_spec("sklearn")  # locates the package without importing it
    path = Path(spec.origin).parent / "datasets" / "data" / "digits.csv.gz" if spec and spec.origin else None
    if path is None or not path.is_file():
        raise GqnError("scikit-learn's bundled digits (sklearn/datasets/data/digits.csv.gz) are missing: "
                       "install scikit-learn or pass --digits PATH")
    return path


def load_sklearn_digits() -> DigitSource:
    """scikit-learn's 8x8 digits: rows of 64 pixel values 0-16 and the label."""
    table = np.loadtxt(gzip.open(sklearn_digits_path(), "rt"), delimiter=",", dtype=np.int64)
    images = (table[:, :64].reshape(-1, 8, 8) * 255 // 16).astype(np.uint8)
    return DigitSource(images, table[:, 64])


def load_digits(path=None) -> DigitSource:
    """Digits from ``path`` (IDX or .npz) or, when None, scikit-learn's bundled ones."""
    if path is None:
        return load_sklearn_digits()
    if not Path(path).is_file():
        raise GqnError(f"{path}: no such digit file")
    return load_npz(path) if str(path).endswith(".npz") else load_idx(path)


def digit_texture(image: np.ndarray, size: int = TEXTURE_SIZE) -> np.ndarray:
    """(size, size, 3) uint8 face texture: the digit resampled into the central INK_BOX of the face, dark ink
    on white, upright (row 0 is the top of the face)."""
    box = int(round(size * INK_BOX))
    ink = np.asarray(Image.fromarray(image).resize((box, box), Image.BICUBIC), np.uint8)
    face = np.zeros((size, size), np.uint8)
    start = (size - box) // 2
    face[start:start + box, start:start + box] = ink
    return np.repeat((255 - face)[..., None], 3, axis=-1)


class DigitBank:
    """A fixed selection of digits as texture layers (``PER_CLASS`` per class, chosen with a fixed seed):
    built once per worker; each scene picks six layers of six different classes."""

    def __init__(self, source: DigitSource, size: int = TEXTURE_SIZE, per_class: int = PER_CLASS):
        rng = np.random.default_rng(BANK_SEED)
        labelled = bool(np.all(source.labels >= 0))
        groups = ([np.flatnonzero(source.labels == c) for c in range(10)] if labelled
                  else [np.arange(len(source.images))])
        chosen = [rng.permutation(g)[:per_class * (1 if labelled else 10)] for g in groups]
        self.indices = np.concatenate(chosen)                   # source image of each layer
        self.labels = source.labels[self.indices] if labelled else np.full(len(self.indices), -1)
        self.counts = np.array([len(c) for c in chosen])
        self.starts = np.concatenate([[0], np.cumsum(self.counts)[:-1]])
        self.classes = np.flatnonzero(self.counts)
        if (len(self.classes) if labelled else len(self.indices)) < FACES:
            raise GqnError(f"mnist-dice needs digits of at least {FACES} different classes "
                           f"({'classes' if labelled else 'images'} found: "
                           f"{len(self.classes) if labelled else len(self.indices)})")
        self.labelled = labelled
        self.images = source.images[self.indices]
        self.textures = np.stack([digit_texture(image, size) for image in self.images])

    @classmethod
    def from_path(cls, path=None) -> "DigitBank":
        return cls(load_digits(path))

    def faces(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Bank layers (6,) of six different classes (or images, when unlabelled) and their labels (6,)."""
        if not self.labelled:
            layers = rng.choice(len(self.indices), FACES, replace=False)
            return layers, np.full(FACES, -1)
        classes = rng.choice(self.classes, FACES, replace=False)
        layers = self.starts[classes] + (rng.random(FACES) * self.counts[classes]).astype(int)
        return layers, classes
