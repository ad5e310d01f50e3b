"""python -m mert labels: pseudo-labels for pretraining, sharded and resumable.

    python -m mert labels --teacher encodec --audio music/ --out labels/encodec
    python -m mert labels --teacher kmeans-mfcc --audio music/ --out labels/mfcc --clusters 100

Audio files (anything soundfile reads) under --audio are listed in sorted order, decoded to 24 kHz mono and
labelled shard by shard (--shard-size files each). Each shard is written atomically with a done marker; a
killed run started again skips the finished shards. ``labels.json`` records the teacher, its settings, the
label frame rate (75 Hz) and every file; ``mert pretrain`` reads it. Large collections can be split over
processes or machines sharing the output folder: ``--num-jobs N --job-index i`` (job 0 fits k-means first).
"""
from __future__ import annotations

import argparse
import json
import logging
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
    p.add_argument("--device", default="cpu", help="device for EnCodec (cpu, cuda)")
    p.add_argument("--clusters", type=int, default=None,
                   help="k-means clusters per codebook (default 100 MFCC, 500 log-mel+chroma, 100 each for "
                        "mfcc+logmel-chroma)")
    p.add_argument("--fit-files", type=int, default=1000, help="k-means: files sampled for fitting")
    p.add_argument("--fit-frames", type=int, default=250_000, help="k-means: frames sampled for fitting")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--num-jobs", type=int, default=1,
                   help="split the shards over this many processes (machines, GPUs) writing into the same --out")
    p.add_argument("--job-index", type=int, default=0, help="this process's job, 0 .. num-jobs - 1 (shard %% num-jobs)")


def make_teacher(args, files: list[Path], out: Path, encodec_model=None):
    """The teacher object for ``args.teacher``; k-means is fitted (or its saved fit loaded) here."""
    if args.teacher == "encodec":
        from .encodec import EncodecTeacher

        return EncodecTeacher(model=encodec_model, weights=args.weights, device=args.device)
    from mert.audio import read_audio

    from .kmeans import MULTI, KMeansTeacher, MultiKMeansTeacher

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
        t.fit(files, lambda f: read_audio(f, SAMPLE_RATE))
        t.save(model_path)
    return t


def make_labels(args, encodec_model=None) -> Path | None:
    """Label every file under ``args.audio`` into ``args.out``; returns the manifest path (None while other
    jobs of a ``--num-jobs`` split still have shards to do)."""
    from mert.audio import AudioError, read_audio

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    files = list_audio(args.audio)
    root = Path(args.audio).absolute()  # not resolved: files may be symlinks into other folders
    rel = [f.relative_to(Path(args.audio)).as_posix() for f in files]
    plan = out / "plan.json"
    plan_obj = {"teacher": args.teacher, "audio_root": str(root), "files": rel, "shard_size": args.shard_size,
                "clusters": args.clusters, "seed": args.seed}
    if plan.exists():
        old = json.loads(plan.read_text())
        if old != plan_obj:
            diff = [k for k in plan_obj if old.get(k) != plan_obj[k]]
            raise ValueError(f"{out}: holds labels made with different settings ({', '.join(diff)}); "
                             f"use a new --out folder or delete this one")
    else:
        atomic_write_json(plan, plan_obj)
    teacher = make_teacher(args, files, out, encodec_model=encodec_model)
    n_shards = (len(files) + args.shard_size - 1) // args.shard_size
    t0 = time.time()
    jobs, job = getattr(args, "num_jobs", 1), getattr(args, "job_index", 0)
    if not 0 <= job < jobs:
        raise ValueError(f"--job-index {job} must lie in [0, --num-jobs {jobs})")
    for s in range(n_shards):
        if s % jobs != job or shard_done(out, s):
            continue
        entries, codes = [], []
        for f, r in zip(files[s * args.shard_size:(s + 1) * args.shard_size],
                        rel[s * args.shard_size:(s + 1) * args.shard_size]):
            try:
                wav = read_audio(f, SAMPLE_RATE)
            except AudioError as e:
                log.warning("skipping %s", e)
                continue
            c = teacher.label(wav)
            if len(c) == 0:
                log.warning("skipping %s: shorter than one frame", f)
                continue
            entries.append({"path": r, "num_samples": int(len(wav))})
            codes.append(c)
        write_shard(out, s, entries, codes)
        log.info("labels: shard %d/%d done (%.0f s)", s + 1, n_shards, time.time() - t0)
    missing = [s for s in range(n_shards) if not shard_done(out, s)]
    if missing:  # other jobs are still working; the last one to finish writes the manifest
        log.info("job %d/%d done; %d shards left to other jobs (rerun any job to write labels.json once they finish)",
                 job, jobs, len(missing))
        return None
    # the manifest: every shard's files with their rows
    all_files = []
    for s in range(n_shards):
        shard = json.loads((out / "shards" / f"shard-{s:05d}.json").read_text())
        row = 0
        for e in shard["files"]:
            all_files.append(dict(e, shard=s, row=row))
            row += e["frames"]
    manifest = {
        "format_version": FORMAT_VERSION, "teacher": args.teacher, "settings": teacher.settings(),
        "sample_rate": SAMPLE_RATE, "hop": HOP, "frame_rate": FRAME_RATE,
        "frame_convention": "label frame i <-> encoder frame i = samples [320 i, 320 i + 400) at 24 kHz",
        "num_codebooks": int(teacher.num_codebooks), "codebook_size": int(teacher.codebook_size),
        "dtype": "int16", "audio_root": str(root), "num_shards": n_shards, "files": all_files,
        "total_frames": int(sum(f["frames"] for f in all_files)), "complete": True,
    }
    atomic_write_json(out / MANIFEST, manifest)
    return out / MANIFEST


def run(args) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    try:
        path = make_labels(args)
    except (FileNotFoundError, ValueError) as e:
        log.error("%s", e)
        return 1
    if path is None:
        return 0
    m = json.loads(path.read_text())
    print(f"{m['teacher']}: {len(m['files'])} files, {m['total_frames']} frames at {m['frame_rate']} Hz, "
          f"{m['num_codebooks']} x {m['codebook_size']} codes -> {path}")
    return 0
