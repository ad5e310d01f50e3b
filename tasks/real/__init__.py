"""Readers for the 8 real MARBLE datasets behind the 14 tasks (contract 4 of HELPERS.md / design).

    prepare(task_name, data_dir, out, options=None) -> Path      a tasks.format folder pointing at the user's files
    validate(task_name, data_dir, options=None, level="header") -> ValidationReport
    download(task_name, data_dir) -> list[Path]                  public files, checksummed, resumable
    instructions(task_name) -> str                               manual steps and the layout expected
    reference_rows() -> list[dict]                               published MARBLE v1 scores (results/reference)

``data_dir`` None means ``$MERT_BENCH_DATA/<dataset>`` (dataset folder names: :func:`dataset_dirs`). Which
reader serves a task is said by its spec (``TaskSpec.reader``, a module of this package).
Options per task (``options`` dict):
  tagging: ``split`` = ``folder`` (default, MARBLE: all 25,863 clips) | ``won`` (Won et al. 2020: clips with a
  top-50 tag, 15,250 / 1,529 / 4,332).
  key: ``tail`` = ``drop`` (default, MARBLE: songs end at their last full 30 s clip) | ``window`` (the whole
  preview, a tail of 15 s or more as a last window ending at the song's end).
  emotion: ``excerpt`` = ``first-30s`` (default, MARBLE: the first 30 s of each 45 s clip, 6 windows of 5 s) |
  ``whole`` (the whole clip, 9 windows).
  docs/protocol.md lists these beside every other place where MARBLE v1 and our protocol differ.
"""
from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any

from tasks.base import UnknownNameError
from tasks.real.download import download_file, extract_archive
from tasks.real.folders import DatasetMissing, MetadataError, clear_cache, resolve_data_dir
from tasks.real.prepared import write_prepared
from tasks.real.validation import ValidationReport, check_listing

__all__ = [
    "prepare", "validate", "download", "instructions", "reference_rows", "resolve_options", "reader",
    "reader_names", "dataset_of", "dataset_dirs", "ValidationReport", "DatasetMissing", "MetadataError",
    "DATASET_DIRS",
]


# Which reader serves which task is said by the task's spec (``TaskSpec.reader``); the rest is derived.
def reader_names() -> dict[str, str]:
    """task -> the module name of its real-data reader, for every task that has one, in table order."""
    from tasks.base import all_tasks

    return {s.name: s.reader for s in all_tasks() if s.reader}


def reader(task: str):
    """The reader module of a task (``genre`` -> :mod:`tasks.real.gtzan`)."""
    names = reader_names()
    if task not in names:
        from tasks.base import unknown_name_message

        raise UnknownNameError(unknown_name_message("task", task, list(names)))
    name = names[task]
    return importlib.import_module(name if "." in name else f"tasks.real.{name}")


def dataset_of(task: str) -> str:
    """The dataset folder name below ``$MERT_BENCH_DATA`` for a task (``genre`` -> ``GTZAN``)."""
    return reader(task).DATASET


def dataset_dirs() -> dict[str, tuple[str, ...]]:
    """Dataset folder name -> the tasks it serves, in table order (``GTZAN`` -> ``("genre", "beat")``)."""
    dirs: dict[str, tuple[str, ...]] = {}
    for task in reader_names():
        d = dataset_of(task)
        dirs[d] = dirs.get(d, ()) + (task,)
    return dirs


def __getattr__(name: str) -> Any:
    # derived on every access from the specs (the constant of before; tests and docs name it)
    if name == "DATASET_DIRS":
        return dataset_dirs()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _root(task: str, data_dir: str | os.PathLike | None) -> Path:
    mod = reader(task)
    return resolve_data_dir(mod.DATASET, data_dir, mod.instructions(task))


def instructions(task_name: str) -> str:
    """How to get the data for a task by hand, and the layout the reader expects."""
    return reader(task_name).instructions(task_name)


def resolve_options(task: str, options: dict[str, Any] | None) -> dict[str, Any]:
    """The real-data options of a task: every option the reader knows at its default (the first allowed
    value), overridden by ``options``. An unknown option is a KeyError, a value it does not allow a ValueError
    (both name the valid ones)."""
    mod = reader(task)
    allowed = getattr(mod, "OPTIONS", {}).get(task, {})
    opts = {k: v[0] for k, v in allowed.items()}
    for k, v in (options or {}).items():
        if k not in allowed:
            raise UnknownNameError(f"task {task!r}: unknown real-data option {k!r}; valid: {sorted(allowed) or 'none'}")
        if v not in allowed[k]:
            raise ValueError(f"task {task!r}: option {k}={v!r} is not one of {list(allowed[k])}")
        opts[k] = v
    return opts




