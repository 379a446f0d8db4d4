"""``gqn export tfrecord``: shards (rendered or converted) into TFRecord files in DeepMind's GQN format.

Scenes keep their order: file ``{i}-of-{n}.tfrecord`` holds scenes ``(i-1)*R .. i*R-1`` for ``R`` records
per file. Frames of raw shards are JPEG-encoded (4:4:4 chroma, ``quality``); those of jpeg shards (``gqn
convert``'s default) are copied as stored, so a convert -> export round trip gives back the source frames
byte for byte. Cameras are written as stored (raw x, y, z, yaw, pitch), so converting the files back gives
the same cameras exactly and the frames exactly (jpeg shards) or up to JPEG loss (raw shards).

Each file is written under a temporary name and renamed when complete, and is a pure function of the
shards and the export parameters (recorded in ``.gqn-export.json`` next to the files). An interrupted
export resumes like ``gqn convert``: a re-run with the same parameters keeps the complete files, removes
stale temporary files and writes the rest; a re-run with other parameters is refused.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import simplejpeg
from tqdm import tqdm

from gqn.converters.datasets import SPLITS, record_file_name
from gqn.converters.example import encode_scene
from gqn.converters.tfrecord import RecordWriter
from gqn.errors import GqnError
from gqn.files import write_error
from gqn.interrupt import Interrupted
from gqn.ownership import release_output, starting_job
from gqn.shards import Dataset, list_shards, make_output_dir, params_json

READ_BLOCK = 64  # scenes read from the shards at a time
MANIFEST = ".gqn-export.json"  # the export parameters, compared when an export is resumed
FAMILY = "tfrecord-export"  # an export's identity in the output directory's lock (gqn.ownership.starting_job)
_RECORD_FILE_RE = re.compile(r"^[^.].*\.tfrecord")
_TMP_RE = re.compile(r"^\.(\d+)-of-\d+\.tfrecord\.tmp$")


class ExportError(GqnError):
    """An export that would overwrite or mix with existing TFRecord files."""


@dataclass
class ExportSummary:
    out: Path
    scenes: int
    files: int
    kept: int = 0  # complete files found from an earlier, interrupted run

    def __str__(self):
        kept = f" ({self.kept} kept from an earlier run)" if self.kept else ""
        return f"{self.scenes} scenes into {self.files} TFRecord files in {self.out}{kept}"


def export_tfrecord(data, out, *, records_per_file: int = 2000, quality: int = 95, compress: bool = False,
                    progress: bool = True) -> list[ExportSummary]:
    """Export a shard directory, or a directory holding ``train/`` and ``test/`` shard directories."""
    data, out = Path(data), Path(out)
    pairs = [] if list_shards(data) else [(data / s, out / s) for s in SPLITS if (data / s).is_dir()]
    try:
        return [_export(src, dst, records_per_file, quality, compress, progress)
                for src, dst in pairs or [(data, out)]]
    except KeyboardInterrupt:  # the file being written was removed (RecordWriter)
        raise Interrupted(f"Interrupted; the complete TFRecord files in {out} are kept: re-run the same "
                          "command to resume.") from None


def export_params(dataset: Dataset, records_per_file: int, quality: int, compress: bool) -> dict:
    """Everything the exported files depend on: the source dataset and the export options (not the JPEG
    quality for jpeg shards, whose frames are copied: None)."""
    quality = quality if dataset.image_encoding == "raw" else None
    return {"records_per_file": records_per_file, "quality": quality, "gzip": compress,
            "source": {"family": dataset.family, "params": dataset.params, "scenes": len(dataset),
                       "views": dataset.views, "size": [dataset.height, dataset.width],
                       "cameras_sha1": _fingerprint(dataset)}}


def _fingerprint(dataset: Dataset) -> str:
    """A digest of the first and the last scene's cameras: tells datasets with equal parameters apart (e.g.
    ones written with another seed) without reading them whole."""
    ends = [dataset.read(i, i + 1, names=("cameras",))["cameras"] for i in (0, len(dataset) - 1)]
    return hashlib.sha1(b"".join(np.ascontiguousarray(c, np.float32).tobytes() for c in ends)).hexdigest()


def prepare_export(out: Path, params: dict, names: list[str]) -> set[str]:
    """Claim ``out`` for a (resumed) export writing the files ``names``, until ``release_output(out)``;
    returns those already complete.

    Refuses a directory another running export with other parameters writes, TFRecord files written with
    other parameters (or not by ``gqn export``) and files another running export is writing (the same export
    started twice); then removes stale temporary files and records ``params`` for the next run. Uses the lock
    of shard directories (``gqn.shards.claim_output``): file ``i-of-n`` is item ``i - 1``.
    """
    params = json.loads(json.dumps(params))  # as the manifest reads back: lists, not tuples
    make_output_dir(out)
    with starting_job(out) as start:
        start.refuse_other_job(FAMILY, params_json(params), "OUT")
        found = _check_existing(out, params, names)
        start.claim(FAMILY, params_json(params), [i for i, name in enumerate(names) if name not in found],
                    lambda i: f"{out}: {names[i]} is being written by another running export; run one export "
                              "per output directory")
        start.remove_stale((int(m.group(1)) - 1, p) for p in out.iterdir() if (m := _TMP_RE.match(p.name)))
        if not found:
            manifest = out / MANIFEST
            try:
                manifest.write_text(json.dumps(params, sort_keys=True) + "\n")
            except OSError as e:
                manifest.unlink(missing_ok=True)
                release_output(out)
                raise write_error("export parameters", manifest, e) from None
    return set(found)


def _check_existing(out: Path, params: dict, names: list[str]) -> list[str]:
    """The complete TFRecord files in ``out``, after refusing any this export must not resume from."""
    found = sorted(p.name for p in out.iterdir() if _RECORD_FILE_RE.match(p.name))
    if found:
        stored = _read_manifest(out)
        if stored is None:
            raise ExportError(f"{out} already holds TFRecord files that gqn export did not write (no {MANIFEST}); "
                              "export into a new directory")
        if stored != params:
            raise ExportError(f"{out} already holds TFRecord files exported with other parameters "
                              f"({_differences(stored, params)}); export into a new directory")
        foreign = [name for name in found if name not in names]
        if foreign:
            raise ExportError(f"{out} already holds TFRecord files this export does not write ({foreign[0]}); "
                              "export into a new directory")
    return found


def _differences(stored: dict, wanted: dict) -> str:
    """What differs between an earlier export's parameters and this one's, in a few words."""
    return "; ".join("another source dataset" if key == "source" else
                     f"{key} {stored.get(key)} before, {wanted.get(key)} now"
                     for key in sorted(set(stored) | set(wanted)) if stored.get(key) != wanted.get(key))


def _read_manifest(out: Path) -> dict | None:
    try:
        return json.loads((out / MANIFEST).read_text())
    except (OSError, ValueError):
        return None


def _export(src: Path, out: Path, records_per_file: int, quality: int, compress: bool,
            progress: bool) -> ExportSummary:
    with Dataset(src) as dataset:
        n_files = -(-len(dataset) // records_per_file)
        names = [record_file_name(i + 1, n_files) for i in range(n_files)]
        done = prepare_export(out, export_params(dataset, records_per_file, quality, compress), names)
        todo = {names[i]: range(i * records_per_file, min((i + 1) * records_per_file, len(dataset)))
                for i in range(n_files) if names[i] not in done}  # file name -> its scenes
        try:
            with tqdm(total=sum(map(len, todo.values())), unit="scenes", disable=not progress, desc=src.name,
                      dynamic_ncols=True) as bar:
                for name, scenes in todo.items():
                    with RecordWriter(out / name, compress=compress) as writer:
                        _write_scenes(dataset, scenes, quality, writer, bar)
        finally:
            release_output(out)
        return ExportSummary(out, len(dataset), n_files, len(done))


def _write_scenes(dataset: Dataset, scenes: range, quality: int, writer: RecordWriter, bar) -> None:
    for start in range(scenes.start, scenes.stop, READ_BLOCK):
        stop = min(start + READ_BLOCK, scenes.stop)
        if dataset.image_encoding == "jpeg":  # the stored JPEG files, unchanged
            cameras = dataset.read(start, stop, names=("cameras",))["cameras"]
            frames = dataset.read_jpeg(start, stop)
        else:
            block = dataset.read(start, stop, names=("images", "cameras"))
            cameras = block["cameras"]
            frames = [[simplejpeg.encode_jpeg(image, quality, colorsubsampling="444") for image in images]
                      for images in block["images"]]
        for scene_frames, scene_cameras in zip(frames, cameras):
            writer.write(encode_scene(scene_frames, scene_cameras))
        bar.update(len(cameras))
