"""NSynth instrument family (11-way) and pitch (128-way) on the official splits.

Layout as the archives unpack: ``nsynth-{train,valid,test}/examples.json`` + ``nsynth-{split}/audio/<note_str>.wav``
(4 s, 16 kHz). Items are read in ``examples.json`` order (MARBLE v1). Targets: ``instrument_family_str`` for
``instrument``; the MIDI ``pitch`` as a string ("60") for ``pitch`` (MARBLE's ``pitch - 1`` index is only an
offset of the same classes). Official sizes 289,205 / 12,678 / 4,096.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tasks.format import Item
from tasks.real.download import Asset
from tasks.real.folders import DatasetMissing, MetadataError, find_all_named
from tasks.real.validation import Entry, Listing

DATASET = "NSynth"
READER_VERSION = 1
EXPECTED = {"train": 289205, "valid": 12678, "test": 4096}
_BASE = "http://download.magenta.tensorflow.org/datasets/nsynth"
# Magenta publishes no checksums; a download is accepted when it unpacks (and validate counts the notes).
ASSETS = [Asset(f"nsynth-{s}.jsonwav.tar.gz", f"{_BASE}/nsynth-{s}.jsonwav.tar.gz", extract=True)
          for s in ("test", "valid", "train")]
LAYOUT = """\
Expected below the NSynth data folder:
  nsynth-train/examples.json  nsynth-train/audio/<note_str>.wav   (and the same for nsynth-valid, nsynth-test)"""


def instructions(task: str) -> str:
    return f"""\
NSynth is public (CC BY 4.0): `python -m benchmark prepare --task {task} --data-dir DIR` fetches
nsynth-{{test,valid,train}}.jsonwav.tar.gz from {_BASE}/ (about 23 GB for train; resumable) and unpacks them.
Magenta publishes no checksums: the archives are accepted when they unpack, and `validate` counts the notes.
{LAYOUT}"""


def assets(task: str, root: Path) -> list[Asset]:
    return list(ASSETS)


def examples_files(root: Path) -> dict[str, Path]:
    out = {}
    for p in find_all_named(root, "examples.json"):
        name = p.parent.name
        if name.startswith("nsynth-"):
            out.setdefault(name[len("nsynth-"):], p)
    return out


def read_examples(path: Path) -> list[dict[str, Any]]:
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except (OSError, ValueError) as e:
        raise MetadataError(f"{path}: not a readable examples.json ({e})") from None
    if not isinstance(doc, dict):
        raise MetadataError(f"{path}: expected a JSON object note_str -> example")
    out = []
    for note, ex in doc.items():
        if "pitch" not in ex or "instrument_family_str" not in ex:
            raise MetadataError(f"{path}: example {note!r} lacks pitch / instrument_family_str")
        out.append({"note_str": ex.get("note_str", note), **ex})
    return out


def listing(task: str, root: Path, options: dict[str, Any]) -> Listing:
    from tasks.base import get_task

    files = examples_files(root)
    missing = [s for s in ("train", "valid", "test") if s not in files]
    if missing:
        raise DatasetMissing(f"NSynth: nsynth-{{{','.join(missing)}}}/examples.json not found below {root}.\n\n"
                             f"{instructions(task)}")
    spec = get_task(task)
    entries, unlabelled = [], []
    for split in ("train", "valid", "test"):
        ex_path = files[split]
        for ex in read_examples(ex_path):
            note = ex["note_str"]
            path = ex_path.parent / "audio" / f"{note}.wav"
            target = ex["instrument_family_str"] if task == "instrument" else str(int(ex["pitch"]))
            if target not in spec.labels:
                unlabelled.append((split, path.name, f"label {target!r} not among the task's classes"))
                continue
            entries.append(Entry(split=split, name=f"nsynth-{split}/audio/{note}.wav", duration=4.0,
                                 tolerance=0.05,
                                 item=Item(id=note, audio=str(path), target=target, group=ex.get("instrument_str"),
                                           extra={"velocity": ex.get("velocity"),
                                                  "source": ex.get("instrument_source_str")})))
    return Listing(
        dataset=DATASET, task=task, data_dir=root, split_procedure="official NSynth train/valid/test",
        entries=entries, expected=dict(EXPECTED), labels=list(spec.labels), sample_rate=16000,
        source_version=f"nsynth-real-v{READER_VERSION}", unlabelled=unlabelled,
    )
