"""Building prepared folders: job planning, parallel rendering, atomic folders, resume, progress."""
from __future__ import annotations

import importlib
import json
import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any, Callable

from tasks import format as F
from tasks.base import UnknownNameError, all_tasks, get_task, unknown_name_message
from tasks.embedded import songs
from tasks.embedded.common import BASE_SEED, SPLITS, SR, Job

log = logging.getLogger(__name__)

SIZES = ("tiny", "standard")

# the shared corpora: MTG audio (the four MTG tasks are tag-set views of it) and the pretraining collection
MTG = songs.MTGCorpus()
PRETRAINING = songs.PretrainingCorpus()


# ---------------------------------------------------------------------------------------------- generators
# Which task has which generator is said by its TaskSpec (``generator``); everything below is derived.
_MADE: dict[tuple[str, str], Any] = {}  # (task, spec.generator) -> generator, made once


def _factory(path: str) -> Callable[[str], Any]:
    """``songs:KeyTask`` (a module below tasks.embedded) or ``pkg.module:Factory`` -> the factory."""
    module, _, attr = path.partition(":")
    mod = importlib.import_module(module if "." in module else f"tasks.embedded.{module}")
    try:
        return getattr(mod, attr)
    except AttributeError:
        raise AttributeError(f"generator {path!r}: module {mod.__name__} has no {attr!r}") from None


def generator(task_name: str) -> Any:
    """The embedded generator of a task, made from its spec's ``generator`` on first use (then the same
    object every time)."""
    spec = get_task(task_name)
    if not spec.generator:
        raise UnknownNameError(f"task {task_name!r} has no embedded generator (its TaskSpec names none)")
    key = (spec.name, spec.generator)
    gen = _MADE.get(key)
    if gen is None:
        gen = _MADE[key] = _factory(spec.generator)(spec.name)
    return gen


def task_names() -> tuple[str, ...]:
    """Every task with embedded data, in the MARBLE table order."""
    return tuple(s.name for s in all_tasks() if s.generator)


def is_view(gen: Any) -> bool:
    """True for a generator that renders nothing itself (a tag-set view of the shared MTG corpus)."""
    return isinstance(gen, songs.MTGView)


def generators() -> dict[str, Any]:
    """task -> generator for every task that renders its own audio (not the MTG views), in table order."""
    return {n: g for n in task_names() if not is_view(g := generator(n))}


def generator_versions() -> dict[str, int]:
    """Generator version per task (an MTG task has the shared MTG corpus's), plus ``pretraining``.

    Keys: the tasks that render their own audio, then the MTG views, then ``pretraining`` (the order the
    calibration report has always written)."""
    own = generators()
    views = {n: generator(n).version for n in task_names() if n not in own}
    return {**{n: g.version for n, g in own.items()}, **views, "pretraining": PRETRAINING.version}


def __getattr__(name: str) -> Any:
    # the constants of before the specs named their generators, derived now (tests, scripts)
    if name == "GENERATORS":
        return generators()
    if name == "TASK_NAMES":
        return task_names()
    if name == "GENERATOR_VERSIONS":
        return generator_versions()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def data_root(home: str | os.PathLike | None = None) -> Path:
    """``home`` or ``$MERT_BENCH_HOME`` or ``~/.cache/mert-bench``."""
    if home is not None:
        return Path(home).expanduser()
    env = os.environ.get("MERT_BENCH_HOME")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "mert-bench"


def _check(task_name: str, size: str) -> None:
    names = task_names()
    if task_name not in names:
        raise UnknownNameError(unknown_name_message("task", task_name, list(names)))
    if size not in SIZES:
        raise ValueError(f"size {size!r} is not one of {SIZES}")


def folder_name(task_name: str, size: str) -> str:
    """``<task>-v<task version>-g<generator version>-<size>``: a generator or task change gets a new folder."""
    return f"{task_name}-v{get_task(task_name).version}-g{generator(task_name).version}-{size}"


def task_dir(task_name: str, size: str = "standard", home=None) -> Path:
    _check(task_name, size)
    return data_root(home) / "embedded" / folder_name(task_name, size)


def _workers(n_jobs: int, size: str) -> int:
    """Worker processes: 1 for tiny builds (spawning costs more than it saves), else 2 (or $MERT_BENCH_WORKERS)."""
    env = os.environ.get("MERT_BENCH_WORKERS")
    if env:
        return max(1, int(env))
    return 1 if size == "tiny" or n_jobs < 8 else min(2, os.cpu_count() or 1)


