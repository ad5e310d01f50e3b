"""Listings and their validation: what a reader expects (a :class:`Listing` of :class:`Entry` records, one per
example the protocol lists, whether or not its audio is there), and checking the entries' files
(:func:`check_file`, :func:`check_listing`) into a :class:`ValidationReport` that names every missing,
unreadable or wrong-length file and says whether the task can run (the :data:`MAX_LOSS` rule).
"""
from __future__ import annotations

import dataclasses
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from tasks.format import Item

#: A split may lose at most this fraction of its listed items (missing or bad files) and still run; the
#: benchmark runner applies the same 5 % rule to files it cannot decode.
MAX_LOSS = 0.05


@dataclass
class Entry:
    """One expected example. ``item.audio`` (and separation stems) are absolute paths into the data dir."""

    split: str
    name: str
    item: Item
    files: tuple[Path, ...] = ()
    duration: float | None = None   # expected length in seconds (checked within ``tolerance``)
    tolerance: float = 1.0
    min_duration: float | None = None  # or: at least this long
    known_issue: str | None = None  # said next to the file name when it is bad (e.g. jazz.00054)

    def all_files(self) -> tuple[Path, ...]:
        return self.files or (Path(self.item.audio),)


@dataclass
class Listing:
    """What a reader knows about a task's data before touching the audio."""

    dataset: str
    task: str
    data_dir: Path
    split_procedure: str           # e.g. "fault-filtered (Kereliuk/Sturm), jazz.00054 dropped"
    entries: list[Entry]
    expected: dict[str, int]       # protocol counts per split (listed items), for the report
    labels: list[Any]
    sample_rate: int | None        # native rate of the files, for meta.json (runner resamples)
    source_version: str
    notes: list[str] = field(default_factory=list)
    unlabelled: list[tuple[str, str, str]] = field(default_factory=list)  # (split, name, reason)
    expand: Callable[[Entry], list[Item]] | None = None  # e.g. VocalSet: recording -> 3 s chunks
    meta_extra: dict[str, Any] = field(default_factory=dict)
    splits: tuple[str, ...] = ("train", "valid", "test")


@dataclass
class Problem:
    split: str
    name: str
    reason: str


@dataclass
class ValidationReport:
    """Per-split counts against the protocol's, every bad file by name, and whether the task can run."""

    dataset: str
    task: str
    data_dir: str
    split_procedure: str = ""
    expected: dict[str, int] = field(default_factory=dict)
    listed: dict[str, int] = field(default_factory=dict)
    usable: dict[str, int] = field(default_factory=dict)
    missing: list[Problem] = field(default_factory=list)
    unreadable: list[Problem] = field(default_factory=list)
    wrong_length: list[Problem] = field(default_factory=list)
    bad_audio: list[Problem] = field(default_factory=list)   # decodes, but NaN / inf / silent (level "decode")
    unlabelled: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    known_bad: dict[str, int] = field(default_factory=dict)  # bad files with a known defect, per split

    @property
    def bad(self) -> list[Problem]:
        return self.missing + self.unreadable + self.wrong_length + self.bad_audio

    @property
    def ok(self) -> bool:
        """True when the task can run: metadata complete, every split non-empty, and no split lost more than
        :data:`MAX_LOSS` of its listed items (files with a known defect in common copies not counted)."""
        if self.errors or not self.listed:
            return False
        for split, n in self.listed.items():
            u = self.usable.get(split, 0)
            if u == 0 or u < (1.0 - MAX_LOSS) * (n - self.known_bad.get(split, 0)):
                return False
        return True

    def counts_match(self) -> bool:
        """Listed counts equal the protocol's expected counts (a partial copy of the data differs)."""
        return all(self.listed.get(s) == n for s, n in self.expected.items())

    def text(self, max_names: int = 20) -> str:
        lines = [f"{self.dataset} / task {self.task}: data in {self.data_dir}"]
        if self.split_procedure:
            lines.append(f"  split: {self.split_procedure}")
        for e in self.errors:
            lines.append(f"  ERROR: {e}")
        total_u, total_l = sum(self.usable.values()), sum(self.listed.values())
        if self.listed:
            lines.append(f"  {total_u} of {total_l} listed files usable")
        for split in self.listed:
            exp = self.expected.get(split)
            exp_s = "" if exp is None else (" (protocol: %d)" % exp if exp != self.listed[split] else " (= protocol)")
            lines.append(f"  {split:6s}: {self.usable.get(split, 0)} usable of {self.listed[split]} listed{exp_s}")
        for title, probs in (("missing", self.missing), ("unreadable", self.unreadable),
                             ("wrong length", self.wrong_length), ("bad audio (decoded)", self.bad_audio),
                             ("no annotation", self.unlabelled)):
            if probs:
                lines.append(f"  {title}: {len(probs)}")
                for p in probs[:max_names]:
                    lines.append(f"    [{p.split}] {p.name}: {p.reason}")
                if len(probs) > max_names:
                    lines.append(f"    ... and {len(probs) - max_names} more")
        if self.listed and self.expected and not self.counts_match():
            lines.append("  note: the split lists hold other counts than the protocol's (a partial or different "
                         "copy of the metadata); scores are not comparable with published ones")
        for n in self.notes:
            lines.append(f"  note: {n}")
        lines.append("  => task can run" if self.ok else "  => task can NOT run (see above)")
        return "\n".join(lines)

    def summary(self) -> str:
        """One line, e.g. 'GTZAN: 929 of 930 files, jazz.00054.wav unreadable - it is corrupt in common
        copies, skipped'."""
        total_u, total_l = sum(self.usable.values()), sum(self.listed.values())
        s = f"{self.dataset}: {total_u} of {total_l} files"
        bad = self.bad
        if bad:
            s += ", " + "; ".join(f"{p.name} {p.reason}" for p in bad[:3])
            if len(bad) > 3:
                s += f"; and {len(bad) - 3} more"
            s += ", skipped"
        if self.errors:
            s += "; " + "; ".join(self.errors)
        return s

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["ok"] = self.ok
        return d


