"""``gqn convert tfrecord``: DeepMind GQN TFRecords into gqn shards, each shard written by one worker process.

Plan: the workers read every input file's record headers (``RecordReader.offsets``: framing and length CRCs,
no data) and the main process cuts the split's records, files in index order (``{i}-of-{n}``) and records in
file order, into shards of ``scenes_per_shard`` consecutive records: shard ``k`` holds records
``k*S .. (k+1)*S-1`` of the split. Then each worker converts whole shards on its own: it reads the records
(data CRCs), parses and checks each scene (frame count, JPEG header sizes, finite cameras), decodes the frames
with libjpeg-turbo for ``images="raw"`` or keeps each JPEG file as it came for ``images="jpeg"`` (format
version 2, ``gqn.shards``), writes the shard and commits it. The main process only plans and reports, so no
pixels travel between processes, shard contents do not depend on the number of workers, and memory is a
block of scenes per worker whatever the input size.

Each shard's ``source`` attribute lists the file ranges it holds (JSON: ``[{"file": NAME, "records": [FIRST,
STOP]}, ...]``). A corrupt record skipped with ``--skip-corrupt`` leaves its shard a scene short (the count is
the shard's ``skipped_records`` attribute), so scene numbers stay record numbers. A re-run into the same
output converts the shards that are missing, so an interrupted conversion never duplicates or drops a record.
"""
from __future__ import annotations

import hashlib
import json
import logging
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
from gqn.encodings import IMAGE_ENCODINGS, decode_jpeg, jpeg_header_size
from gqn.errors import GqnError
from gqn.ownership import release_output
from gqn.shards import ShardWriter, claim_output
from gqn.workers import WorkerPool

logger = logging.getLogger(__name__)  # a record skipped with --skip-corrupt (WARNING)

BLOCK_BYTES = 8 << 20  # raw output: scenes decoded and written at a time, about this many bytes
MAX_BLOCK_SCENES = 64


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


# ---- checking and decoding one record ----

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


# ---- the plan: shards as runs of consecutive records ----

@dataclass(frozen=True)
class _Piece:
    """Records ``start .. stop-1`` of input file ``file``; record ``start`` begins at byte ``offset`` of the
    file's (uncompressed) stream."""
    file: int
    start: int
    stop: int
    offset: int


@dataclass(frozen=True)
class _Shard:
    index: int
    pieces: tuple[_Piece, ...]
    nbytes: int  # bytes of the input files that hold its records, for the progress bar

    @property
    def records(self) -> int:
        return sum(piece.stop - piece.start for piece in self.pieces)


def plan_shards(offsets: list[list[int]], sizes: list[int], scenes_per_shard: int) -> list[_Shard]:
    """Cut a split's records, file after file, into shards of ``scenes_per_shard`` consecutive records (the
    last may hold fewer). ``offsets``: per file, its records' start offsets and the end of the last one
    (``RecordReader.offsets``); ``sizes``: the files' sizes on disk."""
    shards, pieces, nbytes, taken = [], [], 0.0, 0
    for f, (starts, size) in enumerate(zip(offsets, sizes)):
        scale = size / max(starts[-1], 1)  # bytes on disk per stream byte: below 1 for a GZIP file
        record = 0
        while record < len(starts) - 1:
            stop = min(len(starts) - 1, record + scenes_per_shard - taken)
            pieces.append(_Piece(f, record, stop, starts[record]))
            nbytes += (starts[stop] - starts[record]) * scale
            taken += stop - record
            record = stop
            if taken == scenes_per_shard:
                shards.append(_Shard(len(shards), tuple(pieces), round(nbytes)))
                pieces, nbytes, taken = [], 0.0, 0
    if pieces:
        shards.append(_Shard(len(shards), tuple(pieces), round(nbytes)))
    return shards


# ---- worker processes: each converts whole shards, from reading the records to committing the file ----

@dataclass
class _Job:
    """What a worker needs to write any shard of a split (inherited by the forked workers)."""
    files: list[Path]
    out: Path
    family: str
    params: dict
    views: int
    size: int
    scenes_per_shard: int
    compression: str
    images: str  # the image encoding
    skip_corrupt: bool
    block: int  # scenes handed to the shard writer at a time


def _job(job: _Job) -> _Job:
    return job


def _scan_file(_job: _Job, path: Path) -> tuple[list[int], RecordError | None]:
    with RecordReader(path) as reader:
        return reader.offsets()


class _Blocks:
    """Scenes handed to a ``ShardWriter`` a block at a time: jpeg output keeps each record's JPEG frames as
    they came (after checking them), raw output decodes them into a reused buffer."""

    def __init__(self, job: _Job, writer: ShardWriter):
        self.job, self.writer = job, writer
        self.images = (np.empty((job.block, job.views, job.size, job.size, 3), np.uint8)
                       if job.images == "raw" else None)
        self.cameras, self.frames = [], []

    def add(self, data: bytes) -> None:
        """Add one serialized scene; ``ExampleError`` if it is not a usable scene of the dataset."""
        if self.images is None:
            frames, cameras = parse_checked(data, self.job.views)
            for view, frame in enumerate(frames):
                check_frame(frame, (self.job.size, self.job.size), view)
            self.frames.append(frames)
        else:
            cameras = decode_scene(data, self.images[len(self.cameras)])
        self.cameras.append(cameras)
        if len(self.cameras) == self.job.block:
            self.flush()

    def flush(self) -> None:
        n = len(self.cameras)
        if n:
            self.writer.write(None if self.images is None else self.images[:n], np.array(self.cameras),
                              encoded=self.frames or None)
        self.cameras, self.frames = [], []


