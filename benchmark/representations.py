"""Representations: the contract (``REQUIRED``, ``check_contract``, ``ModelError``), the MERT adapter and the
handcrafted baselines. A leaf module: it imports nothing of the benchmark, so every adapter (benchmark.external,
user factories) and the registry build on it.

A representation maps mono audio at its ``sample_rate`` to every layer's frames::

    rep.name, rep.sample_rate, rep.frame_rate, rep.num_layers, rep.dim, rep.identity()
    layers, frame_lengths = rep(wav [B, T] float tensor, lengths LongTensor [B])
    # layers: list of num_layers tensors [B, T', D]; frame_lengths: valid frames per item

Optional attributes: ``to(device)``; ``pooling`` ("mean" by default; "mean_std" appends the standard
deviation over frames, which the handcrafted baselines use: their frames are short-time descriptors and
the usual baseline is their statistics over time); ``config_overrides`` (a dict merged into the run config
at the model layer). The framework, not the representation, windows long audio, pools and mixes layers.

Handcrafted baselines are one-layer representations at 24 kHz with a 320-sample hop (75 frames/s, MERT's
rate), computed item by item on the valid samples only (so padding can never leak into them):

- ``mfcc``: 20 MFCCs (64 mel bands, 1024-point FFT) + deltas + delta-deltas (60 per frame)
- ``chroma``: 12-bin chroma (4096-point STFT power through librosa's chroma filter bank, max-normalised per
  frame)
- ``cqt``: 84-bin log-magnitude CQT (12 bins/octave, 7 octaves from C1), nnAudio
- ``melspec``: 128-band log-mel spectrogram (1024-point FFT)
"""
from __future__ import annotations

import hashlib
from typing import Any

from mert.source import REQUIRED, MertSource  # the contract is defined once, with the MERT source


class ModelError(ValueError):
    """A representation that cannot be loaded or does not meet the contract (one line for the user)."""


def check_contract(rep, name: str) -> None:
    """``rep`` has the :data:`REQUIRED` attributes, is callable, and declares positive sizes
    (mert.source.check_contract, raising :class:`ModelError`)."""
    from mert.source import FactoryError, check_contract as check

    try:
        check(rep, name)
    except FactoryError as e:
        raise ModelError(str(e)) from None


HANDCRAFTED_VERSION = 1  # bump when a baseline's computation changes (part of its identity)
HOP = 320
SAMPLE_RATE = 24000


class Handcrafted:
    """A one-layer representation of short-time features; subclasses define ``frames(wav_1d)``."""

    sample_rate = SAMPLE_RATE
    frame_rate = SAMPLE_RATE / HOP
    num_layers = 1
    pooling = "mean_std"
    autocast = False  # never under bf16 autocast (benchmark.precision.autocasts): logs of small magnitudes
    config_overrides: dict[str, Any] = {}
    dim: int
    name: str
    params: dict[str, Any] = {}

    def __init__(self) -> None:
        self.device = "cpu"
        self._module = None

    def identity(self) -> str:
        text = f"{self.name}:{HANDCRAFTED_VERSION}:{sorted(self.params.items())}"
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def to(self, device):
        self.device = str(device)
        if self._module is not None:
            self._module = self._module.to(device)
        return self

    def num_frames(self, num_samples: int) -> int:
        return num_samples // HOP + 1  # centred STFT frames

    def module(self):
        if self._module is None:
            self._module = self.build().to(self.device)
        return self._module

    def __call__(self, wav, lengths):
        import torch

        if wav.ndim != 2:
            raise ValueError(f"{self.name}: expected wav [B, T], got {tuple(wav.shape)}")
        lengths = torch.as_tensor(lengths, dtype=torch.long)
        outs = []
        for b in range(wav.shape[0]):
            x = wav[b, : int(lengths[b])].to(self.device).float()
            with torch.no_grad():
                f = self.frames(x)  # [T', D]
            n = self.num_frames(int(lengths[b]))
            f = f[:n]
            if f.shape[0] < n:  # never expected; keep shapes consistent
                f = torch.nn.functional.pad(f, (0, 0, 0, n - f.shape[0]))
            outs.append(f)
        n = torch.tensor([o.shape[0] for o in outs], dtype=torch.long)
        out = torch.zeros(len(outs), int(n.max()), self.dim, device=outs[0].device)
        for b, o in enumerate(outs):
            out[b, : o.shape[0]] = o
        return [out], n


