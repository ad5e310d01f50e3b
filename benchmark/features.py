"""Feature extraction into a content-addressed, resumable cache.

Every audio file of a split is decoded once; the representation runs once per (task, split) for all layers
in padded batches (with lengths, so padding never changes a feature); windows are pooled, frame-level
tasks keep their frames. Results are float16 arrays ``[rows, layers, dim]`` (float32 for a shard where a value
would overflow float16) in shards of ``features.shard_items`` items, each written atomically, so a killed
extraction keeps every finished shard and the next run resumes after them.

Memory (benchmark/rows.py): extraction streams, each model batch's rows cast and appended to the shard's rows
file as they come, so it holds one batch's float32 frames (``features.batch_seconds`` of audio) and the shard's
decoded audio, never a shard's frames; probes read the rows through memory-mapped files (``SplitFeatures.x`` is
a :class:`benchmark.rows.ShardedRows`), batch by batch and only the probed layers. Peak memory does not grow with
the number of items (results/perf/memory_real_scale.md). ``python -m benchmark extract --dry-run`` says what a
cache will take on disk. A split whose shards all exist (and verify, see below) does no model work
at all. Under torchrun the missing shards are shared by the ranks (benchmark/distributed.py); a shard's content
depends only on its items, so the cache is the same byte for byte.

Rows by window policy (TaskSpec.window):

- ``clip``: one row per item, the pooled frames of the whole item (audio longer than
  ``features.max_chunk_s`` goes through the model in chunks of at most that length, frames concatenated);
- ``window``: one row per window of ``window_s`` (hop ``window_hop_s``, default the window length; a tail of
  at least half a window gets a last window ending at the item's end, or with ``features.window_tail=keep``
  (MARBLE's rule) a tail of at least 1 s is a shorter last window; an item shorter than one window is one
  window);
- ``frames``: one row per model frame, with its time in seconds from the item start.

Pooling: ``mean`` over frames, or ``mean_std`` (mean and standard deviation concatenated, 2 x dim) when the
representation asks for it (the handcrafted baselines).

Precision (``features.precision``, see benchmark/precision.py): ``auto`` runs the representation under
``torch.autocast(bfloat16)`` on a CUDA device that supports bf16 and in float32 elsewhere; ``fp32`` / ``bf16``
force one. Outputs are cast to float32 before pooling and stored as float16 as always. Handcrafted baselines
are never autocast (their logs of small magnitudes gain nothing from bf16 and lose precision).

Cache key (sha256 of a JSON recipe): representation name + identity (weights hash), pooling, task name +
version, data source + source version, split, the digest of the split's item records (ids, audio paths,
excerpts; so ``--limit`` subsets get their own entry), window policy and lengths, chunk length, sample rate,
the skip rules, the cache format version, and ``"precision": "bf16"`` for bf16 features (only then: float32
recipes, and so every cache written before the key existed, are unchanged). The audio itself is in the key too:
for a prepared or real folder its files' paths, sizes and modification times (``files``), for the embedded
corpus the sha256 of its audio (``content``, from its meta.json). Location: ``--cache-dir`` or
``$MERT_BENCH_HOME/features`` (default ``~/.cache/mert-bench/features``).

What a shard records: its rows in ``shard-SSSSS.x.npy`` ([file rows, layers, dim], in the order the model
batches produced them; written first) and its index ``shard-SSSSS.npz`` (numpy's uncompressed zip, written last:
a shard exists when its index does): ``order`` (the file row of each row in item order), ``owner`` (the item's
index in the split, per row in item order), ``times`` (frame-level tasks; empty otherwise), ``skipped`` (JSON:
the skipped items with their reasons) and ``record`` (JSON: what the shard holds): the recipe key of its folder,
its shard index, its item range ``[lo, hi)`` and the ids of those items in order, the rows file's shape, dtype
and CRC-32, and the shard format (:data:`SHARD_FORMAT`). Neither is part of the cache key.

How shards are verified (:func:`read_shard`): a shard is trusted only after its index was read whole (every
member of the zip read to its end, which checks its CRC-32, and parsed), its rows file matched the record (size,
header, CRC-32 of the data, read in chunks) and its record matches the place it is read
from: the folder's recipe key, the shard index, the range that ``features.shard_items`` gives that index, the
ids of the split's items there; its rows must belong to those items (each item has rows, in order, or one skip
reason). The index is the read that builds the features anyway (:func:`load_split`); the rows file is read once,
in chunks, for its CRC-32, and mapped (the probe reads it again batch by batch); only a shard that is extracted
again is checked more than once (again under its lock, then once written).

What happens on damage: a shard that cannot be read (empty, truncated, bytes overwritten, not a zip) or that
holds something else (copied from another split, task, representation or shard index) is named in a warning
through the extraction's ``log`` and treated as missing: extracted again (atomically, under its lock) and read
again, so the run ends with the features, and the scores, of the undamaged cache. With ``cached_only`` (the
``probe`` command, which never runs the model) it is an :class:`ExtractionError` naming each unusable shard and
why, and asking for ``python -m benchmark extract`` (or ``run``). A shard whose record matches but whose range is
another one was written with another ``features.shard_items`` (not part of the key): that is an error, as before
records existed, not a repair, since re-extracting would rewrite the whole folder in another layout.

Shards written before records existed (no ``record``): they are not trusted. Nothing in such a shard tells it
from a shard copied from another split with as many items (it holds item indices and skip reasons, no recipe
and no ids), which is exactly the silent wrong score records prevent. So they are extracted again, once, with
one warning per folder, and are verified shards from then on (under ``cached_only``: the error asks for
``extract``). The cache key is unchanged: the folder and its recipe.json stay, only the shard files are
rewritten, one model pass, against wrong scores that nothing would reveal.

Per-shard lock: a shard is computed under a file lock of its own (``.shard-SSSSS.npz.lock`` next to it;
filelock, i.e. ``flock``, which the OS releases when the process dies, kill -9 included): take the lock, check
the shard again (another process may have written it meanwhile: then nothing is computed), compute, write
atomically, remove the lock file, release. Two runs sharing a cache compute each shard once: the second waits
for the shard the first is computing, then reads it (``SplitFeatures.model_calls`` counts only this process's
calls). A process holds at most one lock, only while computing that shard and never across a torchrun
collective, and ranks compute disjoint shards, so ranks cannot deadlock. The lock file is removed while held
(a waiter that then gets the lock on the removed file finds the shard written), so a finished cache holds the
same files as before locks existed; a lock file left by a killed process is harmless (the lock itself died
with the process). A file system without ``flock``: computing goes on unlocked (one warning), where two runs may
then compute a shard twice, with the same, atomically written, result.
"""
from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from benchmark.paths import cache_root, slug
from benchmark.precision import autocast, resolve_precision

