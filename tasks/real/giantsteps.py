"""GiantSteps key: train/valid from giantsteps-mtg-key, test = the GiantSteps key set (604 tracks).

Procedure (MARBLE v1 = jukemir, reimplemented and checked against the published counts):
* train pool: giantsteps-mtg-key tracks with confidence ``C == 2`` and a single key (no ``/`` in MANUAL KEY):
  1,159 tracks. Sharp tonics are respelled flat (C#->Db, D#->Eb, F#->Gb, G#->Ab, A#->Bb).
* artist split: every artist of ``beatport_metadata.txt`` (comma-separated ARTIST lists, stripped) goes to
  ``['train']*100 + ['valid']*16`` at index ``int(sha1(artist.lower()), 16) % 116``; then, twice, all artists
  of a track that has a valid artist become valid. A track takes its artists' split: **923 train / 236 valid**.
* test: the 604 ``giantsteps-key-dataset/annotations/key/<id>.LOFI.key`` labels (flat spelling already).
* input: one item per song, whose 30 s windows the task's window policy cuts; option ``tail``
  (docs/protocol.md): ``drop`` (default, MARBLE v1 = jukemir: GS/preprocess.py cuts each song into 30 s clips at
  0, 30, 60, ... s and skips a last clip shorter than 30 s) ends the item at the last full 30 s (``end``, from the
  file's length when the folder is prepared), so the windows are exactly MARBLE's clips; ``window`` (ours before)
  keeps the whole ~120 s preview, and a tail of 15 s or more gets a last window ending at the song's end. The
  windows of a song are combined per song (benchmark.heads.KeyHead, ``probe.key_ensemble``).
The resulting lists are published in ``tasks/splits/giantsteps_key_v1.tsv`` (written by
``python -m tasks.real.make_splits``).
"""
from __future__ import annotations

import csv
import hashlib
from pathlib import Path
from typing import Any

from tasks.format import Item
from tasks.key import ENHARMONIC, normalise_key as _normalise_key  # noqa: F401 - ENHARMONIC: the shared respelling table
from tasks.real.download import Asset
from tasks.real.folders import DatasetMissing, MetadataError, name_index, compare_with_published, find_named
from tasks.real.validation import Entry, Listing

DATASET = "GiantSteps"
READER_VERSION = 1  # the tail option is in the prepared folder's options and items (so in its fingerprint and digest)
OPTIONS = {"key": {"tail": ("drop", "window")}}
CLIP_S = 30.0
EXPECTED = {"train": 923, "valid": 236, "test": 604}
_RATIOS = ["train"] * 100 + ["valid"] * 16
SPLIT_FILE = Path(__file__).resolve().parents[1] / "splits" / "giantsteps_key_v1.tsv"

ANNOTATION_ASSETS = [
    Asset("giantsteps-mtg-key-dataset-fd7b8c584f7bd6d720d170c325a6d42c9bf75a6b.zip",
          "https://github.com/GiantSteps/giantsteps-mtg-key-dataset/archive/fd7b8c584f7bd6d720d170c325a6d42c9bf75a6b.zip",
          sha256="c754c3fabbc0bf275d399028e212fa2c9c6680084bd003e3a283ae7b3ea22996", dest="annotations",
          extract=True, what="giantsteps-mtg-key annotations (train/valid)"),
    Asset("giantsteps-key-dataset-c8cb8aad2cb53f165be51ea099d0dc75c64a844f.zip",
          "https://github.com/GiantSteps/giantsteps-key-dataset/archive/c8cb8aad2cb53f165be51ea099d0dc75c64a844f.zip",
          sha256="7749bee0f919b0f53db2c540fa6707f322b82a5d140e453f10f9af7875ad5bb8", dest="annotations",
          extract=True, what="GiantSteps key annotations (test)"),
]
AUDIO_URL = {"mtg": "http://www.cp.jku.at/datasets/giantsteps/mtg_key_backup/{id}.LOFI.mp3",
             "test": "https://www.cp.jku.at/datasets/giantsteps/backup/{id}.LOFI.mp3"}

LAYOUT = """\
Expected below the GiantSteps data folder (any depth; files are found by name):
  giantsteps-mtg-key-dataset*/annotations/annotations.txt, beatport_metadata.txt   (train/valid labels)
  giantsteps-key-dataset*/annotations/key/<id>.LOFI.key  and  md5/<id>.LOFI.md5     (test labels)
  <id>.LOFI.mp3 for all 2,090 tracks (e.g. audio/<id>.LOFI.mp3)"""


