"""Feature rows on disk: written as they come, read lazily. The storage under the feature cache (benchmark/features.py).

A shard's rows ``[rows, layers, dim]`` live in their own ``.npy`` file (numpy's format, so ``np.load(path,
mmap_mode="r")`` maps it) written by :class:`RowWriter`: each model batch's rows are cast and appended as they
come, so extraction never holds a shard's frames, only one batch's. The file is float16, the cache's dtype,
unless a value would overflow it (|x| > 65504, e.g. a pre-LN residual stream): then the shard is widened to
float32 (what was written is converted), so no value is ever clipped to inf. Rows are appended in the order the
model batches produce them; the shard's index keeps ``order``, the file row of each row in item order.

:class:`ShardedRows` is a split's rows over its shards' memory-mapped files, in item order: nothing is read until
it is indexed (``x[idx]``, ``x[a:b]``, ``x.take(idx, layers)``, which reads only those layers), so a probe's
memory holds its batches, not the split. ``np.asarray(x)`` reads everything (small splits, tests).

Integrity: the writer records the CRC-32 of the data; :func:`check_rows` verifies the header (shape, dtype), the
size and the CRC-32, reading the file in bounded chunks.
"""
from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import numpy as np

F16_MAX = float(np.finfo(np.float16).max)  # 65504
HEADER = 128                                 # bytes of the .npy header (magic, version, length, padded dict)
CHUNK = 64 << 20                             # bytes per read when converting or checking a file


def _header(shape: tuple[int, ...], dtype) -> bytes:
    """A numpy 1.0 ``.npy`` header of exactly :data:`HEADER` bytes (the dict padded with spaces)."""
    d = "{'descr': '%s', 'fortran_order': False, 'shape': (%s), }" % (
        np.dtype(dtype).str, ", ".join(str(int(n)) for n in shape) + ("," if len(shape) == 1 else ""))
    body = HEADER - 10
    if len(d) + 1 > body:
        raise ValueError(f"shape {shape} does not fit a {HEADER}-byte .npy header")
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", body) + (d + " " * (body - len(d) - 1) + "\n").encode("latin1")