CACHE_FORMAT = 1
# what a shard holds (not part of the cache key): 3 keeps the rows in their own memory-mappable .npy beside the
# index (.npz); 2 added the index's "record"; 1 had none
SHARD_FORMAT = 3


class ExtractionError(RuntimeError):
    pass


class _BadShard(Exception):
    """A shard that cannot be used as it is. ``kind``: missing, damaged, foreign or legacy (no record)."""

    def __init__(self, path, kind: str, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path, self.kind, self.reason = Path(path), kind, reason


@dataclass
class SplitFeatures:
    """Cached features of one split. ``owner[r]`` is the index into ``items`` of row ``r``."""

    split: str
    x: Any                             # [R, L, D] float16 (float32 where float16 would overflow), read lazily:
    #                                    benchmark.rows.ShardedRows over the shards' memory-mapped files
    owner: np.ndarray                  # [R] int64
    times: np.ndarray | None           # [R] float32 seconds (frame-level tasks)
    items: list                        # tasks.format.Item, all items of the split (after --limit)
    skipped: list[dict[str, Any]] = field(default_factory=list)
    model_calls: int = 0
    seconds: float = 0.0
    cache_dir: str = ""

    @property
    def kept(self) -> np.ndarray:
        k = np.zeros(len(self.items), dtype=bool)
        k[np.unique(self.owner)] = True
        return k


def select_items(items: list, limit: int | None) -> list:
    """``--limit N``: N items spread evenly over the split (not the first N, which may share a class)."""
    if not limit or limit >= len(items):
        return items
    idx = np.unique(np.linspace(0, len(items) - 1, int(limit)).round().astype(int))
    return [items[i] for i in idx]


def items_digest(items: list) -> str:
    h = hashlib.sha256()
    for it in items:
        h.update(json.dumps([it.id, it.audio, it.start, it.end]).encode())
    return h.hexdigest()


def recipe(rep, spec, meta: dict, split: str, items: list, fcfg) -> dict[str, Any]:
    frames = spec.window == "frames"
    r = {
        "cache_format": CACHE_FORMAT,
        "representation": str(rep.name),
        "identity": str(rep.identity()),
        "pooling": None if frames else getattr(rep, "pooling", "mean"),
        "sample_rate": int(rep.sample_rate),
        "task": spec.key,
        "source": meta.get("source"),
        "source_version": meta.get("source_version"),
        "split": split,
        "items": items_digest(items),
        "num_items": len(items),
        "window": spec.window,
        "window_s": spec.window_s if spec.window == "window" else None,
        "window_hop_s": spec.window_hop_s if spec.window == "window" else None,
        "max_chunk_s": float(fcfg.max_chunk_s),
        "min_seconds": float(fcfg.min_seconds),
        "silence_peak": float(fcfg.silence_peak),
    }
    if spec.window == "window" and getattr(fcfg, "window_tail", "overlap") != "overlap":
        r["window_tail"] = str(fcfg.window_tail)  # only then: the keys of "overlap" caches stay as they were
    if resolve_precision(getattr(fcfg, "precision", "auto"), fcfg.device, rep) == "bf16":
        r["precision"] = "bf16"  # only then, so float32 keys stay what they were before the key existed
    return r


def recipe_key(r: dict) -> str:
    return hashlib.sha256(json.dumps(r, sort_keys=True).encode()).hexdigest()[:24]


def _segments(n: int, sr: int, spec, fcfg) -> list[tuple[int, int]]:
    """(start, end) sample ranges that go through the model for an item of ``n`` samples."""
    if spec.window == "window":
        win = int(round(spec.window_s * sr))
        hop = int(round((spec.window_hop_s or spec.window_s) * sr))
        if n <= win:
            return [(0, n)]
        starts = list(range(0, n - win + 1, hop))
        segs = [(s, s + win) for s in starts]
        if getattr(fcfg, "window_tail", "overlap") == "keep":  # MARBLE: the rest as a shorter window, if >= 1 s
            nxt = starts[-1] + hop
            if n - nxt >= sr:
                segs.append((nxt, n))
        elif n - (starts[-1] + win) >= win / 2:
            segs.append((n - win, n))
        return segs
    chunk = int(round(fcfg.max_chunk_s * sr))
    bounds = list(range(0, n, chunk)) + [n]
    segs = list(zip(bounds[:-1], bounds[1:]))
    if len(segs) > 1 and segs[-1][1] - segs[-1][0] < sr:  # merge a tail under 1 s into the previous chunk
        segs[-2:] = [(segs[-2][0], n)]
    return segs


def _pool(frames: np.ndarray, how: str) -> np.ndarray:
    """frames [T', L, D] -> [L, D] (mean) or [L, 2D] (mean_std)."""
    mean = frames.mean(0)
    if how == "mean":
        return mean
    if how == "mean_std":
        return np.concatenate([mean, frames.std(0)], axis=-1)
    raise ValueError(f"unknown pooling {how!r} (use 'mean' or 'mean_std')")


def _save_npz(path: Path, **arrays) -> None:
    from tasks.format import atomic_write_bytes

    buf = io.BytesIO()
    np.savez(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())


class _Runner:
    """Runs the representation on padded batches of segments; counts model calls."""

    def __init__(self, rep, fcfg):
        self.rep = rep
        self.fcfg = fcfg
        self.calls = 0
        self.precision = resolve_precision(getattr(fcfg, "precision", "auto"), fcfg.device, rep)

    def batches(self, segs: list[np.ndarray]):
        """Yield (segment indices, their frames [T', L, D] float32 numpy) per model batch: padded batches of at
        most ``features.batch_seconds`` of audio, longest segments first. Only one batch's frames exist at once."""
        import torch

        sr = int(self.rep.sample_rate)
        budget = int(self.fcfg.batch_seconds * sr)
        order = sorted(range(len(segs)), key=lambda i: -len(segs[i]))
        i = 0
        while i < len(order):
            longest = len(segs[order[i]])
            size = max(1, budget // max(longest, 1))
            batch = order[i:i + size]
            i += len(batch)
            wav = torch.zeros(len(batch), longest)
            lengths = torch.tensor([len(segs[j]) for j in batch], dtype=torch.long)
            for b, j in enumerate(batch):
                wav[b, : len(segs[j])] = torch.from_numpy(np.array(segs[j], dtype=np.float32))
            with autocast(self.precision, self.fcfg.device):
                layers, flen = self.rep(wav, lengths)
            self.calls += 1
            if len(layers) != int(self.rep.num_layers):
                raise ExtractionError(
                    f"representation {self.rep.name!r} returned {len(layers)} layers, declared num_layers="
                    f"{self.rep.num_layers}")
            stacked = torch.stack([h.detach().float().cpu() for h in layers], dim=2)  # [B, T', L, D]
            del layers, wav
            yield batch, [stacked[b, : int(flen[b])].numpy() for b in range(len(batch))]
            del stacked  # before the next forward: one batch's frames at a time

    def run(self, segs: list[np.ndarray]) -> list[np.ndarray]:
        """segments (1-d float arrays) -> per segment frames [T', L, D] float32 (numpy), all at once (scripts)."""
        out: list[np.ndarray | None] = [None] * len(segs)
        for batch, frames in self.batches(segs):
            for j, f in zip(batch, frames):
                out[j] = f
        return out  # type: ignore[return-value]


@dataclass
class SplitCache:
    """Where one split's features live: the cache folder (named by the recipe key), its items and shards.

    Shard ``s`` holds items ``[s * shard_items, (s + 1) * shard_items)`` in order; its content depends only on
    those items (the batches are planned within the shard), which is what lets ranks share the work of a split
    (benchmark/distributed.py) and still write the single-process cache byte for byte."""

    folder: Path
    recipe: dict[str, Any]
    items: list
    data_dir: Path
    split: str
    shard_items: int

    @property
    def n_shards(self) -> int:
        return math.ceil(len(self.items) / self.shard_items)

    @property
    def key(self) -> str:
        """The recipe key (the folder's name ends with it); every shard of the folder records it."""
        return recipe_key(self.recipe)

    @property
    def frames(self) -> bool:
        return self.recipe.get("window") == "frames"

    def shard_path(self, s: int) -> Path:
        """The shard's index (written last: a shard exists when its index does)."""
        return self.folder / f"shard-{s:05d}.npz"

    def rows_path(self, s: int) -> Path:
        """The shard's rows (benchmark.rows: a .npy file, memory-mapped when read)."""
        return rows_path(self.shard_path(s))

    def lock_path(self, s: int) -> Path:
        return self.folder / f".shard-{s:05d}.npz.lock"

    def shard_range(self, s: int) -> tuple[int, int]:
        return s * self.shard_items, min(len(self.items), (s + 1) * self.shard_items)

    def shard_record(self, s: int) -> dict[str, Any]:
        """What shard ``s`` records about itself (its ``record`` member)."""
        lo, hi = self.shard_range(s)
        return {"format": SHARD_FORMAT, "recipe": self.key, "shard": s, "range": [lo, hi],
                "ids": [str(it.id) for it in self.items[lo:hi]]}

    def missing(self) -> list[int]:
        """The shards without a file (a stat each: what planning the work needs). A shard that is there is
        verified when it is read (:meth:`read_shard`, :func:`load_split`), and extracted again if unusable."""
        return [s for s in range(self.n_shards) if not self.shard_path(s).exists()]

    def read_shard(self, s: int) -> dict[str, Any]:
        """Shard ``s`` read whole and verified (:func:`read_shard`); raises _BadShard when unusable."""
        return read_shard(self.shard_path(s), s, self.key, self.items, self.frames, self.shard_range(s))


def rows_path(index: Path) -> Path:
    """``shard-SSSSS.npz`` -> ``shard-SSSSS.x.npy``."""
    return Path(index).with_suffix(".x.npy")


def _one_line(e: BaseException) -> str:
    return f"{type(e).__name__}: {' '.join(str(e).split())}"


def read_shard(path, s: int, key: str, items: list, frames: bool,
               expect: tuple[int, int] | None = None) -> dict[str, Any]:
    """Shard ``s`` of a split, read whole and checked against what it records (see the module docstring).

    ``key``: the folder's recipe key; ``expect``: the item range ``features.shard_items`` gives shard ``s``
    (None: the recorded range, checked against the items' ids, and :func:`load_split` checks that the shards
    cover the split). Returns {"x", "owner", "times", "skipped"}. Raises _BadShard (missing, damaged, foreign,
    legacy), or ExtractionError for a shard of another ``features.shard_items``."""
    path = Path(path)
    if not path.exists():
        raise _BadShard(path, "missing", "missing")
    try:
        with np.load(path, allow_pickle=False) as z:
            # every member read to its end: zipfile checks each one's CRC-32 there
            arrays = {k: z[k] for k in z.files}
    except MemoryError:
        raise
    except Exception as e:  # noqa: BLE001 - whatever a damaged file raises (BadZipFile, EOFError, ValueError, ...)
        raise _BadShard(path, "damaged", f"damaged, not a readable shard ({_one_line(e)})") from None
    rec = None
    try:
        rec = json.loads(str(arrays["record"])) if "record" in arrays else None
        if rec is not None and int(rec.get("format", 2)) == SHARD_FORMAT:
            owner, times, order = arrays["owner"], arrays["times"], arrays["order"]
            skipped = json.loads(str(arrays["skipped"]))
            lo, hi = (int(v) for v in rec["range"])
            rec_key, rec_s, rec_ids, rows_meta = rec["recipe"], int(rec["shard"]), list(rec["ids"]), rec["rows"]
            skipped_ids = [str(d["id"]) for d in skipped]
    except (KeyError, ValueError, TypeError) as e:
        raise _BadShard(path, "damaged", f"damaged, not a feature shard ({_one_line(e)})") from None
    if rec is None:
        raise _BadShard(path, "legacy", "written before shards recorded their items and recipe: cannot be verified")
    if int(rec.get("format", 2)) != SHARD_FORMAT:
        raise _BadShard(path, "legacy", f"shard format {rec.get('format', 2)} (features inside the .npz, read whole), "
                                        f"not {SHARD_FORMAT} (memory-mapped rows)")
    if rec_key != key:
        raise _BadShard(path, "foreign", f"holds features of another cache entry (recipe {rec_key}, this folder's is "
                                         f"{key}; copied from another split, task or representation)")
    if rec_s != s:
        raise _BadShard(path, "foreign", f"holds shard {rec_s} (items {lo}..{hi - 1}), not shard {s}")
    if expect is not None and (lo, hi) != tuple(expect):
        raise ExtractionError(
            f"{path}: holds items {lo}..{hi - 1} ({hi - lo}), where features.shard_items puts items "
            f"{expect[0]}..{expect[1] - 1}: the shards were written with another features.shard_items; use the "
            f"value they were written with, or delete the folder {path.parent} to extract again")
    if not 0 <= lo < hi <= len(items) or rec_ids != [str(it.id) for it in items[lo:hi]]:
        raise _BadShard(path, "foreign", f"holds other items than items {lo}..{hi - 1} of this split "
                                         f"(ids {rec_ids[:3]}...)")
    from benchmark.rows import check_rows

    xp = rows_path(path)
    if not xp.exists():
        raise _BadShard(path, "damaged", f"its rows file {xp.name} is missing")
    try:
        x = check_rows(xp, rows_meta)
    except (OSError, ValueError) as e:
        raise _BadShard(path, "damaged", f"its rows file {xp.name} is damaged ({' '.join(str(e).split())})") from None
    if not _rows_match(x, owner, times, order, skipped_ids, rec_ids, lo, frames):
        raise _BadShard(path, "damaged", "damaged: its rows do not match its items")
    return {"x": x, "order": order, "owner": owner, "times": times, "skipped": skipped}


def _rows_match(x, owner, times, order, skipped_ids: list[str], ids: list[str], lo: int, frames: bool) -> bool:
    """Every item of the shard (``ids``, from item ``lo``) has rows, in item order, or one skip reason; ``order``
    (the file row of each row) is a permutation of the file's rows."""
    if x.ndim != 3 or x.dtype not in (np.float16, np.float32) or owner.shape != x.shape[:1] \
            or order.shape != owner.shape or times.shape != (owner.shape if frames else (0,)):
        return False
    if len(order) and not np.array_equal(np.sort(order), np.arange(len(order))):
        return False
    if len(owner) and (not np.issubdtype(owner.dtype, np.integer) or owner.min() < lo
                       or owner.max() >= lo + len(ids) or (np.diff(owner) < 0).any()):
        return False
    kept = {ids[i - lo] for i in np.unique(owner).tolist()}
    return len(kept) + len(skipped_ids) == len(ids) and set(skipped_ids) == set(ids) - kept


_UNLOCKED: set[str] = set()  # cache folders on a file system without flock (warned once each)


@contextlib.contextmanager
def shard_lock(sc: SplitCache, s: int, log=None):
    """Hold shard ``s``'s file lock (see the module docstring): waits while another process holds it."""
    from filelock import FileLock, Timeout

    path = sc.lock_path(s)
    try:
        lock = FileLock(str(path), fallback_to_soft=False)  # a soft lock would outlive a killed holder
    except TypeError:  # filelock < 4 has no soft fallback (and no such argument)
        lock = FileLock(str(path))
    held = True
    try:
        try:
            lock.acquire(timeout=0)
        except Timeout:
            if log is not None:
                log(f"{sc.shard_path(s)} is being extracted by another process; waiting for it")
            lock.acquire()
    except (NotImplementedError, OSError) as e:
        if isinstance(e, OSError) and e.errno not in (errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP):
            raise
        held = False
        if str(sc.folder) not in _UNLOCKED:
            _UNLOCKED.add(str(sc.folder))
            (log or print)(f"warning: {sc.folder}: the file system has no file locks ({_one_line(e)}); shards are "
                           f"computed unlocked (runs sharing this cache may compute a shard twice)")
    try:
        yield
    finally:
        if held:
            # removed while held: whoever gets the lock next on the removed file finds the shard written (filelock
            # >= 4 then takes the lock anew on the path), and a finished cache has no lock files
            with contextlib.suppress(OSError):
                os.unlink(path)
            lock.release()



def split_cache(rep, spec, data_dir, split: str, fcfg, cache_dir=None, limit: int | None = None) -> SplitCache:
    """The cache folder of one split (created, with its recipe.json); no model work."""
    from tasks.format import atomic_write_text, read_meta, read_split

    data_dir = Path(data_dir)
    meta = read_meta(data_dir)
    items = select_items(read_split(data_dir, split), limit)
    if not items:
        raise ExtractionError(f"{data_dir / (split + '.jsonl')}: split {split!r} has no items")
    rec = recipe(rep, spec, meta, split, items, fcfg)
    if meta.get("source") == "embedded":
        # the embedded corpus: the sha256 of its audio (tasks.embedded.build.content_digest), so a folder
        # rendered anew by a changed generator never reads the features of the render before; a folder without
        # one (made by an older version) gets it on its next prepare
        if meta.get("content_digest"):
            rec["content"] = str(meta["content_digest"])
    else:
        # any other folder: its files are part of the key (path as listed, size, modification time), so another
        # folder with the same listing, or audio replaced in place, never reads features of other audio
        from tasks.format import files_digest

        rec["files"] = files_digest(data_dir, items)
    key = recipe_key(rec)
    folder = cache_root(cache_dir) / spec.name / f"{slug(rep.name)}-{key}"
    folder.mkdir(parents=True, exist_ok=True)
    manifest = folder / "recipe.json"
    if not manifest.exists():
        atomic_write_text(manifest, json.dumps(rec, indent=1, sort_keys=True) + "\n")
    return SplitCache(folder=folder, recipe=rec, items=items, data_dir=data_dir, split=split,
                      shard_items=int(fcfg.shard_items))


def _unusable(bad: dict[int, _BadShard], n_shards: int, folder) -> str:
    """The shards that cannot be used, each with why (the first ten), for an error."""
    listed = [str(bad[s]) for s in sorted(bad)[:10]] + ([f"and {len(bad) - 10} more"] if len(bad) > 10 else [])
    return f"{len(bad)} of {n_shards} feature shards in {folder} cannot be used: " + "; ".join(listed)


def extract_split(rep, spec, data_dir, split: str, fcfg, cache_dir=None, limit: int | None = None,
                  progress: bool = True, log=print, cached_only: bool = False) -> SplitFeatures:
    """Features of one split, from the cache where present and verified, extracting only the shards that are
    missing or unusable (damaged, foreign, legacy: named in a warning). ``cached_only``: never run the model; any
    such shard is an ExtractionError."""
    sc = split_cache(rep, spec, data_dir, split, fcfg, cache_dir, limit)
    folder, items, n_shards = sc.folder, sc.items, sc.n_shards
    where = f"[{spec.name}/{split}]"
    runner = _Runner(rep, fcfg)
    t0 = time.time()
    if cached_only:
        missing = sc.missing()
        if missing:
            raise ExtractionError(f"{where} {len(missing)} of {n_shards} feature shards of {rep.name!r} are not "
                                  f"cached in {folder}; run `python -m benchmark extract` (or run) first")

    def heal(bad: dict[int, _BadShard]) -> None:
        if cached_only:
            raise ExtractionError(f"{where} {rep.name!r}: {_unusable(bad, n_shards, folder)}; run `python -m "
                                  f"benchmark extract` (or run) to extract them again")
        kinds: dict[str, int] = {}
        for e in bad.values():
            kinds[e.kind] = kinds.get(e.kind, 0) + 1
            if e.kind in ("damaged", "foreign"):
                log(f"{where} warning: {e}; extracting it again")
        if kinds.get("legacy"):
            log(f"{where} warning: {kinds['legacy']} shards in {folder} are of an earlier shard format (without "
                f"a record of their items and recipe, which cannot be verified, or with their rows inside the index, "
                f"which cannot be memory-mapped); extracting them again (once)")
        what = "missing (" if set(kinds) == {"missing"} else f"({', '.join(f'{n} {k}' for k, n in kinds.items())}; "
        log(f"{where} extracting {rep.name}: {len(bad)} of {n_shards} shards {what}{len(items)} items) -> {folder}")
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=sum(hi - lo for lo, hi in map(sc.shard_range, bad)), desc=f"{spec.name}/{split}",
                       unit="item", leave=False)
        for s in sorted(bad):
            extract_shard(sc, s, rep, spec, fcfg, runner, log=log)
            if bar is not None:
                lo, hi = sc.shard_range(s)
                bar.update(hi - lo)
        if bar is not None:
            bar.close()

    feats = load_split(folder, split, items, n_shards, frames=spec.window == "frames", shard_items=sc.shard_items,
                       key=sc.key, heal=heal)
    feats.model_calls = runner.calls
    feats.seconds = time.time() - t0
    check_skipped(feats, spec, fcfg)
    return feats


def extract_shard(sc: SplitCache, s: int, rep, spec, fcfg, runner: _Runner, log=None) -> Path:
    """Make shard ``s`` valid and return its path: under the shard's lock, check it again (another process may
    have written it while this one waited: then nothing runs), else run the model on its items and write the
    shard atomically."""
    path = sc.shard_path(s)
    with shard_lock(sc, s, log):
        if path.exists():
            try:
                sc.read_shard(s)
                return path
            except _BadShard:
                pass
        _compute_shard(sc, s, rep, spec, fcfg, runner)
    return path


def _compute_shard(sc: SplitCache, s: int, rep, spec, fcfg, runner: _Runner) -> Path:
    """Run the model on the items of shard ``s`` and write the shard file atomically; returns its path."""
    import shutil
    import tempfile

    for stale in sc.folder.glob(f".audio-{s:05d}-*"):  # left by a killed extraction of this shard (we hold its lock)
        shutil.rmtree(stale, ignore_errors=True)
    with tempfile.TemporaryDirectory(prefix=f".audio-{s:05d}-", dir=sc.folder) as store:
        return _compute_shard_from(sc, s, rep, spec, fcfg, runner, Path(store))


def read_item(data_dir, it, sr: int, fcfg) -> tuple[np.ndarray | None, dict | None]:
    """An item's audio at ``sr`` (its excerpt), or None and its skip record (``id``, ``audio``, ``reason``) when
    the rules skip it before the model: unreadable, shorter than ``features.min_seconds``, or silent (peak under
    ``features.silence_peak``). The feature extraction and fine-tuning (benchmark.finetune) skip the same items."""
    from mert.audio import AudioError, read_audio
    from tasks.format import resolve

    path = resolve(data_dir, it.audio)
    try:
        wav = read_audio(path, sr, it.start, it.end, warn_silent=False)  # silence: skipped below
    except (AudioError, FileNotFoundError) as e:
        return None, {"id": it.id, "audio": str(path), "reason": f"unreadable: {e}"}
    if len(wav) < fcfg.min_seconds * sr:
        return None, {"id": it.id, "audio": str(path),
                      "reason": f"too short: {len(wav) / sr:.3f} s < {fcfg.min_seconds} s"}
    peak = float(np.abs(wav).max())
    if peak < fcfg.silence_peak:
        return None, {"id": it.id, "audio": str(path), "reason": f"silent: peak {peak:.2e}"}
    return wav, None


def _compute_shard_from(sc: SplitCache, s: int, rep, spec, fcfg, runner: _Runner, store: Path) -> Path:
    """:func:`_compute_shard` with each item's decoded audio kept in a file of ``store``, memory-mapped: the
    shard's audio is never held at once (one item while it is decoded, one model batch while it runs)."""
    from benchmark.rows import spill
    from tasks.format import resolve

    items, data_dir, split = sc.items, sc.data_dir, sc.split
    sr = int(rep.sample_rate)
    pooling = sc.recipe["pooling"]
    lo, hi = sc.shard_range(s)
    skipped, seg_audio, seg_meta = [], [], []
    for gi in range(lo, hi):
        wav, skip = read_item(data_dir, items[gi], sr, fcfg)
        if skip is not None:
            skipped.append(skip)
            continue
        wav = spill(store / f"{gi}.npy", np.asarray(wav, dtype=np.float32))
        for k, (a, b) in enumerate(_segments(len(wav), sr, spec, fcfg)):
            seg_audio.append(wav[a:b])  # a view of the file: read when its batch is built
            seg_meta.append((gi, k, a))
    from benchmark.rows import RowWriter

    writer = RowWriter(sc.rows_path(s), int(rep.num_layers))
    try:
        placed = _stream_rows(seg_audio, seg_meta, spec, pooling, runner, writer)
        meta = writer.close()
    except FloatingPointError:
        writer.abort()
        raise ExtractionError(f"representation {rep.name!r} produced non-finite features in {spec.name}/{split} "
                              f"shard {s}") from None
    except BaseException:
        writer.abort()
        raise
    seg_start = {(gi, k): a for gi, k, a in seg_meta}
    rows, owner, times = [], [], []  # in item order: file rows, owning item, frame times
    for gi in range(lo, hi):
        segs = placed.get(gi)
        if segs is None:
            continue  # skipped before the model (unreadable, too short, silent)
        if not any(n for _, _, n in segs):
            it = items[gi]
            skipped.append({"id": it.id, "audio": str(resolve(data_dir, it.audio)),
                            "reason": "too short for the model (no frames)"})
            continue
        for k, first, n in sorted(segs):
            rows.append(np.arange(first, first + n))
            owner.append(np.full(n, gi))
            if spec.window == "frames":
                # frame k of a segment starting at t0 is at t0 + offset + k / rate (offset: where the model's first
                # frame sits, e.g. a HEAR module's first timestamp; 0 for MERT and the baselines)
                times.append(seg_start[(gi, k)] / sr + float(getattr(rep, "frame_offset_s", 0.0) or 0.0)
                             + np.arange(n) / float(rep.frame_rate))
    record = {**sc.shard_record(s), "rows": meta}
    _save_npz(sc.shard_path(s), order=np.concatenate(rows).astype(np.int64) if rows else np.zeros(0, np.int64),
              owner=np.concatenate(owner).astype(np.int64) if owner else np.zeros(0, np.int64),
              times=np.concatenate(times).astype(np.float32) if times else np.zeros(0, np.float32),
              skipped=np.array(json.dumps(skipped)), record=np.array(json.dumps(record, sort_keys=True)))
    return sc.shard_path(s)


def _stream_rows(seg_audio: list, seg_meta: list, spec, pooling, runner: _Runner, writer) -> dict:
    """Run the model batch by batch and append each batch's rows to ``writer`` as they come: a segment's pooled
    row (``window``), its frames (``frames``), or, for ``clip``, the item's row pooled over all its chunks once
    the last chunk is through (only a long item's chunks wait, in float32). Returns item -> [(segment k, first
    file row, rows)], what puts the file's rows in item order."""
    placed: dict[int, list[tuple[int, int, int]]] = {}
    n_segs: dict[int, int] = {}
    for gi, _, _ in seg_meta:
        n_segs[gi] = n_segs.get(gi, 0) + 1
    waiting: dict[int, dict[int, np.ndarray]] = {}  # clip items with chunks still to come: k -> frames

    def put(gi: int, k: int, rows: np.ndarray) -> None:
        placed.setdefault(gi, []).append((k, writer.rows, len(rows)))
        writer.append(rows)

    if not seg_audio:
        return placed
    for batch, frames in runner.batches(seg_audio):
        f = allf = None
        for j, f in zip(batch, frames):
            gi, k, _ = seg_meta[j]
            if spec.window == "frames":
                put(gi, k, f)
            elif spec.window == "window":
                if len(f):
                    put(gi, k, _pool(f, pooling)[None])
                else:
                    placed.setdefault(gi, []).append((k, writer.rows, 0))
            else:
                if n_segs[gi] == 1:
                    allf = f
                else:  # a long item: its chunks wait (copied: a view would keep the whole batch) for the last one
                    waiting.setdefault(gi, {})[k] = np.array(f)
                    if len(waiting[gi]) < n_segs[gi]:
                        continue
                    allf = np.concatenate([waiting[gi][kk] for kk in sorted(waiting[gi])])
                    del waiting[gi]
                if len(allf):
                    put(gi, 0, _pool(allf, pooling)[None])
                else:
                    placed.setdefault(gi, []).append((0, writer.rows, 0))
                allf = None
        del frames, f, allf  # no view of this batch's frames may outlive it (it would keep them all)
    return placed


def _folder_key(folder: Path) -> str:
    """The recipe key a cache folder is named by (``NAME-KEY``)."""
    return Path(folder).name.rsplit("-", 1)[-1]


def load_split(folder: Path, split: str, items: list, n_shards: int, frames: bool, *,
               shard_items: int | None = None, key: str | None = None, heal=None) -> SplitFeatures:
    """The features of a split from its ``n_shards`` shards, each read once, whole, and verified
    (:func:`read_shard`: against ``key``, by default the folder name's, and with ``shard_items`` against the
    range it gives each shard).

    Unusable shards (missing, damaged, foreign, legacy): ``heal({s: why})`` must make them valid (extract_split
    extracts them again, or raises), then only those are read again; without ``heal``, an ExtractionError naming
    each of them."""
    folder = Path(folder)
    key = key or _folder_key(folder)
    n = len(items)
    paths = [folder / f"shard-{s:05d}.npz" for s in range(n_shards)]

    def expect(s):
        return None if shard_items is None else (s * shard_items, min(n, (s + 1) * shard_items))

    shards: list[dict | None] = [None] * n_shards
    bad: dict[int, _BadShard] = {}
    for s in range(n_shards):
        try:
            shards[s] = read_shard(paths[s], s, key, items, frames, expect(s))
        except _BadShard as e:
            bad[s] = e
    if bad:
        if heal is None:
            raise ExtractionError(f"split {split!r}: {_unusable(bad, n_shards, folder)}; run `python -m benchmark "
                                  f"extract` (or run) to extract them again")
        heal(bad)
        for s in sorted(bad):
            try:
                shards[s] = read_shard(paths[s], s, key, items, frames, expect(s))
            except _BadShard as e:
                raise ExtractionError(f"{e} (after extracting it again)") from None
    from benchmark.rows import ShardedRows

    xs, owners, times, skipped = [], [], [], []
    for z in shards:
        if z["x"].shape[0]:
            xs.append((z["x"], z["order"]))
        owners.append(z["owner"])
        times.append(z["times"])
        skipped += z["skipped"]
    if not xs:
        raise ExtractionError(f"split {split!r}: every item was skipped: "
                              + "; ".join(f"{d['audio']}: {d['reason']}" for d in skipped[:10]))
    owner = np.concatenate(owners)
    covered = len(np.unique(owner)) + len(skipped)
    if (covered != len(items) or owner.min() < 0 or owner.max() >= len(items) or (np.diff(owner) < 0).any()):
        # every item has rows (in item order) or one skip reason; anything else means shards of another layout
        # (the shard size is not part of the cache key)
        raise ExtractionError(f"{folder}: the {n_shards} shards cover {covered} of {len(items)} items "
                              f"of split {split!r}: they were written with another features.shard_items; use the "
                              f"value they were written with, or delete the folder to extract again")
    dims = {x.shape[1:] for x, _ in xs}
    if len(dims) != 1:
        raise ExtractionError(f"{folder}: shards of split {split!r} hold rows of different shapes {sorted(dims)}")
    (layers, dim), = dims
    return SplitFeatures(split=split, x=ShardedRows(xs, layers, dim), owner=owner,
                         times=np.concatenate(times) if frames else None, items=items, skipped=skipped,
                         cache_dir=str(folder))


def item_seconds(data_dir, item) -> float:
    """Duration of one item for load balancing: the excerpt, else the file header (0 when unreadable)."""
    start = float(item.start or 0.0)
    if item.end is not None:
        return max(0.0, float(item.end) - start)
    import soundfile as sf

    from tasks.format import resolve

    try:
        return max(0.0, float(sf.info(str(resolve(data_dir, item.audio))).duration) - start)
    except (RuntimeError, OSError, sf.LibsndfileError):
        return 0.0


def estimate_split(rep, spec, data_dir, split: str, fcfg, limit: int | None = None) -> dict[str, Any]:
    """What a split's cache will hold, from the items' excerpts or audio headers (no audio decoded, no model
    run): items, audio seconds, rows (one per clip; one per window; one per model frame) and bytes on disk
    (float16 rows of every layer; more where a shard is widened to float32)."""
    from tasks.format import read_split

    items = select_items(read_split(data_dir, split), limit)
    sr = int(rep.sample_rate)
    seconds = [item_seconds(data_dir, it) for it in items]
    if spec.window == "clip":
        rows = len(items)
    elif spec.window == "window":
        rows = sum(len(_segments(int(round(t * sr)), sr, spec, fcfg)) for t in seconds)
    else:
        rows = int(sum(math.floor(t * float(rep.frame_rate)) for t in seconds))
    dim = int(rep.dim) * (2 if spec.window != "frames" and getattr(rep, "pooling", "mean") == "mean_std" else 1)
    return {"split": split, "items": len(items), "seconds": round(sum(seconds), 1), "rows": rows,
            "bytes": rows * int(rep.num_layers) * dim * 2}


def check_skipped(feats: SplitFeatures, spec, fcfg) -> None:
    n = len(feats.items)
    if feats.skipped and len(feats.skipped) / n > fcfg.max_skip_fraction:
        listing = "\n".join(f"  {d['audio']}: {d['reason']}" for d in feats.skipped)
        raise ExtractionError(
            f"{spec.name}/{feats.split}: {len(feats.skipped)} of {n} items skipped "
            f"({len(feats.skipped) / n:.1%} > {fcfg.max_skip_fraction:.0%} allowed, features.max_skip_fraction):\n"
            f"{listing}")
