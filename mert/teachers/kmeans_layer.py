"""The iterative teacher (HuBERT's second iteration): k-means on the frames of one layer of a trained model.

    python -m mert labels --teacher kmeans-layer --model mert-mini --layer 3 --clusters 100 --audio DIR --out L

HuBERT's first iteration predicts k-means clusters of MFCC frames; its second iteration predicts k-means clusters
of a middle layer of the first-iteration model, whose contextual features separate what the hand-made ones do
not. ``kmeans-layer`` does this for any model: labels are written by ``python -m mert labels`` exactly like the
other k-means teachers' (one int16 codebook in resumable shards, ``kmeans.npz``, ``plan.json``, bad audio
skipped and recorded, ``--num-jobs / --job-index``), at the 75 Hz label frame rate that ``mert pretrain`` reads.

The source model (``--model``)
    Anything :func:`mert.load_model` loads (``mert-mini``, a released MERT by hub id or short name such as
    ``m-a-p/MERT-v1-95M`` / ``mert-v1-95m``, an exported folder, a training checkpoint ``.pt``),
    ``random:PRESET[:SEED]`` (a random-weight MERT, the benchmark's baseline), or ``pkg.module:factory``, whose
    ``factory()`` returns a representation (the benchmark's contract: ``sample_rate``, ``frame_rate``,
    ``num_layers``, ``dim``, ``identity()``, ``__call__(wav [B, T], lengths) -> (layers, frame_lengths)``).
    A MERT model is run as the benchmark runs it (benchmark.representations.MertRepresentation: waveforms
    standardised per item unless the config says otherwise, all ``num_layers + 1`` hidden states), and its
    identity is the benchmark's revision of the same weights. The benchmark's other names (``hf:``,
    ``hear:``, the handcrafted baselines) are loaded by the benchmark, which the ``mert`` package does not import
    (mert sits below it, tests/test_imports.py); reach them through a factory, e.g. a module ``myteachers.py``
    with ``def hubert(): from benchmark.registry import load_representation; return
    load_representation("hf:facebook/hubert-base-ls960")`` and ``--model myteachers:hubert``.

Layers (``--layer``)
    The benchmark's layer numbers: 0 is the input to the first transformer layer (the feature projection's
    output), ``i`` the output of transformer layer ``i``. HuBERT BASE clustered layer 6 of 12 of its first
    iteration (a middle layer: the top layers specialise in predicting the previous targets), HuBERT LARGE
    layer 9 of 12 of the second. For mert-mini (4 transformer layers, hidden states 0-4) we take **layer 3**:
    the top layer, 4, is the one the prediction heads read, specialised for the iteration-1 targets, and it has
    the worst mean rank over the 13 probed embedded tasks (2.46 of 0-4; results/runs/embedded-standard/
    mert-mini@265cd9b8, validation scores); layer 0 has no context (the conv + CQT input projected, close to
    the hand-made iteration-1 features); of the contextual layers 1-3, layer 3 has the best mean validation
    score (57.5 against 56.9 and 57.0; layer 4: 56.5). The differences are small (per-layer scores of
    mert-mini are flat), so this is HuBERT's rule (deep enough for context, below the target-specialised top)
    with the benchmark breaking the tie between 2 (the literal half depth) and 3 (HuBERT LARGE's 9 of 12).

Feature extraction
    The benchmark's frame-level extraction (benchmark/features.py, ``window = frames``), so that the clusters
    describe the features the benchmark probes: each file is cut into chunks of at most ``--chunk-seconds``
    (30 s, the benchmark's ``features.max_chunk_s``; a tail under 1 s joins the previous chunk), chunks go
    through the model in padded batches of at most ``--batch-seconds`` of audio (240 s, ``features.
    batch_seconds``) with their lengths, longest first, in float32. Memory is bounded for long files: one
    batch's hidden states at a time, and the file's frames of the chosen layer. The k-means fit and the
    labelling use the same extraction; the fit clusters the model's own frames (at its own rate). A file is
    decoded at 24 kHz (as for every teacher) and resampled to the model's rate when it has another one.

Frame rate
    Labels are on the pretraining grid: label frame ``i`` is encoder frame ``i`` (samples ``[320 i, 320 i +
    400)`` at 24 kHz, 75 Hz, ``mert.teachers.num_frames(n)`` frames per file). Source frame ``j`` of a chunk
    starting at sample ``a`` is at ``a / sample_rate + frame_offset_s + j / frame_rate`` seconds (the
    benchmark's frame times, which for MERT are the start of the frame's receptive field); label frame ``i``,
    at ``320 i / 24000`` s in the same convention, takes the cluster of the nearest source frame in time (ties:
    the earlier one). A 75 Hz MERT source therefore maps frame ``i`` to frame ``i``, except the one frame a
    chunk boundary loses (a 30 s chunk has 2249 frames, not 2250), which takes a neighbour's cluster; a
    50 Hz model (HuBERT, wav2vec 2.0 at 16 kHz) gives each of its frames to one or two label frames.

Settings recorded in ``plan.json`` (a rerun with others is refused): the source name, its identity (the
weights' hash), the layer, the chunk length, clusters and seed; the manifest's ``settings`` add the source's
sample and frame rates and the resampling rule. Default clusters: 500 (HuBERT's second iteration); the
``mini-iter2`` recipe uses 100, as ``mini`` does for its iteration-1 labels.
"""
from __future__ import annotations

