"""GTZAN (genre) and GTZAN-Rhythm (beat) on the fault-filtered split.

Audio: the Kaggle copy ``Data/genres_original/<genre>/<genre>.000NN.wav`` or the original tarball
``genres/<genre>/<genre>.000NN.au`` (any folder depth; files are found by name).
Split: Kereliuk & Sturm's fault-filtered, artist-disjoint lists ``{train,valid,test}_filtered.txt`` from
coreyker/dnn-mgr @ bdad579 (443 / 197 / 290). ``jazz.00054`` is corrupt in common copies: it stays in the
listing and is reported and skipped when it does not decode (MARBLE v1 deletes it, training on 442).
Beat targets: GTZAN-Rhythm v2 JAMS (``<genre>.<id>.wav.jams`` as in the tarball, or ``<genre>.<id>.jams`` as
tempo_eval renames them), beats = the ``beat`` namespace annotation whose sandbox says ``annotation_type:
beat``; if no JAMS is found for a track, ``gtzan_<genre>_<id>.beats`` from TempoBeatDownbeat/gtzan_tempo_beat.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from tasks.format import Item
from tasks.real.download import Asset
from tasks.real.folders import DatasetMissing, MetadataError, name_index, find_named, read_text_lines
from tasks.real.validation import Entry, Listing

DATASET = "GTZAN"
READER_VERSION = 1
GENRES = ("blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop", "reggae", "rock")
EXPECTED = {"train": 443, "valid": 197, "test": 290}
KNOWN_CORRUPT = {"jazz.00054": "it is corrupt in common copies (MARBLE v1 drops it too)"}
_DNN_MGR = "https://raw.githubusercontent.com/coreyker/dnn-mgr/bdad579ea6cb37b665ea6019fe1026a6ce20cbc7/gtzan"
SPLIT_ASSETS = {
    "train": Asset("train_filtered.txt", f"{_DNN_MGR}/train_filtered.txt",
                   sha256="2b04966cef1486f1a7767b74271533fa23e220388db804a1937835e1fc4fa3fa", dest="splits"),
    "valid": Asset("valid_filtered.txt", f"{_DNN_MGR}/valid_filtered.txt",
                   sha256="f8fbee7c52397a0e0f3a91dc54fedecb2e27f5bdc9a9daeab8cb10d077e26956", dest="splits"),
    "test": Asset("test_filtered.txt", f"{_DNN_MGR}/test_filtered.txt",
                  sha256="09cafa6a89ce0a27f30ed250d56ecb4d03c22fffb5a693f96c7ae655ee02ac72", dest="splits"),
}
# GTZAN-Rhythm v2 (the URL MARBLE v1 uses; no checksum is published) and, when that server fails,
# TempoBeatDownbeat/gtzan_tempo_beat (the same beats as text; no checksum for GitHub's archive either). Both are
# accepted when they unpack and hold the annotation files; validate then checks every track's annotation.
RHYTHM_ASSET = Asset(
    "GTZAN-Rhythm_v2_ismir2015_lbd_2015-10-28.tar_.gz",
    "http://anasynth.ircam.fr/home/system/files/attachment_uploads/marchand/private/"
    "GTZAN-Rhythm_v2_ismir2015_lbd_2015-10-28.tar_.gz",
    dest="GTZAN-Rhythm", extract=True, what="GTZAN-Rhythm v2 beat annotations (JAMS)",
)
BEATS_ASSET = Asset(
    "fd9cafdebb6426fee41c3718791be61306323dd7.zip",
    "https://github.com/TempoBeatDownbeat/gtzan_tempo_beat/archive/fd9cafdebb6426fee41c3718791be61306323dd7.zip",
    dest="gtzan_tempo_beat", extract=True, what="beat annotations (gtzan_tempo_beat, text files)",
)

LAYOUT = """\
Expected layout below the GTZAN data folder (any depth; files are found by name):
  Data/genres_original/<genre>/<genre>.000NN.wav    (Kaggle copy)   or   genres/<genre>/<genre>.000NN.au (original)
  train_filtered.txt  valid_filtered.txt  test_filtered.txt       (fault-filtered split lists, fetched by `prepare`)
  beat task: GTZAN-Rhythm JAMS <genre>.000NN.wav.jams (or <genre>.000NN.jams), or gtzan_<genre>_000NN.beats"""


def instructions(task: str) -> str:
    s = f"""\
