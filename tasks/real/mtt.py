"""MagnaTagATune top-50 tagging.

Labels: ``annotations_final.csv`` (tab-separated, quoted, header ``clip_id``, 188 tag columns, ``mp3_path``;
25,863 clips), restricted to the 50 tags of :data:`tasks.tagging.MTT_TOP50`.
Splits (option ``split``):
* ``folder`` (default; MARBLE v1, jukemir): first hex character of ``mp3_path``: ``0``-``b`` train, ``c``
  valid, ``d``-``f`` test, over all annotated clips (untagged ones included): 18,709 / 1,825 / 5,329.
* ``won`` (Won et al. 2020, sota-music-tagging-models): the same folder rule keeping only clips with at least
  one top-50 tag: 15,250 / 1,529 / 4,332.
Three train clips are empty or undecodable in the distribution (clip ids 35644, 55753, 57881); they are
reported and skipped without counting against the task.
Audio: ``mp3/<0-f>/<artist>-<album>-<track>-<title>-<start>-<end>.mp3`` (the unzipped ``mp3.zip.001-003``).
"""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Any, Callable

from tasks.format import Item
from tasks.real.download import Asset, extract_archive
from tasks.real.folders import DatasetMissing, MetadataError, find_base, find_named
from tasks.real.validation import Entry, Listing

DATASET = "MagnaTagATune"
READER_VERSION = 1
OPTIONS = {"tagging": {"split": ("folder", "won")}}
EXPECTED = {
    "folder": {"train": 18709, "valid": 1825, "test": 5329},
    "won": {"train": 15250, "valid": 1529, "test": 4332},
}
KNOWN_BROKEN = {
    "6/norine_braun-now_and_zen-08-gently-117-146.mp3",
    "8/jacob_heringman-josquin_des_prez_lute_settings-19-gintzler__pater_noster-204-233.mp3",
    "9/american_baroque-dances_and_suites_of_rameau_and_couperin-25-le_petit_rien_xiveme_ordre_couperin-88-117.mp3",
}
_BASE = "https://mirg.city.ac.uk/datasets/magnatagatune"
ASSETS = [
    Asset("annotations_final.csv", f"{_BASE}/annotations_final.csv",
          sha256="99b94e95825d4fa576386a5367b9c96e0ec636e9f9c240aceb492f4728f68c3c"),
    Asset("mp3.zip.001", f"{_BASE}/mp3.zip.001",
          sha256="f857fe185968773058cc71662c2ef5d8f2d4b7338e3c122cfd52f82dcb9760b9", dest="download"),
    Asset("mp3.zip.002", f"{_BASE}/mp3.zip.002",
          sha256="fc2e1ec441755556ed1398b1808f1b08b6034372f8bc27394510c0c58cdb52ce", dest="download"),
    Asset("mp3.zip.003", f"{_BASE}/mp3.zip.003",
          sha256="83a689824c17e82f6eb81cdbc4e4ca239a4cfc1fb41f1a5c80b861caec90450f", dest="download"),
]

LAYOUT = """\
Expected below the MagnaTagATune data folder:
  annotations_final.csv                  (anywhere below; found by name)
  mp3/<0-9a-f>/<artist>-<album>-<nn>-<title>-<start>-<end>.mp3   (unzipped mp3.zip.001-003)"""


def instructions(task: str) -> str:
    return f"""\
MagnaTagATune is public: `python -m benchmark prepare --task tagging --data-dir DIR` fetches
annotations_final.csv and mp3.zip.001-003 from {_BASE}/ (sha256-checked, resumable), joins the
three parts and unzips them into DIR/mp3/. By hand: download the same files, then
`cat mp3.zip.* > mp3_all.zip && unzip mp3_all.zip -d DIR/mp3`.
Split option: tagging split=folder (default, MARBLE) or split=won (Won et al. 2020).
{LAYOUT}"""


def assets(task: str, root: Path) -> list[Asset]:
    return list(ASSETS)


