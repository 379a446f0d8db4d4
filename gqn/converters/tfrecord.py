"""TFRecord files without TensorFlow: record framing with CRC32C checks, plain and GZIP files, streaming.

Each record is framed as ``uint64 length (LE) | uint32 masked CRC32C of the 8 length bytes | data |
uint32 masked CRC32C of data``, with ``mask(c) = ((c >> 15) | (c << 17)) + 0xa282ead8 (mod 2**32)``.
Reading holds one record in memory at a time.
"""
from __future__ import annotations

import gzip
import os
import struct
import zlib
from pathlib import Path
from typing import Callable, Iterator

import crc32c

from gqn.errors import GqnError
from gqn.files import StagedFile

_MASK_DELTA = 0xA282EAD8
_HEADER = struct.Struct("<QI")
_FOOTER = struct.Struct("<I")
_GZIP_MAGIC = b"\x1f\x8b"
_BUFFER = 1 << 20
# No GQN scene comes near this (a 300-view mazes record is about 1 MB); a longer length in a header whose CRC
# checks out is damage (or a foreign file), and reading it would try to allocate that many bytes.
MAX_RECORD_BYTES = 1 << 30


class RecordError(GqnError):
    """A record that cannot be read or used; the message names the file and the record (counted from 0)."""

    def __init__(self, path, index: int, reason: str, *, fatal: bool = False):
        super().__init__(f"{path}: record {index}: {reason}")
        self.path, self.index, self.reason, self.fatal = str(path), index, reason, fatal

    def __reduce__(self):
        return type(self), (self.path, self.index, self.reason), {"fatal": self.fatal}


def masked_crc32c(data) -> int:
    crc = crc32c.crc32c(data)
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


def is_gzip(path) -> bool:
    with open(path, "rb") as f:
        return f.read(2) == _GZIP_MAGIC


