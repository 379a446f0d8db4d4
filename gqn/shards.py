"""The gqn shard format (version 1): the one writer and reader of multi-view scene datasets.

A dataset is a directory of HDF5 files ``000000.h5``, ``000001.h5``, ... Shard ``k`` of a dataset written
with ``S`` scenes per shard holds global scenes ``k*S .. k*S+n-1`` in the datasets

* ``images``     uint8   (n, V, H, W, 3)   RGB frames, one HDF5 chunk per scene
* ``viewpoints`` float32 (n, V, 7)         x, y, z, cos(yaw), sin(yaw), cos(pitch), sin(pitch)
* ``cameras``    float32 (n, V, 5)         x, y, z, yaw, pitch (radians)

plus optional per-scene ``extras`` (e.g. ``labels`` for mnist-dice) whose first axis is the scene.
A shard is written under a temporary name (``.000123.h5.tmp``) and renamed into place when complete, so a
file named ``NNNNNN.h5`` is always whole.
"""
from __future__ import annotations

import json
import os
import re
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import h5py
import numpy as np
from isal import isal_zlib

from gqn import __version__
from gqn.errors import GqnError

FORMAT = "gqn-shard"
FORMAT_VERSION = 1
SHARD_RE = re.compile(r"^(\d{6})\.h5$")
TMP_RE = re.compile(r"^\.(\d{6})\.h5\.tmp$")
COMPRESSIONS = ("none", "lzf") + tuple(f"gzip-{level}" for level in range(1, 10))
DEFAULT_COMPRESSION = "gzip-1"  # bench/render.py: ~24x smaller than none at the same speed


class ShardError(GqnError):
    """A shard or dataset directory that cannot be read or written as the gqn shard format."""


class WriteError(GqnError):
    """A file that could not be written (a full disk, a lost mount); its partial temporary file is removed."""


def os_reason(error: BaseException) -> str:
    """Why a file operation failed, in the system's words ("No space left on device"). HDF5 reports the
    errno inside its message ("... errno = 28, error message = ..."), sometimes as a RuntimeError."""
    code = getattr(error, "errno", None)
    if not isinstance(code, int) or not code:
        found = re.search(r"errno = (\d+)", str(error))
        code = int(found.group(1)) if found else None
    if code:
        return os.strerror(code)
    return getattr(error, "strerror", None) or _first_line(error)


def write_error(what: str, path, error: BaseException) -> WriteError:
    """The one-line error for a failed write of ``what`` (e.g. "shard") to ``path``."""
    return WriteError(f"writing {what} {path}: {os_reason(error)}")


def shard_name(index: int) -> str:
    return f"{index:06d}.h5"


def tmp_name(index: int) -> str:
    return f".{index:06d}.h5.tmp"


def viewpoints_from_cameras(cameras: np.ndarray) -> np.ndarray:
    """Map raw poses (..., 5) = x, y, z, yaw, pitch to the 7-D viewpoint (..., 7) of the shard format."""
    cameras = np.asarray(cameras, dtype=np.float32)
    yaw, pitch = cameras[..., 3], cameras[..., 4]
    return np.concatenate(
        [cameras[..., :3], np.stack([np.cos(yaw), np.sin(yaw), np.cos(pitch), np.sin(pitch)], -1)], -1
    ).astype(np.float32)


def _filter_args(compression: str) -> dict:
    if compression == "none":
        return {}
    if compression == "lzf":
        return {"compression": "lzf"}
    if compression.startswith("gzip-") and compression in COMPRESSIONS:
        return {"compression": "gzip", "compression_opts": int(compression[5:])}
    raise ShardError(f"unknown compression {compression!r}; choose from {', '.join(COMPRESSIONS)}")


def deflate(data, level: int) -> bytes:
    """A zlib stream, as HDF5's gzip filter stores it. Levels 1-3 use ISA-L (python-isal): the same format
    at 4-5x zlib's speed (bench/render.py); HDF5 inflates it with its own zlib."""
    return isal_zlib.compress(data, level) if level <= 3 else zlib.compress(data, level)


def encode_images(images: np.ndarray, compression: str) -> list | None:
    """Each scene of ``images`` (n, V, H, W, 3) as its stored HDF5 chunk (bytes-like), for
    ``ShardWriter.write(encoded=...)``: lets worker processes compress in parallel instead of the writing
    process. None for lzf, which only HDF5 can encode (the writer then compresses)."""
    _filter_args(compression)
    if compression == "lzf":
        return None
    scenes = np.ascontiguousarray(images, np.uint8)
    if compression == "none":
        return list(scenes)
    level = int(compression[5:])
    return [deflate(scene, level) for scene in scenes]


