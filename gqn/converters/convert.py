"""``gqn convert tfrecord``: DeepMind GQN TFRecords into gqn shards, with JPEG decoding in worker processes.

Pipeline: the main process reads the records in order (framing and CRC checks), hands chunks of raw records
to the shared worker pool (``gqn.workers``), whose processes parse the Examples and decode the frames with libjpeg-turbo into one
of a few shared-memory slots, and writes the decoded slots to shards in order. Memory is bounded
by the slots (a few MB each), whatever the size of the input. With ``images="jpeg"`` (the default) the
workers parse and check each record (frame count, each JPEG header's size, finite cameras) without decoding
pixels and send back the JPEG frames, which the shards store as they came (format version 2, ``gqn.shards``).

Scene order is deterministic: files in index order (``{i}-of-{n}``), records in file order; scene ``k`` of
a split is its ``k``-th good record. Each shard's ``source`` attribute lists the file ranges it holds
(JSON: ``[{"file": NAME, "records": [FIRST, STOP]}, ...]``); a re-run into the same output continues after
the last complete shard, so an interrupted conversion never duplicates or drops a record.
"""
from __future__ import annotations

import hashlib
import json
import logging
import mmap
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import simplejpeg
from tqdm import tqdm

from gqn.converters.datasets import (CONVERT_COMPRESSION, CONVERT_IMAGES, DATASETS, SPLITS, DatasetInfo,
                                     file_sort_key, infer_dataset)
from gqn.converters.example import ExampleError, parse_scene
from gqn.converters.tfrecord import RecordError, RecordReader
from gqn.encodings import IMAGE_ENCODINGS, decode_jpeg, encode_images, jpeg_header_size
from gqn.errors import GqnError
from gqn.ownership import release_output
from gqn.shards import ShardWriter, claim_output, read_attrs, shard_name
from gqn.workers import WorkerPool

logger = logging.getLogger(__name__)  # a record skipped with --skip-corrupt (WARNING)

SLOT_BYTES = 8 << 20  # decoded scenes per worker task: about this many bytes
MAX_SLOT_RECORDS = 64


class ConvertError(GqnError):
    """Input that cannot be converted as a whole (no TFRecords, unknown dataset)."""


@dataclass
class SplitSummary:
    name: str
    out: Path
    files: int
    scenes: int = 0  # written by this run
    shards: int = 0  # complete shards in the output, this run's and earlier ones
    resumed_shards: int = 0  # complete shards found from an earlier run
    skipped: int = 0  # corrupt records skipped (--skip-corrupt)
    seconds: float = 0.0
    bytes_read: int = 0
    warnings: list[str] = field(default_factory=list)

    def __str__(self):
        seconds = max(self.seconds, 1e-9)
        text = (f"{self.name or 'all'}: {self.scenes} scenes from {_plural(self.files, 'file')} in "
                f"{self.seconds:.1f} s ({self.scenes / seconds:.0f} records/s, "
                f"{self.bytes_read / 1e6 / seconds:.1f} MB/s); {_plural(self.shards, 'shard')} in {self.out}")
        if self.resumed_shards:
            text += f" ({self.resumed_shards} kept from an earlier run)"
        return text + f"; {self.skipped} corrupt records skipped" * bool(self.skipped)


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun}{'s' * (n != 1)}"


def find_inputs(srcs) -> dict[str, list[Path]]:
    """TFRecord files per split (``train``, ``test``, or ``""`` for files outside such a directory).

    Each source is a dataset directory holding ``train/`` and/or ``test/``, a directory of TFRecord files,
    or a TFRecord file. Files are sorted by index (``{i}-of-{n}``).
    """
    groups: dict[str, set[Path]] = {}
    for src in map(Path, srcs):
        if src.is_file():
            found = {_split_of(src.parent): [src]}
        elif src.is_dir():
            dirs = [src / s for s in SPLITS if (src / s).is_dir()] or [src]
            # names starting with "." are temporary files of an unfinished writer (RecordWriter, gqn export)
            found = {_split_of(d): sorted(p for p in d.glob("*.tfrecord*") if not p.name.startswith("."))
                     for d in dirs}
            if not any(found.values()):
                raise ConvertError(f"{src}: no TFRecord files (*.tfrecord, *.tfrecord.gz) found"
                                   + " in train/ or test/" * (dirs[0] != src))
        else:
            raise ConvertError(f"{src}: no such file or directory")
        for split, paths in found.items():
            groups.setdefault(split, set()).update(p.absolute() for p in paths)
    out = {}
    for split, paths in sorted(groups.items(), key=lambda item: (SPLITS + ("",)).index(item[0])):
        files = sorted(paths, key=file_sort_key)
        names = [p.name for p in files]
        if len(set(names)) != len(names):
            raise ConvertError(f"two input files of the {split or 'same'} split share a name; "
                               "convert them separately")
        out[split] = files
    return out


