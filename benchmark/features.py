"""Feature extraction into a content-addressed, resumable cache.

Every audio file of a split is decoded once; the representation runs once per (task, split) for all layers
in padded batches (with lengths, so padding never changes a feature); windows are pooled, frame-level
tasks keep their frames. Results are float16 arrays ``[rows, layers, dim]`` in shards of
``features.shard_items`` items, each written atomically, so a killed extraction keeps every finished shard
and the next run resumes after them. A split whose shards all exist does no model work at all. Under torchrun
the missing shards are shared by the ranks (benchmark/distributed.py); a shard's content depends only on its
items, so the cache is the same byte for byte.

Rows by window policy (TaskSpec.window):

- ``clip``: one row per item, the pooled frames of the whole item (audio longer than
  ``features.max_chunk_s`` goes through the model in chunks of at most that length, frames concatenated);
- ``window``: one row per window of ``window_s`` (hop ``window_hop_s``, default the window length; a tail of
  at least half a window gets a last window ending at the item's end; an item shorter than one window is one
  window);
- ``frames``: one row per model frame, with its time in seconds from the item start.

Pooling: ``mean`` over frames, or ``mean_std`` (mean and standard deviation concatenated, 2 x dim) when the
representation asks for it (the handcrafted baselines).

Precision (``features.precision``, see :func:`resolve_precision`): ``auto`` runs the representation under
``torch.autocast(bfloat16)`` on a CUDA device that supports bf16 and in float32 elsewhere; ``fp32`` / ``bf16``
force one. Outputs are cast to float32 before pooling and stored as float16 as always. Handcrafted baselines
are never autocast (their logs of small magnitudes gain nothing from bf16 and lose precision).

Cache key (sha256 of a JSON recipe): representation name + identity (weights hash), pooling, task name +
version, data source + source version, split, the digest of the split's item records (ids, audio paths,
excerpts; so ``--limit`` subsets get their own entry), window policy and lengths, chunk length, sample rate,
the skip rules, the cache format version, and ``"precision": "bf16"`` for bf16 features (only then: float32
recipes, and so every cache written before the key existed, are unchanged). Location: ``--cache-dir`` or
``$MERT_BENCH_HOME/features`` (default ``~/.cache/mert-bench/features``).
"""
from __future__ import annotations

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

CACHE_FORMAT = 1


class ExtractionError(RuntimeError):
    pass


@dataclass
class SplitFeatures:
    """Cached features of one split. ``owner[r]`` is the index into ``items`` of row ``r``."""

    split: str
    x: np.ndarray                      # [R, L, D] float16
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


def home() -> Path:
    return Path(os.environ.get("MERT_BENCH_HOME") or Path.home() / ".cache" / "mert-bench")


def cache_root(cache_dir: str | os.PathLike | None = None) -> Path:
    return Path(cache_dir) if cache_dir else home() / "features"


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


def autocasts(rep) -> bool:
    """Whether ``rep`` may run under bf16 autocast: ``rep.autocast`` when it says so; otherwise every
    representation except the handcrafted baselines."""
    flag = getattr(rep, "autocast", None)
    if flag is not None:
        return bool(flag)
    from benchmark.representations import Handcrafted

    return not isinstance(rep, Handcrafted)


def resolve_precision(precision: str | None, device: str = "cpu", rep=None) -> str:
    """``features.precision`` -> "fp32" or "bf16" for a run on ``device`` (idempotent).

    auto: bf16 on a CUDA device that supports bfloat16, fp32 otherwise (the CPU, MPS, older GPUs); bf16: bf16
    where torch can autocast to it (CPU, CUDA with bf16 support, MPS), an error naming the key elsewhere; fp32:
    fp32. A representation that does not autocast (:func:`autocasts`) always resolves to fp32."""
    from benchmark.config import PRECISIONS, ConfigError

    p = "auto" if precision is None else str(precision)
    if p not in PRECISIONS:
        raise ConfigError(f"features.precision={p!r} is not a known precision; use auto (bf16 autocast on a CUDA GPU "
                          "that supports it, fp32 elsewhere), fp32 or bf16")
    if p == "fp32" or (rep is not None and not autocasts(rep)):
        return "fp32"
    import torch

    try:
        dev = torch.device(str(device or "cpu"))
    except RuntimeError as e:
        raise ConfigError(f"features.device={device!r}: {e}") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            if p == "auto":
                return "fp32"
            raise ConfigError(f"features.precision=bf16 with features.device={device!r}, but torch sees no CUDA "
                              "device; use --device cpu (bf16 autocast works there too) or features.precision=auto")
        if torch.cuda.is_bf16_supported():
            return "bf16"
        if p == "auto":
            return "fp32"
        try:
            name = torch.cuda.get_device_name(dev)
        except Exception:  # noqa: BLE001 - only for the message
            name = str(dev)
        raise ConfigError(f"features.precision=bf16: the CUDA device {name!r} does not support bfloat16 (needs "
                          "compute capability 8.0+, e.g. A100, H100); use features.precision=fp32 (or auto, which "
                          "picks fp32 there)")
    if p == "auto":
        return "fp32"
    if dev.type == "cpu" or torch.amp.is_autocast_available(dev.type):
        return "bf16"
    raise ConfigError(f"features.precision=bf16: torch cannot autocast on device {device!r}; use "
                      "features.precision=fp32 or auto")


