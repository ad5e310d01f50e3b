"""Small synthetic music for the pretraining tests: note sequences (harmonic tones) with noise-burst drums.

The tiny embedded pretraining collection (tasks.embedded.prepare_pretraining) is used when it exists; these
files keep the tests independent of it and fast (a few seconds of audio per file).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

SR = 24000


def synth_clip(seconds: float, rng: np.random.Generator, sr: int = SR) -> np.ndarray:
    n = int(seconds * sr)
    out = np.zeros(n, np.float32)
    t = 0
    scale = np.array([0, 2, 4, 5, 7, 9, 11])
    root = int(rng.integers(45, 60))
    while t < n:
        dur = int(sr * rng.choice([0.125, 0.25, 0.5]))
        pitch = root + int(rng.choice(scale)) + 12 * int(rng.integers(0, 2))
        f0 = 440.0 * 2 ** ((pitch - 69) / 12)
        k = np.arange(min(dur, n - t)) / sr
        env = np.exp(-k * rng.uniform(2, 8))
        tone = sum((0.5 ** h) * np.sin(2 * np.pi * f0 * (h + 1) * k) for h in range(4))
        out[t:t + len(k)] += (0.3 * env * tone).astype(np.float32)
        if rng.random() < 0.4:  # a drum hit
            m = min(int(0.05 * sr), n - t)
            out[t:t + m] += (0.3 * rng.standard_normal(m) * np.exp(-np.arange(m) / (0.01 * sr))).astype(np.float32)
        t += dur
    return out


def make_audio_folder(folder: Path, num_files: int = 8, seconds=(3.0, 6.0), seed: int = 0) -> Path:
    from mert.audio import write_audio

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(num_files):
        s = float(rng.uniform(*seconds)) if isinstance(seconds, tuple) else float(seconds)
        write_audio(folder / f"clip{i:03d}.flac", synth_clip(s, rng), SR)
    return folder


def self_initialised_encodec(seed: int = 0):
    """The 24 kHz EnCodec model, random weights, codebooks initialised from its own residuals on music."""
    import torch
    from encodec import EncodecModel

    torch.manual_seed(seed)
    model = EncodecModel.encodec_model_24khz(pretrained=False).eval()
    model.set_target_bandwidth(6.0)
    rng = np.random.default_rng(seed)
    x = torch.from_numpy(synth_clip(3.0, rng))[None, None]
    with torch.no_grad():
        residual = model.encoder(x)[0].T  # [F, 128]
        for layer in model.quantizer.vq.layers:
            cb = layer._codebook
            pick = torch.from_numpy(rng.choice(len(residual), cb.embed.shape[0], replace=True))
            cb.embed.copy_(residual[pick] + 1e-3 * torch.randn_like(residual[pick]))
            cb.inited.fill_(1)
            q = cb.decode(cb.encode(residual))
            residual = residual - q
    return model