def _split_of(directory: Path) -> str:
    return directory.name if directory.name in SPLITS else ""


def resolve_dataset(srcs, dataset: str | None) -> DatasetInfo:
    if dataset is None:
        names = {infer_dataset(src) for src in srcs} - {None}
        if len(names) != 1:
            raise ConvertError("cannot tell the dataset from the input path" + (f"s ({', '.join(sorted(names))})"
                               if names else "") + f"; pass --dataset (one of {', '.join(DATASETS)})")
        dataset = names.pop()
    if dataset not in DATASETS:
        raise ConvertError(f"unknown dataset {dataset!r}; choose from {', '.join(DATASETS)}")
    return DATASETS[dataset]




def convert_tfrecord(srcs, out, dataset: str | None = None, *, workers: int | None = None,
                     scenes_per_shard: int = 2000, compression: str = CONVERT_COMPRESSION,
                     images: str = CONVERT_IMAGES, skip_corrupt: bool = False,
                     progress: bool = True) -> list[SplitSummary]:
    """Convert TFRecord files (see ``find_inputs``) into shards under ``out/<split>/``; resumable.

    ``images``: ``jpeg`` stores each frame's JPEG file unchanged (format version 2), ``raw`` the decoded
    uint8 pixels (format version 1, readable by chainer-gqn). ``compression`` applies to raw only.
    """
    if images not in IMAGE_ENCODINGS:
        raise ConvertError(f"unknown image encoding {images!r}; choose from {', '.join(IMAGE_ENCODINGS)}")
    if images == "jpeg" and compression != "none":
        raise ConvertError(f"--compression {compression} applies to --images raw only: jpeg shards keep the "
                           "JPEG files as they came (drop --compression, or add --images raw)")
    srcs = [srcs] if isinstance(srcs, (str, os.PathLike)) else list(srcs)
    info = resolve_dataset(srcs, dataset)
    inputs = find_inputs(srcs)
    workers = workers or (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count())
    summaries = []
    for split, files in inputs.items():
        expected = info.files(split) if split else None
        try:
            summary = _Conversion(info, split, files, Path(out) / split, workers=workers,
                                  scenes_per_shard=scenes_per_shard, compression=compression, images=images,
                                  skip_corrupt=skip_corrupt, progress=progress).run()
        finally:
            release_output(Path(out) / split)
        if expected is not None and len(files) != expected:
            summary.warnings.append(f"{split}: converted {len(files)} of the {expected} files of "
                                    f"{info.name}/{split}")
        summaries.append(summary)
    return summaries


# ---- worker processes: parse Examples and decode frames into a shared slot ----

@dataclass
class _WorkerState:
    slots: list[np.ndarray]  # raw images: the shared slots decoded scenes go to
    compression: str
    images: str  # the image encoding
    views: int
    size: int


def _worker_state(state: _WorkerState) -> _WorkerState:
    return state


def decode_frame(data: bytes, out: np.ndarray, view: int) -> None:
    """Decode one JPEG frame into ``out`` (H, W, 3); a non-JPEG or a frame of another size raises."""
    try:
        shape = decode_jpeg(data, out)
    except ValueError as e:
        shape = jpeg_header_size(data)
        if shape is None or shape[:2] == out.shape[:2]:
            raise ExampleError(f"frame {view} is not a decodable JPEG image ({e})") from None
    _check_frame_size(shape, out.shape, view)


def check_frame(data: bytes, size: tuple[int, int], view: int) -> None:
    """Check one JPEG frame's header without decoding its pixels: a non-JPEG or another size raises."""
    try:
        shape = simplejpeg.decode_jpeg_header(data)[:2]
    except ValueError as e:
        raise ExampleError(f"frame {view} is not a decodable JPEG image ({e})") from None
    _check_frame_size(shape, size, view)


def _check_frame_size(shape, size, view: int) -> None:
    if tuple(shape[:2]) != tuple(size[:2]):
        raise ExampleError(f"frame {view} is {shape[1]}x{shape[0]} pixels; the dataset has "
                           f"{size[1]}x{size[0]}")


def parse_checked(data: bytes, views: int) -> tuple[list[bytes], np.ndarray]:
    """The JPEG frames and cameras (V, 5) of one serialized scene Example, after checking the number of frames
    and camera values and that every camera is finite."""
    frames, cameras = parse_scene(data)
    if len(frames) != views or cameras.size != 5 * views:
        raise ExampleError(f"scene has {len(frames)} frames and {cameras.size} camera values; "
                           f"the dataset has {views} views ({5 * views} camera values)")
    bad = ~np.isfinite(cameras.reshape(views, 5)).all(axis=1)
    if bad.any():
        raise ExampleError(f"camera of view {int(np.argmax(bad))} holds a NaN or infinite value "
                           f"({int(bad.sum())} of {views} views)")
    return frames, cameras.reshape(views, 5)


