"""VocalSet singer identification (20 singers) and technique classification (10 techniques).

Layout: VocalSet 1.1 ``FULL/<femaleN|maleN>/<context>/<technique>/<file>.wav`` (VocalSet 1.2's
``data_by_singer/`` has the same shape and is accepted too). Labels come from the folders (singer folder ->
``fN``/``mN``; technique folder), which makes the misnamed files of the distribution harmless (files without
the singer prefix, ``m9_caro_vibrato.wav`` inside ``male8``); the misspelled ``female2/arpeggios/vibrado``
folder counts as ``vibrato``. Left out, as MARBLE v1 does: the duplicates ``*(1).wav`` and
``slow_vibrato_arps.wav`` (not in the paper's table).
Technique task: the 10 technique folders of :data:`tasks.technique.TECHNIQUES`; singer task: all 17
technique folders of MARBLE v1 (``tech_types``).

Input: silence trimmed at both ends (frames of 2048 samples, hop 512, kept from the first to the last frame
whose RMS is within 40 dB of the loudest frame), then cut into consecutive 3 s chunks; a remainder shorter
than 3 s is dropped (MARBLE's default). Items are the chunks (``start``/``end`` into the original file).

Splits (MARBLE's are random and unpublished; ours are fixed by hashing, so they do not depend on which other
files a copy holds). The recording key is its path below FULL, e.g.
``female1/arpeggios/belt/f1_arpeggios_belt_c_a.wav``, and ``h = int(sha1("<salt>" + key), 16)``:
* singer (recording-disjoint, 12:8:5 as MARBLE's 0.2 test then 0.4 valid): ``h % 25`` < 12 train, < 20 valid,
  else test; salt ``vocalset-singer-v1:``.
* technique (singer-disjoint test): singers f2, f8, m3, m5, m10 -> test; the other 15 singers' recordings
  ``h % 5`` < 3 train, else valid (MARBLE's 0.4 valid share); salt ``vocalset-technique-v1:``.
All chunks of a recording share its split (``group`` = the recording key).
"""
from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

import numpy as np

from tasks.format import Item
from tasks.real.download import Asset
from tasks.real.folders import DatasetMissing
from tasks.real.validation import Entry, Listing

DATASET = "VocalSet"
READER_VERSION = 1
CHUNK_S = 3.0
TRIM_DB = 40.0
TECH_TYPES = ("belt", "breathy", "inhaled", "lip_trill", "spoken", "straight", "trill", "trillo", "vibrato",
              "vocal_fry", "fast_forte", "fast_piano", "forte", "messa", "pp", "slow_forte", "slow_piano")
FOLDER_FIX = {"vibrado": "vibrato"}
SKIP_FILES = {"slow_vibrato_arps.wav"}
ZIP = Asset("VocalSet11.zip", "https://zenodo.org/record/1203819/files/VocalSet11.zip", extract=True,
            what="VocalSet 1.1 (about 2 GB; Zenodo publishes an md5 on the record page)")
LAYOUT = """\
Expected below the VocalSet data folder:
  FULL/<female1..female9|male1..male11>/<arpeggios|scales|long_tones|excerpts>/<technique>/<name>.wav
  (VocalSet 1.1 zip as unpacked; VocalSet 1.2 data_by_singer/ is accepted too)"""


def instructions(task: str) -> str:
    return f"""\
VocalSet is public (CC BY 4.0, Zenodo record 1203819): `python -m benchmark prepare --task {task} --data-dir DIR`
fetches VocalSet11.zip (resumable) and unpacks it; or download it from https://zenodo.org/record/1203819
and unzip it into DIR.
{LAYOUT}"""


def assets(task: str, root: Path) -> list[Asset]:
    return [ZIP]


def singer_short(folder: str) -> str | None:
    m = re.fullmatch(r"(female|male)(\d+)", folder)
    return None if m is None else ("f" if m.group(1) == "female" else "m") + m.group(2)


def find_singers_root(root: Path) -> Path | None:
    cands = []
    for depth in range(0, 4):
        for p in root.glob("/".join(["*"] * depth + ["female1"])):
            if p.is_dir():
                cands.append(p.parent)
    if not cands:
        return None
    pref = [c for c in cands if c.name in ("FULL", "data_by_singer")]
    return sorted(pref or cands, key=lambda p: (len(p.parts), str(p)))[0]


def _bucket(salt: str, key: str, n: int) -> int:
    return int(hashlib.sha1((salt + key).encode("utf-8")).hexdigest(), 16) % n


def singer_split(key: str) -> str:
    b = _bucket("vocalset-singer-v1:", key, 25)
    return "train" if b < 12 else "valid" if b < 20 else "test"


