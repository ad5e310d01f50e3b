"""Compact, sharded, resumable storage of frame labels.

Layout of a labels folder::

    labels.json                      manifest: teacher, sample_rate, hop, frame_rate, num_codebooks,
                                     codebook_size, audio root, shard list, files (path, samples, frames,
                                     shard, row); skipped files (path, reason); "complete": true once every
                                     shard is done
    shards/shard-00000.codes.npy     int16 [frames_in_shard, num_codebooks], files concatenated
    shards/shard-00000.offsets.npy   int64 [files_in_shard + 1]: rows of file j are offsets[j]:offsets[j+1]
    shards/shard-00000.json          done marker, written last (atomic): the shard's files and frame counts,
                                     and the files skipped (path, reason)

Every file is written to a temporary name and renamed, and a shard counts as done only when its ``.json``
marker exists, so a killed run resumes by recomputing only the shards without a marker.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MANIFEST = "labels.json"
FORMAT_VERSION = 1


def _atomic_write(path: Path, mode: str, write) -> None:
    """``write(f)`` into a temporary file beside ``path``, fsync, then rename over ``path``: a reader sees the
    old file or the whole new one, never a half-written one (the umask's permissions, see mert.fsutil)."""
    from mert.fsutil import atomic_write

    atomic_write(path, mode, write)


def atomic_save_npy(path: Path, array: np.ndarray) -> None:
    _atomic_write(path, "wb", lambda f: np.save(f, array))


def atomic_savez(path: Path, arrays: dict) -> None:
    _atomic_write(path, "wb", lambda f: np.savez(f, **arrays))


def atomic_write_json(path: Path, obj) -> None:
    _atomic_write(path, "w", lambda f: json.dump(obj, f, indent=1))


def shard_name(index: int) -> str:
    return f"shard-{index:05d}"


def shard_done(out: Path, index: int) -> bool:
    return (Path(out) / "shards" / f"{shard_name(index)}.json").exists()


def write_shard(out: Path, index: int, files: list[dict], codes: list[np.ndarray],
                skipped: list[dict] | None = None) -> None:
    """Write one shard: ``files`` are dicts with ``path`` and ``num_samples``; ``codes[j]`` is [F_j, K];
    ``skipped``: the shard's files left out, dicts with ``path`` and ``reason`` (kept in the done marker)."""
    out = Path(out) / "shards"
    name = shard_name(index)
    if len(files) != len(codes):
        raise ValueError("write_shard: one code array per file is required")
    k = {c.shape[1] for c in codes if c.ndim == 2}
    if len(k) > 1 or any(c.ndim != 2 for c in codes):
        raise ValueError(f"write_shard: codes must be [frames, codebooks] with one codebook count, got {k}")
    lengths = np.array([len(c) for c in codes], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    width = k.pop() if k else 1
    allc = np.concatenate(codes, axis=0) if codes else np.zeros((0, width), np.int64)
    if allc.size and (allc.min() < 0 or allc.max() > np.iinfo(np.int16).max):
        raise ValueError("write_shard: codes must lie in [0, 32767] to be stored as int16")
    atomic_save_npy(out / f"{name}.codes.npy", allc.astype(np.int16))
    atomic_save_npy(out / f"{name}.offsets.npy", offsets)
    entries = [dict(f, frames=int(n)) for f, n in zip(files, lengths)]
    atomic_write_json(out / f"{name}.json", {"shard": index, "files": entries, "skipped": list(skipped or [])})


@dataclass
class LabelInfo:
    teacher: str
    sample_rate: int
    hop: int
    frame_rate: float
    num_codebooks: int
    codebook_size: int


class LabelStore:
    """Read a finished labels folder: ``store.labels(path, start_frame, num)`` -> int64 [num, K].

    Shards are memory-mapped, so opening a store over hours of audio costs almost nothing.
    """

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        mf = self.folder / MANIFEST
        if not mf.exists():
            raise FileNotFoundError(
                f"{mf}: no labels manifest. Create labels with `python -m mert labels --teacher ... "
                f"--audio DIR --out {self.folder}` (a run that was interrupted resumes when started again)."
            )
        self.manifest = json.loads(mf.read_text())
        if not self.manifest.get("complete"):
            raise ValueError(f"{mf}: labels are incomplete; rerun `python -m mert labels` to finish them")
        m = self.manifest
        self.info = LabelInfo(m["teacher"], int(m["sample_rate"]), int(m["hop"]), float(m["frame_rate"]),
                              int(m["num_codebooks"]), int(m["codebook_size"]))
        self.audio_root = Path(m["audio_root"])
        self._codes: dict[int, np.ndarray] = {}
        self.files: dict[str, dict] = {f["path"]: f for f in m["files"]}

    def _shard(self, index: int) -> np.ndarray:
        if index not in self._codes:
            p = self.folder / "shards" / f"{shard_name(index)}.codes.npy"
            self._codes[index] = np.load(p, mmap_mode="r")
        return self._codes[index]

    def __len__(self) -> int:
        return len(self.files)

    def num_frames(self, path: str) -> int:
        return int(self.files[path]["frames"])

    def labels(self, path: str, start: int = 0, num: int | None = None) -> np.ndarray:
        f = self.files.get(path)
        if f is None:
            raise KeyError(f"{path}: no labels in {self.folder} (the labels were made for another audio folder?)")
        total = int(f["frames"])
        num = total - start if num is None else num
        if start < 0 or start + num > total:
            raise IndexError(f"{path}: label frames [{start}, {start + num}) outside the file's {total} frames")
        row = int(f["row"]) + start
        return np.asarray(self._shard(int(f["shard"]))[row:row + num], dtype=np.int64)

    def label_counts(self) -> np.ndarray:
        """[K, V] how often each code occurs over all files."""
        if getattr(self, "_counts", None) is None:
            shards = sorted({int(f["shard"]) for f in self.files.values()})
            counts = np.zeros((self.info.num_codebooks, self.info.codebook_size), dtype=np.int64)
            for k in range(self.info.num_codebooks):
                for i in shards:
                    counts[k] += np.bincount(np.asarray(self._shard(i)[:, k], dtype=np.int64),
                                             minlength=self.info.codebook_size)[:self.info.codebook_size]
            self._counts = counts
        return self._counts

    def log_prior(self, smoothing: float = 1.0) -> np.ndarray:
        """[K, V] log label frequencies (add-``smoothing`` counts, so unseen codes stay finite)."""
        c = self.label_counts().astype(np.float64) + smoothing
        return np.log(c / c.sum(1, keepdims=True))

    def prior_entropy(self) -> float:
        """Entropy (nats) of the label marginal, summed over codebooks: the cross-entropy of a model that
        predicts the label frequencies and ignores the audio. A pretraining CE at this level learned nothing."""
        total = 0.0
        for counts in self.label_counts():
            p = counts[counts > 0] / counts.sum()
            total += float(-(p * np.log(p)).sum())
        return total

    def __getstate__(self):  # DataLoader workers reopen the memory maps
        d = dict(self.__dict__)
        d["_codes"] = {}
        return d
