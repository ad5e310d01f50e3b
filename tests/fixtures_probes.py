"""Small prepared folders whose labels a probe learns in seconds, for the stored-probe tests (tests/test_probe_*.py,
test_predict.py, test_evaluate.py): rendered cadences for key, click tracks at known tempi for beat. Written with
tasks.format, like every prepared folder; generated here, never read from the working directory."""
from __future__ import annotations

from pathlib import Path

import numpy as np

SR = 24000

# semitones of the scale degrees' triads above the tonic: I (or i), IV (iv), V, I (i)
_CADENCE = {"major": [(0, 4, 7), (5, 9, 12), (7, 11, 14), (0, 4, 7)],
            "minor": [(0, 3, 7), (5, 8, 12), (7, 11, 14), (0, 3, 7)]}
_TONIC = {"C": 0, "C#": 1, "Db": 1, "D": 2, "D#": 3, "Eb": 3, "E": 4, "F": 5, "F#": 6, "Gb": 6, "G": 7, "G#": 8,
          "Ab": 8, "A": 9, "A#": 10, "Bb": 10, "B": 11}


def cadence(key: str, seconds: float = 3.0, rng=None, sr: int = SR) -> np.ndarray:
    """I-IV-V-I (minor: i-iv-V-i) in ``key`` ("C major", "F# minor"): four chords of harmonic tones with a bass
    note, the octave and the amplitudes of the partials drawn from ``rng``."""
    rng = rng or np.random.default_rng(0)
    tonic, mode = key.split()
    base = 130.81 * 2 ** (_TONIC[tonic] / 12) * (2.0 if rng.random() < 0.3 else 1.0)  # C3 (or C4) + tonic
    n = int(seconds * sr)
    per = n // 4
    t = np.arange(per) / sr
    env = np.minimum(1.0, t / 0.02) * np.exp(-t * rng.uniform(0.5, 1.5))
    amps = rng.uniform(0.3, 1.0, 4)
    out = np.zeros(n, dtype=np.float64)
    for c, chord in enumerate(_CADENCE[mode]):
        seg = np.zeros(per)
        for semi in (*chord, chord[0] - 12):
            f = base * 2 ** (semi / 12)
            seg += sum(a / (h + 1) * np.sin(2 * np.pi * f * (h + 1) * t + rng.uniform(0, 6.28))
                       for h, a in enumerate(amps))
        out[c * per:(c + 1) * per] = seg * env
    out = 0.3 * out / np.abs(out).max()
    return (out + 0.003 * rng.standard_normal(n)).astype(np.float32)


def click_track(bpm: float, seconds: float = 8.0, offset: float = 0.3, rng=None, sr: int = SR):
    """Clicks (decaying noise bursts) at ``bpm`` from ``offset`` s, over faint noise: (audio, beat times)."""
    rng = rng or np.random.default_rng(0)
    beats = np.arange(offset, seconds - 0.05, 60.0 / bpm)
    wav = 0.003 * rng.standard_normal(int(seconds * sr))
    burst = np.exp(-np.arange(600) / 80.0)
    for b in beats:
        k = int(round(b * sr))
        m = min(600, len(wav) - k)
        wav[k:k + m] += 0.6 * burst[:m] * rng.standard_normal(m)
    return wav.astype(np.float32), [float(b) for b in beats]


def _write(root: Path, task: str, version: int, labels, splits: dict, source: str) -> Path:
    from mert.audio import write_audio
    from tasks.format import Item, atomic_dir, write_meta, write_split

    with atomic_dir(root) as tmp:
        (tmp / "audio").mkdir()
        for split, items in splits.items():
            out = []
            for iid, wav, target in items:
                write_audio(tmp / "audio" / f"{iid}.flac", wav, SR)
                out.append(Item(id=iid, audio=f"audio/{iid}.flac", target=target))
            write_split(tmp, split, out)
        write_meta(tmp, {"task": task, "task_version": version, "source": source, "source_version": source,
                         "sample_rate": SR, "labels": list(labels), "defaults": "embedded"})
    return root


def make_key_folder(root, keys, counts: dict[str, int], seed: int = 0, seconds: float = 3.0,
                    spell=lambda k: k) -> Path:
    """A prepared key folder: ``counts[split]`` cadences per key of ``keys`` (their targets written as
    ``spell(key)``, e.g. a sharp spelling), labels = the task's 24 keys."""
    from tasks.key import KEYS

    rng = np.random.default_rng(seed)
    splits = {s: [(f"{s}-{k.replace(' ', '_').replace('#', 's')}-{i}", cadence(k, seconds, rng), spell(k))
                  for k in keys for i in range(n)] for s, n in counts.items()}
    return _write(Path(root), "key", 1, KEYS, splits, f"cadences-{seed}")


