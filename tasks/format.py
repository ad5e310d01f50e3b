"""The prepared on-disk format shared by the embedded corpus and the real-data readers.

A prepared task lives in one folder::

    <dir>/meta.json         {"task": "key", "task_version": 1, "source": "embedded" | "real",
                             "source_version": "...", "sample_rate": 24000, "labels": [...], ...}
    <dir>/train.jsonl       one JSON record per item (see :class:`Item`)
    <dir>/valid.jsonl
    <dir>/test.jsonl
    <dir>/audio/...         audio files (embedded corpus); real readers point at the user's files instead

Every later stage (features, probes, metrics) reads only this format, so embedded and real data take the
same path. Folders are written to a temporary sibling and renamed when complete (:func:`atomic_dir`), so a
folder that has ``meta.json`` is whole.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator

META_FILE = "meta.json"
FORMAT_VERSION = 1


class FormatError(ValueError):
    """A prepared folder's file that cannot be read as the format says (bad JSON, a bad record, duplicate ids):
    names the file (and line) and what to do."""


@dataclass
class Item:
    """One example of a split.

    id:       unique within the task (``blues.00000``, ``f1_arpeggios_belt_c_a-chunk3``).
    audio:    path of the audio file, relative to the prepared folder or absolute.
    target:   the label, by task type:
              multiclass -> class name (str); key -> key name ("A minor");
              multilabel -> list of tag names; regression -> list of floats in ``meta.labels`` order;
              beat -> list of beat times in seconds (relative to ``start``);
              separation -> dict stem name -> audio path (same rules as ``audio``), ``audio`` being the mix.
    start, end: optional excerpt of the file in seconds (VocalSet chunks, dataset clips); None = whole file.
    group:    optional song / recording / artist id that items sharing material have in common
              (splits are disjoint by group; key clips are scored per song).
    extra:    anything else a reader wants to keep (tempo, singer, generator parameters, ...).
    """

    id: str
    audio: str
    target: Any
    start: float | None = None
    end: float | None = None
    group: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        d = asdict(self)
        if not d["extra"]:
            del d["extra"]
        for k in ("start", "end", "group"):
            if d[k] is None:
                del d[k]
        return json.dumps(d, sort_keys=True, ensure_ascii=False)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Item":
        known = {"id", "audio", "target", "start", "end", "group", "extra"}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"item {d.get('id')!r}: unknown fields {sorted(unknown)} (valid: {sorted(known)})")
        return cls(**d)


def resolve(root: str | os.PathLike, path: str) -> Path:
    """An item's path made absolute against the prepared folder."""
    p = Path(path)
    return p if p.is_absolute() else Path(root) / p


def write_split(root: str | os.PathLike, split: str, items: list[Item]) -> Path:
    """Write ``<root>/<split>.jsonl`` atomically."""
    ids = [it.id for it in items]
    if len(set(ids)) != len(ids):
        dup = sorted({i for i in ids if ids.count(i) > 1})[:5]
        raise ValueError(f"split {split!r}: duplicate item ids {dup}")
    path = Path(root) / f"{split}.jsonl"
    atomic_write_text(path, "".join(it.to_json() + "\n" for it in items))
    return path


def read_split(root: str | os.PathLike, split: str) -> list[Item]:
    path = Path(root) / f"{split}.jsonl"
    if not path.exists():
        raise FileNotFoundError(f"{path}: split file missing; prepare the task again")
    items = []
    first_line: dict[str, int] = {}
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                it = Item.from_dict(json.loads(line))
            except (json.JSONDecodeError, TypeError, ValueError) as e:
                raise FormatError(f"{path}:{n}: bad record: {e}; prepare the task again") from None
            if it.id in first_line:  # write_split refuses them; a hand-made file must not count an item twice
                raise FormatError(f"{path}:{n}: item id {it.id!r} already on line {first_line[it.id]}; ids must be "
                                  "unique within a split (a duplicate would be scored twice)")
            first_line[it.id] = n
            items.append(it)
    return items


def files_digest(root: str | os.PathLike, items: list[Item]) -> str:
    """sha256 over every file the items name (the audio, and the stems of a separation target): its path as
    listed, size and modification time (ns). Audio replaced in place, or another folder with the same listing,
    gives another digest; a folder moved or copied with its times (``mv``, ``rsync -a``, ``cp -p``) the same."""
    import hashlib

    h = hashlib.sha256()
    for it in items:
        for f in [it.audio, *(it.target.values() if isinstance(it.target, dict) else ())]:
            try:
                st = resolve(root, str(f)).stat()
                h.update(f"{f}\t{st.st_size}\t{st.st_mtime_ns}\n".encode())
            except OSError:
                h.update(f"{f}\tmissing\n".encode())
    return h.hexdigest()


def folder_digest(root: str | os.PathLike, splits) -> str:
    """sha256 of what a prepared folder holds for ``splits``: every item record (ids, targets, excerpts) and
    :func:`files_digest` of its files."""
    import hashlib

    h = hashlib.sha256()
    for split in splits:
        items = read_split(root, split)
        h.update(f"[{split}]\n".encode())
        for it in items:
            h.update(it.to_json().encode() + b"\n")
        h.update(files_digest(root, items).encode())
    return h.hexdigest()


def write_meta(root: str | os.PathLike, meta: dict[str, Any]) -> None:
    for k in ("task", "task_version", "source", "sample_rate", "labels"):
        if k not in meta:
            raise ValueError(f"meta.json for {root}: missing key {k!r}")
    meta = {"format_version": FORMAT_VERSION, **meta}
    atomic_write_text(Path(root) / META_FILE, json.dumps(meta, indent=1, sort_keys=True) + "\n")


def read_meta(root: str | os.PathLike) -> dict[str, Any]:
    path = Path(root) / META_FILE
    if not path.exists():
        raise FileNotFoundError(f"{path}: not a prepared task folder (no {META_FILE}); run `python -m benchmark prepare`")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise FormatError(f"{path}: not valid JSON ({e}); prepare the task again, or fix the file") from None
    if not isinstance(meta, dict):
        raise FormatError(f"{path}: holds a {type(meta).__name__}, not a JSON object of task metadata")
    return meta


def is_complete(root: str | os.PathLike) -> bool:
    """A prepared folder is complete when its meta.json exists (it is written last, inside atomic_dir)."""
    return (Path(root) / META_FILE).exists()


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write to a temporary file in the same folder, fsync, then rename over ``path``, with the permissions
    ``open()`` would give (mert.fsutil, the project's one atomic writer)."""
    from mert.fsutil import atomic_write

    atomic_write(path, "wb", lambda f: f.write(data))


@contextlib.contextmanager
def atomic_dir(final: str | os.PathLike) -> Iterator[Path]:
    """Build a folder under a temporary name next to ``final`` and rename it into place on success.

    A killed build leaves only ``.<name>.tmp-*`` siblings, never a half folder under the final name; stale
    temporaries are removed by the next build of the same folder.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    for stale in final.parent.glob(f".{final.name}.tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
    from mert.fsutil import current_umask

    os.chmod(tmp, 0o777 & ~current_umask())  # mkdtemp creates 0700; mkdir would give the umask's mode
    try:
        yield tmp
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