def instructions(task: str) -> str:
    return f"""\
GiantSteps key is public: `python -m benchmark prepare --task key --data-dir DIR` fetches both annotation
repositories (GitHub archives at the commits MARBLE uses, sha256-checked) and the 2,090 LOFI previews from
cp.jku.at (md5-checked against the repositories' md5/ files), resuming where it stopped.
By hand: clone GiantSteps/giantsteps-mtg-key-dataset and GiantSteps/giantsteps-key-dataset into DIR and run
their audio_dl.sh scripts.
{LAYOUT}"""


def _md5_files(root: Path) -> dict[str, tuple[str, Path]]:
    """id -> (which set, md5 file) from <repo>/md5/<id>.LOFI.md5."""
    out = {}
    for name, paths in name_index(root).items():
        if name.endswith(".LOFI.md5"):
            for p in paths:
                repo = p.parent.parent
                is_mtg = "mtg" in repo.name.lower() or (repo / "annotations" / "annotations.txt").exists()
                kind = "mtg" if is_mtg else "test"
                out[name.split(".")[0]] = (kind, p)
    return out


def assets(task: str, root: Path) -> list[Asset]:
    out = list(ANNOTATION_ASSETS)
    for did, (kind, p) in sorted(_md5_files(root).items()):
        md5 = p.read_text().split()[0] if p.stat().st_size else None
        out.append(Asset(f"{did}.LOFI.mp3", AUDIO_URL[kind].format(id=did), md5=md5, dest="audio"))
    return out


def split_artists(artist_field: str) -> list[str]:
    return [a.strip() for a in artist_field.strip().split(",")]


def artist_split(metadata: list[dict[str, str]]) -> dict[str, str]:
    """artist -> 'train' | 'valid' by the jukemir/MARBLE hash rule with two-hop collaborator propagation."""
    a2s: dict[str, str] = {}
    for row in metadata:
        for a in split_artists(row["ARTIST"]):
            a2s[a] = _RATIOS[int(hashlib.sha1(a.lower().encode("utf-8")).hexdigest(), 16) % len(_RATIOS)]
    for _ in range(2):
        for row in metadata:
            arts = split_artists(row["ARTIST"])
            if any(a2s[a] == "valid" for a in arts):
                for a in arts:
                    a2s[a] = "valid"
    return a2s


