"""Emomusic (1000 Songs for Emotional Analysis of Music, MediaEval 2013): arousal / valence regression.

Labels: ``static_annotations.csv`` (``mean_arousal``, ``mean_valence``, 1-9 scale) for the 744 songs of
``songs_info.csv``; targets are the raw means in ``[arousal, valence]`` order (R2 does not change under the
z-scoring MARBLE applies; the runner standardises regression targets on train itself).
Split (MARBLE v1 = jukemir, reimplemented and checked): ``Mediaeval 2013 set == evaluation`` -> test (125);
the development songs by artist hash: artist lower-cased, only ASCII letters and spaces kept, spaces
collapsed, ``['train']*8 + ['valid']*2`` at ``int(sha1(artist), 16) % 10`` -> train 504 / valid 115.
Input (option ``excerpt``, docs/protocol.md): ``first-30s`` (default, MARBLE v1: EMO_base_config.yaml crops each
45 s clip to its first 30 s, ``crop_to_length_in_sec: 30``, ``crop_randomly: false``, then 5 s windows: 6 per song)
or ``whole`` (ours before: the whole 45 s clip, 9 windows); one item per song either way, the task's window
policy cuts the 5 s windows and the runner averages their predictions per song.
Audio: ``clips_45seconds/<song_id>.mp3``.
"""
from __future__ import annotations

import csv
import hashlib
from pathlib import Path
from typing import Any

from tasks.format import Item
from tasks.real.download import Asset
from tasks.real.folders import DatasetMissing, MetadataError, compare_with_published, find_base, find_named
from tasks.real.validation import Entry, Listing

DATASET = "Emomusic"
READER_VERSION = 1  # the excerpt option is in the prepared folder's options and items (fingerprint and digest)
OPTIONS = {"emotion": {"excerpt": ("first-30s", "whole")}}
MARBLE_CROP_S = 30.0
EXPECTED = {"train": 504, "valid": 115, "test": 125}
_RATIOS = ["train"] * 8 + ["valid"] * 2
SPLIT_FILE = Path(__file__).resolve().parents[1] / "splits" / "emomusic_v1.tsv"
_BASE = "http://cvml.unige.ch/databases/emoMusic"
ASSETS = [
    Asset("annotations.tar.gz", f"{_BASE}/annotations.tar.gz",
          sha256="e0cb0b06e1b0ce7f04b1572fc410937699b7fad9dae67ddaa745f06cda4b0b33", extract=True),
    Asset("clips_45sec.tar.gz", f"{_BASE}/clips_45sec.tar.gz",
          sha256="3994a5d5fefc27f9540d1a69cd7f1294c68e6cb311ce49765021e2e9c7a1057b", extract=True),
]
LAYOUT = """\
Expected below the Emomusic data folder:
  songs_info.csv, static_annotations.csv     (from annotations.tar.gz; anywhere below, found by name)
  clips_45seconds/<song_id>.mp3               (from clips_45sec.tar.gz)"""


def instructions(task: str) -> str:
    return f"""\
Emomusic: `python -m benchmark prepare --task emotion --data-dir DIR` fetches annotations.tar.gz and
clips_45sec.tar.gz from {_BASE}/ (sha256-checked, resumable) and unpacks them. If that server is down, the
same archives are mirrored with the 'emoMusic' / '1000 songs' dataset on several academic sites; put them
(or their unpacked content) anywhere below DIR.
{LAYOUT}"""


def assets(task: str, root: Path) -> list[Asset]:
    return list(ASSETS)


def normalise_artist(artist: str) -> str:
    kept = "".join(c for c in artist.lower() if ord(c) < 128 and (c.isalpha() or c.isspace()))
    return " ".join(kept.split())


def artist_split(artist: str) -> str:
    return _RATIOS[int(hashlib.sha1(normalise_artist(artist).encode("utf-8")).hexdigest(), 16) % len(_RATIOS)]


def _read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8-sig", errors="replace", newline="") as f:
        return [{(k or "").strip(): (v or "").strip() for k, v in row.items()} for row in csv.DictReader(f)]


def songs(root: Path) -> dict[str, dict[str, Any]]:
    """song_id -> {'split', 'artist', 'arousal', 'valence', 'genre'} by the MARBLE/jukemir procedure."""
    info_p = find_named(root, "songs_info.csv", required=False)
    stat_p = find_named(root, "static_annotations.csv", required=False)
    if info_p is None or stat_p is None:
        raise DatasetMissing(f"Emomusic: songs_info.csv / static_annotations.csv not found below {root}.\n\n"
                             f"{instructions('emotion')}")
    out: dict[str, dict[str, Any]] = {}
    for n, r in enumerate(_read_csv(info_p), 2):
        try:
            sid = str(int(r["song_id"]))
            mset = r["Mediaeval 2013 set"]
            artist = r["Artist"]
        except (KeyError, ValueError):
            raise MetadataError(f"{info_p}:{n}: needs song_id, Artist and 'Mediaeval 2013 set' columns") from None
        split = "test" if mset == "evaluation" else artist_split(artist)
        out[sid] = {"split": split, "artist": artist, "genre": r.get("Genre", "")}
    for n, r in enumerate(_read_csv(stat_p), 2):
        try:
            sid = str(int(r["song_id"]))
            a, v = float(r["mean_arousal"]), float(r["mean_valence"])
        except (KeyError, ValueError):
            raise MetadataError(f"{stat_p}:{n}: needs song_id, mean_arousal and mean_valence") from None
        if sid in out:
            out[sid].update(arousal=a, valence=v)
    return out


def listing(task: str, root: Path, options: dict[str, Any]) -> Listing:
    table = songs(root)
    ids = sorted(table, key=int)
    base = find_base(root, [f"{i}.mp3" for i in ids[:40]], candidates=("clips_45seconds",)) or root / "clips_45seconds"
    end = MARBLE_CROP_S if options.get("excerpt", "first-30s") == "first-30s" else None
    entries, unlabelled = [], []
    for sid in ids:
        s = table[sid]
        path = base / f"{sid}.mp3"
        if "arousal" not in s:
            unlabelled.append((s["split"], path.name, "no row in static_annotations.csv"))
            continue
        entries.append(Entry(split=s["split"], name=path.name, duration=45.0, tolerance=1.0,
                             item=Item(id=sid, audio=str(path), target=[s["arousal"], s["valence"]],
                                       end=end,
                                       group=normalise_artist(s["artist"]), extra={"genre": s["genre"]})))
    order = {"train": 0, "valid": 1, "test": 2}
    entries.sort(key=lambda e: (order[e.split], int(e.item.id)))
    notes = ["targets are raw static means (1-9); one item per song, 5 s windows averaged by the runner; "
             + ("the first 30 s of each clip (MARBLE v1)" if end is not None else "the whole 45 s clip")]
    diff = compare_with_published(SPLIT_FILE, {k: v["split"] for k, v in table.items()}, "song_id", "split")
    if diff:
        notes.append(diff)
    return Listing(
        dataset=DATASET, task=task, data_dir=root,
        split_procedure="MediaEval 2013 evaluation set = test (125); development by artist hash 8:2 "
                        "(sha1 of the normalised artist; 504/115)",
        entries=entries, expected=dict(EXPECTED), labels=["arousal", "valence"], sample_rate=44100,
        source_version=f"emomusic-real-v{READER_VERSION}", unlabelled=unlabelled, notes=notes,
    )