def autocast(precision: str, device: str = "cpu"):
    """The context a model runs in for a resolved precision: bf16 autocast, or nothing for fp32."""
    import contextlib

    if precision != "bf16":
        return contextlib.nullcontext()
    import torch

    return torch.autocast(torch.device(str(device or "cpu")).type, dtype=torch.bfloat16)


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
        if n - (starts[-1] + win) >= win / 2:
            starts.append(n - win)
        return [(s, s + win) for s in starts]
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

    def run(self, segs: list[np.ndarray]) -> list[np.ndarray]:
        """segments (1-d float arrays) -> per segment frames [T', L, D] float32 (numpy)."""
        import torch

        sr = int(self.rep.sample_rate)
        budget = int(self.fcfg.batch_seconds * sr)
        order = sorted(range(len(segs)), key=lambda i: -len(segs[i]))
        out: list[np.ndarray | None] = [None] * len(segs)
        i = 0
        while i < len(order):
            longest = len(segs[order[i]])
            size = max(1, budget // max(longest, 1))
            batch = order[i:i + size]
            i += len(batch)
            wav = torch.zeros(len(batch), longest)
            lengths = torch.tensor([len(segs[j]) for j in batch], dtype=torch.long)
            for b, j in enumerate(batch):
                wav[b, : len(segs[j])] = torch.from_numpy(segs[j])
            with autocast(self.precision, self.fcfg.device):
                layers, flen = self.rep(wav, lengths)
            self.calls += 1
            if len(layers) != int(self.rep.num_layers):
                raise ExtractionError(
                    f"representation {self.rep.name!r} returned {len(layers)} layers, declared num_layers="
                    f"{self.rep.num_layers}")
            stacked = torch.stack([h.detach().float().cpu() for h in layers], dim=2)  # [B, T', L, D]
            for b, j in enumerate(batch):
                out[j] = stacked[b, : int(flen[b])].numpy()
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

    def shard_path(self, s: int) -> Path:
        return self.folder / f"shard-{s:05d}.npz"

    def shard_range(self, s: int) -> tuple[int, int]:
        return s * self.shard_items, min(len(self.items), (s + 1) * self.shard_items)

    def missing(self) -> list[int]:
        return [s for s in range(self.n_shards) if not self.shard_path(s).exists()]


def split_cache(rep, spec, data_dir, split: str, fcfg, cache_dir=None, limit: int | None = None) -> SplitCache:
    """The cache folder of one split (created, with its recipe.json); no model work."""
    from tasks.format import atomic_write_text, read_meta, read_split

    data_dir = Path(data_dir)
    meta = read_meta(data_dir)
    items = select_items(read_split(data_dir, split), limit)
    if not items:
        raise ExtractionError(f"{data_dir / (split + '.jsonl')}: split {split!r} has no items")
    rec = recipe(rep, spec, meta, split, items, fcfg)
    key = recipe_key(rec)
    folder = cache_root(cache_dir) / spec.name / f"{_slug(rep.name)}-{key}"
    folder.mkdir(parents=True, exist_ok=True)
    manifest = folder / "recipe.json"
    if not manifest.exists():
        atomic_write_text(manifest, json.dumps(rec, indent=1, sort_keys=True) + "\n")
    return SplitCache(folder=folder, recipe=rec, items=items, data_dir=data_dir, split=split,
                      shard_items=int(fcfg.shard_items))


def extract_split(rep, spec, data_dir, split: str, fcfg, cache_dir=None, limit: int | None = None,
                  progress: bool = True, log=print, cached_only: bool = False) -> SplitFeatures:
    """Features of one split, from the cache where present, extracting only the missing shards."""
    sc = split_cache(rep, spec, data_dir, split, fcfg, cache_dir, limit)
    folder, items, n_shards = sc.folder, sc.items, sc.n_shards
    runner = _Runner(rep, fcfg)
    t0 = time.time()
    missing = sc.missing()
    bar = None
    if missing and cached_only:
        raise ExtractionError(f"[{spec.name}/{split}] {len(missing)} of {n_shards} feature shards of {rep.name!r} "
                              f"are not cached in {folder}; run `python -m benchmark extract` (or run) first")
    if missing:
        log(f"[{spec.name}/{split}] extracting {rep.name}: {len(missing)} of {n_shards} shards missing "
            f"({len(items)} items) -> {folder}")
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=sum(min(fcfg.shard_items, len(items) - s * fcfg.shard_items) for s in missing),
                       desc=f"{spec.name}/{split}", unit="item", leave=False)
    for s in missing:
        extract_shard(sc, s, rep, spec, fcfg, runner)
        if bar is not None:
            lo, hi = sc.shard_range(s)
            bar.update(hi - lo)
    if bar is not None:
        bar.close()
    feats = load_split(folder, split, items, n_shards, frames=spec.window == "frames")
    feats.model_calls = runner.calls
    feats.seconds = time.time() - t0
    check_skipped(feats, spec, fcfg)
    return feats


