"""Shared machinery of the real-dataset readers.

Every dataset module (``gtzan``, ``giantsteps``, ...) turns a user's copy of a dataset into a
:class:`Listing`: one :class:`Entry` per example the protocol expects (whether or not its audio is present),
the protocol's expected split counts, and notes. This module then

* checks the entries' files (:func:`check_listing`) into a :class:`ValidationReport` that names every
  missing, unreadable or wrong-length file and says whether the task can run;
* writes the prepared folder of :mod:`tasks.format` from the usable entries (:func:`write_prepared`);
* resolves the data folder (``--data-dir`` or ``$MERT_BENCH_DATA/<dataset>``) and finds metadata files by
  their original file name anywhere below it (:func:`find_named`);
* downloads public files with checksums, resuming partial downloads with HTTP Range requests and never
  fetching a verified file again (:func:`download_file`).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import sys
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from tasks.format import Item, atomic_dir, is_complete, read_meta, write_meta, write_split

ENV_VAR = "MERT_BENCH_DATA"

#: A split may lose at most this fraction of its listed items (missing or bad files) and still run; the
#: benchmark runner applies the same 5 % rule to files it cannot decode.
MAX_LOSS = 0.05


class DatasetMissing(FileNotFoundError):
    """The dataset (or a metadata file it needs) is not where we looked. The message says what to do."""


class MetadataError(ValueError):
    """A metadata file exists but cannot be parsed; the message names the file and the line."""


# --------------------------------------------------------------------------------------------------------
# data folders and metadata search


def resolve_data_dir(dataset: str, data_dir: str | os.PathLike | None, how_to_get: str) -> Path:
    """``data_dir`` if given, else ``$MERT_BENCH_DATA/<dataset>``; raise :class:`DatasetMissing` with the
    expected layout and the way to get the data when the folder does not exist."""
    if data_dir is None:
        base = os.environ.get(ENV_VAR)
        if not base:
            raise DatasetMissing(
                f"{dataset}: no data folder given. Pass --data-dir DIR or set ${ENV_VAR} so that "
                f"${ENV_VAR}/{dataset} holds the dataset.\n\n{how_to_get}"
            )
        path = Path(base).expanduser() / dataset
    else:
        path = Path(data_dir).expanduser()
    if not path.is_dir():
        raise DatasetMissing(f"{dataset}: data folder {path} does not exist.\n\n{how_to_get}")
    return path.resolve()  # items store absolute paths (relative ones would resolve against the prepared folder)


_WALK_CACHE: dict[str, dict[str, list[Path]]] = {}


def clear_cache() -> None:
    """Forget the file-name indexes (every public entry point calls this, so each call sees the disk as is)."""
    _WALK_CACHE.clear()


def _name_index(root: Path) -> dict[str, list[Path]]:
    """file name -> paths below ``root`` (hidden folders skipped), built once per public call."""
    key = str(root.resolve())
    idx = _WALK_CACHE.get(key)
    if idx is None:
        idx = {}
        for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for f in filenames:
                idx.setdefault(f, []).append(Path(dirpath) / f)
        _WALK_CACHE.clear()
        _WALK_CACHE[key] = idx
    return idx


def find_named(root: Path, name: str, hint: str = "", required: bool = True) -> Path | None:
    """Find a metadata file by its original file name anywhere below ``root``.

    When several copies exist, the shallowest wins (ties: alphabetical). ``hint`` tells the user where to get
    the file when it is missing.
    """
    hits = _name_index(root).get(name, [])
    if not hits:
        if required:
            raise DatasetMissing(f"{root}: metadata file {name!r} not found anywhere below this folder. {hint}".strip())
        return None
    return sorted(hits, key=lambda p: (len(p.parts), str(p)))[0]


def find_all_named(root: Path, name: str) -> list[Path]:
    return sorted(_name_index(root).get(name, []), key=lambda p: (len(p.parts), str(p)))


def find_base(root: Path, relpaths: Iterable[str], candidates: Iterable[str] = ()) -> Path | None:
    """The folder B below ``root`` (tried: ``root/<candidate>`` first, then every folder up to 3 levels down)
    for which most of ``relpaths`` exist as ``B/<relpath>``. None when no folder holds any."""
    rels = list(relpaths)[:50]
    if not rels:
        return None
    tried: list[Path] = [root / c for c in candidates] + [root]
    for depth in range(1, 4):
        tried += sorted(p for p in root.glob("/".join(["*"] * depth)) if p.is_dir() and not p.name.startswith("."))
    best, best_n = None, 0
    for b in tried:
        if not b.is_dir():
            continue
        n = sum((b / r).exists() for r in rels)
        if n > best_n:
            best, best_n = b, n
            if n == len(rels):
                break
    return best


def compare_with_published(path: Path, mine: dict[str, str], id_col: str, split_col: str) -> str | None:
    """A note when the splits computed from the user's metadata differ from the project's published split
    file (``tasks/splits``) for any id both know; None when they agree or the file is absent."""
    import csv

    if not path.exists():
        return None
    with open(path, encoding="utf-8", newline="") as f:
        published = {r[id_col]: r[split_col] for r in csv.DictReader(f, delimiter="\t")}
    diff = sorted(k for k in mine if k in published and published[k] != mine[k])
    if not diff:
        return None
    return (f"{len(diff)} items fall in another split than in the published {path.name} "
            f"(first: {', '.join(diff[:5])}); your metadata differs from the public release")


def read_text_lines(path: Path) -> list[str]:
    """Lines without line endings (LF or CRLF), empty lines dropped."""
    with open(path, encoding="utf-8", newline="") as f:
        return [ln.rstrip("\r\n") for ln in f if ln.strip()]


# --------------------------------------------------------------------------------------------------------
# listings and validation


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


# --------------------------------------------------------------------------------------------------------
# writing the prepared folder


def _fingerprint(listing: Listing, good: list[Entry], options: dict[str, Any]) -> str:
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
    fp = _fingerprint(listing, good, options)
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


# --------------------------------------------------------------------------------------------------------
# downloads


@dataclass(frozen=True)
class Asset:
    """A public file: where it comes from, its original name, and its checksum when one is published."""

    name: str               # original file name (what find_named looks for)
    url: str
    sha256: str | None = None
    md5: str | None = None
    dest: str = ""          # folder below the data dir ("" = data dir itself)
    extract: bool = False   # unpack (tar / zip) into the destination folder after verification
    what: str = ""          # one line for the user
    keep: bool = True       # False: delete the archive once unpacked (the unpack marker remembers it)


def _digest(path: Path, algo: str) -> str:
    h = hashlib.new(algo)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def verify(path: Path, asset: Asset) -> bool:
    """True when the file matches the asset's checksum (no checksum: present and non-empty).

    A marker ``.<name>.verified`` remembers a successful check (size and mtime) so that large files are not
    hashed again."""
    if not path.is_file() or path.stat().st_size == 0:
        return False
    marker = path.with_name(f".{path.name}.verified")
    st = path.stat()
    stamp = f"{st.st_size}:{st.st_mtime_ns}:{asset.sha256 or ''}:{asset.md5 or ''}"
    if marker.exists() and marker.read_text() == stamp:
        return True
    if asset.sha256 and _digest(path, "sha256") != asset.sha256.lower():
        return False
    if asset.md5 and _digest(path, "md5") != asset.md5.lower():
        return False
    marker.write_text(stamp)
    return True


def download_file(asset: Asset, data_dir: Path, log: Callable[[str], None] = print,
                  timeout: float = 60.0) -> Path:
    """Fetch ``asset`` into ``data_dir/<dest>/<name>``.

    * A file that is already there and verifies is not fetched again (it is also found anywhere below the
      data dir by its name, so a file placed by hand counts).
    * A partial ``<name>.part`` is resumed with an HTTP ``Range`` request; a server that ignores Range makes
      us start over. ``file://`` URLs work too (tests, mirrors).
    * A checksum mismatch after download deletes the file and raises.
    """
    data_dir = Path(data_dir)
    target = data_dir / asset.dest / asset.name
    existing = find_named(data_dir, asset.name, required=False) if data_dir.is_dir() else None
    for cand in [target] + ([existing] if existing else []):
        if cand.is_file() and verify(cand, asset):
            log(f"{asset.name}: present and verified ({cand})")
            return cand
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    for attempt in range(2):
        have = part.stat().st_size if part.exists() else 0
        req = urllib.request.Request(asset.url, headers={"User-Agent": "mert-bench"})
        if have and not asset.url.startswith("file:"):
            req.add_header("Range", f"bytes={have}-")
        try:
            resp = urllib.request.urlopen(req, timeout=timeout)
        except urllib.error.HTTPError as e:
            if e.code == 416 and have:  # range not satisfiable: the part is complete already
                resp = None
            else:
                raise DatasetMissing(f"{asset.name}: download from {asset.url} failed (HTTP {e.code}). "
                                     f"Fetch it by hand and put it anywhere below {data_dir}.") from None
        except (urllib.error.URLError, OSError) as e:
            raise DatasetMissing(f"{asset.name}: download from {asset.url} failed ({e}). "
                                 f"Fetch it by hand and put it anywhere below {data_dir}.") from None
        if resp is not None:
            with resp:
                status = getattr(resp, "status", None)
                resumed = have and status == 206
                if have and not resumed:
                    log(f"{asset.name}: server ignored the range request; starting over")
                    have = 0
                mode = "ab" if resumed else "wb"
                if resumed:
                    log(f"{asset.name}: resuming at byte {have}")
                else:
                    log(f"{asset.name}: downloading {asset.url}")
                with open(part, mode) as f:
                    shutil.copyfileobj(resp, f, length=1 << 20)
        os.replace(part, target)
        clear_cache()
        if verify(target, asset):
            log(f"{asset.name}: verified")
            return target
        target.unlink()
        if attempt == 0:
            log(f"{asset.name}: checksum mismatch, downloading again from scratch")
    raise DatasetMissing(f"{asset.name}: checksum mismatch after downloading {asset.url} twice; "
                         f"the source changed or is corrupt. Expected sha256={asset.sha256} md5={asset.md5}.")


def extract_archive(path: Path, dest: Path, log: Callable[[str], None] = print) -> None:
    """Unpack a tar(.gz) or zip into ``dest`` once (a marker file remembers it); refuses paths that would
    leave ``dest``."""
    import tarfile
    import zipfile

    marker = dest / f".{path.name}.extracted"
    if marker.exists():
        return
    dest.mkdir(parents=True, exist_ok=True)
    log(f"{path.name}: extracting into {dest}")
    root = dest.resolve()
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            for m in z.namelist():
                if not (root / m).resolve().is_relative_to(root):
                    raise MetadataError(f"{path}: member {m!r} would be written outside {dest}")
            z.extractall(dest)
    else:
        with tarfile.open(path) as t:
            t.extractall(dest, filter="data")
    marker.write_text("ok\n")
    _WALK_CACHE.clear()
