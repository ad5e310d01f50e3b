"""Pseudo-label teachers for MERT pretraining.

* ``encodec``: EnCodec 24 kHz RVQ codes at 6 kbps (8 codebooks x 1024 codes, 75 Hz), from clean audio.
* ``kmeans-mfcc``: MiniBatchKMeans clusters of MFCC (+ deltas) frames (HuBERT's first iteration).
* ``kmeans-logmel-chroma``: MiniBatchKMeans clusters of log-mel + chroma frames (MERT-v0).
* ``kmeans-mfcc+logmel-chroma``: both of the above as two codebooks (timbre and pitch-class targets).
* ``kmeans-layer`` (:mod:`mert.teachers.kmeans_layer`): MiniBatchKMeans clusters of one layer of a trained model
  (``--model SOURCE --layer L``; HuBERT's second iteration), resampled to the 75 Hz label frames.
* ``cqt`` (:mod:`mert.teachers.cqt`): the CQT regression target, computed on the fly on the training device.

Offline labels are stored by :mod:`mert.teachers.storage` (int16 codes + offsets in ``.npy`` shards, a
``labels.json`` manifest with the frame rate) and read back by :class:`~mert.teachers.storage.LabelStore`.

Frame convention shared by every teacher and the encoder: at 24 kHz, label frame ``i`` of a file describes the
encoder's frame ``i``, i.e. samples ``[320 i, 320 i + 400)`` (hop 320 = total conv stride, 400 = receptive
field); a crop starting at sample ``320 k`` therefore has labels ``k, k + 1, ...``.
"""
from __future__ import annotations

SAMPLE_RATE = 24000
HOP = 320
RECEPTIVE_FIELD = 400
FRAME_RATE = SAMPLE_RATE / HOP  # 75.0

TEACHERS = ("encodec", "kmeans-mfcc", "kmeans-logmel-chroma", "kmeans-mfcc+logmel-chroma", "kmeans-layer")


def num_frames(num_samples: int) -> int:
    """Encoder frames for ``num_samples`` at 24 kHz (valid convolutions: kernel 400, stride 320)."""
    n = int(num_samples)
    return 0 if n < RECEPTIVE_FIELD else (n - RECEPTIVE_FIELD) // HOP + 1
