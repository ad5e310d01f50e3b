"""Fixture trees with the real on-disk layouts and real file names of the 8 MARBLE datasets.

Each ``make_<dataset>(root)`` writes a small copy of a dataset as it unpacks (folders, file names, metadata
file formats, a handful of real item names taken from the real split lists and annotation files), with short
rendered audio (tones / clicks, low sample rate so the files stay small), and returns a dict describing what
it wrote (expected split counts, labels, names of deliberately broken files) for the tests to check.

Nothing here reads ../shared: the real names are embedded below.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import soundfile as sf

SR = 4000  # fixture audio rate (wav/flac); mp3 needs an MPEG rate, see MP3_SR
MP3_SR = 8000


def tone(seconds: float, sr: int = SR, freq: float = 220.0, seed: int = 0, channels: int = 1) -> np.ndarray:
    """A quiet tone plus a little noise (not silent: runners may skip silent files)."""
    n = int(round(seconds * sr))
    t = np.arange(n) / sr
    rng = np.random.default_rng(seed)
    x = 0.2 * np.sin(2 * np.pi * freq * t) + 0.01 * rng.standard_normal(n)
    x = x.astype(np.float32)
    return np.stack([x] * channels, axis=1) if channels > 1 else x


def clicks(seconds: float, beats: list[float], sr: int = SR, seed: int = 0) -> np.ndarray:
    x = tone(seconds, sr, freq=110.0, seed=seed) * 0.2
    for b in beats:
        i = int(b * sr)
        x[i:i + sr // 50] += 0.8 * np.hanning(len(x[i:i + sr // 50]))
    return np.clip(x, -1, 1)


def write(path: Path, x: np.ndarray, sr: int = SR, **kw) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), x, sr, **kw)
    return path


def corrupt(path: Path) -> Path:
    """Overwrite a file with bytes no decoder accepts (as jazz.00054.wav in the Kaggle copy)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk" + bytes(range(256)) * 4)
    return path


# ---------------------------------------------------------------------------------------------- GTZAN
# first track of each genre in each real fault-filtered list (coreyker/dnn-mgr), plus jazz.00054 (train)
GTZAN_SPLITS = {
    "train": "blues.00029 classical.00030 country.00019 disco.00005 hiphop.00002 jazz.00000 metal.00002 "
             "pop.00002 reggae.00000 rock.00000 jazz.00054".split(),
    "valid": "blues.00000 classical.00000 country.00000 disco.00000 hiphop.00081 jazz.00002 metal.00000 "
             "pop.00010 reggae.00061 rock.00038".split(),
    "test": "blues.00012 classical.00011 country.00030 disco.00001 hiphop.00000 jazz.00073 metal.00012 "
            "pop.00000 reggae.00034 rock.00010".split(),
}
# the real first beats of blues.00029 (GTZAN-Rhythm v2 / MARBLE v2 example)
BLUES_00029_FIRST_BEATS = [0.428173, 0.898377, 1.362776]


def _jams(stem: str, beats: list[float], downbeats: list[float]) -> str:
    """A GTZAN-Rhythm v2 JAMS document (jams 0.2.0 layout, bare NaN as the originals have)."""
    def layer(kind, times):
        return {"annotation_metadata": {"annotator": {}, "annotation_tools": "", "corpus": "GTZAN-Rhythm",
                                        "version": "2.0", "curator": {"name": "", "email": ""},
                                        "validation": "", "data_source": "", "annotation_rules": ""},
                "namespace": "beat", "sandbox": {"annotation_type": kind}, "time": 0, "duration": None,
                "data": [{"time": t, "duration": 0.0, "value": 1.0, "confidence": 1.0} for t in times]}
    doc = {"annotations": [layer("beat", beats), layer("downbeat", downbeats),
                           {"namespace": "tag_open", "sandbox": {"swing": "no"}, "time": 0, "duration": None,
                            "data": [{"time": 0.0, "duration": float("nan"), "value": "4/4", "confidence": 1.0}]}],
           "file_metadata": {"title": "", "artist": "", "release": "", "duration": 30.0,
                             "identifiers": {"filename": f"{stem}.wav"}, "jams_version": "0.2.0"},
           "sandbox": {}}
    return json.dumps(doc, indent=2)


def gtzan_beats(stem: str) -> list[float]:
    if stem == "blues.00029":
        period = 0.47
        return [round(b, 6) for b in BLUES_00029_FIRST_BEATS + [1.362776 + period * k for k in range(1, 60)]
                if b < 29.5]
    period = 60.0 / (90 + 7 * (sum(map(ord, stem)) % 9))
    return [round(0.3 + period * k, 6) for k in range(int(29.0 / period))]


def make_gtzan(root: Path, layout: str = "kaggle", corrupt_jazz: bool = True, beat_formats: bool = True) -> dict:
    """Kaggle layout ``Data/genres_original/<genre>/<genre>.NNNNN.wav`` (or ``original``: ``genres/.../*.au``),
    the three ``*_filtered.txt`` lists in their real format, GTZAN-Rhythm JAMS under both real names and one
    gtzan_tempo_beat ``.beats`` file."""
    root = Path(root)
    for split, stems in GTZAN_SPLITS.items():
        (root / "splits").mkdir(parents=True, exist_ok=True)
        (root / "splits" / f"{split}_filtered.txt").write_text(
            "".join(f"{s.split('.')[0]}/{s}.wav\n" for s in stems))
    n = 0
    for split, stems in GTZAN_SPLITS.items():
        for stem in stems:
            genre = stem.split(".")[0]
            if layout == "kaggle":
                path = root / "Data" / "genres_original" / genre / f"{stem}.wav"
            else:
                path = root / "genres" / genre / f"{stem}.au"
            beats = gtzan_beats(stem)
            if stem == "jazz.00054" and corrupt_jazz:
                corrupt(path)
            else:
                write(path, clicks(30.0, beats, seed=n), SR)
            n += 1
            # annotations: tarball name, tempo_eval name, or gtzan_tempo_beat text, rotating
            if beat_formats:
                k = n % 3
                ann = root / "GTZAN-Rhythm_v2" / "jams"
                if k == 0:
                    (ann / f"{stem}.wav.jams").parent.mkdir(parents=True, exist_ok=True)
                    (ann / f"{stem}.wav.jams").write_text(_jams(stem, beats, beats[::4]))
                elif k == 1:
                    p = root / "tempo_eval" / f"{stem}.jams"
                    p.parent.mkdir(parents=True, exist_ok=True)
                    p.write_text(_jams(stem, beats, beats[::4]))
                else:
                    p = root / "gtzan_tempo_beat" / "beats" / f"gtzan_{genre}_{stem.split('.')[1]}.beats"
                    p.parent.mkdir(parents=True, exist_ok=True)
                    p.write_text("".join(f"{b:.3f}\t{1 + i % 4}\n" for i, b in enumerate(beats)))
    return {"counts": {s: len(v) for s, v in GTZAN_SPLITS.items()}, "corrupt": "jazz.00054"}
