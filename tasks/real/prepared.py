"""Writing the prepared folder (:mod:`tasks.format`) of a real-data task from the usable entries of its
listing (:func:`write_prepared`), and the fingerprint of the data and options that lets an unchanged folder be
reused instead of written again (:func:`fingerprint`).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

from tasks.format import Item, atomic_dir, is_complete, read_meta, write_meta, write_split
from tasks.real.folders import DatasetMissing
from tasks.real.validation import Entry, Listing, Problem, ValidationReport, check_listing


def fingerprint(listing: Listing, good: list[Entry], options: dict[str, Any]) -> str:
    """What the prepared folder was written from: reader version, task, options, labels, and every usable
    entry's id, path, size and modification time (``meta.json['fingerprint']``)."""
    h = hashlib.sha1()
    h.update(json.dumps([listing.source_version, listing.task, options, listing.labels], sort_keys=True,
                        default=str).encode())
    for e in good:
        h.update(f"{e.split}\t{e.item.id}\t{e.item.audio}\n".encode())
        for f in e.all_files():
            try:
                st = Path(f).stat()
                h.update(f"{st.st_size}:{int(st.st_mtime)}\n".encode())
            except OSError:
                pass
    return h.hexdigest()


def write_prepared(listing: Listing, out: Path, task_version: int, options: dict[str, Any],
                   level: str = "header", progress: bool = True) -> tuple[Path, ValidationReport]:
    """Write ``out`` (tasks.format) from the usable entries; reuse it when nothing changed since."""
    rep, good = check_listing(listing, level=level, progress=progress)
    if not rep.ok:
        raise DatasetMissing(f"cannot prepare task {listing.task!r}:\n{rep.text()}")
    fp = fingerprint(listing, good, options)
    out = Path(out)
    if is_complete(out):
        try:
            meta = read_meta(out)
        except (OSError, json.JSONDecodeError):
            meta = {}
        if meta.get("fingerprint") == fp and meta.get("task_version") == task_version:
            return out, rep
    by_split: dict[str, list[Item]] = {s: [] for s in listing.splits}
    expanded: dict[str, int] = {}
    extra_skipped: list[Problem] = []
    it = good
    if progress and listing.expand is not None:
        try:
            from tqdm import tqdm

            it = tqdm(good, desc=f"{listing.dataset}: cutting", file=sys.stderr, leave=False)
        except ImportError:
            pass
    for e in it:
        if listing.expand is None:
            by_split[e.split].append(e.item)
            continue
        try:
            items = listing.expand(e)
        except ValueError as err:  # AudioError is a ValueError
            extra_skipped.append(Problem(e.split, e.name, str(err)))
            continue
        if not items:
            extra_skipped.append(Problem(e.split, e.name, "no chunk after silence trimming (too short)"))
        by_split[e.split].extend(items)
        expanded[e.split] = expanded.get(e.split, 0) + len(items)
    for s, items in by_split.items():
        if not items:
            raise DatasetMissing(f"cannot prepare task {listing.task!r}: split {s!r} has no usable item\n{rep.text()}")
    skipped = [dataclasses.asdict(p) for p in rep.bad + rep.unlabelled + extra_skipped]
    rates = set()
    for e in good[:20]:
        try:
            import soundfile as sf

            rates.add(sf.info(str(e.item.audio)).samplerate)
        except Exception:  # checked already; a race with the user's disk is not our business here
            pass
    with atomic_dir(out) as tmp:
        for s, items in by_split.items():
            write_split(tmp, s, items)
        write_meta(tmp, {
            "task": listing.task,
            "task_version": task_version,
            "source": "real",
            "source_version": listing.source_version,
            "dataset": listing.dataset,
            "data_dir": str(listing.data_dir),
            # the files' own rate when they share one (items are decoded and resampled by the runner)
            "sample_rate": rates.pop() if len(rates) == 1 else None,
            "dataset_sample_rate": listing.sample_rate,
            "labels": list(listing.labels),
            "split_procedure": listing.split_procedure,
            "options": options,
            "counts": {s: len(v) for s, v in by_split.items()},
            "listed": rep.listed,
            "expected": rep.expected,
            "skipped": skipped,
            "notes": rep.notes,
            "fingerprint": fp,
            **listing.meta_extra,
        })
    return out, rep