GTZAN needs a manual download (the original marsyas/opihi link is dead):
  1. Kaggle: https://www.kaggle.com/datasets/andradaolteanu/gtzan-dataset-music-genre-classification
     (log in, download the zip, unzip it into the data folder; it creates Data/genres_original/...).
  2. `python -m benchmark prepare --task {task} --data-dir DIR` then fetches the split lists
     (coreyker/dnn-mgr @ bdad579, checksummed).
{LAYOUT}"""
    if task == "beat":
        s += f"""
  Beat annotations: GTZAN-Rhythm v2 (Marchand & Peeters, DAFx-15), file
  GTZAN-Rhythm_v2_ismir2015_lbd_2015-10-28.tar_.gz ({RHYTHM_ASSET.url});
  `prepare --download` fetches and unpacks it, or put its jams/ folder anywhere below the data folder.
  If that server fails, it fetches TempoBeatDownbeat/gtzan_tempo_beat instead (.beats text files, the same
  beat times rounded to 1 ms; reggae.00086 is missing there)."""
    return s


def assets(task: str, root: Path) -> list[Asset]:
    return list(SPLIT_ASSETS.values())


def after_download(task: str, root: Path, log=print) -> None:
    """Beat task: fetch GTZAN-Rhythm v2 unless annotations are there; fall back to gtzan_tempo_beat."""
    from tasks.real.download import download_file, extract_archive

    if task != "beat" or _has_beat_annotations(root):
        return
    for asset in (RHYTHM_ASSET, BEATS_ASSET):
        try:
            p = download_file(asset, root, log=log)
        except DatasetMissing as e:
            log(f"{asset.name}: {e}")
            continue
        extract_archive(p, p.parent, log=log)
        if _has_beat_annotations(root):
            return
    log("GTZAN beat annotations could not be fetched; see `instructions('beat')`.")


def _has_beat_annotations(root: Path) -> bool:
    from tasks.real.folders import clear_cache

    clear_cache()
    return any(n.endswith((".jams", ".beats")) for n in name_index(root))


def _audio_index(root: Path) -> dict[str, Path]:
    """'blues.00000' -> path, from files named <genre>.NNNNN.(wav|au) anywhere below root."""
    idx: dict[str, Path] = {}
    for name, paths in name_index(root).items():
        stem, _, ext = name.rpartition(".")
        if ext.lower() in ("wav", "au") and stem.split(".")[0] in GENRES and len(stem.split(".")) == 2:
            p = sorted(paths, key=lambda q: (len(q.parts), str(q)))[0]
            if stem not in idx or ext.lower() == "wav":
                idx[stem] = p
    return idx


def read_split_list(path: Path) -> list[str]:
    """``blues/blues.00029.wav`` lines -> ['blues.00029', ...]."""
    out = []
    for n, line in enumerate(read_text_lines(path), 1):
        name = line.strip().split("/")[-1]
        stem = name.rsplit(".", 1)[0] if name.endswith((".wav", ".au")) else name
        if len(stem.split(".")) != 2 or stem.split(".")[0] not in GENRES:
            raise MetadataError(f"{path}:{n}: expected '<genre>/<genre>.NNNNN.wav', got {line!r}")
        out.append(stem)
    return out


def beats_from_jams(path: Path) -> tuple[list[float], list[float]]:
    """(beat times, downbeat times) from a GTZAN-Rhythm JAMS file (JSON with bare NaN, which json accepts)."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise MetadataError(f"{path}: not a readable JAMS file ({e})") from None
    found: dict[str, list[float]] = {}
    for ann in doc.get("annotations", []):
        if ann.get("namespace") != "beat":
            continue
        kind = (ann.get("sandbox") or {}).get("annotation_type", "beat")
        data = ann.get("data", [])
        if isinstance(data, dict):  # older column layout {"time": [...], ...}
            times = data.get("time", [])
            times = list(times.values()) if isinstance(times, dict) else list(times)
        else:
            times = [d["time"] for d in data]
        found.setdefault(kind, [float(t) for t in times if t is not None and math.isfinite(float(t))])
    if "beat" not in found:
        raise MetadataError(f"{path}: no 'beat' annotation (namespace beat, annotation_type beat)")
    return sorted(found["beat"]), sorted(found.get("downbeat", []))


