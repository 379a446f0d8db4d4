"""The gqn shard format (versions 1 and 2): the one writer and reader of multi-view scene datasets.

A dataset is a directory of HDF5 files ``000000.h5``, ``000001.h5``, ... Shard ``k`` of a dataset written
with ``S`` scenes per shard holds global scenes ``k*S .. k*S+n-1`` in the datasets

* ``images``     uint8   (n, V, H, W, 3)   RGB frames, one HDF5 chunk per scene
* ``viewpoints`` float32 (n, V, 7)         x, y, z, cos(yaw), sin(yaw), cos(pitch), sin(pitch)
* ``cameras``    float32 (n, V, 5)         x, y, z, yaw, pitch (radians)

plus optional per-scene ``extras`` (e.g. ``labels`` for mnist-dice) whose first axis is the scene.
That is format version 1, image encoding ``raw``. Format version 2 is image encoding ``jpeg`` (converted data
whose source frames are JPEG files, stored as they came): root attributes ``image_encoding="jpeg"``,
``image_height``, ``image_width``, and instead of pixels

* ``images``        uint8 (total bytes,)  every frame's JPEG file, scene by scene, view by view, back to back
* ``image_offsets`` int64 (n, V + 1)      view ``j`` of scene ``i`` is ``images[off[i, j]:off[i, j + 1]]``

``Dataset`` decodes either encoding into the same uint8 (.., H, W, 3) arrays (``decode_jpeg``).
A shard is written under a temporary name (``.000123.h5.tmp``) and renamed into place when complete, so a
file named ``NNNNNN.h5`` is always whole. Jobs writing into one directory coordinate through record locks on
its hidden file ``.gqn-lock`` (``claim_output``, ``gqn.ownership``): one dataset per directory, one writer per shard.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import h5py
import numpy as np

from gqn import __version__
from gqn.encodings import (DEFAULT_COMPRESSION, IMAGE_ENCODINGS, compression_filter, decode_jpeg, encode_images,
                           jpeg_header_size)
from gqn.errors import GqnError, ShardError
from gqn.files import StagedFile, first_line, staging_path
from gqn.ownership import hold_item, starting_job

FORMAT = "gqn-shard"
FORMAT_VERSION = 1  # raw images; JPEG_FORMAT_VERSION with jpeg images
JPEG_FORMAT_VERSION = 2
JPEG_CHUNK = 1 << 16  # bytes per HDF5 chunk of a jpeg shard's ``images`` (a 64 px scene of 15 views: ~21 KB)
SHARD_RE = re.compile(r"^(\d{6})\.h5$")
TMP_RE = re.compile(r"^\.(\d{6})\.h5\.tmp$")


def shard_name(index: int) -> str:
    return f"{index:06d}.h5"


def tmp_name(index: int) -> str:
    return staging_path(shard_name(index)).name


def viewpoints_from_cameras(cameras: np.ndarray) -> np.ndarray:
    """Map raw poses (..., 5) = x, y, z, yaw, pitch to the 7-D viewpoint (..., 7) of the shard format."""
    cameras = np.asarray(cameras, dtype=np.float32)
    yaw, pitch = cameras[..., 3], cameras[..., 4]
    return np.concatenate(
        [cameras[..., :3], np.stack([np.cos(yaw), np.sin(yaw), np.cos(pitch), np.sin(pitch)], -1)], -1
    ).astype(np.float32)


def params_json(params: Mapping) -> str:
    """Canonical JSON for the ``params`` attribute (sorted keys, so equal parameters give equal text)."""
    return json.dumps(dict(params), sort_keys=True)


class ShardWriter:
    """Writes one shard atomically: scenes are appended in order, ``commit`` renames the file into place.

    Use as a context manager; leaving the block without ``commit`` (an exception, Ctrl-C) removes the
    temporary file, so no ``NNNNNN.h5`` is ever partial. With ``open_ended``, ``num_scenes`` is an upper
    bound and ``commit`` keeps the scenes written so far, even none (for a stream whose length is not known
    ahead, or a converted shard whose records were all corrupt).
    With ``image_encoding="jpeg"`` (format version 2, no compression) scenes come as JPEG frames
    (``write(None, cameras, encoded=[[V frames] per scene])``) and are stored as they are.
    """

    def __init__(self, directory, index: int, num_scenes: int, views: int, size: tuple[int, int] | int,
                 *, family: str, scenes_per_shard: int, params: Mapping, compression: str = DEFAULT_COMPRESSION,
                 seed: int | None = None, source: str | None = None,
                 extras: Mapping[str, tuple[tuple, str]] | None = None, open_ended: bool = False,
                 image_encoding: str = "raw", held_by_parent: bool = False):
        height, width = (size, size) if isinstance(size, int) else size
        if image_encoding not in IMAGE_ENCODINGS:
            raise ShardError(f"unknown image encoding {image_encoding!r}; choose from {', '.join(IMAGE_ENCODINGS)}")
        if image_encoding == "jpeg" and compression != "none":
            raise ShardError(f"compression {compression} applies to raw images only; jpeg shards store the "
                             "JPEG files as they are")
        self.image_encoding = image_encoding
        self.views = views
        self.directory = Path(directory)
        self.index = index
        self.num_scenes = num_scenes
        self._staged = StagedFile(self.directory / shard_name(index), "shard")
        self.final_path, self.tmp_path = self._staged.path, self._staged.tmp
        self.written = 0
        self.compression = compression
        self.open_ended = open_ended
        filters = compression_filter(compression)
        # until commit or abort: no other process writes it. A worker process writing for its parent's
        # claim_output (held_by_parent) relies on the parent's lock, which lasts as long as the worker can
        self._release = (lambda: None) if held_by_parent else hold_item(
            self.directory, index, f"{self.directory}: shard {shard_name(index)} is being written by another "
            "running job; run one job per output directory")
        try:
            self._file = h5py.File(self.tmp_path, "w", libver="latest")
        except OSError as e:
            self._unlock()
            raise self._staged.failed(e) from None
        try:
            f = self._file
            def create(name, shape, dtype, **kwargs):
                if open_ended:
                    kwargs["maxshape"] = (None, *shape[1:])
                f.create_dataset(name, shape, dtype, track_times=False, **kwargs)

            if image_encoding == "raw":
                create("images", (num_scenes, views, height, width, 3), np.uint8,
                       chunks=(1, views, height, width, 3), **filters)
                create("viewpoints", (num_scenes, views, 7), np.float32,
                       chunks=(min(num_scenes, 1024), views, 7))
                create("cameras", (num_scenes, views, 5), np.float32, chunks=(min(num_scenes, 1024), views, 5))
                for name, (shape, dtype) in (extras or {}).items():
                    create(name, (num_scenes, *shape), np.dtype(dtype))
                # the per-scene arrays other than images are kept here and written at commit, so that the
                # file's layout (image chunks first, then these) is the same however the scenes came in blocks
                self._small = {name: np.zeros(d.shape, d.dtype) for name, d in f.items() if name != "images"}
            else:  # grown a chunk at a time (_flush_jpeg)
                f.create_dataset("images", (0,), np.uint8, maxshape=(None,), chunks=(JPEG_CHUNK,),
                                 track_times=False)
                self._jpeg = bytearray()  # JPEG bytes not yet in a chunk
                self._jpeg_stored = 0  # bytes in written chunks
                # the per-scene arrays are created at commit, contiguous and of the final length: chunks
                # sized for a full shard would add ~0.8 KB per scene of a 15-view shard (~4 % of its JPEGs)
                small = {"image_offsets": ((views + 1,), np.int64), "viewpoints": ((views, 7), np.float32),
                         "cameras": ((views, 5), np.float32), **(extras or {})}
                self._small = {name: np.zeros((num_scenes, *shape), np.dtype(dtype))
                               for name, (shape, dtype) in small.items()}
            attrs = {"format": FORMAT, "format_version": FORMAT_VERSION, "family": family,
                     "first_scene": index * scenes_per_shard, "scenes_per_shard": scenes_per_shard,
                     "params": params_json(params), "generator": f"gqn-toolkit {__version__}"}
            if image_encoding == "jpeg":
                attrs.update(format_version=JPEG_FORMAT_VERSION, image_encoding="jpeg", image_height=height,
                             image_width=width)
            if seed is not None:
                attrs["seed"] = seed
            if source is not None:
                attrs["source"] = source
            f.attrs.update(attrs)
        except OSError as e:
            raise self._failed(e) from None
        except BaseException:
            self.abort()
            raise

    def write(self, images: np.ndarray | None, cameras: np.ndarray, *, encoded: list[bytes] | None = None,
              **extras: np.ndarray) -> None:
        """Append a block of scenes: ``images`` (n, V, H, W, 3) uint8 and raw ``cameras`` (n, V, 5).

        ``encoded`` (from ``encode_images`` with this shard's compression) replaces ``images``: the chunks
        are stored as they are. A jpeg shard takes ``encoded`` only: per scene, its V JPEG frames (bytes).
        """
        n = len(cameras)
        if self.written + n > self.num_scenes:
            raise ShardError(f"shard {self.index} holds {self.num_scenes} scenes; got {self.written + n}")
        try:
            self._write(images, cameras, encoded, extras)
        except OSError as e:
            raise self._failed(e) from None
        self.written += n

    def _write(self, images, cameras, encoded, extras) -> None:
        sl = slice(self.written, self.written + len(cameras))
        dataset = self._file["images"]
        if self.image_encoding == "jpeg":
            self._write_jpeg(encoded, sl)
        else:
            if encoded is None:
                if np.shape(images)[1:] != dataset.shape[1:]:
                    raise ShardError(f"images of shape {np.shape(images)[1:]} do not fit {dataset.shape[1:]}")
                encoded = encode_images(images, self.compression)  # whole chunks: skips HDF5's selection code
            if encoded is None:
                dataset[sl] = images
            else:
                for i, chunk in enumerate(encoded, self.written):
                    dataset.id.write_direct_chunk((i, 0, 0, 0, 0), chunk)
        self._small["cameras"][sl] = cameras
        self._small["viewpoints"][sl] = viewpoints_from_cameras(cameras)
        for name, value in extras.items():
            self._small[name][sl] = value

    def _write_jpeg(self, scenes, sl: slice) -> None:
        """Append the JPEG frames of scenes ``sl``. The file's bytes depend only on the frames, not on how
        they came in blocks: chunks are written whole, in order, as the bytes fill them."""
        if scenes is None or len(scenes) != sl.stop - sl.start:
            raise ShardError("a jpeg shard takes JPEG frames (encoded=...), one list of frames per scene")
        offsets = self._small["image_offsets"]
        for i, frames in zip(range(sl.start, sl.stop), scenes):
            if len(frames) != self.views:
                raise ShardError(f"scene {i} has {len(frames)} JPEG frames; the shard has {self.views} views")
            offsets[i, 0] = self._jpeg_stored + len(self._jpeg)
            np.cumsum([memoryview(frame).nbytes for frame in frames], out=offsets[i, 1:])
            offsets[i, 1:] += offsets[i, 0]
            self._jpeg += b"".join(frames)
        self._flush_jpeg(final=False)

    def _flush_jpeg(self, final: bool) -> None:
        """Write the full chunks of pending JPEG bytes (and with ``final`` the last, partial one)."""
        dataset = self._file["images"]
        done = 0
        with memoryview(self._jpeg) as pending:
            while len(pending) - done >= JPEG_CHUNK or (final and done < len(pending)):
                piece = pending[done:done + JPEG_CHUNK]
                dataset.resize((self._jpeg_stored + len(piece),))
                # the stored chunk is always whole; the dataset's extent ends where the bytes do
                dataset.id.write_direct_chunk((self._jpeg_stored,), piece if len(piece) == JPEG_CHUNK else
                                              bytes(piece).ljust(JPEG_CHUNK, b"\0"))
                self._jpeg_stored += len(piece)
                done += len(piece)
                piece.release()
        del self._jpeg[:done]

    def set_source(self, source: str, skipped: int = 0) -> None:
        """Set the ``source`` attribute (a converter may learn a shard's inputs only while writing it), and
        ``skipped_records``: the records of that source left out as corrupt, one scene number each."""
        self._file.attrs["source"] = source
        if skipped:
            self._file.attrs["skipped_records"] = skipped

    def commit(self) -> Path:
        if self.written != self.num_scenes:
            if not self.open_ended:
                raise ShardError(f"shard {self.index}: {self.written} of {self.num_scenes} scenes written")
        try:
            if self.image_encoding == "jpeg":
                self._flush_jpeg(final=True)
                for name, values in self._small.items():
                    self._file.create_dataset(name, data=values[:self.written], track_times=False)
            else:
                if self.written != self.num_scenes:
                    for dataset in self._file.values():
                        dataset.resize(self.written, axis=0)
                for name, values in self._small.items():
                    self._file[name][...] = values[:self.written]
            self._file.close()  # flushes the metadata: a full disk may show only here
        except (OSError, RuntimeError) as e:  # h5py reports some failed flushes as RuntimeError
            raise self._failed(e) from None
        try:
            return self._staged.commit()
        finally:
            self._unlock()

    def _failed(self, error: BaseException) -> GqnError:
        self.abort()
        return self._staged.failed(error)

    def abort(self) -> None:
        try:
            if self._file.id.valid:
                self._file.close()
        except (OSError, RuntimeError):  # a file that could not be written may not close cleanly either
            pass
        self._staged.abort()
        self._unlock()

    def _unlock(self) -> None:
        """Release the shard's lock (once)."""
        release, self._release = self._release, lambda: None
        release()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if self.final_path.exists() and not self.tmp_path.exists():
            return
        self.abort()


def list_shards(directory) -> list[Path]:
    """Complete shard files of a dataset directory in index order (temporary files are ignored)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ShardError(f"{directory}: not a directory")
    return sorted(p for p in directory.iterdir() if SHARD_RE.match(p.name))


def shard_index(path) -> int:
    return int(SHARD_RE.match(Path(path).name).group(1))


def stale_tmp_files(directory, indices=None) -> list[Path]:
    """Temporary shard files left by an interrupted writer (restricted to shard ``indices`` if given)."""
    out = []
    for p in Path(directory).iterdir():
        m = TMP_RE.match(p.name)
        if m and (indices is None or int(m.group(1)) in indices):
            out.append(p)
    return out


def read_attrs(path) -> dict:
    """Validated root attributes of one shard; a foreign, truncated or newer file raises ShardError.

    Adds ``_encoding`` (``raw`` or ``jpeg``) and ``_shapes``: the datasets' shapes, with ``images`` as the
    decoded (n, V, H, W, 3) whatever the encoding.
    """
    try:
        with h5py.File(path, "r") as f:
            attrs = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f.attrs.items()}
            shapes = {name: f[name].shape for name in ("images", "viewpoints", "cameras", "image_offsets")
                      if name in f}
    except OSError as e:
        raise ShardError(f"{path}: not a readable HDF5 file ({e.__class__.__name__}: truncated or foreign)")
    if attrs.get("format") != FORMAT:
        raise ShardError(f"{path}: not a gqn shard (format attribute is {attrs.get('format')!r})")
    version = int(attrs.get("format_version", -1))
    if version not in (FORMAT_VERSION, JPEG_FORMAT_VERSION):
        raise ShardError(f"{path}: shard format version {attrs.get('format_version')} is not supported "
                         f"(this is gqn-toolkit {__version__}, format versions {FORMAT_VERSION} and "
                         f"{JPEG_FORMAT_VERSION})")
    encoding = "raw" if version == FORMAT_VERSION else attrs.get("image_encoding")
    if encoding not in IMAGE_ENCODINGS or (version == JPEG_FORMAT_VERSION) != (encoding == "jpeg"):
        raise ShardError(f"{path}: image encoding {encoding!r} is not supported in shard format version "
                         f"{version} (this is gqn-toolkit {__version__})")
    needed = ("images", "viewpoints", "cameras") + ("image_offsets",) * (encoding == "jpeg")
    if any(name not in shapes for name in needed):
        raise ShardError(f"{path}: missing datasets (has {sorted(shapes)})")
    keys = ("family", "params", "first_scene", "scenes_per_shard") + ("image_height", "image_width") * (
        encoding == "jpeg")
    missing = [key for key in keys if key not in attrs]
    if missing:
        raise ShardError(f"{path}: not a valid gqn shard (missing root attributes {', '.join(missing)})")
    if int(attrs["scenes_per_shard"]) < 1 or int(attrs["first_scene"]) < 0:
        raise ShardError(f"{path}: not a valid gqn shard (first_scene {attrs['first_scene']}, "
                         f"scenes_per_shard {attrs['scenes_per_shard']})")
    if encoding == "jpeg":
        n, views_plus_one = shapes.pop("image_offsets")
        shapes["images"] = (n, views_plus_one - 1, int(attrs["image_height"]), int(attrs["image_width"]), 3)
    attrs["_encoding"] = encoding
    attrs["_shapes"] = shapes
    return attrs


def check_scene_ranges(directory, claims: list[tuple[Path, int, int, int]]) -> None:
    """Refuse shards whose scene ranges do not join up: ``claims`` holds (path, ``first_scene``, scene count,
    ``scenes_per_shard``) per shard.

    A file must hold the scenes its name says (shard ``k``: from ``k * S``), no two files the same scenes,
    and no scenes may be missing between the first and the last file present. Shards missing before the
    first or after the last are allowed: a ``--shard K/N`` part, or a job still running, holds a run of
    consecutive shards only.
    """
    per_shard = {s for _, _, _, s in claims}
    if len(per_shard) > 1:
        raise ShardError(f"{directory}: shards were written with different scenes per shard "
                         f"({', '.join(map(str, sorted(per_shard)))}); one dataset per directory")
    names = {shard_index(path): path.name for path, *_ in claims}
    for path, first, count, size in claims:
        if first != shard_index(path) * size:
            home = shard_name(first // size)
            raise ShardError(f"{path}: holds scenes {first}..{first + count - 1}, those of {home}" + (
                ", which is also present: a duplicated shard" if first // size in names else
                ": a renamed or copied shard"))
    ordered = sorted(claims, key=lambda claim: claim[1])
    for (path, first, count, size), (next_path, next_first, _, _) in zip(ordered, ordered[1:]):
        if first + count > next_first:
            raise ShardError(f"{next_path}: holds scenes from {next_first}, which {path.name} holds too "
                             "(a duplicated shard)")
        if first + count < next_first:
            missing = [shard_name(k) for k in range(shard_index(path) + 1, shard_index(next_path))]
            what = (f"shard {missing[0]} is missing" if len(missing) == 1 else
                    f"shards {missing[0]}..{missing[-1]} are missing" if missing else
                    f"{path.name} holds {count} of its {size} scenes but is not the last shard")
            raise ShardError(f"{directory}: {what} (scenes {first + count}..{next_first - 1} between "
                             f"{path.name} and {next_path.name})")


@dataclass
class _Shard:
    path: Path
    first: int
    count: int


class Dataset:
    """Read access to a shard directory: scene counts, scene ranges, and selected views of any scenes.

    Files are opened lazily and kept open; a Dataset can be pickled into worker processes (handles are
    reopened there).
    """

    def __init__(self, directory):
        self.directory = Path(directory)
        paths = list_shards(self.directory)
        if not paths:
            raise ShardError(f"{self.directory}: no shards (*.h5) found")
        self._shards = []
        first_attrs = None
        total = 0
        claims = []
        for path in paths:
            attrs = read_attrs(path)
            if first_attrs is None:
                first_attrs = attrs
            elif attrs["params"] != first_attrs["params"] or attrs["family"] != first_attrs["family"]:
                raise ShardError(f"{path}: parameters differ from {paths[0].name}; one dataset per directory")
            elif attrs["_encoding"] != first_attrs["_encoding"]:
                raise ShardError(f"{path}: {attrs['_encoding']} images, {paths[0].name} has "
                                 f"{first_attrs['_encoding']}; one dataset per directory")
            n, views, height, width, _ = attrs["_shapes"]["images"]
            self._shards.append(_Shard(path, total, n))
            total += n
            # a converted shard's skipped corrupt records keep their scene numbers
            numbers = n + int(attrs.get("skipped_records", 0))
            claims.append((path, int(attrs["first_scene"]), numbers, int(attrs["scenes_per_shard"])))
        check_scene_ranges(self.directory, claims)
        self.attrs = first_attrs
        self.num_scenes = total
        _, self.views, self.height, self.width, _ = first_attrs["_shapes"]["images"]
        self.family = first_attrs["family"]
        self.params = json.loads(first_attrs["params"])
        self.image_encoding = first_attrs["_encoding"]  # "raw" (format version 1) or "jpeg" (2)
        self._starts = np.array([s.first for s in self._shards])
        self._files: dict[int, h5py.File] = {}
        self._datasets: dict[tuple[int, str], h5py.Dataset] = {}

    def __len__(self):
        return self.num_scenes

    @property
    def shards(self) -> list[Path]:
        return [s.path for s in self._shards]

    @property
    def image_size(self) -> int:
        return self.height

    def _file(self, k: int) -> h5py.File:
        f = self._files.get(k)
        if f is None:
            path = self._shards[k].path
            try:
                f = self._files[k] = h5py.File(path, "r")
            except OSError as e:  # changed since the Dataset was opened: removed, truncated, replaced
                raise ShardError(f"{path}: cannot be opened ({first_line(e)})") from None
        return f

    def _dataset(self, k: int, name: str) -> h5py.Dataset:
        """Dataset ``name`` of shard ``k``, kept open: HDF5 keeps a dataset's chunk cache while it is open,
        so reading a row of a many-scene chunk (viewpoints, image offsets) again does not read the chunk."""
        dataset = self._datasets.get((k, name))
        if dataset is None:
            dataset = self._datasets[k, name] = self._file(k)[name]
        return dataset

    def _locate(self, scene: int) -> tuple[int, int]:
        if not 0 <= scene < self.num_scenes:
            raise IndexError(f"scene {scene} out of range (dataset has {self.num_scenes})")
        k = int(np.searchsorted(self._starts, scene, side="right") - 1)
        return k, scene - self._shards[k].first

    def read(self, start: int, stop: int, names=("images", "viewpoints", "cameras")) -> dict[str, np.ndarray]:
        """Scenes ``start .. stop-1`` (global indices, may span shards) as arrays with a leading scene axis."""
        parts = {name: [] for name in names}
        scene = start
        while scene < stop:
            k, local = self._locate(scene)
            n = min(stop - scene, self._shards[k].count - local)
            for name in names:
                parts[name].append(self._read(k, name, local, local + n))
            scene += n
        return {name: np.concatenate(v) if v else np.empty((0,)) for name, v in parts.items()}

    def read_views(self, scene: int, views, names=("images", "viewpoints")) -> dict[str, np.ndarray]:
        """Selected ``views`` (index array) of one scene; reads that scene's chunk only (of a jpeg shard:
        its frames' bytes, and decodes the selected views only)."""
        k, local = self._locate(scene)
        views = np.asarray(views)
        return {name: self._read_jpeg(k, local, local + 1, views)[0]
                if name == "images" and self.image_encoding == "jpeg" else
                self._read(k, name, local, local + 1)[0][views] for name in names}

    def read_jpeg(self, start: int, stop: int) -> list[list[bytes]]:
        """The stored JPEG files of scenes ``start .. stop-1`` of a jpeg dataset: per scene, a list of V
        frames (bytes), exactly as the converter's input held them."""
        if self.image_encoding != "jpeg":
            raise ShardError(f"{self.directory}: holds raw images, not JPEG frames")
        scenes = []
        while len(scenes) < stop - start:
            k, local = self._locate(start + len(scenes))
            n = min(stop - start - len(scenes), self._shards[k].count - local)
            offsets, data = self._jpeg_bytes(k, local, local + n)
            base = offsets[0, 0]
            scenes += [[data[a - base:b - base].tobytes() for a, b in zip(row[:-1], row[1:])] for row in offsets]
        return scenes

    def _read(self, k: int, name: str, start: int, stop: int) -> np.ndarray:
        """Dataset ``name`` of shard ``k``'s scenes ``start .. stop-1``; a chunk that cannot be read (damaged
        on disk: HDF5 reports a failed decompression or a bad offset as OSError) raises a ShardError naming
        the shard and the first unreadable scene."""
        if name == "images" and self.image_encoding == "jpeg":
            return self._read_jpeg(k, start, stop)
        dataset = self._dataset(k, name)
        try:
            return dataset[start:stop]
        except OSError as e:
            bad = next((i for i in range(start, stop) if not _readable(dataset, i)), start)
            raise self._corrupt(k, bad, f"its {name} data is corrupt ({first_line(e)})") from None

    def _corrupt(self, k: int, scene: int, what: str) -> ShardError:
        shard = self._shards[k]
        return ShardError(f"{shard.path}: scene {shard.first + scene} (scene {scene} of this shard) cannot be "
                          f"read: {what}")

    def _jpeg_bytes(self, k: int, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        """Offsets (n, V + 1) and JPEG bytes of shard ``k``'s scenes ``start .. stop-1``: two reads."""
        images = self._dataset(k, "images")
        offsets = self._read(k, "image_offsets", start, stop)
        first, last = int(offsets[0, 0]), int(offsets[-1, -1])
        if not 0 <= first <= last <= images.shape[0] or (np.diff(offsets, axis=1) < 0).any():
            bad = next((i for i, row in enumerate(offsets, start) if not 0 <= row[0] <= row[-1] or
                        (np.diff(row) < 0).any() or row[-1] > images.shape[0]), start)
            raise self._corrupt(k, bad, "its image_offsets data is corrupt (offsets out of order or range)")
        try:
            return offsets, images[first:last]
        except OSError as e:
            raise self._corrupt(k, start, f"its images data is corrupt ({first_line(e)})") from None

    def _read_jpeg(self, k: int, start: int, stop: int, views=None) -> np.ndarray:
        """Decoded images (n, V or len(views), H, W, 3) of shard ``k``'s scenes ``start .. stop-1``."""
        offsets, data = self._jpeg_bytes(k, start, stop)
        views = np.arange(self.views) if views is None else np.arange(self.views)[views]  # as raw indexes them
        out = np.empty((stop - start, len(views), self.height, self.width, 3), np.uint8)
        base = int(offsets[0, 0])
        for i, row in enumerate(offsets):
            for j, view in enumerate(views):
                frame = data[row[view] - base:row[view + 1] - base]
                try:
                    size = decode_jpeg(frame, out[i, j])
                except ValueError as e:
                    size = jpeg_header_size(frame)
                    if size is None or size == out.shape[2:4]:
                        raise self._corrupt(k, start + i, f"view {view} is not a decodable JPEG image "
                                                          f"({first_line(e)})") from None
                if size != out.shape[2:4]:
                    raise self._corrupt(k, start + i, f"view {view} is a {size[1]}x{size[0]} JPEG image; the "
                                                      f"dataset has {self.width}x{self.height}")
        return out

    def close(self) -> None:
        self._datasets.clear()
        for f in self._files.values():
            f.close()
        self._files.clear()

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_files"] = {}
        state["_datasets"] = {}
        return state

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _readable(dataset: h5py.Dataset, index: int) -> bool:
    try:
        dataset[index]
    except OSError:
        return False
    return True


def disk_size(directory) -> int:
    return sum(p.stat().st_size for p in list_shards(directory))


def make_output_dir(directory) -> Path:
    """Create ``directory`` (and its parents) if needed; refuse one that cannot be created or written."""
    directory = Path(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ShardError(f"cannot create output directory {directory}: {e.strerror}")
    if not os.access(directory, os.W_OK | os.X_OK):
        raise ShardError(f"output directory {directory} is not writable")
    return directory


def claim_output(directory, family: str, params: Mapping, indices=None, option: str = "--out") -> set[int]:
    """Claim ``directory`` for this job until ``release_output`` (or the process's end) and return the shard
    indices already complete there: the one way jobs start writing shards.

    Refuses, in one line naming the command's ``option`` for the directory, a directory that a running job
    with other parameters writes or whose complete shards were written with other parameters. Holds the
    shards this job may write (``indices``: a --shard K/N part's; None: all from the first one missing) and
    refuses if another running process holds one of them (the same job started twice); parts of one job own
    disjoint shards and run side by side. Removes stale temporary files of ``indices`` (all when None) that
    no running process is writing, so an interrupted run can simply be started again.
    """
    directory = make_output_dir(directory)
    wanted = params_json(params)
    owned = None if indices is None else set(indices)
    with starting_job(directory) as start:
        start.refuse_other_job(family, wanted, option)
        done = set()
        for path in list_shards(directory):
            attrs = read_attrs(path)
            if attrs["family"] != family or attrs["params"] != wanted:
                raise ShardError(
                    f"{directory} already holds a dataset written with other parameters "
                    f"({attrs['family']}: {attrs['params']}); use a new {option} directory")
            done.add(shard_index(path))
        hint = "" if owned is None else ", or split the work with --shard K/N"
        start.claim(family, wanted, None if owned is None else owned - done,
                    lambda k: f"{directory}: shard {shard_name(k)} is being written by another running job; "
                              f"run one job per output directory{hint}",
                    open_from=next(k for k in range(len(done) + 1) if k not in done))
        start.remove_stale((int(TMP_RE.match(p.name).group(1)), p) for p in stale_tmp_files(directory, owned))
    return done


class ShardSequence:
    """Writes blocks of consecutive scenes, each tagged with its global index, into their shards.

    Shard ``k`` holds scenes ``k*S ..``; it has ``min(S, total - k*S)`` scenes, or, when ``total`` is None
    (a stream of unknown length), ``S`` scenes except the last, which ``close(keep_partial=True)``
    commits with the scenes it has. Blocks may span shard boundaries. A shard is opened at its first
    scene and committed when full; ``close`` without ``keep_partial`` (or an exception) drops the partial
    shard, leaving only complete files.
    """

    def __init__(self, directory, scenes_per_shard: int, total: int | None, views: int, size: int,
                 **writer_options):
        self.directory = directory
        self.per_shard = scenes_per_shard
        self.total = total
        self.views, self.size = views, size
        self.options = writer_options
        self.writer: ShardWriter | None = None

    def _open(self, scene: int, extras: dict) -> ShardWriter:
        k, offset = divmod(scene, self.per_shard)
        if offset:
            raise ShardError(f"scene {scene} does not start shard {k}; shards are written from their start")
        n = self.per_shard if self.total is None else min(self.per_shard, self.total - k * self.per_shard)
        return ShardWriter(self.directory, k, n, self.views, self.size, scenes_per_shard=self.per_shard,
                           extras={name: (a.shape[1:], a.dtype) for name, a in extras.items()},
                           open_ended=self.total is None, **self.options)

    def write(self, start: int, images, cameras, encoded=None, **extras) -> None:
        """Scenes ``start .. start+n-1``: ``images`` (or ``encoded`` chunks), ``cameras`` and extras."""
        done = 0
        while done < len(cameras):
            scene = start + done
            if self.writer is None:
                self.writer = self._open(scene, extras)
            elif scene != self.writer.index * self.per_shard + self.writer.written:
                raise ShardError(f"scene {scene} is not the next scene of shard {self.writer.index}")
            take = min(len(cameras) - done, self.writer.num_scenes - self.writer.written)
            part = slice(done, done + take)
            self.writer.write(None if images is None else images[part], cameras[part],
                              encoded=None if encoded is None else encoded[part],
                              **{name: a[part] for name, a in extras.items()})
            done += take
            if self.writer.written == self.writer.num_scenes:
                self.writer.commit()
                self.writer = None

    def close(self, keep_partial: bool = False) -> None:
        if self.writer is not None:
            if keep_partial and self.writer.written:
                self.writer.commit()
            else:
                self.writer.abort()
            self.writer = None

    def __enter__(self):
        return self

    def __exit__(self, exc_type, *exc):
        self.close()