import logging
from typing import Any

import numpy as np

from mert.source import MertSource, from_factory, is_factory_name

from . import FRAME_RATE, SAMPLE_RATE, num_frames
from .kmeans import KMeansTeacher

log = logging.getLogger(__name__)

NAME = "kmeans-layer"
DEFAULT_CLUSTERS = 500  # HuBERT's second iteration
CHUNK_SECONDS = 30.0  # benchmark.config.FeatureConfig.max_chunk_s
BATCH_SECONDS = 240.0  # benchmark.config.FeatureConfig.batch_seconds
RESAMPLING = "label frame i (at 320 i / 24000 s) <- the nearest source frame in time (ties: the earlier)"


def _benchmark_only(name: str) -> str:
    return (f"--model {name}: hf:, hear: and the handcrafted baselines are loaded by the benchmark, which "
            f"`python -m mert` does not import; wrap it in a factory (a module with def teacher(): from "
            f"benchmark.registry import load_representation; return load_representation({name!r})) and pass "
            f"--model module:teacher")


def load_source(name: str, device: str = "cpu"):
    """The representation ``--model name`` names (see the module doc); ValueError (one line) when it cannot be
    loaded."""
    name = str(name)
    if name.startswith(("hf:", "hear:")) or name in ("mfcc", "chroma", "cqt", "melspec"):
        raise ValueError(_benchmark_only(name))
    if name.startswith("random:"):
        import torch

        from mert import build_model

        preset, _, seed = name[len("random:"):].partition(":")
        if seed and not seed.isdigit():
            raise ValueError(f"--model {name}: the init seed after the preset must be a non-negative integer "
                             f"(random:PRESET or random:PRESET:SEED)")
        torch.manual_seed(int(seed or 0))
        try:
            rep = MertSource(build_model(preset), name)
        except (KeyError, ValueError) as e:
            raise ValueError(f"--model {name}: {e}") from None
    elif is_factory_name(name):
        rep = from_factory(name)
    else:
        from mert import load_model

        try:
            model = load_model(name)
        except (FileNotFoundError, OSError, ValueError, KeyError) as e:
            raise ValueError(f"--model {name}: cannot load it: {e}") from None
        rep = MertSource(model, name)
    if hasattr(rep, "to"):
        rep = rep.to(device) or rep
    return rep


# ------------------------------------------------------------------------------------------------ extraction
def chunk_bounds(n: int, sample_rate: int, chunk_seconds: float = CHUNK_SECONDS) -> list[tuple[int, int]]:
    """(start, end) samples of the chunks an ``n``-sample file goes through the model in: the benchmark's
    frame-level segments (benchmark.features._segments): chunks of ``chunk_seconds``, a tail under 1 s merged
    into the previous chunk."""
    chunk = int(round(chunk_seconds * sample_rate))
    bounds = list(range(0, n, chunk)) + [n]
    segs = list(zip(bounds[:-1], bounds[1:]))
    if len(segs) > 1 and segs[-1][1] - segs[-1][0] < sample_rate:
        segs[-2:] = [(segs[-2][0], n)]
    return segs


