"""Shared plumbing of the generators: the generator base class, jobs, per-item seeds, item outputs."""
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


class TaskGenerator:
    """Base of the task generators. A task's spec names its generator's factory (``TaskSpec.generator``,
    e.g. ``songs:KeyTask``); ``tasks.embedded.build`` makes it with ``Factory(task_name)``.

    A generator has ``name`` (the seed family of its jobs: changing it changes every item), ``version``
    (bumped when its output changes), ``plan(size) -> [Job]``, ``make(job) -> [Out]`` and
    ``labels(items) -> list``, and optionally:

    prune_targets:    True when the labels keep only part of the vocabulary (tags seen in every split) and
                      the items' targets are cut down to them.
    item_duration_s:  the items' length in seconds for ``meta.json`` when ``sizes[size]`` has no ``duration``.
    """

    name = ""
    version = 1
    prune_targets = False
    item_duration_s: float | None = None

    def __init__(self, task: str | None = None) -> None:
        if task is not None and task != self.name:
            raise ValueError(f"generator {type(self).__name__} makes task {self.name!r}, not {task!r} "
                             "(its name is the seed family of its items)")


def split_counts(n: int, ratios=(0.6, 0.15, 0.25)) -> dict[str, int]:
    a = int(round(n * ratios[0]))
    b = int(round(n * ratios[1]))
    return {"train": a, "valid": b, "test": n - a - b}


def round_list(xs, nd=4):
    return [round(float(x), nd) for x in xs]