def make_beat_folder(root, counts: dict[str, int], seed: int = 0, seconds: float = 8.0) -> Path:
    """A prepared beat folder of click tracks at tempi drawn in 80-160 bpm (targets: the click times)."""
    from tasks import get_task

    spec = get_task("beat")
    rng = np.random.default_rng(seed)
    splits = {}
    for s, n in counts.items():
        items = []
        for i in range(n):
            wav, beats = click_track(float(rng.uniform(80, 160)), seconds, float(rng.uniform(0.1, 0.6)), rng)
            items.append((f"{s}-{i:03d}", wav, beats))
        splits[s] = items
    return _write(Path(root), "beat", spec.version, spec.labels, splits, f"clicks-{seed}")


#: the keys of the key fixture: majors and minors, one written with a sharp (the folder's spelling test)
KEYS6 = ("C major", "G major", "F major", "A minor", "E minor", "F# minor")


#: the separation fixture's stems: the task's four (its main score is their mean SDR)
SEPARATION_STEMS = ("vocals", "drums", "bass", "other")


def stem_mix(seconds: float = 3.0, rng=None, silent: tuple[str, ...] = (), sr: int = SR):
    """Four synthetic stems of a separation item (a vibrato tone for vocals, noise bursts for drums, a low sine for
    bass, a two-note chord for other; the stems in ``silent`` are zeros): (mixture, {stem: audio})."""
    rng = rng or np.random.default_rng(0)
    n = int(seconds * sr)
    t = np.arange(n) / sr
    f0 = rng.uniform(220, 440)
    vocals = 0.25 * np.sin(2 * np.pi * f0 * t + 3 * np.sin(2 * np.pi * 5 * t)) * (0.5 + 0.5 * np.sin(np.pi * t))
    drums = np.zeros(n)
    burst = np.exp(-np.arange(1200) / 200.0)
    for k in range(int(rng.uniform(0, 0.3) * sr), n - 1200, int(sr * rng.uniform(0.3, 0.6))):
        drums[k:k + 1200] += 0.2 * burst * rng.standard_normal(1200)
    bass = 0.3 * np.sin(2 * np.pi * rng.uniform(50, 90) * t)
    other = sum(0.1 * np.sin(2 * np.pi * f * t + rng.uniform(0, 6.28)) for f in rng.uniform(500, 1500, 2))
    stems = {"vocals": vocals, "drums": drums, "bass": bass, "other": other}
    stems = {k: np.zeros(n) if k in silent else v for k, v in stems.items()}
    scale = min(1.0, 0.8 / max(1e-9, float(np.abs(sum(stems.values())).max())))  # no clipping in the files
    stems = {k: (scale * v).astype(np.float32) for k, v in stems.items()}
    return sum(stems.values()).astype(np.float32), stems


def make_separation_folder(root, counts: dict[str, int], seed: int = 0, seconds: float = 3.0,
                           silent: dict[str, tuple[str, ...]] | None = None) -> Path:
    """A prepared separation folder of :func:`stem_mix` items (targets: each stem's audio file); ``silent``: item id
    -> the stems silent in it."""
    from mert.audio import write_audio
    from tasks import get_task
    from tasks.format import Item, atomic_dir, write_meta, write_split

    spec = get_task("separation")
    rng = np.random.default_rng(seed)
    root = Path(root)
    with atomic_dir(root) as tmp:
        for split, n in counts.items():
            items = []
            for i in range(n):
                iid = f"{split}-{i:03d}"
                mix, stems = stem_mix(seconds, rng, (silent or {}).get(iid, ()))
                (tmp / iid).mkdir()
                write_audio(tmp / iid / "mixture.wav", mix, SR, subtype="FLOAT")
                for k, w in stems.items():
                    write_audio(tmp / iid / f"{k}.wav", w, SR, subtype="FLOAT")
                items.append(Item(id=iid, audio=f"{iid}/mixture.wav", target={k: f"{iid}/{k}.wav" for k in stems}))
            write_split(tmp, split, items)
        write_meta(tmp, {"task": "separation", "task_version": spec.version, "source": f"stems-{seed}",
                         "source_version": f"stems-{seed}", "sample_rate": SR, "labels": list(SEPARATION_STEMS),
                         "defaults": "embedded"})
    return root