class RowWriter:
    """Append rows ``[n, layers, dim]`` to a new ``.npy`` file at ``path`` (a temporary file beside it until
    :meth:`close`, which writes the header, fsyncs and renames atomically, with the umask's permissions)."""

    def __init__(self, path: str | os.PathLike, layers: int):
        from mert.fsutil import temporary_path

        self.path = Path(path)
        self.tmp = temporary_path(self.path)
        self.f = open(self.tmp, "r+b")
        self.f.write(b"\0" * HEADER)
        self.layers, self.dim = int(layers), None
        self.dtype = np.dtype(np.float16)
        self.rows = 0
        self.crc = 0

    def append(self, rows: np.ndarray) -> None:
        """``rows`` [n, layers, dim] (float32): finite values required; float16 unless one would overflow it."""
        rows = np.asarray(rows)
        if rows.ndim != 3 or rows.shape[1] != self.layers or (self.dim is not None and rows.shape[2] != self.dim):
            raise ValueError(f"rows of shape {rows.shape}; this file holds [n, {self.layers}, {self.dim}]")
        self.dim = int(rows.shape[2])
        if not len(rows):
            return
        if not np.isfinite(rows).all():
            raise FloatingPointError("non-finite features")
        if self.dtype == np.float16 and float(np.abs(rows).max()) > F16_MAX:
            self._widen()
        data = np.ascontiguousarray(rows, dtype=self.dtype).tobytes()
        self.f.write(data)
        self.crc = zlib.crc32(data, self.crc)
        self.rows += len(rows)

    def _widen(self) -> None:
        """float16 -> float32 for the rows already written (read and rewritten in chunks)."""
        from mert.fsutil import temporary_path

        new = temporary_path(self.path)
        g = open(new, "r+b")
        g.write(b"\0" * HEADER)
        crc = 0
        self.f.seek(HEADER)
        step = max(1, CHUNK // 2) // 2 * 2
        while True:
            b = self.f.read(step)
            if not b:
                break
            data = np.frombuffer(b, np.float16).astype(np.float32).tobytes()
            g.write(data)
            crc = zlib.crc32(data, crc)
        self.f.close()
        os.unlink(self.tmp)
        self.f, self.tmp, self.crc, self.dtype = g, new, crc, np.dtype(np.float32)

    def close(self) -> dict:
        """Finish the file; returns what the shard's index records of it (shape, dtype, crc32)."""
        from mert.fsutil import finish_atomic_write

        shape = (self.rows, self.layers, self.dim or 0)
        try:
            self.f.seek(0)
            self.f.write(_header(shape, self.dtype))
            self.f.flush()
            self.f.close()
        except BaseException:
            self.abort()
            raise
        finish_atomic_write(self.tmp, self.path)
        return {"shape": list(shape), "dtype": self.dtype.str, "crc32": self.crc}

    def abort(self) -> None:
        try:
            self.f.close()
        finally:
            if os.path.exists(self.tmp):
                os.unlink(self.tmp)


def check_rows(path: str | os.PathLike, meta: dict) -> np.memmap | np.ndarray:
    """The rows file ``path`` memory-mapped, after checking it against ``meta`` (what :meth:`RowWriter.close`
    returned): header shape and dtype, file size and CRC-32 of the data (read in chunks). Raises ValueError
    saying what does not match."""
    path = Path(path)
    shape, dtype = tuple(int(n) for n in meta["shape"]), np.dtype(meta["dtype"])
    expected = HEADER + int(np.prod(shape)) * dtype.itemsize
    size = path.stat().st_size
    if size != expected:
        raise ValueError(f"{size} bytes, expected {expected}")
    if shape[0] == 0:
        return np.zeros(shape, dtype)
    x = np.load(path, mmap_mode="r", allow_pickle=False)
    if x.shape != shape or x.dtype != dtype:
        raise ValueError(f"holds {x.dtype} {x.shape}, expected {dtype} {shape}")
    crc = 0
    with open(path, "rb") as f:
        f.seek(HEADER)
        while True:
            b = f.read(CHUNK)
            if not b:
                break
            crc = zlib.crc32(b, crc)
    if crc != int(meta["crc32"]):
        raise ValueError("CRC-32 of the data does not match (bytes changed)")
    return x


def spill(path: str | os.PathLike, a: np.ndarray) -> np.ndarray:
    """``a`` written to ``path`` (.npy) and mapped back read-only: the same values, kept on disk, not in memory
    (the decoded audio of extraction and of the separation probe)."""
    np.save(path, a)
    return np.load(path, mmap_mode="r")


class ShardedRows:
    """A split's rows over its shards, in item order, read on indexing. ``parts``: per shard (``rows``: the file's
    array, usually a memmap; ``order``: the file row of each row in item order)."""

    def __init__(self, parts: list[tuple[np.ndarray, np.ndarray]], layers: int, dim: int):
        self.parts = [(x, np.asarray(o, dtype=np.int64)) for x, o in parts if len(o)]
        sizes = [len(o) for _, o in self.parts]
        self.offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        dtypes = {x.dtype for x, _ in self.parts} or {np.dtype(np.float16)}
        self.dtype = np.result_type(*dtypes)
        self.shape = (int(self.offsets[-1]), int(layers), int(dim))
        self.ndim = 3

    def __len__(self) -> int:
        return self.shape[0]

    def take(self, idx, layers=None) -> np.ndarray:
        """Rows ``idx`` (any order), only the ``layers`` given (all when None): [len(idx), L', D]."""
        idx = np.asarray(idx, dtype=np.int64).reshape(-1)
        if len(idx) and (idx.min() < 0 or idx.max() >= len(self)):
            raise IndexError(f"row index out of range 0..{len(self) - 1}")
        lsel = slice(None) if layers is None else np.asarray(layers, dtype=np.int64)
        n_l = self.shape[1] if layers is None else len(lsel)
        out = np.empty((len(idx), n_l, self.shape[2]), self.dtype)
        part = np.searchsorted(self.offsets, idx, side="right") - 1
        for p in np.unique(part):
            sel = np.nonzero(part == p)[0]
            x, order = self.parts[p]
            phys = order[idx[sel] - self.offsets[p]]
            srt = np.argsort(phys, kind="stable")  # read the file forwards
            rows = x[phys[srt]] if layers is None else x[phys[srt][:, None], lsel]
            out[sel[srt]] = rows
        return out

    def __getitem__(self, key):
        if isinstance(key, tuple):
            rows, layers = key[0], key[1] if len(key) > 1 else None
            if isinstance(layers, slice) and layers == slice(None):
                layers = None
            return self.take(self._rows(rows), layers)
        if isinstance(key, (int, np.integer)):
            return self.take([int(key) if key >= 0 else len(self) + int(key)])[0]
        return self.take(self._rows(key))

    def _rows(self, key) -> np.ndarray:
        if isinstance(key, slice):
            return np.arange(len(self))[key]
        key = np.asarray(key)
        return np.nonzero(key)[0] if key.dtype == bool else key

    def __array__(self, dtype=None, copy=None):
        a = self.take(np.arange(len(self)))
        return a if dtype is None else a.astype(dtype)

    def astype(self, dtype) -> np.ndarray:
        return np.asarray(self).astype(dtype)

    def tobytes(self) -> bytes:
        return np.asarray(self).tobytes()
