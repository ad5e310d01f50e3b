"""k-means teachers: MiniBatchKMeans over MFCC frames (HuBERT iteration 1) or log-mel + chroma (MERT-v0).

Features are computed at the encoder's frames (hop 320 at 24 kHz, frame ``i`` centred on sample
``320 i + 200``, no centre padding), so feature frame ``i`` and encoder frame ``i`` describe the same audio
and a file of ``n`` samples has exactly ``mert.teachers.num_frames(n)`` label frames.

* MFCC: 13 coefficients from a 400-sample window (the encoder's receptive field) + deltas + delta-deltas (39).
* log-mel + chroma: a 2048-sample window (for pitch resolution) zero-padded so that it is centred like the
  encoder frame; 128 log-mel bands + 12 chroma bins (140 dims).

The model (cluster centres + the feature mean/std used to standardise) is saved as ``kmeans.npz`` in the
labels folder; it is fitted on a random sample of frames and then applied to every frame.

``kmeans-mfcc+logmel-chroma`` (:class:`MultiKMeansTeacher`) labels every frame twice, once per feature set,
as two codebooks of the same size; the pretraining heads predict both (the CE is summed over codebooks, as
for EnCodec's eight).
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from . import HOP, RECEPTIVE_FIELD, SAMPLE_RATE, num_frames
from .storage import atomic_savez

log = logging.getLogger(__name__)

FEATURES = {"kmeans-mfcc": "mfcc", "kmeans-logmel-chroma": "logmel-chroma"}
DEFAULT_CLUSTERS = {"kmeans-mfcc": 100, "kmeans-logmel-chroma": 500, "kmeans-mfcc+logmel-chroma": 100}
# Two codebooks, one per feature set (like EnCodec's codebooks: several targets per frame, one head each):
# timbre from the MFCC clusters, pitch class from the log-mel + chroma clusters.
MULTI = {"kmeans-mfcc+logmel-chroma": ("kmeans-mfcc", "kmeans-logmel-chroma")}
CHROMA_FFT = 2048


def _mfcc_transform():
    import torchaudio

    return torchaudio.transforms.MFCC(
        sample_rate=SAMPLE_RATE, n_mfcc=13, log_mels=True,  # log(mel + 1e-6) per frame (no clip-wide top_db)
        melkwargs=dict(n_fft=RECEPTIVE_FIELD, win_length=RECEPTIVE_FIELD, hop_length=HOP, center=False,
                       n_mels=40, f_min=20.0, f_max=SAMPLE_RATE / 2),
    )


def mfcc_features(wav: np.ndarray) -> np.ndarray:
    """[num_frames(n), 39]: MFCC + deltas + delta-deltas on the encoder's frames."""
    import torch
    import torchaudio

    x = torch.as_tensor(np.asarray(wav, dtype=np.float32))
    if x.numel() < RECEPTIVE_FIELD:
        return np.zeros((0, 39), np.float32)
    m = _mfcc_transform()(x)  # [13, F]
    d1 = torchaudio.functional.compute_deltas(m)
    d2 = torchaudio.functional.compute_deltas(d1)
    return torch.cat([m, d1, d2], 0).T.contiguous().numpy()