# ---------------------------------------------------------------------------------------------- jobs
def _job_generator(key: str) -> Any:
    """The generator of a job key: a task name, or one of the shared corpora ``mtg`` and ``pretraining``."""
    return {"mtg": MTG, "pretraining": PRETRAINING}.get(key) or generator(key)


def _do_job(args: tuple[str, Job, str]) -> list[dict]:
    """Run one job in a worker: generate, write its audio under ``out_dir``, return its items."""
    from tasks.embedded.render import write_flac

    key, job, out_dir = args
    outs = _job_generator(key).make(job)
    items = []
    for out in outs:
        for rel, pcm in out.audio.items():
            write_flac(Path(out_dir) / rel, pcm)
        for it in out.items:
            items.append({**it, "_split": job.split})
    return items


def _init_worker() -> None:
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:  # pragma: no cover
        pass


def run_jobs(key: str, jobs: list[Job], out_dir: Path, progress: bool, desc: str, size: str = "standard") -> list[dict]:
    """Run jobs (in a 2-process pool for big builds); results come back in job order."""
    from tqdm import tqdm

    args = [(key, j, str(out_dir)) for j in jobs]
    n = _workers(len(jobs), size)
    bar = tqdm(total=len(jobs), desc=desc, unit="item", disable=not progress, leave=False)
    results: list[dict] = []
    try:
        if n <= 1:
            import torch

            threads = torch.get_num_threads()
            torch.set_num_threads(1)  # small convolutions: one thread is fastest, and leaves a core free
            try:
                for a in args:
                    results.extend(_do_job(a))
                    bar.update(1)
            finally:
                torch.set_num_threads(threads)
        else:
            import multiprocessing as mp

            ctx = mp.get_context("spawn")
            with ctx.Pool(n, initializer=_init_worker) as pool:
                for items in pool.imap(_do_job, args, chunksize=4):
                    results.extend(items)
                    bar.update(1)
    finally:
        bar.close()
    return results


def _write_splits(root: Path, items: list[dict]) -> dict[str, int]:
    counts = {}
    for split in SPLITS:
        recs = [F.Item(**{k: v for k, v in it.items() if not k.startswith("_")}) for it in items if it["_split"] == split]
        F.write_split(root, split, recs)
        counts[split] = len(recs)
    return counts


def _meta(task_name: str, size: str, gen_version: int, labels: list, counts: dict, extra: dict | None = None) -> dict:
    from tasks.embedded.render import soundfont_id

    spec = get_task(task_name)
    return {
        "task": task_name,
        "task_version": spec.version,
        "source": "embedded",
        "source_version": f"g{gen_version}-{size}",
        "generator_version": gen_version,
        "size": size,
        "sample_rate": SR,
        "labels": list(labels),
        "seed": BASE_SEED,
        "counts": counts,
        "soundfont": "TimGM6mb.sf2 (pretty_midi) sha1:" + soundfont_id(),
        **(extra or {}),
    }


def _lock(path: Path):
    from filelock import FileLock

    path.parent.mkdir(parents=True, exist_ok=True)
    return FileLock(str(path.parent / f".{path.name}.lock"))


def _build_once(final: Path, build: Callable[[], None], key: str | None = None, size: str | None = None) -> Path:
    """Return ``final``, running ``build()`` first when it is not complete.

    The check is repeated under a file lock, so two processes preparing the same folder build it once. With
    ``key`` (the job key: a task, ``mtg`` or ``pretraining``), a folder that was already there is spot-checked
    against what the current generator renders (:func:`verify_render`).
    """
    if not F.is_complete(final):
        with _lock(final):
            if not F.is_complete(final):
                build()
                _VERIFIED.add(str(final))
    if key is not None:
        verify_render(key, size, final)
    return final


# ---------------------------------------------------------------------------------------------- render identity
# A folder is named by the generator's version, which a developer bumps when a generator changes. One who forgets
# would silently reuse a render the committed generator no longer makes (it happened to beat v2: results computed
# on a development render; docs/embedded.md). So a folder records the sha256 of its audio (``content_digest``,
# part of the feature cache key), and a folder found on disk is spot-checked: a few of its jobs are rendered again
# (each under a second) and must give the same bytes, else it is refused with what to do.
SPOT_CHECK_JOBS = 3
_VERIFIED: set[str] = set()  # folders checked (or built) by this process