def extract_shard(sc: SplitCache, s: int, rep, spec, fcfg, runner: _Runner) -> Path:
    """Run the model on the items of shard ``s`` and write the shard file atomically; returns its path."""
    from mert.audio import AudioError, read_audio
    from tasks.format import resolve

    items, data_dir, split = sc.items, sc.data_dir, sc.split
    sr = int(rep.sample_rate)
    pooling = sc.recipe["pooling"]
    lo, hi = sc.shard_range(s)
    skipped, seg_audio, seg_meta = [], [], []
    for gi in range(lo, hi):
        it = items[gi]
        path = resolve(data_dir, it.audio)
        try:
            wav = read_audio(path, sr, it.start, it.end)
        except (AudioError, FileNotFoundError) as e:
            skipped.append({"id": it.id, "audio": str(path), "reason": f"unreadable: {e}"})
            continue
        if len(wav) < fcfg.min_seconds * sr:
            skipped.append({"id": it.id, "audio": str(path),
                            "reason": f"too short: {len(wav) / sr:.3f} s < {fcfg.min_seconds} s"})
            continue
        peak = float(np.abs(wav).max())
        if peak < fcfg.silence_peak:
            skipped.append({"id": it.id, "audio": str(path), "reason": f"silent: peak {peak:.2e}"})
            continue
        for k, (a, b) in enumerate(_segments(len(wav), sr, spec, fcfg)):
            seg_audio.append(np.ascontiguousarray(wav[a:b], dtype=np.float32))
            seg_meta.append((gi, k, a))
    frames = runner.run(seg_audio) if seg_audio else []
    rows, owner, times = [], [], []
    by_item: dict[int, list[int]] = {}
    for j, (gi, k, a) in enumerate(seg_meta):
        by_item.setdefault(gi, []).append(j)
    for gi, js in by_item.items():
        if sum(len(frames[j]) for j in js) == 0:
            it = items[gi]
            skipped.append({"id": it.id, "audio": str(resolve(data_dir, it.audio)),
                            "reason": "too short for the model (no frames)"})
            continue
        if spec.window == "clip":
            rows.append(_pool(np.concatenate([frames[j] for j in js]), pooling)[None])
            owner.append(np.array([gi]))
        elif spec.window == "window":
            for j in js:
                if len(frames[j]):
                    rows.append(_pool(frames[j], pooling)[None])
                    owner.append(np.array([gi]))
        else:
            for j in js:
                f = frames[j]
                rows.append(f)
                owner.append(np.full(len(f), gi))
                # frame k of a segment starting at t0 is at t0 + offset + k / rate (offset: where the model's first
                # frame sits, e.g. a HEAR module's first timestamp; 0 for MERT and the baselines)
                times.append(seg_meta[j][2] / sr + float(getattr(rep, "frame_offset_s", 0.0) or 0.0)
                             + np.arange(len(f)) / float(rep.frame_rate))
    x = np.concatenate(rows).astype(np.float16) if rows else np.zeros((0, rep.num_layers, 0), np.float16)
    if not np.isfinite(x).all():
        raise ExtractionError(f"representation {rep.name!r} produced non-finite or float16-overflowing "
                              f"features in {spec.name}/{split} shard {s}")
    path = sc.shard_path(s)
    _save_npz(path, x=x,
              owner=np.concatenate(owner).astype(np.int64) if owner else np.zeros(0, np.int64),
              times=np.concatenate(times).astype(np.float32) if times else np.zeros(0, np.float32),
              skipped=np.array(json.dumps(skipped)))
    return path


def load_split(folder: Path, split: str, items: list, n_shards: int, frames: bool) -> SplitFeatures:
    xs, owners, times, skipped = [], [], [], []
    for s in range(n_shards):
        with np.load(folder / f"shard-{s:05d}.npz") as z:
            if z["x"].shape[0]:
                xs.append(z["x"])
            owners.append(z["owner"])
            times.append(z["times"])
            skipped += json.loads(str(z["skipped"]))
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
    return SplitFeatures(split=split, x=np.concatenate(xs), owner=owner,
                         times=np.concatenate(times) if frames else None, items=items, skipped=skipped,
                         cache_dir=str(folder))


def check_skipped(feats: SplitFeatures, spec, fcfg) -> None:
    n = len(feats.items)
    if feats.skipped and len(feats.skipped) / n > fcfg.max_skip_fraction:
        listing = "\n".join(f"  {d['audio']}: {d['reason']}" for d in feats.skipped)
        raise ExtractionError(
            f"{spec.name}/{feats.split}: {len(feats.skipped)} of {n} items skipped "
            f"({len(feats.skipped) / n:.1%} > {fcfg.max_skip_fraction:.0%} allowed, features.max_skip_fraction):\n"
            f"{listing}")


def _slug(name: str) -> str:
    keep = "".join(c if c.isalnum() or c in "-_.+" else "_" for c in name)
    return keep[:60] or "model"