def beats_from_text(path: Path) -> tuple[list[float], list[float]]:
    """gtzan_tempo_beat ``.beats``: '<time>\\t<position in bar>' per line (position 1 = downbeat)."""
    beats, downs = [], []
    for n, line in enumerate(read_text_lines(path), 1):
        parts = line.split()
        try:
            t = float(parts[0])
        except (IndexError, ValueError):
            raise MetadataError(f"{path}:{n}: expected '<time> [<beat position>]', got {line!r}") from None
        beats.append(t)
        if len(parts) > 1 and parts[1].split(".")[0] == "1":
            downs.append(t)
    return beats, downs


def _beat_annotation(root: Path, stem: str) -> Path | None:
    genre, num = stem.split(".")
    for name in (f"{stem}.wav.jams", f"{stem}.jams", f"gtzan_{genre}_{num}.beats"):
        p = find_named(root, name, required=False)
        if p is not None:
            return p
    return None


def listing(task: str, root: Path, options: dict[str, Any]) -> Listing:
    from tasks.base import get_task

    lists = {}
    for split, asset in SPLIT_ASSETS.items():
        p = find_named(root, asset.name, required=False)
        if p is None:
            raise DatasetMissing(
                f"GTZAN: split list {asset.name} not found below {root}. Run `python -m benchmark prepare "
                f"--task {task} --data-dir {root}` to fetch it ({asset.url}), or put it there by hand.")
        lists[split] = read_split_list(p)
    audio = _audio_index(root)
    if not audio:
        raise DatasetMissing(f"GTZAN: no audio file named <genre>.NNNNN.wav/.au below {root}.\n\n{instructions(task)}")
    entries: list[Entry] = []
    unlabelled: list[tuple[str, str, str]] = []
    for split, stems in lists.items():
        for stem in stems:
            genre = stem.split(".")[0]
            path = audio.get(stem, root / "Data" / "genres_original" / genre / f"{stem}.wav")
            name = path.name
            if task == "genre":
                target: Any = genre
                extra: dict[str, Any] = {}
            else:
                ann = _beat_annotation(root, stem)
                if ann is None:
                    unlabelled.append((split, name, f"no beat annotation ({stem}.wav.jams / {stem}.jams / "
                                                    f"gtzan_{genre}_{stem.split('.')[1]}.beats)"))
                    continue
                try:
                    beats, downs = beats_from_jams(ann) if ann.suffix == ".jams" else beats_from_text(ann)
                except MetadataError as e:
                    unlabelled.append((split, name, str(e)))
                    continue
                target, extra = beats, {"downbeats": downs, "annotation": ann.name, "genre": genre}
            entries.append(Entry(split=split, name=name, duration=30.0, tolerance=1.0,
                                 known_issue=KNOWN_CORRUPT.get(stem),
                                 item=Item(id=stem, audio=str(path), target=target, group=stem, extra=extra)))
    spec = get_task(task)
    notes = []
    if task == "beat":
        srcs = {e.item.extra["annotation"].rsplit(".", 1)[-1] for e in entries}
        notes.append("beat annotations from " + " and ".join(sorted(f".{s} files" for s in srcs)))
    return Listing(
        dataset=DATASET, task=task, data_dir=root,
        split_procedure="fault-filtered artist-disjoint split (Kereliuk & Sturm; coreyker/dnn-mgr @ bdad579), "
                        "443/197/290; jazz.00054 skipped when corrupt",
        entries=entries, expected=dict(EXPECTED), labels=list(spec.labels), sample_rate=22050,
        source_version=f"gtzan-real-v{READER_VERSION}:filtered", notes=notes, unlabelled=unlabelled,
    )
