"""MTG-Jamendo auto-tagging, split-0, for the four tag sets (instrument, moodtheme, genre, top50tags).

Labels and splits: ``data/splits/split-0/autotagging_<set>-{train,validation,test}.tsv`` of
MTG/mtg-jamendo-dataset (CRLF, header ``TRACK_ID ARTIST_ID ALBUM_ID PATH DURATION TAGS``, one tag per extra
tab-separated field). Files of that name under another ``split-N`` folder are ignored. The tag vocabulary
is the tags in order of first appearance over train, validation, test (MARBLE v2's LABEL2IDX order).
Audio: full tracks, ``<NN>/<id>.low.mp3`` (audio-low, what MARBLE uses) or ``<NN>/<id>.mp3`` (raw_30s);
one item per track; the task's window policy cuts 30 s windows and averages their logits per track.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from tasks.format import Item
from tasks.real.download import Asset
from tasks.real.folders import DatasetMissing, MetadataError, find_all_named, find_base, find_named, read_text_lines
from tasks.real.validation import Entry, Listing

DATASET = "MTG-Jamendo"
READER_VERSION = 1
SUBSET = {"mtg-instrument": "instrument", "mtg-mood": "moodtheme", "mtg-genre": "genre", "mtg-top50": "top50tags"}
EXPECTED = {
    "instrument": {"train": 14395, "valid": 5466, "test": 5115},
    "moodtheme": {"train": 9949, "valid": 3802, "test": 4231},
    "genre": {"train": 32572, "valid": 11043, "test": 11479},
    "top50tags": {"train": 32136, "valid": 10888, "test": 11356},
}
FILE_SPLIT = {"train": "train", "valid": "validation", "test": "test"}
_COMMIT = "1b4fa8c32e076c73b5175c1703ae805b4109309d"
_RAW = f"https://raw.githubusercontent.com/MTG/mtg-jamendo-dataset/{_COMMIT}"
_CDN = "https://cdn.freesound.org/mtg-jamendo/raw_30s/audio-low"
# checksums we can vouch for (the complete verbatim files); the other split files are checked by parsing and
# counting their rows against EXPECTED.
_SHA = {"autotagging_moodtheme-test.tsv": "4341b5586bb3e5a80a882ce9ef33cb8b1bdaa7df856246ecc5de188dfe1cf394",
        "raw_30s_audio-low_sha256_tars.txt": "9c28e6090fac7fae7274296622e8fc8b6e905672c18707ac02c8be716d4623c3"}
AUDIO_EXTS = (".low.mp3", ".mp3", ".low.flac", ".flac", ".wav")

LAYOUT = """\
Expected below the MTG-Jamendo data folder:
  data/splits/split-0/autotagging_<instrument|moodtheme|genre|top50tags>-<train|validation|test>.tsv
  audio: <NN>/<id>.low.mp3 (audio-low) or <NN>/<id>.mp3 (raw_30s), e.g. audio-low/41/241.low.mp3"""


def instructions(task: str) -> str:
    return f"""\
