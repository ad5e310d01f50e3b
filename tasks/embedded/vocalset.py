"""VocalSet-like recordings: 20 synthetic singers x 10 techniques, cut into 3 s chunks (items with start/end)."""
from __future__ import annotations

import numpy as np

from tasks.embedded import voice as V
from tasks.embedded.common import SPLITS, Job, Out, TaskGenerator
from tasks.embedded.render import to_int16

CHUNK_S = 3.0
SINGER_NAMES = tuple(V.SINGERS)


def room(y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A small random room (exponentially decaying noise IR) and a noise floor: recording conditions."""
    from scipy.signal import fftconvolve

    rt = rng.uniform(0.15, 0.6)
    n = int(rt * V.SR)
    ir = rng.standard_normal(n) * np.exp(-6.9 * np.arange(n) / n)
    ir[0] = 0
    ir /= np.sqrt(np.sum(ir ** 2)) + 1e-9
    wet = rng.uniform(0.05, 0.3)
    out = y + wet * fftconvolve(y, ir)[: len(y)]
    out = out + rng.standard_normal(len(y)) * 10 ** (rng.uniform(-70, -50) / 20)
    return out


def record(job: Job, singer: str, technique: str, duration: float) -> tuple[np.ndarray, dict]:
    rng = job.rng()
    s = V.SINGERS[singer]
    notes, kind = V.phrase(rng, s, duration)
    y = V.sing(notes, s, technique, rng, duration)
    y = room(y, rng)
    peak = float(np.abs(y).max())
    y = y / max(peak, 1e-9) * float(rng.uniform(0.3, 0.9))
    return y.astype(np.float32), dict(singer=singer, technique=technique, exercise=kind, vowel=notes[0][3])


def _chunks(job: Job, y: np.ndarray, duration: float, target: str, extra: dict) -> Out:
    rid = f"{extra['singer']}_{extra['technique']}_{job.split}{job.index:04d}"
    rel = f"audio/{job.split}/{rid}.flac"
    items = []
    for c in range(int(duration // CHUNK_S)):
        items.append(dict(id=f"{rid}-chunk{c}", audio=rel, target=target, start=c * CHUNK_S,
                          end=(c + 1) * CHUNK_S, group=rid, extra=extra))
    return Out({rel: to_int16(y)}, items)


class SingerTask(TaskGenerator):
    """20 singers; recordings split 12:8:5 by recording; every recording a random technique."""

    name = "singer"
    version = 1
    sizes = {"standard": {"recordings": 15, "per_split": (7, 5, 3), "duration": 6.0},
             "tiny": {"recordings": 3, "per_split": (1, 1, 1), "duration": 3.0}}

    def plan(self, size):
        cfg = self.sizes[size]
        jobs = []
        for split, n in zip(SPLITS, cfg["per_split"]):
            i = 0
            for singer in SINGER_NAMES:
                for _ in range(n):
                    jobs.append(Job(self.name, split, i, (("singer", singer), ("duration", cfg["duration"]))))
                    i += 1
        return jobs

    def make(self, job):
        rng = job.rng()
        tech = V.TECHNIQUES[int(rng.integers(len(V.TECHNIQUES)))]
        # a fresh job stream for the recording itself, so it does not depend on the draw above
        y, extra = record(Job(job.family + "/rec", job.split, job.index), job.p["singer"], tech, job.p["duration"])
        return [_chunks(job, y, job.p["duration"], job.p["singer"], extra)]

    def labels(self, items):
        return list(SINGER_NAMES)


class TechniqueTask(TaskGenerator):
    """10 techniques; singers f2, f8, m3, m5, m10 held out for test; valid = 1 in 5 train-singer recordings."""

    name = "technique"
    version = 1
    sizes = {"standard": {"per_pair": 2, "duration": 6.0, "singers": SINGER_NAMES},
             "tiny": {"per_pair": 1, "duration": 3.0, "singers": ("f1", "m1", "f3", "m2", "f2", "m3")}}

    def plan(self, size):
        from tasks.technique import TEST_SINGERS

        cfg = self.sizes[size]
        counters = {s: 0 for s in SPLITS}
        jobs = []
        train_singers = [s for s in cfg["singers"] if s not in TEST_SINGERS]
        for si, singer in enumerate(cfg["singers"]):
            for ti, tech in enumerate(V.TECHNIQUES):
                for r in range(cfg["per_pair"]):
                    if singer in TEST_SINGERS:
                        split = "test"
                    elif size == "tiny":
                        split = "valid" if train_singers.index(singer) >= len(train_singers) - 1 else "train"
                    else:
                        split = "valid" if (si * 7 + ti * 3 + r) % 5 == 0 else "train"
                    jobs.append(Job(self.name, split, counters[split],
                                    (("singer", singer), ("technique", tech), ("duration", cfg["duration"]))))
                    counters[split] += 1
        return jobs

    def make(self, job):
        y, extra = record(job, job.p["singer"], job.p["technique"], job.p["duration"])
        return [_chunks(job, y, job.p["duration"], job.p["technique"], extra)]

    def labels(self, items):
        return list(V.TECHNIQUES)