def decode_scene(data: bytes, out: np.ndarray) -> np.ndarray:
    """Decode one serialized scene Example into ``out`` (V, H, W, 3); returns its cameras (V, 5)."""
    frames, cameras = parse_checked(data, len(out))
    for view, frame in enumerate(frames):
        decode_frame(frame, out[view], view)
    return cameras


def _check_chunk(state: _WorkerState, records: list[tuple[tuple[int, int], bytes]]):
    """Jpeg output: check ``records`` ((file, record) position, data) and return, for the good ones, their
    cameras, positions and JPEG frames (bytes, as they came)."""
    cameras, good, bad, frames = [], [], [], []
    for position, data in records:
        try:
            scene, scene_cameras = parse_checked(data, state.views)
            for view, frame in enumerate(scene):
                check_frame(frame, (state.size, state.size), view)
        except ExampleError as e:
            bad.append((position, str(e)))
        else:
            cameras.append(scene_cameras)
            good.append(position)
            frames.append(scene)
    return np.array(cameras, np.float32), good, bad, frames


def _decode_chunk(state: _WorkerState, task: tuple[int, list[tuple[tuple[int, int], bytes]]]):
    """Decode ``records`` ((file, record) position, data) into slot ``slot``, good scenes first; with a
    compressed output, also return the good scenes' compressed image chunks (compressing here, in parallel,
    keeps the writing process free). Jpeg output: no decoding and no slot (``_check_chunk``).

    Frames are decoded into a small, cache-resident scratch scene that is then copied to the slot in one go:
    about 3 % faster than decoding into the shared mapping directly.
    """
    slot, records = task
    if state.images == "jpeg":
        return (slot, *_check_chunk(state, records))
    compression = state.compression
    out = state.slots[slot]
    scratch = np.empty(out.shape[1:], np.uint8)
    cameras, good, bad = [], [], []
    for position, data in records:
        try:
            cameras.append(decode_scene(data, scratch))
        except ExampleError as e:
            bad.append((position, str(e)))
        else:
            out[len(good)] = scratch
            good.append(position)
    encoded = encode_images(out[:len(good)], compression) if compression != "none" else None
    return slot, np.array(cameras, np.float32), good, bad, encoded


# ---- the main process: read, dispatch, write in order ----