def _read_tsv(path: Path, required: tuple[str, ...]) -> list[dict[str, str]]:
    with open(path, encoding="utf-8-sig", newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    if rows and any(k not in rows[0] for k in required):
        raise MetadataError(f"{path}: expected columns {required}, found {list(rows[0])}")
    return rows


def normalise_key(text: str) -> str:
    """'D# minor' / 'd# minor' / 'Eb minor' -> 'Eb minor' (tasks.key.normalise_key, the respelling every source
    shares). Text that is none of the 24 keys (another mode, no mode) is returned stripped, so that the listing
    reports the file as unlabelled ("not one of the 24 keys") instead of failing the whole dataset."""
    try:
        return _normalise_key(text)
    except ValueError:
        return str(text).strip()


def train_valid_tracks(annotations: list[dict[str, str]], metadata: list[dict[str, str]]) -> dict[str, tuple[str, str]]:
    """id -> (split, key) for the MTG pool, by the MARBLE/jukemir procedure."""
    a2s = artist_split(metadata)
    meta_by_id = {r["ID"].strip(): r for r in metadata}
    out = {}
    for r in annotations:
        did = r["ID"].strip()
        if int(r["C"]) != 2 or "/" in r["MANUAL KEY"]:
            continue
        if did not in meta_by_id:
            raise MetadataError(f"beatport_metadata.txt: no row for track {did} of annotations.txt")
        splits = {a2s[a] for a in split_artists(meta_by_id[did]["ARTIST"])}
        if len(splits) != 1:  # cannot happen after propagation; guard the invariant
            raise MetadataError(f"track {did}: artists fall in different splits {splits}")
        out[did] = (splits.pop(), normalise_key(r["MANUAL KEY"]))
    return out


def test_tracks(root: Path) -> dict[str, str]:
    """id -> key from the GiantSteps key set's annotations/key/<id>.LOFI.key (not the MTG repo's)."""
    out = {}
    for name, paths in name_index(root).items():
        if not name.endswith(".LOFI.key"):
            continue
        for p in paths:
            if p.parent.name != "key" or (p.parent.parent / "annotations.txt").exists():
                continue  # the MTG repo's key/ folder sits next to annotations.txt
            out[name.split(".")[0]] = normalise_key(p.read_text(encoding="utf-8").strip())
    return out


def full_clips_end(seconds: float, clip_s: float = CLIP_S) -> float:
    """Where MARBLE's last full clip of a song ``seconds`` long ends: clips start every ``clip_s`` from 0 and a
    last clip shorter than ``clip_s`` is skipped (GS/preprocess.py: ``np.arange(0, duration, clip_duration)``,
    ``continue`` when short). 0 for a song shorter than one clip (MARBLE has no clip of it)."""
    return round(int((float(seconds) + 1e-9) // clip_s) * clip_s, 6)


def drop_tail(entry: Entry) -> list[Item]:
    """``tail=drop``: the song's item ending at its last full 30 s clip (from the file's length)."""
    import dataclasses

    import soundfile as sf

    try:
        info = sf.info(str(entry.item.audio))
    except Exception as e:  # libsndfile raises RuntimeError / LibsndfileError / OSError
        raise ValueError(f"cannot read the length of {entry.item.audio}: {e}") from None
    end = full_clips_end(info.frames / info.samplerate if info.samplerate else 0.0)
    if end <= 0:
        raise ValueError(f"{entry.item.audio}: shorter than one {CLIP_S:g} s clip")
    return [dataclasses.replace(entry.item, end=end, extra=dict(entry.item.extra))]


def listing(task: str, root: Path, options: dict[str, Any]) -> Listing:
    from tasks.key import KEYS

    ann = find_named(root, "annotations.txt", required=False)
    meta = find_named(root, "beatport_metadata.txt", required=False)
    if ann is None or meta is None:
        raise DatasetMissing(f"GiantSteps: annotations.txt / beatport_metadata.txt (giantsteps-mtg-key-dataset) "
                             f"not found below {root}.\n\n{instructions(task)}")
    tv = train_valid_tracks(_read_tsv(ann, ("ID", "MANUAL KEY", "C")), _read_tsv(meta, ("ID", "ARTIST")))
    test = test_tracks(root)
    if not test:
        raise DatasetMissing(f"GiantSteps: no giantsteps-key-dataset annotations/key/<id>.LOFI.key below {root}."
                             f"\n\n{instructions(task)}")
    audio = {n.split(".")[0]: sorted(ps, key=lambda q: (len(q.parts), str(q)))[0]
             for n, ps in name_index(root).items() if n.endswith(".LOFI.mp3")}
    entries = []
    bad_labels = []
    for split in ("train", "valid", "test"):
        if split == "test":
            ids = sorted(test, key=int)
        else:
            ids = sorted((d for d, (s, _) in tv.items() if s == split), key=int)
        for did in ids:
            key = test[did] if split == "test" else tv[did][1]
            path = audio.get(did, root / "audio" / f"{did}.LOFI.mp3")
            if key not in KEYS:
                bad_labels.append((split, path.name, f"key {key!r} is not one of the 24 keys"))
                continue
            entries.append(Entry(split=split, name=path.name, min_duration=30.0,
                                 item=Item(id=did, audio=str(path), target=key, group=did)))
    drop = options.get("tail", "drop") == "drop"
    notes = ["one item per song, ending at its last full 30 s clip (a shorter tail dropped, MARBLE v1); the "
             "runner cuts its 30 s windows and combines them per song" if drop else
             "one item per song (the whole preview); the runner cuts 30 s windows (a tail of 15 s or more gets a "
             "last window ending at the song's end) and combines them per song"]
    diff = compare_with_published(SPLIT_FILE, {d: s for d, (s, _) in tv.items()}, "id", "split")
    if diff:
        notes.append(diff)
    return Listing(
        dataset=DATASET, task=task, data_dir=root,
        split_procedure="train/valid: giantsteps-mtg-key C=2 single-key tracks, artist-hash split "
                        "(sha1, 100:16, two-hop collaborators; 923/236); test: GiantSteps key 604",
        entries=entries, expected=dict(EXPECTED), labels=list(KEYS), sample_rate=44100,
        source_version=f"giantsteps-real-v{READER_VERSION}", unlabelled=bad_labels, notes=notes,
        expand=drop_tail if drop else None,
    )