def after_download(task: str, root: Path, log: Callable[[str], None] = print) -> None:
    """Join the split zip and unpack it into ``root/mp3`` (once)."""
    parts = [root / "download" / f"mp3.zip.00{i}" for i in (1, 2, 3)]
    if not all(p.exists() for p in parts):
        return
    joined = root / "download" / "mp3_all.zip"
    if not (root / "mp3" / ".mp3_all.zip.extracted").exists():
        if not joined.exists():
            log("MagnaTagATune: joining mp3.zip.001-003")
            tmp = joined.with_suffix(".zip.part")
            with open(tmp, "wb") as out:
                for p in parts:
                    with open(p, "rb") as f:
                        while chunk := f.read(1 << 22):
                            out.write(chunk)
            tmp.replace(joined)
        extract_archive(joined, root / "mp3", log=log)


def read_annotations(path: Path) -> tuple[list[str], list[tuple[str, str, list[str]]]]:
    """(tag names in column order, [(clip_id, mp3_path, positive tags)]) from annotations_final.csv."""
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.reader(f, delimiter="\t")
        try:
            header = next(reader)
        except StopIteration:
            raise MetadataError(f"{path}: empty file") from None
        if len(header) < 3 or header[0] != "clip_id" or header[-1] != "mp3_path":
            raise MetadataError(f"{path}: expected a tab-separated header 'clip_id, <tags>, mp3_path', "
                                f"got {header[:3]}...{header[-1:]}")
        tags = header[1:-1]
        rows = []
        for n, row in enumerate(reader, 2):
            if not row:
                continue
            if len(row) != len(header):
                raise MetadataError(f"{path}:{n}: {len(row)} fields, header has {len(header)}")
            pos = [t for t, v in zip(tags, row[1:-1]) if v.strip() == "1"]
            rows.append((row[0].strip(), row[-1].strip(), pos))
    return tags, rows


def folder_split(mp3_path: str) -> str | None:
    c = mp3_path[:1].lower()
    if c in "0123456789ab" and c:
        return "train"
    if c == "c":
        return "valid"
    if c in ("d", "e", "f"):
        return "test"
    return None


def listing(task: str, root: Path, options: dict[str, Any]) -> Listing:
    from tasks.tagging import MTT_TOP50

    split_opt = options.get("split", "folder")
    ann = find_named(root, "annotations_final.csv", required=False)
    if ann is None:
        raise DatasetMissing(f"MagnaTagATune: annotations_final.csv not found below {root}.\n\n{instructions(task)}")
    tags, rows = read_annotations(ann)
    missing_tags = [t for t in MTT_TOP50 if t not in tags]
    if missing_tags:
        raise MetadataError(f"{ann}: top-50 tags {missing_tags} are not columns of the file")
    top = set(MTT_TOP50)
    base = find_base(root, [r[1] for r in rows[:: max(1, len(rows) // 40)]], candidates=("mp3",)) or root / "mp3"
    entries = []
    dropped = 0
    for clip_id, mp3, pos in rows:
        split = folder_split(mp3)
        if split is None:
            raise MetadataError(f"{ann}: clip {clip_id}: mp3_path {mp3!r} does not start with a hex folder")
        target = [t for t in MTT_TOP50 if t in pos]
        if split_opt == "won" and not (top & set(pos)):
            dropped += 1
            continue
        stem = Path(mp3).stem
        song = stem.rsplit("-", 2)[0]
        entries.append(Entry(
            split=split, name=mp3, min_duration=20.0,
            known_issue="a known-broken clip of the MTT distribution" if mp3 in KNOWN_BROKEN else None,
            item=Item(id=clip_id, audio=str(base / mp3), target=target, group=song)))
    notes = []
    if split_opt == "won":
        notes.append(f"Won et al. split: {dropped} clips without a top-50 tag left out")
    return Listing(
        dataset=DATASET, task=task, data_dir=root,
        split_procedure=("folder split 0-b/c/d-f over all annotated clips (MARBLE v1)" if split_opt == "folder"
                         else "Won et al. 2020: folder split, clips with a top-50 tag only"),
        entries=entries, expected=dict(EXPECTED[split_opt]), labels=list(MTT_TOP50), sample_rate=16000,
        source_version=f"mtt-real-v{READER_VERSION}:{split_opt}", notes=notes,
    )