def validate(task_name: str, data_dir: str | os.PathLike | None = None, options: dict[str, Any] | None = None,
             level: str = "header", progress: bool = False) -> ValidationReport:
    """Check a user's copy: per-split counts against the protocol's, every missing / unreadable / wrong-length
    file by name, and whether the task can run. Never raises for missing data: the report says it.

    ``level``: ``exists`` (stat), ``header`` (default: soundfile header and length), ``decode`` (full decode).
    """
    mod = reader(task_name)
    clear_cache()
    try:
        root = _root(task_name, data_dir)
        listing = mod.listing(task_name, root, resolve_options(task_name, options))
    except (DatasetMissing, MetadataError) as e:
        shown = data_dir or (Path(os.environ["MERT_BENCH_DATA"]) / mod.DATASET if os.environ.get("MERT_BENCH_DATA")
                             else "(no --data-dir, $MERT_BENCH_DATA unset)")
        return ValidationReport(dataset=mod.DATASET, task=task_name, data_dir=str(shown), errors=[str(e)])
    rep, _ = check_listing(listing, level=level, progress=progress)
    return rep


def prepare(task_name: str, data_dir: str | os.PathLike | None, out: str | os.PathLike,
            options: dict[str, Any] | None = None, level: str = "header", progress: bool = True) -> Path:
    """Write (or reuse) the prepared folder ``out`` for a task from the user's real data.

    Items point at the user's audio files (absolute paths) with ``start``/``end`` for chunks. Files that are
    missing or do not decode are skipped and listed in ``meta.json['skipped']``; more than 5 % lost in a split
    (or an empty split) is an error carrying the validation report. The folder is written atomically and
    reused when the data and options did not change.
    """
    from tasks.base import get_task

    mod = reader(task_name)
    clear_cache()
    root = _root(task_name, data_dir)
    opts = resolve_options(task_name, options)
    listing = mod.listing(task_name, root, opts)
    path, _ = write_prepared(listing, Path(out), get_task(task_name).version, opts, level=level,
                             progress=progress)
    return path


def download(task_name: str, data_dir: str | os.PathLike | None = None, log=print) -> list[Path]:
    """Fetch what the task's public sources allow (metadata, and audio where it is public) into the data
    folder, verifying checksums, resuming partial files and skipping verified ones. A file that cannot be
    fetched is logged and the others go on; what is still missing afterwards (steps that need a login) is
    printed (see :func:`instructions`). Creates the data folder when it does not exist."""
    mod = reader(task_name)
    if data_dir is None:
        base = os.environ.get("MERT_BENCH_DATA")
        if not base:
            raise DatasetMissing(f"{mod.DATASET}: pass --data-dir DIR or set $MERT_BENCH_DATA")
        root = Path(base).expanduser() / mod.DATASET
    else:
        root = Path(data_dir).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    clear_cache()
    got: list[Path] = []
    failed: list[str] = []
    # some assets only become known once earlier ones are there (audio lists inside annotation archives)
    done: set[str] = set()
    for _round in range(3):
        todo = [a for a in mod.assets(task_name, root) if a.name not in done]
        if not todo:
            break
        for a in todo:
            done.add(a.name)
            dest = root / a.dest
            if a.extract and (dest / f".{a.name}.extracted").exists():
                continue  # unpacked earlier (the archive may have been deleted after unpacking)
            try:
                p = download_file(a, root, log=log)
            except DatasetMissing as e:  # one dead link must not stop the other files
                failed.append(str(e))
                log(str(e))
                continue
            if a.extract:
                extract_archive(p, p.parent, log=log)
                if not a.keep:
                    p.unlink()
                    p.with_name(f".{p.name}.verified").unlink(missing_ok=True)
                    continue
            got.append(p)
    post = getattr(mod, "after_download", None)
    if post is not None:
        post(task_name, root, log)
    if failed:
        log(f"{len(failed)} file(s) could not be fetched (first: {failed[0]}); run the command again to retry, "
            f"or fetch them by hand and put them anywhere below {root}")
    # say what is still missing (GTZAN audio behind a Kaggle login, MUSDB18 behind an access request, ...)
    clear_cache()
    try:
        mod.listing(task_name, root, resolve_options(task_name, None))
    except (DatasetMissing, MetadataError) as e:
        log(f"still needed for task {task_name!r}: {e}")
    return got


def reference_rows() -> list[dict[str, Any]]:
    """Published MARBLE v1 scores (results/reference/marble_v1.csv) as dicts, for leaderboards that show them
    beside ours, marked ``published=True``. See :mod:`tasks.real.reference`."""
    from tasks.real.reference import reference_rows as rows

    return rows()
