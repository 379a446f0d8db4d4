"""Files written whole or not at all, and the one-line errors of writes that fail.

Every file the toolkit writes for a user to keep (shards, TFRecord files, snapshots) is written under a
temporary name beside its final one (``.NAME.tmp``) and renamed into place when complete (``StagedFile``), so
a file under its final name is never partial, whatever stops the writer (an error, Ctrl-C, ``kill -9``, a full
disk). A failed write is a ``WriteError`` that names the file and says why in the system's words.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from gqn.errors import GqnError


class WriteError(GqnError):
    """A file that could not be written (a full disk, a lost mount); its partial temporary file is removed."""


def first_line(error: BaseException) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


def os_reason(error: BaseException) -> str:
    """Why a file operation failed, in the system's words ("No space left on device"). HDF5 reports the
    errno inside its message ("... errno = 28, error message = ..."), sometimes as a RuntimeError."""
    code = getattr(error, "errno", None)
    if not isinstance(code, int) or not code:
        found = re.search(r"errno = (\d+)", str(error))
        code = int(found.group(1)) if found else None
    if code:
        return os.strerror(code)
    return getattr(error, "strerror", None) or first_line(error)


def write_error(what: str, path, error: BaseException) -> WriteError:
    """The one-line error for a failed write of ``what`` (e.g. "shard") to ``path``."""
    return WriteError(f"writing {what} {path}: {os_reason(error)}")


def staging_path(path) -> Path:
    """Where ``path`` is written before it is complete: ``.NAME.tmp`` in the same directory."""
    path = Path(path)
    return path.with_name(f".{path.name}.tmp")


class StagedFile:
    """The temporary and final paths of one file being written (``what`` names it in errors): the writer
    writes ``tmp``, then ``commit`` renames it to ``path``; ``abort`` or ``failed`` removes it."""

    def __init__(self, path, what: str):
        self.path = Path(path)
        self.tmp = staging_path(self.path)
        self.what = what

    def commit(self) -> Path:
        try:
            os.replace(self.tmp, self.path)
        except OSError as e:
            raise self.failed(e) from None
        return self.path

    def abort(self) -> None:
        self.tmp.unlink(missing_ok=True)

    def failed(self, error: BaseException) -> WriteError:
        """Remove the temporary file after a failed write; the error to raise."""
        self.abort()
        return write_error(self.what, self.tmp, error)
