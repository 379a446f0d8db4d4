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
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        np.savez(f, **arrays)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


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
