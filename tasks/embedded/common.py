"""Shared plumbing of the generators: jobs, per-item seeds, item outputs."""
from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

BASE_SEED = 20240917
SPLITS = ("train", "valid", "test")
SR = 24000


@dataclass(frozen=True)
class Job:
    """One unit of generation (a song, a note, a recording): independent of every other job."""

    family: str  # seed family (task name, or a shared corpus such as "mtg")
    split: str
    index: int
    params: tuple = ()  # small fixed parameters chosen by the plan (class label, singer, ...)

    @property
    def seed_entropy(self) -> list[int]:
        return [BASE_SEED, zlib.crc32(self.family.encode()), SPLITS.index(self.split) if self.split in SPLITS else 9,
                self.index]

    def rng(self) -> np.random.Generator:
        return np.random.default_rng(np.random.SeedSequence(self.seed_entropy))

    @property
    def p(self) -> dict[str, Any]:
        return dict(self.params)


@dataclass
class Out:
    """What a job produced: audio (relative path -> float or int16 array) and one or more items."""

    audio: dict[str, np.ndarray]
    items: list[dict[str, Any]] = field(default_factory=list)  # Item fields except audio paths resolved


def split_counts(n: int, ratios=(0.6, 0.15, 0.25)) -> dict[str, int]:
    a = int(round(n * ratios[0]))
    b = int(round(n * ratios[1]))
    return {"train": a, "valid": b, "test": n - a - b}


def round_list(xs, nd=4):
    return [round(float(x), nd) for x in xs]
