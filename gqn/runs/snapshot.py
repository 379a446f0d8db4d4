"""Run snapshots: one ``.npz`` holding the model, the optimizer state and the run's metadata (JSON).

Written to a temporary name and renamed into place, so ``snapshot.npz`` is always a whole snapshot.
"""
from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import numpy as np
from chainer import serializers

from gqn import __version__
from gqn.errors import GqnError
from gqn.files import StagedFile

FORMAT = "gqn-run"
FORMAT_VERSION = 1


def save(path, model, optimizer, meta: dict) -> None:
    """Atomically write ``model`` (keys ``model/...``), ``optimizer`` (``optimizer/...``) and ``meta``."""
    path = Path(path)
    arrays = {}
    serializer = serializers.DictionarySerializer(arrays)
    serializer["model"].save(model)
    serializer["optimizer"].save(optimizer)
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION, "generator": f"gqn-toolkit {__version__}",
            **meta}
    arrays["meta"] = np.array(json.dumps(meta))
    staged = StagedFile(path, "snapshot")
    try:
        with open(staged.tmp, "wb") as f:
            sink = _Sink(f)
            np.savez(sink, **arrays)
            sink.flush()
            if sink.error is not None:
                raise sink.error
            os.fsync(f.fileno())
    except OSError as e:  # a full disk: the previous snapshot.npz is kept
        raise staged.failed(e) from None
    staged.commit()


class _Sink:
    """The file ``np.savez`` writes to. After the first failed write (a full disk) it keeps the error and
    swallows the rest, so that numpy's zip writer finishes (and cleans up) without raising or printing:
    left to fail inside numpy, its clean-up would run on the closed file ("seek of closed file")."""

    def __init__(self, file):
        self.file = file
        self.error: OSError | None = None
        self.position = 0  # where the zip writer thinks it is, once writes go nowhere

    def _attempt(self, operation, *args):
        if self.error is None:
            try:
                return operation(*args)
            except OSError as e:
                self.error, self.position = e, self._last_position()
        return None

    def _last_position(self) -> int:
        try:
            return self.file.tell()
        except (OSError, ValueError):
            return 0

    def write(self, data) -> int:
        size = memoryview(data).nbytes
        if self._attempt(self.file.write, data) is None:
            self.position += size
        return size

    def tell(self) -> int:
        result = self._attempt(self.file.tell)
        return self.position if result is None else result

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        result = self._attempt(self.file.seek, offset, whence)
        if result is None:
            self.position = offset if whence == os.SEEK_SET else self.position + offset
            return self.position
        return result

    def flush(self) -> None:
        self._attempt(self.file.flush)

    def read(self, *args):  # numpy takes only objects with ``read`` for open files
        raise OSError("a snapshot being written cannot be read")


def _open(path):
    path = Path(path)
    if not path.is_file():
        raise GqnError(f"{path}: no snapshot (is {path.parent} a training run directory?)")
    try:
        return np.load(path)
    except (OSError, EOFError, ValueError, zipfile.BadZipFile) as e:   # EOFError: an empty file
        raise GqnError(f"{path}: not a readable snapshot ({e})")


def load_meta(path) -> dict:
    with _open(path) as npz:
        try:
            meta = json.loads(str(npz["meta"]))
        except (KeyError, ValueError, zipfile.BadZipFile) as e:
            raise GqnError(f"{path}: not a gqn-toolkit snapshot ({e})")
    if meta.get("format") != FORMAT or meta.get("format_version") != FORMAT_VERSION:
        raise GqnError(f"{path}: not a version {FORMAT_VERSION} gqn-toolkit snapshot")
    return meta


def load_state(path, model, optimizer=None) -> None:
    """Load the model (and the optimizer state, when given) saved in the snapshot at ``path``."""
    with _open(path) as npz:
        try:
            serializers.NpzDeserializer(npz, path="model/").load(model)
            if optimizer is not None:
                serializers.NpzDeserializer(npz, path="optimizer/").load(optimizer)
        except (KeyError, ValueError) as e:
            raise GqnError(f"{path}: snapshot does not match the model it should hold ({e})")