def chroma_filterbank(n_fft: int = CHROMA_FFT, sample_rate: int = SAMPLE_RATE, fmin: float = 55.0,
                      fmax: float = 5000.0, width: float = 0.5) -> np.ndarray:
    """[12, n_fft // 2 + 1] soft assignment of STFT bins to pitch classes (C = 0), Gaussian in semitones."""
    freqs = np.arange(n_fft // 2 + 1) * sample_rate / n_fft
    fb = np.zeros((12, len(freqs)), np.float32)
    ok = (freqs >= fmin) & (freqs <= fmax)
    pitch = 12 * np.log2(freqs[ok] / 440.0) + 69  # MIDI number
    for c in range(12):
        d = (pitch - c) % 12
        d = np.minimum(d, 12 - d)
        fb[c, ok] = np.exp(-0.5 * (d / width) ** 2)
    return fb


def logmel_chroma_features(wav: np.ndarray) -> np.ndarray:
    """[num_frames(n), 140]: 128 log-mel bands + 12 chroma bins on the encoder's frames."""
    import torch
    import torchaudio

    x = torch.as_tensor(np.asarray(wav, dtype=np.float32))
    frames = num_frames(x.numel())
    if frames == 0:
        return np.zeros((0, 140), np.float32)
    pad = (CHROMA_FFT - RECEPTIVE_FIELD) // 2  # centre the long window where the encoder frame is centred
    x = torch.nn.functional.pad(x, (pad, pad))
    spec = torch.stft(x, CHROMA_FFT, hop_length=HOP, window=torch.hann_window(CHROMA_FFT), center=False,
                      return_complex=True).abs().pow(2)  # [1025, F]
    spec = spec[:, :frames]
    mel_fb = torchaudio.functional.melscale_fbanks(CHROMA_FFT // 2 + 1, 20.0, SAMPLE_RATE / 2, 128, SAMPLE_RATE,
                                                   norm="slaney", mel_scale="slaney")
    logmel = torch.log(spec.T @ mel_fb + 1e-6)  # [F, 128]
    chroma = spec.T @ torch.from_numpy(chroma_filterbank()).T  # [F, 12]
    chroma = chroma / chroma.amax(dim=1, keepdim=True).clamp_min(1e-8)
    return torch.cat([logmel, chroma], 1).numpy().astype(np.float32)


FEATURE_FUNCS = {"mfcc": mfcc_features, "logmel-chroma": logmel_chroma_features}


class KMeansTeacher:
    """Cluster ids of frame features; ``fit`` on a sample of files, then ``label`` every file."""

    num_codebooks = 1

    def __init__(self, name: str, n_clusters: int | None = None, seed: int = 0,
                 fit_files: int = 1000, fit_frames: int = 250_000):
        if name not in FEATURES:
            raise ValueError(f"unknown k-means teacher {name!r}; choose one of {sorted(FEATURES)}")
        self.name = name
        self.feature = FEATURES[name]
        self.codebook_size = int(n_clusters or DEFAULT_CLUSTERS[name])
        self.seed = seed
        self.fit_files = fit_files
        self.fit_frames = fit_frames
        self.centers: np.ndarray | None = None
        self.mean: np.ndarray | None = None
        self.std: np.ndarray | None = None

    def features(self, wav: np.ndarray) -> np.ndarray:
        return FEATURE_FUNCS[self.feature](wav)

    def settings(self) -> dict:
        return {"feature": self.feature, "n_clusters": self.codebook_size, "seed": self.seed}

    # fitting --------------------------------------------------------------------------------------------
    def fit(self, files: list[Path], read) -> None:
        """Fit on frames sampled from up to ``fit_files`` files; ``read(path)`` returns 24 kHz mono audio, or
        None for a file to leave out. A file that ``read`` cannot use (``mert.audio.AudioError``: unreadable,
        empty, missing) is skipped with a warning, as ``python -m mert labels`` skips it when labelling."""
        from sklearn.cluster import MiniBatchKMeans

        from mert.audio import AudioError

        rng = np.random.default_rng(self.seed)
        chosen = rng.permutation(len(files))[: self.fit_files]
        per_file = max(1, self.fit_frames // max(1, len(chosen)))
        feats = []
        for i in chosen:
            try:
                wav = read(files[i])
            except AudioError as e:
                log.warning("skipping %s", e)
                wav = None
            if wav is None:
                continue
            f = self.features(wav)
            if len(f) > per_file:
                f = f[rng.choice(len(f), per_file, replace=False)]
            feats.append(f)
        if not feats:
            raise ValueError(f"k-means: none of the {len(chosen)} files sampled for fitting could be read (see "
                             "the skipped files above); check the --audio folder")
        x = np.concatenate(feats, 0).astype(np.float64)
        if len(x) < self.codebook_size:
            raise ValueError(
                f"k-means needs at least {self.codebook_size} frames to fit {self.codebook_size} clusters, the "
                f"sample has {len(x)}; use more audio or fewer clusters (--clusters)")
        self.mean = x.mean(0)
        self.std = x.std(0) + 1e-5
        km = MiniBatchKMeans(n_clusters=self.codebook_size, batch_size=min(10_000, len(x)), n_init=3,
                             max_iter=100, random_state=self.seed)
        km.fit((x - self.mean) / self.std)
        self.centers = km.cluster_centers_.astype(np.float32)
        skipped = len(chosen) - len(feats)
        log.info("k-means %s: fitted %d clusters on %d frames from %d files%s", self.name, self.codebook_size,
                 len(x), len(feats), f" ({skipped} skipped)" if skipped else "")

    def save(self, path: Path) -> None:
        atomic_savez(path, {"centers": self.centers, "mean": self.mean, "std": self.std,
                             "feature": np.array(self.feature), "n_clusters": np.array(self.codebook_size)})

    def load(self, path: Path) -> None:
        z = np.load(path)
        if str(z["feature"]) != self.feature or int(z["n_clusters"]) != self.codebook_size:
            raise ValueError(f"{path}: k-means model was fitted for {z['feature']} with {int(z['n_clusters'])} "
                             f"clusters, not {self.feature} with {self.codebook_size}; use another --out folder")
        self.centers, self.mean, self.std = z["centers"], z["mean"], z["std"]

    # applying -------------------------------------------------------------------------------------------
    def assign(self, f: np.ndarray) -> np.ndarray:
        """[F] int64 id of the nearest centre of each standardised feature frame of ``f`` [F, dims]."""
        import torch

        if self.centers is None:
            raise RuntimeError("k-means teacher used before fit()/load()")
        x = torch.from_numpy(((f - self.mean) / self.std).astype(np.float32))
        c = torch.from_numpy(np.asarray(self.centers, dtype=np.float32))
        ids = [torch.cdist(x[i:i + 8192], c).argmin(1) for i in range(0, len(x), 8192)]
        out = torch.cat(ids) if ids else torch.zeros(0, dtype=torch.long)
        return out.numpy().astype(np.int64)

    def label(self, wav: np.ndarray) -> np.ndarray:
        """[num_frames(n), 1] cluster ids."""
        if self.centers is None:
            raise RuntimeError("k-means teacher used before fit()/load()")
        return self.assign(self.features(wav))[:, None]


class MultiKMeansTeacher:
    """One k-means codebook per feature set (``MULTI``): labels ``[F, K]``, all codebooks of one size."""

    def __init__(self, name: str, n_clusters: int | None = None, seed: int = 0,
                 fit_files: int = 1000, fit_frames: int = 250_000):
        if name not in MULTI:
            raise ValueError(f"unknown multi-codebook k-means teacher {name!r}; choose one of {sorted(MULTI)}")
        self.name = name
        self.codebook_size = int(n_clusters or DEFAULT_CLUSTERS[name])
        self.members = [KMeansTeacher(m, self.codebook_size, seed=seed, fit_files=fit_files,
                                      fit_frames=fit_frames) for m in MULTI[name]]
        self.num_codebooks = len(self.members)
        self.seed = seed

    def settings(self) -> dict:
        return {"feature": [m.feature for m in self.members], "n_clusters": self.codebook_size,
                "seed": self.seed}

    def fit(self, files: list[Path], read) -> None:
        # each member reads its own sample; the audio is decoded once per member (fitting is minutes at most)
        for m in self.members:
            m.fit(files, read)

    def save(self, path: Path) -> None:
        """One ``kmeans.npz`` with each codebook's centres and standardisation under ``<key>.<feature>``."""
        arrays = {"feature": np.array("+".join(m.feature for m in self.members)),
                  "n_clusters": np.array(self.codebook_size)}
        for m in self.members:
            arrays.update({f"centers.{m.feature}": m.centers, f"mean.{m.feature}": m.mean,
                           f"std.{m.feature}": m.std})
        atomic_savez(path, arrays)

    def load(self, path: Path) -> None:
        z = np.load(path)
        want = "+".join(m.feature for m in self.members)
        if str(z["feature"]) != want or int(z["n_clusters"]) != self.codebook_size:
            raise ValueError(f"{path}: k-means model was fitted for {z['feature']} with {int(z['n_clusters'])} "
                             f"clusters, not {want} with {self.codebook_size}; use another --out folder")
        for m in self.members:
            m.centers, m.mean, m.std = (z[f"{k}.{m.feature}"] for k in ("centers", "mean", "std"))

    def label(self, wav: np.ndarray) -> np.ndarray:
        """[num_frames(n), K] cluster ids, one column per feature set."""
        cols = [m.label(wav) for m in self.members]
        return np.concatenate(cols, 1)