def technique_split(key: str, singer: str) -> str:
    from tasks.technique import TEST_SINGERS

    if singer in TEST_SINGERS:
        return "test"
    return "train" if _bucket("vocalset-technique-v1:", key, 5) < 3 else "valid"


def recordings(base: Path) -> tuple[list[tuple[str, str, str, Path]], list[str]]:
    """[(key, singer, technique, path)] for every usable recording, and notes on files left out."""
    out, notes, seen = [], [], set()
    for p in sorted(base.glob("*/*/*/*.wav")):
        singer_dir, context, tech_dir = p.parts[-4:-1]
        singer = singer_short(singer_dir)
        tech = FOLDER_FIX.get(tech_dir, tech_dir)
        if singer is None or tech not in TECH_TYPES:
            continue
        if p.name in SKIP_FILES or re.search(r"\(\d+\)\.wav$", p.name):
            notes.append(f"left out {singer_dir}/{context}/{tech_dir}/{p.name} (duplicate or not in the paper)")
            continue
        key = f"{singer_dir}/{context}/{tech}/{p.name}"
        if key in seen:
            notes.append(f"left out {singer_dir}/{context}/{tech_dir}/{p.name} (same recording twice)")
            continue
        seen.add(key)
        out.append((key, singer, tech, p))
    return out, notes


def trim_bounds(wav: np.ndarray, sr: int, frame_s: float = 2048 / 44100, hop_s: float = 512 / 44100,
                db: float = TRIM_DB) -> tuple[float, float]:
    """(start, end) in seconds of the part between the first and last frame within ``db`` of the loudest
    (frames of 2048 samples, hop 512 at 44.1 kHz; the same durations at other rates)."""
    frame, hop = max(1, int(round(frame_s * sr))), max(1, int(round(hop_s * sr)))
    if len(wav) < frame:
        return 0.0, len(wav) / sr
    n = 1 + (len(wav) - frame) // hop
    idx = np.arange(frame)[None, :] + hop * np.arange(n)[:, None]
    rms = np.sqrt(np.mean(wav[idx].astype(np.float64) ** 2, axis=1) + 1e-20)
    level = 20 * np.log10(rms)
    active = np.nonzero(level > level.max() - db)[0]
    if active.size == 0:
        return 0.0, 0.0
    return active[0] * hop / sr, min(len(wav), active[-1] * hop + frame) / sr


def chunk_items(entry: Entry) -> list[Item]:
    """Silence-trim one recording and cut it into 3 s chunks (items with start/end)."""
    from mert.audio import read_audio
    import soundfile as sf

    path = entry.item.audio
    sr = sf.info(path).samplerate
    wav = read_audio(path)
    t0, t1 = trim_bounds(wav, sr)
    n = int((t1 - t0 + 1e-9) // CHUNK_S)
    base = entry.item
    return [Item(id=f"{base.id}_{k:02d}", audio=base.audio, target=base.target,
                 start=round(t0 + k * CHUNK_S, 6), end=round(t0 + (k + 1) * CHUNK_S, 6), group=base.group,
                 extra=dict(base.extra)) for k in range(n)]


def listing(task: str, root: Path, options: dict[str, Any]) -> Listing:
    from tasks.base import get_task
    from tasks.technique import TECHNIQUES, TEST_SINGERS

    base = find_singers_root(root)
    if base is None:
        raise DatasetMissing(f"VocalSet: no FULL/female1/... folder below {root}.\n\n{instructions(task)}")
    recs, notes = recordings(base)
    spec = get_task(task)
    entries = []
    for key, singer, tech, path in recs:
        if task == "technique":
            if tech not in TECHNIQUES:
                continue
            split, target = technique_split(key, singer), tech
        else:
            split, target = singer_split(key), singer
        rid = key[:-4].replace("/", ".")
        entries.append(Entry(split=split, name=key, item=Item(
            id=rid, audio=str(path), target=target, group=key, extra={"singer": singer, "technique": tech})))
    order = {"train": 0, "valid": 1, "test": 2}
    entries.sort(key=lambda e: (order[e.split], e.name))
    proc = ("recording-disjoint hash split 12:8:5 (sha1 'vocalset-singer-v1:' + recording path)" if task == "singer"
            else f"test singers {', '.join(TEST_SINGERS)}; others' recordings hashed 3:2 train/valid "
                 "(sha1 'vocalset-technique-v1:' + recording path)")
    return Listing(
        dataset=DATASET, task=task, data_dir=root, split_procedure=proc, entries=entries, expected={},
        labels=list(spec.labels), sample_rate=44100, source_version=f"vocalset-real-v{READER_VERSION}",
        notes=notes[:20] + ([f"... {len(notes) - 20} more left out"] if len(notes) > 20 else [])
        + [f"counts are recordings; prepare cuts them into {CHUNK_S:.0f} s chunks after silence trimming"],
        expand=chunk_items,
    )