MTG-Jamendo is public: `python -m benchmark prepare --task {task} --data-dir DIR` fetches the split-0 TSVs
(MTG/mtg-jamendo-dataset @ {_COMMIT[:7]}) and the 100 audio-low tars from {_CDN}/ (sha256-checked against the
dataset's own list, resumable; about 156 GB; each tar is unpacked into DIR/audio-low and then deleted).
By hand: `python3 scripts/download/download.py --dataset raw_30s --type audio-low DIR/audio-low --unpack
--remove` from a clone of MTG/mtg-jamendo-dataset, and copy its data/splits/split-0 folder into DIR.
{LAYOUT}"""


def split_files_assets(subset: str) -> list[Asset]:
    out = []
    for s in ("train", "validation", "test"):
        name = f"autotagging_{subset}-{s}.tsv"
        out.append(Asset(name, f"{_RAW}/data/splits/split-0/{name}", sha256=_SHA.get(name),
                         dest="data/splits/split-0"))
    return out


def assets(task: str, root: Path) -> list[Asset]:
    out = split_files_assets(SUBSET[task])
    lst = Asset("raw_30s_audio-low_sha256_tars.txt", f"{_RAW}/data/download/raw_30s_audio-low_sha256_tars.txt",
                sha256=_SHA["raw_30s_audio-low_sha256_tars.txt"], dest="data/download")
    out.append(lst)
    p = find_named(root, lst.name, required=False)
    if p is not None:
        for line in read_text_lines(p):
            sha, name = line.split()
            out.append(Asset(name, f"{_CDN}/{name}", sha256=sha, dest="audio-low", extract=True, keep=False))
    return out


def read_split_tsv(path: Path) -> list[tuple[str, str, float, list[str], str]]:
    """[(track_id, path, duration, tags, artist_id)] from a split-0 TSV (CRLF tolerated)."""
    lines = read_text_lines(path)
    if not lines or not lines[0].startswith("TRACK_ID\t"):
        raise MetadataError(f"{path}: expected header 'TRACK_ID\\tARTIST_ID\\tALBUM_ID\\tPATH\\tDURATION\\tTAGS'")
    rows = []
    for n, line in enumerate(lines[1:], 2):
        f = line.split("\t")
        if len(f) < 6:
            raise MetadataError(f"{path}:{n}: {len(f)} fields, expected at least 6")
        try:
            dur = float(f[4])
        except ValueError:
            raise MetadataError(f"{path}:{n}: DURATION {f[4]!r} is not a number") from None
        rows.append((f[0].strip(), f[3].strip(), dur, [t.strip() for t in f[5:] if t.strip()], f[1].strip()))
    return rows


def split0_file(root: Path, name: str) -> Path | None:
    hits = [p for p in find_all_named(root, name) if p.parent.name == "split-0"]
    if hits:
        return hits[0]
    loose = [p for p in find_all_named(root, name) if not p.parent.name.startswith("split-")]
    return loose[0] if loose else None


def _audio_path(base: Path, rel: str) -> Path:
    stem = rel[:-4] if rel.endswith(".mp3") else rel
    for ext in AUDIO_EXTS:
        p = base / f"{stem}{ext}"
        if p.exists():
            return p
    return base / f"{stem}.low.mp3"


def listing(task: str, root: Path, options: dict[str, Any]) -> Listing:
    subset = SUBSET[task]
    rows = {}
    for split, fs in FILE_SPLIT.items():
        name = f"autotagging_{subset}-{fs}.tsv"
        p = split0_file(root, name)
        if p is None:
            raise DatasetMissing(f"MTG-Jamendo: {name} (split-0) not found below {root}.\n\n{instructions(task)}")
        rows[split] = read_split_tsv(p)
    sample = [r[1][:-4] for r in rows["test"][:30]]
    base = root
    for ext in (".low.mp3", ".mp3"):
        b = find_base(root, [s + ext for s in sample], candidates=("audio-low", "raw_30s/audio-low", "audio",
                                                                    "raw_30s/audio", "mp3"))
        if b is not None:
            base = b
            break
    labels: list[str] = []
    seen = set()
    entries = []
    for split in ("train", "valid", "test"):
        for tid, rel, dur, tags, artist in rows[split]:
            for t in tags:
                if t not in seen:
                    seen.add(t)
                    labels.append(t)
            path = _audio_path(base, rel)
            entries.append(Entry(split=split, name=rel, duration=dur, tolerance=max(2.0, 0.01 * dur),
                                 item=Item(id=tid, audio=str(path), target=tags, group=artist)))
    return Listing(
        dataset=DATASET, task=task, data_dir=root,
        split_procedure=f"MTG-Jamendo split-0 autotagging_{subset} TSVs (artist-disjoint)",
        entries=entries, expected=dict(EXPECTED[subset]), labels=labels, sample_rate=44100,
        source_version=f"mtg-real-v{READER_VERSION}:split-0:{subset}",
        notes=[f"{len(labels)} tags; one item per full track, 30 s windows averaged by the runner"],
    )
