"""The user's data folder: where it is (``--data-dir`` or ``$MERT_BENCH_DATA/<dataset>``), finding metadata
files by their original file name anywhere below it (:func:`find_named`, an index of file names built once per
public call), and small helpers to read the metadata text files; the two errors every reader raises.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

ENV_VAR = "MERT_BENCH_DATA"


class DatasetMissing(FileNotFoundError):
    """The dataset (or a metadata file it needs) is not where we looked. The message says what to do."""


class MetadataError(ValueError):
    """A metadata file exists but cannot be parsed; the message names the file and the line."""


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


def name_index(root: Path) -> dict[str, list[Path]]:
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
    hits = name_index(root).get(name, [])
    if not hits:
        if required:
            raise DatasetMissing(f"{root}: metadata file {name!r} not found anywhere below this folder. {hint}".strip())
        return None
    return sorted(hits, key=lambda p: (len(p.parts), str(p)))[0]


def find_all_named(root: Path, name: str) -> list[Path]:
    return sorted(name_index(root).get(name, []), key=lambda p: (len(p.parts), str(p)))


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
