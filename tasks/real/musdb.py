"""MUSDB18 4-stem separation (vocals, drums, bass, other).

Layout: the WAV layout ``{train,test}/<Artist - Title>/{mixture,vocals,drums,bass,other}.wav`` that
``musdbconvert`` writes (and MUSDB18-HQ ships). The distributed ``.stem.mp4`` files cannot be decoded by
soundfile (they are multi-stream AAC in MP4): convert them first with ``pip install musdb`` then
``musdbconvert <musdb18 folder> <output folder>``.
Split: ``train`` subset minus the 14 ``validation_tracks`` of musdb's ``mus.yaml`` = train (86), those 14 =
valid, ``test`` subset = test (50). mus.yaml is looked for below the data folder, then in an installed
``musdb`` package, then in the project's ``tasks/splits/musdb18_valid_v1.txt`` (generated from mus.yaml).
Items: one per track, ``audio`` = mixture.wav, ``target`` = {stem: path}; the runner cuts the 6 s training
segments (the task's ``window_s``) and separates whole test tracks.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from tasks.format import Item
from tasks.real.download import Asset
from tasks.real.folders import DatasetMissing, MetadataError, name_index, find_named
from tasks.real.validation import Entry, Listing

DATASET = "MUSDB18"
READER_VERSION = 1
EXPECTED = {"train": 86, "valid": 14, "test": 50}
STEMS = ("vocals", "drums", "bass", "other")
SPLIT_FILE = Path(__file__).resolve().parents[1] / "splits" / "musdb18_valid_v1.txt"
LAYOUT = """\
Expected below the MUSDB18 data folder (WAV layout, as musdbconvert writes it or MUSDB18-HQ ships it):
  train/<Artist - Title>/{mixture,vocals,drums,bass,other}.wav   (100 tracks: 86 train + 14 valid)
  test/<Artist - Title>/{mixture,vocals,drums,bass,other}.wav    (50 tracks)"""


def instructions(task: str) -> str:
    return f"""\
MUSDB18 is distributed on request (Zenodo record 1117372, MUSDB18 stems; or MUSDB18-HQ, record 3338373, WAV):
  1. request access on Zenodo, download musdb18.zip (or musdb18hq.zip) and unzip it;
  2. MUSDB18 stems only: `.stem.mp4` files cannot be decoded by soundfile. Convert them:
       pip install musdb && musdbconvert path/to/musdb18 DIR
     (MUSDB18-HQ is already WAV: unzip it into DIR.)
{LAYOUT}"""


def assets(task: str, root: Path) -> list[Asset]:
    return []  # access-restricted: nothing to fetch without a login


def norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def validation_tracks(root: Path) -> tuple[list[str], str]:
    """The 14 validation track names, and where they came from."""
    import yaml

    p = find_named(root, "mus.yaml", required=False)
    if p is None:
        try:
            import musdb  # noqa: F401

            cand = Path(musdb.__file__).parent / "configs" / "mus.yaml"
            p = cand if cand.exists() else None
        except ImportError:
            p = None
    if p is not None:
        try:
            doc = yaml.safe_load(p.read_text(encoding="utf-8"))
            return list(doc["validation_tracks"]), str(p)
        except (OSError, yaml.YAMLError, KeyError, TypeError) as e:
            raise MetadataError(f"{p}: cannot read validation_tracks ({e})") from None
    if SPLIT_FILE.exists():
        return [ln.strip() for ln in SPLIT_FILE.read_text(encoding="utf-8").splitlines() if ln.strip()], str(SPLIT_FILE)
    raise DatasetMissing("MUSDB18: no mus.yaml (musdb package) and no tasks/splits/musdb18_valid_v1.txt")


def listing(task: str, root: Path, options: dict[str, Any]) -> Listing:
    idx = name_index(root)
    mixtures = [p for p in idx.get("mixture.wav", []) if p.parent.parent.name in ("train", "test")]
    if not mixtures:
        stems = [n for n in idx if n.endswith(".stem.mp4")]
        if stems:
            raise DatasetMissing(
                f"MUSDB18: found {len(stems)} .stem.mp4 files below {root} but no WAV folders. soundfile cannot "
                f"decode .stem.mp4 (multi-stream AAC); convert them first: `pip install musdb && musdbconvert "
                f"{root} {root}_wav`, then point --data-dir at {root}_wav.\n\n{LAYOUT}")
        raise DatasetMissing(f"MUSDB18: no train/<track>/mixture.wav below {root}.\n\n{instructions(task)}")
    valid, valid_src = validation_tracks(root)
    valid_n = {norm(v): v for v in valid}
    entries = []
    found_valid = set()
    for mix in sorted(mixtures, key=lambda p: (p.parent.parent.name, p.parent.name)):
        track, subset = mix.parent.name, mix.parent.parent.name
        if subset == "test":
            split = "test"
        elif norm(track) in valid_n:
            split = "valid"
            found_valid.add(norm(track))
        else:
            split = "train"
        stems = {s: str(mix.parent / f"{s}.wav") for s in STEMS}
        entries.append(Entry(split=split, name=f"{subset}/{track}", files=(mix, *map(Path, stems.values())),
                             item=Item(id=track, audio=str(mix), target=stems, group=track)))
    notes = [f"validation tracks from {valid_src}"]
    missing_valid = [valid_n[k] for k in valid_n if k not in found_valid]
    if missing_valid:
        notes.append(f"validation tracks not found: {', '.join(missing_valid)}")
    return Listing(
        dataset=DATASET, task=task, data_dir=root,
        split_procedure="MUSDB18 train minus mus.yaml validation_tracks (86) / validation_tracks (14) / test (50)",
        entries=entries, expected=dict(EXPECTED), labels=list(STEMS), sample_rate=44100,
        source_version=f"musdb-real-v{READER_VERSION}", notes=notes,
        meta_extra={"stems": list(STEMS)},
    )