class RecordReader:
    """Iterates ``(index, data)`` over the records of one TFRecord file (plain or GZIP, detected by content).

    Records before ``start`` are skipped without reading their data; with ``offset``, the byte offset of
    record ``start`` in the (uncompressed) stream from ``offsets()``, reading begins there (a GZIP stream is
    decompressed up to it: there is no index into one). Reading ends before record ``stop`` if given. A
    corrupt record raises ``RecordError``; with ``on_corrupt`` set, the error is passed to it instead and
    reading goes on where the framing can still be trusted (a bad data CRC skips one record; a bad length
    CRC, a length above ``MAX_RECORD_BYTES``, a truncated file or a broken GZIP stream end the file,
    ``error.fatal`` is then True).
    """

    def __init__(self, path, start: int = 0, on_corrupt: Callable[[RecordError], None] | None = None,
                 offset: int | None = None, stop: int | None = None):
        self.path = Path(path)
        self.start = start
        self.on_corrupt = on_corrupt
        self.stop = stop
        self._raw = open(self.path, "rb", buffering=_BUFFER)
        self._stream = gzip.GzipFile(fileobj=self._raw, mode="rb") if is_gzip(self.path) else self._raw
        self._offset = 0  # bytes of the (uncompressed) stream consumed; tell() would cost a system call
        # a plain file's size: a record that cannot fit is known to be cut short before its bytes are read
        self._size = os.fstat(self._raw.fileno()).st_size if self._stream is self._raw else None
        self._first = 0  # the index of the record at _offset
        if offset:
            self._first = start
            self._offset = self._stream.seek(offset)

    def close(self) -> None:
        self._stream.close()
        self._raw.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def offsets(self) -> tuple[list[int], RecordError | None]:
        """The byte offsets (in the uncompressed stream) where the records start, read from their checked
        headers alone, followed by the offset where the last of them ends; and the error that ended the file
        early (a truncated file, a corrupt header: ``error.fatal``), or None. Data CRCs are not checked."""
        offsets = [self._offset]
        try:
            while self._next(len(offsets) - 1, skip=True) is not None:
                offsets.append(self._offset)
        except RecordError as e:
            return offsets, e
        return offsets, None

    def __iter__(self) -> Iterator[tuple[int, bytes]]:
        index = self._first
        while self.stop is None or index < self.stop:
            try:
                data = self._next(index)
            except RecordError as e:
                if self.on_corrupt is None:
                    raise
                self.on_corrupt(e)
                if e.fatal:
                    return
            else:
                if data is None:
                    return
                if index >= self.start:
                    yield index, data
            index += 1

    def _next(self, index: int, skip: bool = False) -> bytes | bool | None:
        try:
            return self._skip_record(index) if skip or index < self.start else self._read_record(index)
        except (OSError, EOFError, zlib.error) as e:  # GZIP streams report damage this way
            raise RecordError(self.path, index, f"unreadable data ({e})", fatal=True) from None

    def _header(self, index: int) -> int | None:
        """The length of record ``index`` from its checked header, None at a clean end of file."""
        header = self._stream.read(_HEADER.size)
        if not header:
            return None
        if len(header) < _HEADER.size:
            raise RecordError(self.path, index, "truncated file (incomplete record header)", fatal=True)
        length, length_crc = _HEADER.unpack(header)
        if masked_crc32c(header[:8]) != length_crc:
            raise RecordError(self.path, index, "length CRC mismatch (corrupt record header)", fatal=True)
        if length > MAX_RECORD_BYTES:
            raise RecordError(self.path, index, f"record length of {length} bytes exceeds the "
                              f"{MAX_RECORD_BYTES >> 30} GiB limit (corrupt record header)", fatal=True)
        return length

    def _read_record(self, index: int) -> bytes | None:
        length = self._header(index)
        if length is None:
            return None
        fits = self._size is None or self._offset + _HEADER.size + length + _FOOTER.size <= self._size
        data = self._stream.read(length) if fits else b""
        footer = self._stream.read(_FOOTER.size) if fits else b""
        if not fits or len(data) < length or len(footer) < _FOOTER.size:
            raise RecordError(self.path, index, f"truncated file (record of {length} bytes cut short)",
                              fatal=True)
        self._offset += _HEADER.size + length + _FOOTER.size
        if masked_crc32c(data) != _FOOTER.unpack(footer)[0]:
            raise RecordError(self.path, index, "data CRC mismatch (corrupt record)")
        return data

    def _skip_record(self, index: int) -> bool | None:
        """Move past record ``index`` without reading its data; None at a clean end of file."""
        length = self._header(index)
        if length is None:
            return None
        self._offset += _HEADER.size + length + _FOOTER.size
        if self._stream.seek(self._offset) != self._offset or (
                self._size is not None and self._offset > self._size):
            raise RecordError(self.path, index, "truncated file", fatal=True)
        return True


class RecordWriter:
    """Writes a TFRecord file atomically: to ``.NAME.tmp`` first, renamed to ``NAME`` by ``close()``.

    Leaving the ``with`` block through an exception removes the temporary file instead; so does a failed
    write (a full disk), which raises a one-line ``WriteError`` naming the file. GZIP files carry no name and
    no time stamp, so the same records always give the same bytes.
    """

    def __init__(self, path, compress: bool = False):
        self.path = Path(path)
        self._staged = StagedFile(self.path, "TFRecord file")
        self.tmp_path = self._staged.tmp
        self._raw = self._stream = None
        try:
            self._raw = open(self.tmp_path, "wb", buffering=_BUFFER)
            self._stream = (gzip.GzipFile(filename="", fileobj=self._raw, mode="wb", mtime=0) if compress
                            else self._raw)
        except OSError as e:
            raise self._failed(e) from None

    def write(self, data: bytes) -> None:
        length = struct.pack("<Q", len(data))
        try:
            self._stream.write(length + _FOOTER.pack(masked_crc32c(length)))
            self._stream.write(data)
            self._stream.write(_FOOTER.pack(masked_crc32c(data)))
        except OSError as e:
            raise self._failed(e) from None

    def close(self) -> Path:
        try:
            self._stream.close()
            self._raw.close()
        except OSError as e:
            raise self._failed(e) from None
        return self._staged.commit()

    def _failed(self, error: OSError) -> GqnError:
        self.abort()
        return self._staged.failed(error)

    def abort(self) -> None:
        for stream in (self._stream, self._raw):
            try:
                if stream is not None:
                    stream.close()
            except (OSError, ValueError):  # unflushed data of a failed write
                pass
        self._staged.abort()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
        else:
            self.abort()