class MFCC(Handcrafted):
    name = "mfcc"
    dim = 60
    params = {"n_mfcc": 20, "n_mels": 64, "n_fft": 1024, "hop": HOP, "deltas": 2}

    def build(self):
        import torchaudio

        return torchaudio.transforms.MFCC(
            sample_rate=SAMPLE_RATE, n_mfcc=20,
            melkwargs={"n_fft": 1024, "hop_length": HOP, "n_mels": 64, "center": True},
        )

    def frames(self, x):
        import torch
        import torchaudio

        m = self.module()(x)  # [20, T']
        d1 = torchaudio.functional.compute_deltas(m)
        d2 = torchaudio.functional.compute_deltas(d1)
        return torch.cat([m, d1, d2], 0).T


class MelSpec(Handcrafted):
    name = "melspec"
    dim = 128
    params = {"n_mels": 128, "n_fft": 1024, "hop": HOP, "log": "log(x+1e-6)"}

    def build(self):
        import torchaudio

        return torchaudio.transforms.MelSpectrogram(sample_rate=SAMPLE_RATE, n_fft=1024, hop_length=HOP,
                                                    n_mels=128, center=True)

    def frames(self, x):
        import torch

        return torch.log(self.module()(x) + 1e-6).T


class _CQTBase(Handcrafted):
    bins_per_octave = 12
    n_octaves = 7
    fmin = 32.70319566257483  # C1

    def build(self):
        from nnAudio.features import CQT2010v2

        return CQT2010v2(sr=SAMPLE_RATE, hop_length=HOP, fmin=self.fmin,
                         n_bins=self.bins_per_octave * self.n_octaves, bins_per_octave=self.bins_per_octave,
                         pad_mode="constant", output_format="Magnitude", verbose=False)

    def cqt(self, x):
        import torch

        # nnAudio's CQT2010 (octave-wise downsampling, fast on the CPU); frames = T // hop + 1
        return self.module()(x[None])[0].T.to(torch.float32)  # [T', bins]


class CQT(_CQTBase):
    name = "cqt"
    dim = 84
    params = {"fmin": "C1", "bins_per_octave": 12, "n_bins": 84, "hop": HOP, "log": "log(x+1e-6)"}

    def frames(self, x):
        import torch

        return torch.log(self.cqt(x) + 1e-6)


class Chroma(Handcrafted):
    """12-bin chroma from a 4096-point STFT (5.9 Hz bins at 24 kHz) and librosa's chroma filter bank."""

    name = "chroma"
    dim = 12
    n_fft = 4096
    params = {"n_fft": 4096, "hop": HOP, "filters": "librosa.filters.chroma", "norm": "max", "power": 2}

    def build(self):
        import librosa
        import torch
        import torchaudio

        class _M(torch.nn.Module):
            def __init__(self, n_fft):
                super().__init__()
                self.spec = torchaudio.transforms.Spectrogram(n_fft=n_fft, hop_length=HOP, center=True, power=2.0)
                fb = librosa.filters.chroma(sr=SAMPLE_RATE, n_fft=n_fft, n_chroma=12, tuning=0.0, base_c=True)
                self.register_buffer("fb", torch.tensor(fb, dtype=torch.float32))

            def forward(self, x):
                return self.fb @ self.spec(x)  # [12, T']

        return _M(self.n_fft)

    def frames(self, x):
        import torch

        if x.shape[-1] <= self.n_fft // 2:  # reflect padding needs more samples than half the window
            x = torch.nn.functional.pad(x, (0, self.n_fft // 2 + 1 - x.shape[-1]))
        c = self.module()(x).T  # [T', 12], pitch classes from C
        return c / c.max(dim=1, keepdim=True).values.clamp_min(1e-8)


HANDCRAFTED = {"mfcc": MFCC, "chroma": Chroma, "cqt": CQT, "melspec": MelSpec}


class MertRepresentation(MertSource):
    """Any encoder that ``mert.load_model`` / ``mert.build_model`` returns, as a representation
    (mert.source.MertSource, with the name or path it was loaded from as ``source``).

    Returns all ``num_layers + 1`` hidden states (the feature projection output and every transformer
    layer). Waveforms are normalised per item over their valid samples (zero mean, unit variance) as the
    MERT feature extractor does (``do_normalize``), unless the model's config says it does not.
    """

    config_overrides: dict[str, Any] = {}

    def __init__(self, model, name: str, source: str):
        super().__init__(model, name)
        self.source = source
