"""Pretraining data: audio files with their offline labels, random crops, batches by duration.

* The file list comes from a labels folder (``python -m mert labels``): every labelled file with its length
  at 24 kHz; the audio is read from the labels' audio root (or ``data.audio`` when moved) with
  :func:`mert.audio.read_audio` (any soundfile format, mono, resampled to 24 kHz).
* Crops: ``min(crop_seconds, file length)`` (5 s), files shorter than ``min_crop_seconds`` (3 s) are left
  out. The crop offset is a random multiple of the hop (320 samples): a crop starting at sample ``320 k``
  has encoder frames that are exactly the file's frames ``k, k + 1, ...`` (frame ``i`` = samples
  ``[320 i, 320 i + 400)``), so its labels are the stored rows ``k .. k + num_frames(crop) - 1`` with no
  rounding, including crops that start inside the first receptive field (k = 0, 1). An offset that is not a
  multiple of 320 would put every encoder frame between two label frames.
* Batches by duration: per epoch, clips are shuffled, sorted by length, and greedily grouped into global
  batches of at most ``max_batch_seconds`` of padded audio per rank; every global batch holds a multiple of
  ``world_size`` clips, and rank ``r`` takes clips ``r, r + world, ...`` of it. So a run with one process
  sees exactly the union of what the ranks of a multi-process run see, and each rank reads only its own
  files. Crop offsets are drawn from ``(seed, epoch, file)``, so a position ``(epoch, batch)`` is enough to
  resume the data stream exactly.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .masking import clip_seed
from .teachers import HOP, SAMPLE_RATE, num_frames
from .teachers.storage import LabelStore


@dataclass
class Clip:
    index: int  # position in the dataset (stable id)
    path: str  # relative to the audio root
    num_samples: int  # file length at 24 kHz
    crop_samples: int  # length of every crop of this file


class PretrainDataset:
    """Map-style dataset over ``(epoch, clip index)`` keys; see the module docstring."""

    def __init__(self, labels: str | os.PathLike, audio_root: str | os.PathLike | None = None,
                 crop_seconds: float = 5.0, min_crop_seconds: float = 3.0, seed: int = 0):
        self.store = LabelStore(labels)
        if self.store.info.sample_rate != SAMPLE_RATE or self.store.info.hop != HOP:
            raise ValueError(f"{labels}: labels at {self.store.info.sample_rate} Hz / hop {self.store.info.hop}; "
                             f"pretraining expects {SAMPLE_RATE} Hz / hop {HOP}")
        self.audio_root = Path(audio_root) if audio_root else self.store.audio_root
        if not self.audio_root.is_dir():
            raise FileNotFoundError(f"audio folder {self.audio_root} (from {labels}/labels.json) does not exist; "
                                    f"set data.audio=DIR to where the labelled audio now lives")
        self.crop = int(round(crop_seconds * SAMPLE_RATE))
        self.min_crop = int(round(min_crop_seconds * SAMPLE_RATE))
        self.seed = seed
        self._rates: dict[int, int] = {}
        self.clips: list[Clip] = []
        for f in self.store.manifest["files"]:
            n = int(f["num_samples"])
            if n < self.min_crop:
                continue
            self.clips.append(Clip(len(self.clips), f["path"], n, min(self.crop, n)))
        if not self.clips:
            raise ValueError(f"{labels}: no file is at least {min_crop_seconds} s long (data.min_crop_seconds)")

    def __len__(self) -> int:
        return len(self.clips)

    @property
    def num_codebooks(self) -> int:
        return self.store.info.num_codebooks

    @property
    def codebook_size(self) -> int:
        return self.store.info.codebook_size

    def crop_offset(self, epoch: int, index: int) -> int:
        """Random crop start in samples, a multiple of the hop (see the module docstring)."""
        c = self.clips[index]
        steps = (c.num_samples - c.crop_samples) // HOP
        rng = np.random.default_rng(clip_seed(self.seed, epoch, index))
        return HOP * int(rng.integers(0, steps + 1))

    def _native_rate(self, index: int) -> int:
        rate = self._rates.get(index)
        if rate is None:
            from .audio import audio_info

            rate = self._rates[index] = audio_info(self.audio_root / self.clips[index].path)[0]
        return rate

    def __getitem__(self, key: tuple[int, int]) -> dict:
        from .audio import read_audio

        epoch, index = key
        c = self.clips[index]
        offset = self.crop_offset(epoch, index)
        n = c.crop_samples
        path = self.audio_root / c.path
        sr = self._native_rate(index)
        if sr == SAMPLE_RATE:
            wav = read_audio(path, SAMPLE_RATE, start=offset / SAMPLE_RATE, end=(offset + n) / SAMPLE_RATE,
                             warn_silent=False)  # a quiet passage is a normal crop
        else:
            # decode a margin around the crop, starting on a sample where both rates' grids meet, so the
            # resampled crop equals the crop of the resampled file (what the labels were computed on)
            grid = SAMPLE_RATE // math.gcd(sr, SAMPLE_RATE)
            a = max(0, (offset - HOP) // grid * grid)
            b = min(c.num_samples, offset + n + HOP)
            wav = read_audio(path, SAMPLE_RATE, start=a / SAMPLE_RATE, end=b / SAMPLE_RATE,
                             warn_silent=False)[offset - a:]
        if len(wav) < n:  # resampling of an excerpt can give a sample less
            wav = np.pad(wav, (0, n - len(wav)))
        wav = wav[:n]
        frames = num_frames(n)
        labels = self.store.labels(c.path, offset // HOP, frames)
        return {"wav": wav, "labels": labels, "index": index, "offset": offset}


def collate(items: list[dict]) -> dict:
    import torch

    b = len(items)
    t = max(len(it["wav"]) for it in items)
    f = max(len(it["labels"]) for it in items)
    k = items[0]["labels"].shape[1]
    wav = torch.zeros(b, t)
    labels = torch.zeros(b, f, k, dtype=torch.long)
    for i, it in enumerate(items):
        wav[i, : len(it["wav"])] = torch.from_numpy(it["wav"])
        labels[i, : len(it["labels"])] = torch.from_numpy(it["labels"])
    return {
        "wav": wav,
        "lengths": torch.tensor([len(it["wav"]) for it in items], dtype=torch.long),
        "labels": labels,
        "label_frames": torch.tensor([len(it["labels"]) for it in items], dtype=torch.long),
        "index": torch.tensor([it["index"] for it in items], dtype=torch.long),
        "offset": torch.tensor([it["offset"] for it in items], dtype=torch.long),
    }


def global_batches(lengths: list[int], epoch: int, seed: int, max_samples_per_rank: int, world_size: int = 1,
                   max_clips_per_rank: int | None = None) -> list[list[int]]:
    """Global batches of clip indices for one epoch (each a multiple of ``world_size`` clips)."""
    n = len(lengths)
    rng = np.random.default_rng(clip_seed(seed, epoch, 0x5EED))
    order = rng.permutation(n)
    lens = np.asarray(lengths)[order]
    order = order[np.argsort(-lens, kind="stable")]  # longest first; ties keep the random order
    budget = max_samples_per_rank * world_size
    cap = None if max_clips_per_rank is None else max_clips_per_rank * world_size
    batches, cur, cur_max = [], [], 0
    for i in order.tolist():
        m = max(cur_max, lengths[i])
        full = (len(cur) + 1) * m > budget or (cap is not None and len(cur) >= cap)
        if len(cur) >= world_size and full:  # at least one clip per rank, even over the budget
            batches.append(cur)
            cur, cur_max = [], 0
            m = lengths[i]
        cur.append(i)
        cur_max = m
    if cur:
        batches.append(cur)
    out = []
    for bt in batches:
        keep = len(bt) // world_size * world_size
        if keep:
            out.append(bt[:keep])
    if not out:
        raise ValueError(f"not enough clips ({n}) for {world_size} ranks")
    perm = rng.permutation(len(out))
    return [out[i] for i in perm]


class EpochBatches:
    """Batch sampler for one rank and one epoch, starting at batch ``start`` (resume)."""

    def __init__(self, dataset: PretrainDataset, epoch: int, max_batch_seconds: float, rank: int = 0,
                 world_size: int = 1, start: int = 0, max_clips_per_rank: int | None = None):
        self.epoch = epoch
        self.rank = rank
        self.world_size = world_size
        self.start = start
        self.batches = global_batches([c.crop_samples for c in dataset.clips], epoch, dataset.seed,
                                      int(max_batch_seconds * SAMPLE_RATE), world_size, max_clips_per_rank)

    def __len__(self) -> int:
        return max(0, len(self.batches) - self.start)

    def __iter__(self):
        for b in self.batches[self.start:]:
            yield [(self.epoch, i) for i in b[self.rank::self.world_size]]