def layer_frames(rep, wav: np.ndarray, layer: int, chunk_seconds: float = CHUNK_SECONDS,
                 batch_seconds: float = BATCH_SECONDS) -> tuple[np.ndarray, np.ndarray]:
    """Layer ``layer``'s frames of one file (``wav`` at ``rep.sample_rate``) and their times, as the benchmark
    extracts a frame-level task (benchmark.features: :func:`chunk_bounds`, then padded batches of at most
    ``batch_seconds`` of audio, longest chunk first, float32). Returns (frames [T', dim] float32, times [T']
    float64 seconds: chunk start + ``frame_offset_s`` + j / ``frame_rate``)."""
    import torch

    sr, rate = int(rep.sample_rate), float(rep.frame_rate)
    offset = float(getattr(rep, "frame_offset_s", 0.0) or 0.0)
    wav = np.asarray(wav, dtype=np.float32)
    segs = chunk_bounds(len(wav), sr, chunk_seconds)
    out: list[np.ndarray | None] = [None] * len(segs)
    order = sorted(range(len(segs)), key=lambda i: -(segs[i][1] - segs[i][0]))
    budget = int(batch_seconds * sr)
    i = 0
    while i < len(order):
        longest = segs[order[i]][1] - segs[order[i]][0]
        batch = order[i:i + max(1, budget // max(longest, 1))]
        i += len(batch)
        x = torch.zeros(len(batch), longest)
        lengths = torch.tensor([segs[j][1] - segs[j][0] for j in batch], dtype=torch.long)
        for b, j in enumerate(batch):
            a, e = segs[j]
            x[b, : e - a] = torch.from_numpy(wav[a:e])
        with torch.inference_mode():
            layers, flen = rep(x, lengths)
        if len(layers) != int(rep.num_layers):
            raise ValueError(f"representation {rep.name!r} returned {len(layers)} layers, declared num_layers="
                             f"{rep.num_layers}")
        h = layers[layer].detach().float().cpu()
        del layers, x  # one batch's hidden states at a time
        for b, j in enumerate(batch):
            out[j] = h[b, : int(flen[b])].numpy().copy()
        del h
    frames = [o for o in out if o is not None]
    dim = int(rep.dim)
    feats = np.concatenate(frames, 0) if frames else np.zeros((0, dim), np.float32)
    times = np.concatenate([a / sr + offset + np.arange(len(o)) / rate for (a, _), o in zip(segs, out)]) \
        if segs else np.zeros(0)
    return feats.astype(np.float32, copy=False), times.astype(np.float64)


def nearest_frames(times: np.ndarray, n_labels: int, label_rate: float = FRAME_RATE) -> np.ndarray:
    """[n_labels] index of the source frame (``times``, increasing seconds) nearest to each label frame
    ``i / label_rate`` (ties: the earlier source frame)."""
    t = np.arange(n_labels) / float(label_rate)
    times = np.asarray(times, dtype=np.float64)
    if len(times) == 0:
        raise ValueError("nearest_frames: no source frames")
    right = np.clip(np.searchsorted(times, t), 0, len(times) - 1)
    left = np.clip(right - 1, 0, len(times) - 1)
    take_right = np.abs(times[right] - t) < np.abs(t - times[left]) - 1e-9
    return np.where(take_right, right, left).astype(np.int64)


# ------------------------------------------------------------------------------------------------ the teacher
class KMeansLayerTeacher(KMeansTeacher):
    """k-means clusters of layer ``layer`` of ``rep`` (or of the model ``source`` names), on the 75 Hz label
    grid. ``fit`` / ``save`` / ``load`` are :class:`~mert.teachers.kmeans.KMeansTeacher`'s (standardised
    features, MiniBatchKMeans, ``kmeans.npz``) on the source's own frames."""

    def __init__(self, source: str, layer: int, n_clusters: int | None = None, seed: int = 0,
                 fit_files: int = 1000, fit_frames: int = 250_000, chunk_seconds: float = CHUNK_SECONDS,
                 batch_seconds: float = BATCH_SECONDS, device: str = "cpu", rep=None):
        self.name = NAME
        self.source = str(source)
        self.rep = rep if rep is not None else load_source(self.source, device)
        check_layer(self.rep, layer, self.source)
        check_lengths(chunk_seconds, batch_seconds)
        self.layer = int(layer)
        self.identity = str(self.rep.identity())
        self.feature = f"layer {self.layer} of {self.source} ({self.identity})"
        self.codebook_size = int(n_clusters or DEFAULT_CLUSTERS)
        self.seed = seed
        self.fit_files = fit_files
        self.fit_frames = fit_frames
        self.chunk_seconds = float(chunk_seconds)
        self.batch_seconds = float(batch_seconds)
        self.centers: np.ndarray | None = None
        self.mean: np.ndarray | None = None
        self.std: np.ndarray | None = None
        log.info("kmeans-layer: layer %d of %s (%s; %d layers, %g Hz at %d Hz) -> %d clusters at %g Hz", self.layer,
                 self.source, self.identity, int(self.rep.num_layers), float(self.rep.frame_rate),
                 int(self.rep.sample_rate), self.codebook_size, FRAME_RATE)

    def source_frames(self, wav: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(frames [T', dim], times [T']) of the layer for 24 kHz audio, at the source's own rate."""
        sr = int(self.rep.sample_rate)
        if sr != SAMPLE_RATE:
            from mert.audio import resample

            wav = resample(np.asarray(wav, dtype=np.float32), SAMPLE_RATE, sr)
        return layer_frames(self.rep, wav, self.layer, self.chunk_seconds, self.batch_seconds)

    def features(self, wav: np.ndarray) -> np.ndarray:
        """The source's frames of the layer (what the fit samples)."""
        return self.source_frames(wav)[0]

    def settings(self) -> dict[str, Any]:
        return {"feature": "layer", "model": self.source, "identity": self.identity, "layer": self.layer,
                "n_clusters": self.codebook_size, "seed": self.seed, "source_sample_rate": int(self.rep.sample_rate),
                "source_frame_rate": float(self.rep.frame_rate), "chunk_seconds": self.chunk_seconds,
                "batch_seconds": self.batch_seconds, "resampling": RESAMPLING}

    def label(self, wav: np.ndarray) -> np.ndarray:
        """[num_frames(n), 1] cluster ids on the 75 Hz label grid (empty when the source has no frame)."""
        if self.centers is None:
            raise RuntimeError("k-means teacher used before fit()/load()")
        n = num_frames(len(wav))
        if n == 0:
            return np.zeros((0, 1), np.int64)
        frames, times = self.source_frames(wav)
        if len(frames) == 0:
            return np.zeros((0, 1), np.int64)
        return self.assign(frames)[nearest_frames(times, n)][:, None]


def check_layer(rep, layer: int, source: str) -> None:
    n = int(rep.num_layers)
    if not 0 <= int(layer) < n:
        raise ValueError(f"--layer {layer}: {source} has layers 0 .. {n - 1} (0 = the input to the first "
                         f"transformer layer, i = the output of layer i)")


def check_lengths(chunk_seconds: float, batch_seconds: float) -> None:
    if not chunk_seconds >= 1 or not batch_seconds > 0:
        raise ValueError(f"--chunk-seconds must be >= 1 (got {chunk_seconds}) and --batch-seconds > 0 (got "
                         f"{batch_seconds})")


def plan_settings(args, rep) -> dict[str, Any]:
    """What ``plan.json`` records for this teacher beyond the common settings (a rerun with others is
    refused); checks the layer against the loaded model first."""
    check_layer(rep, args.layer, args.model)
    return {"model": str(args.model), "identity": str(rep.identity()), "layer": int(args.layer),
            "chunk_seconds": float(getattr(args, "chunk_seconds", CHUNK_SECONDS))}


def check_args(args) -> None:
    """--model / --layer: required by kmeans-layer, refused with any other teacher."""
    model, layer = getattr(args, "model", None), getattr(args, "layer", None)
    if args.teacher == NAME:
        if model is None or layer is None:
            raise ValueError(f"--teacher {NAME} needs --model SOURCE and --layer L (e.g. --model mert-mini "
                             f"--layer 3)")
        check_lengths(getattr(args, "chunk_seconds", CHUNK_SECONDS), getattr(args, "batch_seconds", BATCH_SECONDS))
    elif model is not None or layer is not None:
        raise ValueError(f"--model / --layer apply to --teacher {NAME} only, not {args.teacher}")