def check_file(path: Path, duration: float | None = None, tolerance: float = 1.0,
               min_duration: float | None = None, level: str = "header") -> tuple[str, str] | None:
    """None when usable, else (kind, reason) with kind in missing / unreadable / wrong_length / bad_audio.

    ``level``: ``exists`` (stat only), ``header`` (soundfile header: format and length), ``decode`` (read the
    whole file: catches truncated mp3 bodies, and says which files decode to NaN or infinite samples or to
    silence, ``bad_audio``, which the benchmark would skip or fail on)."""
    import soundfile as sf

    if not path.is_file():
        return "missing", "file missing"
    if path.stat().st_size == 0:
        return "unreadable", "empty file (0 bytes)"
    if level == "exists":
        return None
    try:
        info = sf.info(str(path))
        seconds = info.frames / info.samplerate if info.samplerate else 0.0
        if info.frames <= 0:
            return "unreadable", "no audio frames in the file"
        if level == "decode":
            import numpy as np

            data, _ = sf.read(str(path), dtype="float32", always_2d=True)
            bad = _decoded_problem(data)
            if bad is not None:
                return bad
    except Exception as e:  # libsndfile raises RuntimeError / LibsndfileError / OSError
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        msg = msg.replace(f"Error opening {str(path)!r}: ", "").replace(str(path), path.name)
        return "unreadable", f"unreadable ({msg})"
    if duration is not None and abs(seconds - duration) > tolerance:
        return "wrong_length", f"{seconds:.2f} s, expected {duration:.2f} s"
    if min_duration is not None and seconds < min_duration:
        return "wrong_length", f"{seconds:.2f} s, expected at least {min_duration:.2f} s"
    return None


SILENCE_PEAK = 1e-4  # the benchmark's default features.silence_peak: quieter files are skipped as silent


def _decoded_problem(data) -> tuple[str, str] | None:
    """What is wrong with decoded samples [frames, channels], or None."""
    import numpy as np

    if data.size == 0:
        return "unreadable", "decodes to no samples"
    nan, inf = int(np.isnan(data).sum()), int(np.isinf(data).sum())
    if nan or inf:
        what = " and ".join(f"{n} {k}" for n, k in ((nan, "NaN"), (inf, "infinite")) if n)
        return "bad_audio", f"{what} samples of {data.size}"
    peak = float(np.abs(data).max())
    if peak < SILENCE_PEAK:
        return "bad_audio", f"silent (peak amplitude {peak:.1e} < {SILENCE_PEAK:g})"
    return None


def check_listing(listing: Listing, level: str = "header", workers: int = 8,
                  progress: bool = False) -> tuple[ValidationReport, list[Entry]]:
    """Check every entry's files; a bad file is recorded by name and the others go on. ``progress`` shows a
    bar for large datasets (more than 2,000 entries)."""
    rep = ValidationReport(
        dataset=listing.dataset, task=listing.task, data_dir=str(listing.data_dir),
        split_procedure=listing.split_procedure, expected=dict(listing.expected),
        notes=list(listing.notes),
    )
    for split in listing.splits:
        rep.listed[split] = 0
        rep.usable[split] = 0
    rep.unlabelled = [Problem(s, n, r) for s, n, r in listing.unlabelled]
    for p in rep.unlabelled:
        rep.listed[p.split] = rep.listed.get(p.split, 0) + 1

    def one(e: Entry):
        # files with a known defect in common copies are decoded fully: their headers often look fine
        lvl = "decode" if e.known_issue and level != "exists" else level
        for f in e.all_files():
            r = check_file(Path(f), e.duration if Path(f) == Path(e.item.audio) else None, e.tolerance,
                           e.min_duration if Path(f) == Path(e.item.audio) else None, lvl)
            if r is not None:
                kind, reason = r
                name = e.name if Path(f) == Path(e.item.audio) else f"{e.name}/{Path(f).name}"
                if e.known_issue:
                    reason += f" - {e.known_issue}"
                return kind, name, reason
        return None

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        it = pool.map(one, listing.entries)
        if progress and len(listing.entries) > 2000:
            from tqdm import tqdm

            it = tqdm(it, total=len(listing.entries), desc=f"{listing.dataset}: checking files", file=sys.stderr,
                      leave=False)
        results = list(it)
    good: list[Entry] = []
    for e, r in zip(listing.entries, results):
        rep.listed[e.split] = rep.listed.get(e.split, 0) + 1
        if r is None:
            rep.usable[e.split] = rep.usable.get(e.split, 0) + 1
            good.append(e)
        else:
            kind, name, reason = r
            getattr(rep, kind).append(Problem(e.split, name, reason))
            if e.known_issue:
                rep.known_bad[e.split] = rep.known_bad.get(e.split, 0) + 1
    return rep, good
