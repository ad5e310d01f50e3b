"""Atomic file writes with ordinary permissions, shared by checkpoints, pretraining and label storage.

A file is written under a temporary name beside its destination, flushed to disk and renamed over it, so a
reader (or a run killed mid-write) sees the old file or the whole new one, never half of one. The result has
the permissions an ordinary ``open(path, "w")`` would give (``0o666 & ~umask``; ``mkstemp`` alone gives
0600, unreadable to the group that shares a results folder), and folders created on the way get
``0o777 & ~umask``.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path


def current_umask() -> int:
    """The process umask, read without changing it where Linux reports it (``/proc/self/status``): setting
    it to 0 and back, the only portable way, leaves a moment in which other threads create files with
    permissions open to everyone."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o077)  # the fallback: restrictive while it is changed
    os.umask(mask)
    return mask


def default_file_mode() -> int:
    return 0o666 & ~current_umask()


def finish_atomic_write(tmp: str | os.PathLike, final: str | os.PathLike) -> None:
    """Give the written temporary file ``tmp`` the umask's permissions, flush it to disk, rename it to
    ``final``. ``tmp`` is removed if any of this fails."""
    try:
        os.chmod(tmp, default_file_mode())
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, final)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def temporary_path(path: str | os.PathLike) -> Path:
    """A new empty temporary file beside ``path`` (its folder is created), for writers that want a path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    return Path(tmp)


def atomic_write(path: str | os.PathLike, mode: str, write) -> None:
    """``write(f)`` into a temporary file beside ``path`` (opened with ``mode``, "w" or "wb"), then
    :func:`finish_atomic_write` it to ``path``."""
    tmp = temporary_path(path)
    try:
        with open(tmp, mode) as f:
            write(f)
    except BaseException:
        if tmp.exists():
            tmp.unlink()
        raise
    finish_atomic_write(tmp, path)