class StaleRenderError(F.FormatError):
    """A prepared embedded folder holds audio that the current generator does not render."""


def _sha256_file(path: Path) -> str:
    import hashlib

    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _audio_files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in Path(root).rglob("*.flac"))


def content_digest(root: Path) -> str:
    """sha256 over a folder's audio: every FLAC file's relative path and the sha256 of its bytes, in path order."""
    import hashlib

    h = hashlib.sha256()
    for rel in _audio_files(root):
        h.update(f"{rel}\t{_sha256_file(Path(root) / rel)}\n".encode())
    return h.hexdigest()


def spot_jobs(jobs: list[Job], n: int = SPOT_CHECK_JOBS) -> list[Job]:
    """``n`` jobs spread evenly over the plan (first, ..., last): the ones a spot check renders again."""
    if len(jobs) <= n:
        return list(jobs)
    return [jobs[round(i * (len(jobs) - 1) / (n - 1))] for i in range(n)] if n > 1 else [jobs[0]]


def verify_render(key: str, size: str | None, final: Path) -> None:
    """Render :func:`spot_jobs` of ``key``'s plan again and compare their audio with ``final``'s, byte for
    byte; a :class:`StaleRenderError` naming the folder and the first differing file if any differs. Once per
    folder and process. A folder made before folders recorded ``content_digest`` gets it added to meta.json."""
    import tempfile

    final = Path(final)
    if str(final) in _VERIFIED:
        return
    gen = _job_generator(key)
    with tempfile.TemporaryDirectory(prefix="spot-") as tmp:
        import torch

        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # as the build's workers render (one thread each)
        try:
            for job in spot_jobs(gen.plan(size)):
                _do_job((key, job, tmp))
        finally:
            torch.set_num_threads(threads)
        for rel in _audio_files(Path(tmp)):
            have = final / rel
            if not have.exists() or _sha256_file(have) != _sha256_file(Path(tmp) / rel):
                what = "is missing" if not have.exists() else "differs from what the current generator renders"
                raise StaleRenderError(
                    f"{final}: {rel} {what} (generator {key!r} version {gen.version}): the folder was rendered by "
                    f"another revision of the generator (or of a library it renders with), and results on it "
                    f"would not be this code's. Remove the folder (rm -r '{final}') and run again to render it "
                    f"anew; if the generator was changed on purpose, bump its version too, so that results of "
                    f"the two renders are never mixed")
    _ensure_digest(final)
    _VERIFIED.add(str(final))


def _ensure_digest(final: Path) -> None:
    """Add ``content_digest`` to the meta.json of a folder made before folders recorded it."""
    meta_path = Path(final) / F.META_FILE
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    if "content_digest" not in meta:
        with _lock(final):
            meta["content_digest"] = content_digest(final)
            F.atomic_write_text(meta_path, json.dumps(meta, indent=1, sort_keys=True) + "\n")
        log.info("%s: content digest %s added to %s", final.name, meta["content_digest"][:12], F.META_FILE)


# ---------------------------------------------------------------------------------------------- API
def prepare(task_name: str, size: str = "standard", home: str | os.PathLike | None = None,
            progress: bool = True) -> Path:
    """Return the complete prepared folder of ``task_name``, building it first when missing.

    Builds are atomic (a temporary sibling renamed when complete, ``meta.json`` written last) and a finished
    task is never rebuilt, so an interrupted ``prepare`` of several tasks resumes where it stopped.
    """
    _check(task_name, size)
    final = task_dir(task_name, size, home)
    gen = generator(task_name)
    # an MTG view links to the shared MTG corpus's audio: that folder is the one built and spot-checked
    src = _build_mtg_audio(size, home, progress) if is_view(gen) else None

    def build() -> None:
        t0 = time.time()
        if src is not None:
            _build_mtg(task_name, gen, size, src, final)
        else:
            jobs = gen.plan(size)
            with F.atomic_dir(final) as tmp:
                items = run_jobs(task_name, jobs, tmp, progress, f"{task_name} ({size})", size)
                labels = gen.labels(items)
                if getattr(gen, "prune_targets", False):
                    keep = set(labels)
                    for it in items:
                        it["target"] = [t for t in it["target"] if t in keep]
                counts = _write_splits(tmp, items)
                extra = {"durations_s": _durations(gen, size),
                         "content_digest": content_digest(tmp)}
                F.write_meta(tmp, _meta(task_name, size, gen.version, labels, counts, extra))
        log.info("prepared %s (%s) in %.1f s -> %s", task_name, size, time.time() - t0, final)

    if src is not None:
        _build_once(final, build)
        _ensure_digest(final)
        return final
    return _build_once(final, build, task_name, size)