def _write_shard(job: _Job, shard: _Shard) -> tuple[int, list[RecordError]]:
    """Convert ``shard``'s records into its file and commit it; returns the scenes written and the corrupt
    records skipped. Without ``skip_corrupt`` a corrupt record raises ``RecordError`` and leaves no file."""
    skipped: list[RecordError] = []
    on_corrupt = skipped.append if job.skip_corrupt else None
    with ShardWriter(job.out, shard.index, shard.records, job.views, job.size, family=job.family,
                     scenes_per_shard=job.scenes_per_shard, params=job.params, compression=job.compression,
                     open_ended=True, image_encoding=job.images, held_by_parent=True) as writer:
        blocks = _Blocks(job, writer)
        for piece in shard.pieces:
            path = job.files[piece.file]
            with RecordReader(path, piece.start, on_corrupt, offset=piece.offset, stop=piece.stop) as reader:
                for index, data in reader:
                    try:
                        blocks.add(data)
                    except ExampleError as e:
                        error = RecordError(path, index, str(e))
                        if on_corrupt is None:
                            raise error from None
                        on_corrupt(error)
        blocks.flush()
        writer.set_source(json.dumps([{"file": job.files[p.file].name, "records": [p.start, p.stop]}
                                      for p in shard.pieces]), skipped=len(skipped))
        writer.commit()
    return writer.written, skipped


# ---- the main process: plan, hand shards to the workers, report ----

class _Conversion:
    def __init__(self, info: DatasetInfo, split: str, files: list[Path], out: Path, *, workers: int,
                 scenes_per_shard: int, compression: str, images: str, skip_corrupt: bool, progress: bool):
        self.files, self.out, self.workers, self.progress = files, out, workers, progress
        self.skip_corrupt, self.scenes_per_shard = skip_corrupt, scenes_per_shard
        names = "\n".join(p.name for p in files)
        params = {"dataset": info.name, "split": split, "scenes_per_shard": scenes_per_shard,
                  "compression": compression, "input_files": len(files),
                  "input_names_sha1": hashlib.sha1(names.encode()).hexdigest()}
        if images != "raw":  # raw output keeps the parameters (and bytes) of the converter before --images
            params["images"] = images
        record_bytes = info.views * info.size * info.size * 3
        self.job = _Job(files, out, f"deepmind/{info.name}", params, info.views, info.size, scenes_per_shard,
                        compression, images, skip_corrupt,
                        block=max(1, min(MAX_BLOCK_SCENES, BLOCK_BYTES // record_bytes)))
        self.summary = SplitSummary(split, out, len(files))

    def run(self) -> SplitSummary:
        done = claim_output(self.out, self.job.family, self.job.params, option="OUT")
        self.summary.resumed_shards = self.summary.shards = len(done)
        started = time.perf_counter()
        # forked before tqdm starts its monitor thread; the workers write shards under this process's claim
        with WorkerPool(self.workers, _job, (self.job,), start="fork") as pool:
            todo = [shard for shard in self._plan(pool) if shard.index not in done]
            total = sum(p.stat().st_size for p in self.files)
            with tqdm(total=total, initial=total - sum(s.nbytes for s in todo), unit="B", unit_scale=True,
                      disable=not self.progress, desc=self.summary.name or "convert", dynamic_ncols=True) as bar:
                for shard, (scenes, skipped) in zip(todo, pool.map(_write_shard, todo)):
                    for error in skipped:
                        self._skip(error)
                    self.summary.scenes += scenes
                    self.summary.shards += 1
                    self.summary.bytes_read += shard.nbytes
                    bar.update(shard.nbytes)
                    rate = self.summary.scenes / (time.perf_counter() - started)
                    bar.set_postfix_str(f"{self.summary.scenes} scenes, {rate:.0f} records/s", refresh=False)
        self.summary.seconds = time.perf_counter() - started
        return self.summary

    def _plan(self, pool: WorkerPool) -> list[_Shard]:
        """Find every record's offset (headers only, on the workers) and cut the records into shards. A
        file's damaged framing (a truncated file, a corrupt header) ends it there with ``skip_corrupt``."""
        offsets = []
        for starts, error in pool.map(_scan_file, self.files):
            if error is not None:
                if not self.skip_corrupt:
                    raise error
                self._skip(error)
            offsets.append(starts)
        return plan_shards(offsets, [p.stat().st_size for p in self.files], self.scenes_per_shard)

    def _skip(self, error: RecordError) -> None:
        self.summary.skipped += 1
        logger.warning(f"skipped {error}" + "; rest of the file skipped" * error.fatal)
