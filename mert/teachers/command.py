"""python -m mert labels: pseudo-labels for pretraining, sharded and resumable.

    python -m mert labels --teacher encodec --audio music/ --out labels/encodec
    python -m mert labels --teacher kmeans-mfcc --audio music/ --out labels/mfcc --clusters 100
    python -m mert labels --teacher kmeans-layer --model mert-mini --layer 3 --audio music/ --out labels/iter2

Audio files (anything soundfile reads) under --audio are listed in sorted order, decoded to 24 kHz mono and
labelled shard by shard (--shard-size files each). Each shard is written atomically with a done marker; a
killed run started again skips the finished shards, and a run that failed before finishing anything (in the
k-means fit, say) may be started again, with the same or other settings, in the same --out. Files that cannot
be used (missing, unreadable, no samples) are skipped by the k-means fit and the labelling alike, logged, and
listed under "skipped" in the shard markers and ``labels.json``. ``labels.json`` records the teacher, its
settings, the label frame rate (75 Hz) and every file; ``mert pretrain`` reads it. Large collections can be
split over processes or machines sharing the output folder: ``--num-jobs N --job-index i`` (job 0 fits k-means
first). ``kmeans-layer`` (HuBERT's second iteration, :mod:`mert.teachers.kmeans_layer`) clusters layer
``--layer`` of the model ``--model`` (extracted as the benchmark extracts frame-level features, in chunks of
``--chunk-seconds``), with everything else as for the other k-means teachers.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

from . import FRAME_RATE, HOP, SAMPLE_RATE, TEACHERS
from .storage import FORMAT_VERSION, MANIFEST, atomic_write_json, shard_done, write_shard

log = logging.getLogger("mert.labels")

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif", ".opus")


def list_audio(root: Path) -> list[Path]:
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"--audio {root}: not a folder")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file())
    if not files:
        raise FileNotFoundError(f"--audio {root}: no audio files ({', '.join(AUDIO_EXTENSIONS)}) found")
    return files


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--teacher", required=True, choices=TEACHERS)
    p.add_argument("--audio", required=True, type=Path, help="folder of audio files (searched recursively)")
    p.add_argument("--out", required=True, type=Path, help="labels folder (created; resumed when it exists)")
    p.add_argument("--shard-size", type=int, default=256, help="files per shard (default 256)")
    p.add_argument("--weights", type=Path, default=None,
                   help=f"EnCodec checkpoint (default: $TORCH_HOME/hub/checkpoints/encodec_24khz-d7cc33bc.th)")
    p.add_argument("--device", default="cpu", help="device for EnCodec or the kmeans-layer model (cpu, cuda)")
    p.add_argument("--clusters", type=int, default=None,
                   help="k-means clusters per codebook (default 100 MFCC, 500 log-mel+chroma, 100 each for "
                        "mfcc+logmel-chroma, 500 kmeans-layer)")
    p.add_argument("--model", default=None,
                   help="kmeans-layer: the model whose layer is clustered: anything mert.load_model loads (mert-mini, "
                        "m-a-p/MERT-v1-95M, an exported folder, a checkpoint .pt), random:PRESET[:SEED], or "
                        "pkg.module:factory returning a benchmark representation")
    p.add_argument("--layer", type=int, default=None,
                   help="kmeans-layer: the layer, in the benchmark's numbers (0 = input to the first transformer "
                        "layer, i = output of layer i); mert-mini: 3 (see mert/teachers/kmeans_layer.py)")
    p.add_argument("--chunk-seconds", type=float, default=30.0,
                   help="kmeans-layer: longer audio goes through the model in chunks of at most this (the "
                        "benchmark's features.max_chunk_s)")
    p.add_argument("--batch-seconds", type=float, default=240.0,
                   help="kmeans-layer: audio seconds per model batch (the benchmark's features.batch_seconds)")
    p.add_argument("--fit-files", type=int, default=1000, help="k-means: files sampled for fitting")
    p.add_argument("--fit-frames", type=int, default=250_000, help="k-means: frames sampled for fitting")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--num-jobs", type=int, default=1,
                   help="split the shards over this many processes (machines, GPUs) writing into the same --out")
    p.add_argument("--job-index", type=int, default=0, help="this process's job, 0 .. num-jobs - 1 (shard %% num-jobs)")


class SkippingReader:
    """``read_audio(path, 24 kHz)`` for labelling: a file that cannot be used (``mert.audio.AudioError``:
    missing, unreadable, no samples, NaN) gives None, is logged once ("skipping <reason>") and recorded in
    ``skipped`` (relative path -> reason). The k-means fit and the labelling loop share one reader, so they
    skip the same files for the same reasons."""

    def __init__(self, audio_root: Path):
        self.audio_root = Path(audio_root)
        self.skipped: dict[str, str] = {}

    def rel(self, path: Path) -> str:
        return Path(path).relative_to(self.audio_root).as_posix()

    def skip(self, path: Path, reason: str) -> None:
        r = self.rel(path)
        if r not in self.skipped:
            log.warning("skipping %s", reason)
            self.skipped[r] = reason

    def __call__(self, path: Path):
        from mert.audio import AudioError, read_audio

        r = self.rel(path)
        if r in self.skipped:
            return None
        try:
            return read_audio(path, SAMPLE_RATE)
        except AudioError as e:
            self.skip(path, str(e))
            return None


def make_teacher(args, files: list[Path], out: Path, encodec_model=None, read=None, source=None):
    """The teacher object for ``args.teacher``; k-means is fitted (or its saved fit loaded) here. ``read``:
    the audio reader for the fit (default: a :class:`SkippingReader` over ``args.audio``); ``source``: the
    kmeans-layer model, already loaded (default: loaded from ``args.model``)."""
    if args.teacher == "encodec":
        from .encodec import EncodecTeacher

        return EncodecTeacher(model=encodec_model, weights=args.weights, device=args.device)
    from .kmeans import MULTI, KMeansTeacher, MultiKMeansTeacher

    if args.teacher == "kmeans-layer":
        from .kmeans_layer import BATCH_SECONDS, CHUNK_SECONDS, KMeansLayerTeacher

        t = KMeansLayerTeacher(args.model, args.layer, n_clusters=args.clusters, seed=args.seed,
                               fit_files=args.fit_files, fit_frames=args.fit_frames,
                               chunk_seconds=getattr(args, "chunk_seconds", CHUNK_SECONDS),
                               batch_seconds=getattr(args, "batch_seconds", BATCH_SECONDS), device=args.device,
                               rep=source)
    else:
        cls = MultiKMeansTeacher if args.teacher in MULTI else KMeansTeacher
        t = cls(args.teacher, n_clusters=args.clusters, seed=args.seed, fit_files=args.fit_files,
                fit_frames=args.fit_frames)
    model_path = out / "kmeans.npz"
    if model_path.exists():
        t.load(model_path)
    elif getattr(args, "job_index", 0) != 0:
        raise FileNotFoundError(f"{model_path}: the k-means model is not fitted yet; job 0 fits it, start the other "
                                f"jobs once the file exists")
    else:
        t.fit(files, read or SkippingReader(args.audio))
        t.save(model_path)
    return t


def has_finished_work(out: Path) -> bool:
    """Whether ``out`` holds anything finished (a fitted k-means model, a done shard, the manifest) that a
    change of settings would make inconsistent."""
    out = Path(out)
    return ((out / "kmeans.npz").exists() or (out / MANIFEST).exists()
            or any((out / "shards").glob("shard-*.json")))


def check_plan(out: Path, plan_obj: dict, job: int) -> None:
    """Write ``plan.json`` (the settings and file list), or check it against an earlier run's. An earlier run
    that finished nothing (it failed in the k-means fit, say, then the folder or --clusters was fixed) leaves
    no work to protect: its plan is replaced and the rerun continues in the same --out."""
    plan = out / "plan.json"
    if plan.exists():
        try:
            old = json.loads(plan.read_text())
        except ValueError:
            old = {}
        if old == plan_obj:
            return
        diff = [k for k in plan_obj if old.get(k) != plan_obj[k]] or ["plan.json unreadable"]
        if job != 0 or has_finished_work(out):
            raise ValueError(f"{out}: holds labels made with different settings ({', '.join(diff)}); "
                             f"use a new --out folder or delete this one")
        log.info("%s: an earlier run with other settings (%s) finished nothing here; starting over with these",
                 out, ", ".join(diff))
    atomic_write_json(plan, plan_obj)


def make_labels(args, encodec_model=None) -> Path | None:
    """Label every file under ``args.audio`` into ``args.out``; returns the manifest path (None while other
    jobs of a ``--num-jobs`` split still have shards to do). Files that cannot be used are skipped (logged,
    and listed under "skipped" in the shard markers and labels.json)."""
    out = Path(args.out)
    jobs, job = getattr(args, "num_jobs", 1), getattr(args, "job_index", 0)
    if not 0 <= job < jobs:
        raise ValueError(f"--job-index {job} must lie in [0, --num-jobs {jobs})")
    from .kmeans_layer import check_args

    check_args(args)
    files = list_audio(args.audio)
    out.mkdir(parents=True, exist_ok=True)
    root = Path(args.audio).absolute()  # not resolved: files may be symlinks into other folders
    rel = [f.relative_to(Path(args.audio)).as_posix() for f in files]
    plan_obj = {"teacher": args.teacher, "audio_root": str(root), "files": rel, "shard_size": args.shard_size,
                "clusters": args.clusters, "seed": args.seed}
    source = None
    if args.teacher == "kmeans-layer":  # the model's identity is part of the plan: load it first
        from .kmeans_layer import load_source, plan_settings

        source = load_source(args.model, args.device)
        plan_obj.update(plan_settings(args, source))
    check_plan(out, plan_obj, job)
    read = SkippingReader(args.audio)
    teacher = make_teacher(args, files, out, encodec_model=encodec_model, read=read, source=source)
    n_shards = (len(files) + args.shard_size - 1) // args.shard_size
    t0 = time.time()
    for s in range(n_shards):
        if s % jobs != job or shard_done(out, s):
            continue
        entries, codes, skipped = [], [], []
        for f, r in zip(files[s * args.shard_size:(s + 1) * args.shard_size],
                        rel[s * args.shard_size:(s + 1) * args.shard_size]):
            wav = read(f)
            if wav is not None:
                c = teacher.label(wav)
                if len(c) == 0:
                    read.skip(f, f"{f}: shorter than one frame")
                else:
                    entries.append({"path": r, "num_samples": int(len(wav))})
                    codes.append(c)
                    continue
            skipped.append({"path": r, "reason": read.skipped[r]})
        write_shard(out, s, entries, codes, skipped=skipped)
        log.info("labels: shard %d/%d done (%.0f s)", s + 1, n_shards, time.time() - t0)
    missing = [s for s in range(n_shards) if not shard_done(out, s)]
    if missing:  # other jobs are still working; the last one to finish writes the manifest
        log.info("job %d/%d done; %d shards left to other jobs (rerun any job to write labels.json once they finish)",
                 job, jobs, len(missing))
        return None
    # the manifest: every shard's files with their rows
    all_files, all_skipped = [], []
    for s in range(n_shards):
        shard = json.loads((out / "shards" / f"shard-{s:05d}.json").read_text())
        row = 0
        for e in shard["files"]:
            all_files.append(dict(e, shard=s, row=row))
            row += e["frames"]
        all_skipped.extend(shard.get("skipped", []))
    manifest = {
        "format_version": FORMAT_VERSION, "teacher": args.teacher, "settings": teacher.settings(),
        "sample_rate": SAMPLE_RATE, "hop": HOP, "frame_rate": FRAME_RATE,
        "frame_convention": "label frame i <-> encoder frame i = samples [320 i, 320 i + 400) at 24 kHz",
        "num_codebooks": int(teacher.num_codebooks), "codebook_size": int(teacher.codebook_size),
        "dtype": "int16", "audio_root": str(root), "num_shards": n_shards, "files": all_files,
        "total_frames": int(sum(f["frames"] for f in all_files)), "skipped": all_skipped, "complete": True,
    }
    atomic_write_json(out / MANIFEST, manifest)
    return out / MANIFEST


def run(args) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    try:
        path = make_labels(args)
    except (FileNotFoundError, ValueError) as e:  # bad input (folders, audio, settings): one line, no traceback
        print(f"error: {e}", file=sys.stderr)
        return 2
    if path is None:
        return 0
    m = json.loads(path.read_text())
    skipped = f" ({len(m['skipped'])} skipped, listed in labels.json)" if m.get("skipped") else ""
    print(f"{m['teacher']}: {len(m['files'])} files{skipped}, {m['total_frames']} frames at {m['frame_rate']} Hz, "
          f"{m['num_codebooks']} x {m['codebook_size']} codes -> {path}")
    return 0