def _durations(gen: Any, size: str) -> Any:
    """The items' length in seconds for meta.json: the size's ``duration``, else the generator's fixed one."""
    cfg = getattr(gen, "sizes", {}).get(size, {})
    if "duration" in cfg:
        return cfg["duration"]
    return getattr(gen, "item_duration_s", None)


def _mtg_audio_dir(size: str, home) -> Path:
    return data_root(home) / "embedded" / f"_mtg-audio-g{MTG.version}-{size}"


def _build_mtg_audio(size: str, home, progress: bool) -> Path:
    def build() -> None:
        with F.atomic_dir(final) as tmp:
            items = run_jobs("mtg", MTG.plan(size), tmp, progress, f"mtg audio ({size})", size)
            _write_splits(tmp, items)
            F.atomic_write_text(Path(tmp) / F.META_FILE, json.dumps(
                {"task": "mtg-audio", "generator_version": MTG.version, "size": size, "seed": BASE_SEED,
                 "content_digest": content_digest(tmp)}) + "\n")

    final = _mtg_audio_dir(size, home)
    return _build_once(final, build, "mtg", size)


def _link(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _build_mtg(task_name: str, view: songs.MTGView, size: str, src: Path, final: Path) -> None:
    """A tag-set view of the shared MTG corpus in ``src``: audio hard-linked (copied where links fail)."""
    subset, order = view.subset, view.order
    items = []
    for split in SPLITS:
        for it in F.read_split(src, split):
            tags = songs.mtg_subset_target(it.target, subset)
            items.append({"id": it.id, "audio": it.audio, "target": tags, "group": it.group, "extra": it.extra,
                          "_split": split})
    labels = songs._filter_tags(items, order)
    keep = set(labels)
    kept = []
    for it in items:
        it["target"] = [t for t in it["target"] if t in keep]
        if it["target"]:  # as in the real split files: a track appears when it has a tag of the set
            kept.append(it)
    with F.atomic_dir(final) as tmp:
        for it in kept:
            _link(src / it["audio"], Path(tmp) / it["audio"])
        counts = _write_splits(tmp, kept)
        F.write_meta(tmp, _meta(task_name, size, MTG.version, labels, counts,
                                {"subset": subset, "durations_s": MTG.sizes[size]["duration"],
                                 "content_digest": content_digest(tmp)}))


def prepare_all(size: str = "standard", home=None, progress: bool = True) -> dict[str, Path]:
    """Every task (finished ones are skipped)."""
    return {t: prepare(t, size, home, progress) for t in task_names()}


def prepare_pretraining(size: str = "standard", home: str | os.PathLike | None = None, progress: bool = True) -> Path:
    """The unlabelled pretraining collection: a folder of 24 kHz mono FLAC files (``*.flac``) + meta.json."""
    if size not in SIZES:
        raise ValueError(f"size {size!r} is not one of {SIZES}")
    final = data_root(home) / "embedded" / f"pretraining-g{PRETRAINING.version}-{size}"

    def build() -> None:
        with F.atomic_dir(final) as tmp:
            items = run_jobs("pretraining", PRETRAINING.plan(size), tmp, progress, f"pretraining ({size})", size)
            dur = PRETRAINING.sizes[size]["duration"]
            meta = {"source": "embedded", "kind": "pretraining", "generator_version": PRETRAINING.version,
                    "size": size, "sample_rate": SR, "seed": BASE_SEED, "files": len(items),
                    "file_duration_s": dur, "total_hours": round(len(items) * dur / 3600, 3),
                    "styles": sorted({it["extra"]["style"] for it in items}),
                    "content_digest": content_digest(tmp)}
            F.atomic_write_text(Path(tmp) / F.META_FILE, json.dumps(meta, indent=1, sort_keys=True) + "\n")

    return _build_once(final, build, "pretraining", size)