class _Conversion:
    def __init__(self, info: DatasetInfo, split: str, files: list[Path], out: Path, *, workers: int,
                 scenes_per_shard: int, compression: str, images: str, skip_corrupt: bool, progress: bool):
        self.info, self.files, self.out = info, files, out
        self.workers, self.skip_corrupt, self.progress = workers, skip_corrupt, progress
        self.scenes_per_shard, self.compression, self.images = scenes_per_shard, compression, images
        self.family = f"deepmind/{info.name}"
        names = "\n".join(p.name for p in files)
        self.params = {"dataset": info.name, "split": split, "scenes_per_shard": scenes_per_shard,
                       "compression": compression, "input_files": len(files),
                       "input_names_sha1": hashlib.sha1(names.encode()).hexdigest()}
        if images != "raw":  # raw output keeps the parameters (and bytes) of the converter before --images
            self.params["images"] = images
        self.summary = SplitSummary(split, out, len(files))
        self.record_bytes = info.views * info.size * info.size * 3
        self.slot_records = max(1, min(MAX_SLOT_RECORDS, SLOT_BYTES // self.record_bytes))
        self._writer: ShardWriter | None = None
        self._source: list[dict] = []  # file ranges of the shard being written

    def run(self) -> SplitSummary:
        done = claim_output(self.out, self.family, self.params, option="OUT")
        self.shard = 0
        while self.shard in done:
            self.shard += 1
        self.summary.resumed_shards = self.summary.shards = self.shard
        start_file, start_record = self._resume_point()
        shape = (self.slot_records, self.info.views, self.info.size, self.info.size, 3)
        slots = [np.frombuffer(mmap.mmap(-1, int(np.prod(shape))), np.uint8).reshape(shape)
                 if self.images == "raw" else None for _ in range(2 * self.workers + 1)]
        self._started = time.perf_counter()
        # forked (before tqdm starts its monitor thread): the workers inherit the slots' shared mappings
        state = _WorkerState(slots, self.compression, self.images, self.info.views, self.info.size)
        pool = WorkerPool(self.workers, _worker_state, (state,), start="fork")
        with pool, \
                tqdm(total=sum(p.stat().st_size for p in self.files),
                     initial=sum(p.stat().st_size for p in self.files[:start_file]), unit="B", unit_scale=True,
                     disable=not self.progress, desc=self.summary.name or "convert", dynamic_ncols=True) as bar:
            self._bar = bar
            try:
                self._pipeline(pool, slots, self._records(start_file, start_record))
                self._close_shard()
            finally:
                if self._writer is not None:
                    self._writer.abort()
        self.summary.seconds = time.perf_counter() - self._started
        return self.summary

    def _resume_point(self) -> tuple[int, int]:
        """(file, record) where scene ``shard * scenes_per_shard`` comes from: after the last kept shard."""
        if self.shard == 0:
            return 0, 0
        attrs = read_attrs(self.out / shard_name(self.shard - 1))
        if attrs["_shapes"]["images"][0] < self.scenes_per_shard:  # the short last shard: input exhausted
            return len(self.files), 0
        last = json.loads(attrs["source"])[-1]
        return [p.name for p in self.files].index(last["file"]), last["records"][1]

    def _records(self, start_file: int, start_record: int):
        """((file, record), data) for every readable record from the resume point on, in order."""
        for f in range(start_file, len(self.files)):
            path = self.files[f]
            with RecordReader(path, start_record if f == start_file else 0,
                              self._skip if self.skip_corrupt else None) as reader:
                position = reader.position
                for index, data in reader:
                    self._advance(reader.position - position)
                    position = reader.position
                    yield (f, index), data
                self._advance(path.stat().st_size - position)

    def _advance(self, nbytes: int) -> None:
        self.summary.bytes_read += nbytes
        self._bar.update(nbytes)

    def _skip(self, error: RecordError) -> None:
        self.summary.skipped += 1
        logger.warning(f"skipped {error}" + "; rest of the file skipped" * error.fatal)

    def _pipeline(self, pool: WorkerPool, slots, records) -> None:
        """Decode chunks of records on ``pool`` into ``slots`` (round robin: a slot is taken again only after
        its result was written) and write the results in order."""
        failure = []

        def tasks():
            try:
                for n, chunk in enumerate(_chunks(records, self.slot_records)):
                    yield n % len(slots), chunk
            except RecordError as e:  # the reader runs ahead: write the good scenes read before it first
                failure.append(e)

        for result in pool.map(_decode_chunk, tasks(), ahead=len(slots) - 1):
            self._collect(result, slots)
        if failure:
            raise failure[0]

    def _collect(self, result, slots) -> int:
        slot, cameras, good, bad, encoded = result
        for (f, index), reason in bad:
            error = RecordError(self.files[f], index, reason)
            if not self.skip_corrupt:
                raise error
            self._skip(error)
        self._write(None if slots[slot] is None else slots[slot][:len(good)], cameras, good, encoded)
        return slot

    def _write(self, images: np.ndarray | None, cameras: np.ndarray, positions: list[tuple[int, int]],
               encoded: list | None) -> None:
        """Write the good scenes of a chunk: decoded ``images`` (with ``encoded`` their compressed chunks, if
        any), or for jpeg output ``encoded`` only, the scenes' JPEG frames."""
        done = 0
        while done < len(positions):
            if self._writer is None:
                self._writer = ShardWriter(self.out, self.shard, self.scenes_per_shard, self.info.views,
                                           self.info.size, family=self.family,
                                           scenes_per_shard=self.scenes_per_shard, params=self.params,
                                           compression=self.compression, open_ended=True,
                                           image_encoding=self.images)
            n = min(len(positions) - done, self.scenes_per_shard - self._writer.written)
            self._writer.write(None if images is None else images[done:done + n], cameras[done:done + n],
                               encoded=encoded[done:done + n] if encoded else None)
            for f, index in positions[done:done + n]:
                name = self.files[f].name
                if self._source and self._source[-1]["file"] == name:
                    self._source[-1]["records"][1] = index + 1
                else:
                    self._source.append({"file": name, "records": [index, index + 1]})
            done += n
            self.summary.scenes += n
            if self._writer.written == self.scenes_per_shard:
                self._close_shard()
        rate = self.summary.scenes / (time.perf_counter() - self._started)
        self._bar.set_postfix_str(f"{self.summary.scenes} scenes, {rate:.0f} records/s", refresh=False)

    def _close_shard(self) -> None:
        if self._writer is None:
            return
        self._writer.set_source(json.dumps(self._source))
        self._writer.commit()
        self._writer, self._source = None, []
        self.shard += 1
        self.summary.shards += 1


def _chunks(items, size: int):
    chunk = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