def params_json(params: Mapping) -> str:
    """Canonical JSON for the ``params`` attribute (sorted keys, so equal parameters give equal text)."""
    return json.dumps(dict(params), sort_keys=True)


class ShardWriter:
    """Writes one shard atomically: scenes are appended in order, ``commit`` renames the file into place.

    Use as a context manager; leaving the block without ``commit`` (an exception, Ctrl-C) removes the
    temporary file, so no ``NNNNNN.h5`` is ever partial. With ``open_ended``, ``num_scenes`` is an upper
    bound and ``commit`` keeps the scenes written so far (for a stream whose length is not known ahead).
    """

    def __init__(self, directory, index: int, num_scenes: int, views: int, size: tuple[int, int] | int,
                 *, family: str, scenes_per_shard: int, params: Mapping, compression: str = DEFAULT_COMPRESSION,
                 seed: int | None = None, source: str | None = None,
                 extras: Mapping[str, tuple[tuple, str]] | None = None, open_ended: bool = False):
        height, width = (size, size) if isinstance(size, int) else size
        self.directory = Path(directory)
        self.index = index
        self.num_scenes = num_scenes
        self.final_path = self.directory / shard_name(index)
        self.tmp_path = self.directory / tmp_name(index)
        self.written = 0
        self.compression = compression
        self.open_ended = open_ended
        filters = _filter_args(compression)
        try:
            self._file = h5py.File(self.tmp_path, "w", libver="latest")
        except OSError as e:
            self.tmp_path.unlink(missing_ok=True)
            raise write_error("shard", self.tmp_path, e) from None
        try:
            f = self._file
            def create(name, shape, dtype, **kwargs):
                if open_ended:
                    kwargs["maxshape"] = (None, *shape[1:])
                f.create_dataset(name, shape, dtype, track_times=False, **kwargs)

            create("images", (num_scenes, views, height, width, 3), np.uint8,
                   chunks=(1, views, height, width, 3), **filters)
            create("viewpoints", (num_scenes, views, 7), np.float32, chunks=(min(num_scenes, 1024), views, 7))
            create("cameras", (num_scenes, views, 5), np.float32, chunks=(min(num_scenes, 1024), views, 5))
            for name, (shape, dtype) in (extras or {}).items():
                create(name, (num_scenes, *shape), np.dtype(dtype))
            attrs = {"format": FORMAT, "format_version": FORMAT_VERSION, "family": family,
                     "first_scene": index * scenes_per_shard, "scenes_per_shard": scenes_per_shard,
                     "params": params_json(params), "generator": f"gqn-toolkit {__version__}"}
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
        are stored as they are.
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
        if encoded is None:
            if np.shape(images)[1:] != dataset.shape[1:]:
                raise ShardError(f"images of shape {np.shape(images)[1:]} do not fit {dataset.shape[1:]}")
            encoded = encode_images(images, self.compression)  # whole chunks: skips HDF5's selection code
        if encoded is None:
            dataset[sl] = images
        else:
            for i, chunk in enumerate(encoded, self.written):
                dataset.id.write_direct_chunk((i, 0, 0, 0, 0), chunk)
        self._file["cameras"][sl] = cameras
        self._file["viewpoints"][sl] = viewpoints_from_cameras(cameras)
        for name, value in extras.items():
            self._file[name][sl] = value

    def set_source(self, source: str) -> None:
        """Set the ``source`` attribute (a converter may learn a shard's inputs only while writing it)."""
        self._file.attrs["source"] = source

    def commit(self) -> Path:
        if self.written != self.num_scenes:
            if not (self.open_ended and self.written):
                raise ShardError(f"shard {self.index}: {self.written} of {self.num_scenes} scenes written")
        try:
            if self.written != self.num_scenes:
                for dataset in self._file.values():
                    dataset.resize(self.written, axis=0)
            self._file.close()  # flushes the metadata: a full disk may show only here
            os.replace(self.tmp_path, self.final_path)
        except (OSError, RuntimeError) as e:  # h5py reports some failed flushes as RuntimeError
            raise self._failed(e) from None
        return self.final_path

    def _failed(self, error: BaseException) -> WriteError:
        """Remove the temporary file after a failed write; the error to raise."""
        self.abort()
        return write_error("shard", self.tmp_path, error)

    def abort(self) -> None:
        try:
            if self._file.id.valid:
                self._file.close()
        except (OSError, RuntimeError):  # a file that could not be written may not close cleanly either
            pass
        self.tmp_path.unlink(missing_ok=True)

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
    """Validated root attributes of one shard; a foreign, truncated or newer file raises ShardError."""
    try:
        with h5py.File(path, "r") as f:
            attrs = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f.attrs.items()}
            shapes = {name: f[name].shape for name in ("images", "viewpoints", "cameras") if name in f}
    except OSError as e:
        raise ShardError(f"{path}: not a readable HDF5 file ({e.__class__.__name__}: truncated or foreign)")
    if attrs.get("format") != FORMAT:
        raise ShardError(f"{path}: not a gqn shard (format attribute is {attrs.get('format')!r})")
    if int(attrs.get("format_version", -1)) != FORMAT_VERSION:
        raise ShardError(f"{path}: shard format version {attrs.get('format_version')} is not supported "
                         f"(this is gqn-toolkit {__version__}, format version {FORMAT_VERSION})")
    if len(shapes) != 3:
        raise ShardError(f"{path}: missing datasets (has {sorted(shapes)})")
    missing = [key for key in ("family", "params", "first_scene", "scenes_per_shard") if key not in attrs]
    if missing:
        raise ShardError(f"{path}: not a valid gqn shard (missing root attributes {', '.join(missing)})")
    if int(attrs["scenes_per_shard"]) < 1 or int(attrs["first_scene"]) < 0:
        raise ShardError(f"{path}: not a valid gqn shard (first_scene {attrs['first_scene']}, "
                         f"scenes_per_shard {attrs['scenes_per_shard']})")
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
            n, views, height, width, _ = attrs["_shapes"]["images"]
            self._shards.append(_Shard(path, total, n))
            total += n
            claims.append((path, int(attrs["first_scene"]), n, int(attrs["scenes_per_shard"])))
        check_scene_ranges(self.directory, claims)
        self.attrs = first_attrs
        self.num_scenes = total
        _, self.views, self.height, self.width, _ = first_attrs["_shapes"]["images"]
        self.family = first_attrs["family"]
        self.params = json.loads(first_attrs["params"])
        self._starts = np.array([s.first for s in self._shards])
        self._files: dict[int, h5py.File] = {}

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
                raise ShardError(f"{path}: cannot be opened ({_first_line(e)})") from None
        return f

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
        """Selected ``views`` (index array) of one scene; reads that scene's chunk only."""
        k, local = self._locate(scene)
        views = np.asarray(views)
        return {name: self._read(k, name, local, local + 1)[0][views] for name in names}

    def _read(self, k: int, name: str, start: int, stop: int) -> np.ndarray:
        """Dataset ``name`` of shard ``k``'s scenes ``start .. stop-1``; a chunk that cannot be read (damaged
        on disk: HDF5 reports a failed decompression or a bad offset as OSError) raises a ShardError naming
        the shard and the first unreadable scene."""
        dataset = self._file(k)[name]
        try:
            return dataset[start:stop]
        except OSError as e:
            bad = next((i for i in range(start, stop) if not _readable(dataset, i)), start)
            shard = self._shards[k]
            raise ShardError(f"{shard.path}: scene {shard.first + bad} (scene {bad} of this shard) cannot be "
                             f"read: its {name} data is corrupt ({_first_line(e)})") from None

    def close(self) -> None:
        for f in self._files.values():
            f.close()
        self._files.clear()

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_files"] = {}
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


def _first_line(error: Exception) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


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


def remove_stale(paths) -> None:
    """Remove temporary files an interrupted writer left behind (they are never whole)."""
    for path in paths:
        path.unlink(missing_ok=True)


def prepare_output(directory, family: str, params: Mapping, indices=None, option: str = "--out") -> set[int]:
    """Make ``directory`` ready for (resumed) writing and return the shard indices already complete.

    Refuses a directory whose existing shards were written with other parameters (the message names the
    command's ``option`` for the directory), and removes stale temporary files of the shards this writer
    owns (``indices``; all when None), so an interrupted run can simply be started again.
    """
    directory = make_output_dir(directory)
    wanted = params_json(params)
    done = set()
    for path in list_shards(directory):
        attrs = read_attrs(path)
        if attrs["family"] != family or attrs["params"] != wanted:
            raise ShardError(
                f"{directory} already holds a dataset written with other parameters "
                f"({attrs['family']}: {attrs['params']}); use a new {option} directory")
        done.add(shard_index(path))
    remove_stale(stale_tmp_files(directory, None if indices is None else set(indices)))
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
