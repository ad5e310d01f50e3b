"""Small synthetic prepared folders for every task type (``python -m benchmark mock-run``, the tests and the
probe speed script).

Not a benchmark corpus (that is tasks.embedded): simple signals whose labels a probe can learn in a few
epochs, written in the prepared format of tasks.format so that the runner is exercised end to end.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

SR = 24000


def _tone(freqs, seconds, rng, amp=0.3, sr=SR):
    t = np.arange(int(seconds * sr)) / sr
    y = sum(np.sin(2 * np.pi * f * t + rng.uniform(0, 6.28)) for f in freqs) / max(1, len(freqs))
    return (amp * y + 0.01 * rng.standard_normal(len(t))).astype(np.float32)


def make_prepared(spec, root, n: dict[str, int] | None = None, seconds: float = 2.0, seed: int = 0,
                  labels: list | None = None) -> Path:
    """Write a complete prepared folder for ``spec`` under ``root`` and return it."""
    from mert.audio import write_audio
    from tasks.format import Item, atomic_dir, write_meta, write_split

    n = n or {"train": 16, "valid": 8, "test": 8}
    rng = np.random.default_rng(seed)
    labels = list(labels or spec.labels or [f"tag{i}" for i in range(6)])
    root = Path(root)
    with atomic_dir(root) as tmp:
        (tmp / "audio").mkdir()
        for split, count in n.items():
            items = []
            for i in range(count):
                iid = f"{split}-{i:03d}"
                path = f"audio/{iid}.flac"
                extra_files = {}
                group = None
                if spec.type in ("multiclass", "key"):
                    c = (i * 7 + (split == "valid") + 2 * (split == "test")) % len(labels)
                    target = labels[c]
                    base = 110 * 2 ** ((c % 12) / 12)
                    freqs = [base, base * (1.5 if c < 12 else 1.2), base * 2] if spec.type == "key" else [base * (1 + c % 5)]
                    wav = _tone(freqs, seconds, rng)
                    if spec.type == "key":
                        group = f"{split}-song{i // 2}"
                        target = labels[(i // 2 * 5) % len(labels)]
                        c = labels.index(target)
                        base = 110 * 2 ** ((c % 12) / 12)
                        wav = _tone([base, base * (1.5 if c < 12 else 1.2), base * 2], seconds, rng)
                elif spec.type == "multilabel":
                    on = [j for j in range(len(labels)) if (i >> (j % 4)) & 1 or j == i % len(labels)]
                    target = [labels[j] for j in on]
                    wav = _tone([200 + 150 * j for j in on], seconds, rng)
                elif spec.type == "regression":
                    target = [float(rng.uniform(-1, 1)) for _ in labels]
                    wav = _tone([300 + 200 * target[-1]], seconds, rng, amp=0.2 + 0.1 * target[0])
                elif spec.type == "beat":
                    period = 60 / rng.uniform(90, 150)
                    beats = np.arange(0.25, seconds - 0.05, period)
                    target = [float(b) for b in beats]
                    wav = 0.005 * rng.standard_normal(int(seconds * SR)).astype(np.float32)
                    for b in beats:
                        k = int(b * SR)
                        wav[k:k + 600] += 0.8 * np.exp(-np.arange(len(wav[k:k + 600])) / 100.0) * rng.choice([-1, 1])
                elif spec.type == "separation":
                    stems = {}
                    parts = {"vocals": _tone([440 + 20 * i], seconds, rng, 0.2),
                             "drums": (0.2 * rng.standard_normal(int(seconds * SR)) *
                                       (np.arange(int(seconds * SR)) % 6000 < 800)).astype(np.float32),
                             "bass": _tone([55 + i], seconds, rng, 0.3),
                             "other": _tone([880, 1320], seconds, rng, 0.1)}
                    for s in labels:
                        sp = f"audio/{iid}.{s}.flac"
                        write_audio(tmp / sp, parts[s], SR)
                        stems[s] = sp
                    wav = sum(parts[s] for s in labels).astype(np.float32)
                    target = stems
                else:  # pragma: no cover
                    raise ValueError(spec.type)
                write_audio(tmp / path, wav, SR)
                items.append(Item(id=iid, audio=path, target=target, group=group, extra=extra_files))
            write_split(tmp, split, items)
        write_meta(tmp, {"task": spec.name, "task_version": spec.version, "source": "synthetic",
                         "source_version": f"synthetic-{seed}", "sample_rate": SR, "labels": labels})
    return root
