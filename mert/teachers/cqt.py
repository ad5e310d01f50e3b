"""The CQT teacher (MERT's musical target), computed on the training device from the clean audio.

nnAudio's ``CQT1992v2`` with MERT's settings: 336 bins, 48 bins per octave, fmin 32.7 Hz, hop 320 at
24 kHz, linear magnitude. Instead of nnAudio's own centre padding (reflection, which fails on inputs shorter
than half its kernel, about 1.4 s here), the input is zero-padded so that CQT frame ``i`` is centred on
sample ``320 i + 200``, the centre of encoder frame ``i``; the output is then cut to the encoder's
``num_frames(n)`` frames. Any input length works, and a crop starting at sample ``320 k`` gets the same
frames as the whole file from frame ``k`` on (up to the zero padding at the file edges).
"""
from __future__ import annotations

import torch
from torch import nn

from . import HOP, RECEPTIVE_FIELD, SAMPLE_RATE, num_frames


class CQTTeacher(nn.Module):
    """``cqt(wav [B, T]) -> [B, num_frames(T), n_bins]`` linear CQT magnitude (no gradient)."""

    def __init__(self, n_bins: int = 336, bins_per_octave: int = 48, fmin: float = 32.7,
                 sample_rate: int = SAMPLE_RATE, hop: int = HOP):
        super().__init__()
        from nnAudio.features.cqt import CQT1992v2

        self.n_bins = n_bins
        self.hop = hop
        self.cqt = CQT1992v2(sr=sample_rate, hop_length=hop, fmin=fmin, n_bins=n_bins,
                             bins_per_octave=bins_per_octave, output_format="Magnitude", center=False,
                             verbose=False)
        self.kernel_width = int(self.cqt.kernel_width)
        for b in self.buffers():
            b.requires_grad_(False)

    @torch.no_grad()
    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        if wav.dim() == 1:
            wav = wav[None]
        n = wav.shape[-1]
        frames = num_frames(n)
        if frames == 0:
            return wav.new_zeros(wav.shape[0], 0, self.n_bins)
        left = self.kernel_width // 2 - RECEPTIVE_FIELD // 2
        needed = self.hop * (frames - 1) + self.kernel_width
        right = max(0, needed - left - n)
        x = torch.nn.functional.pad(wav.float(), (left, right))
        with torch.autocast(device_type=x.device.type, enabled=False):
            c = self.cqt(x)  # [B, bins, F']
        return c[:, :, :frames].transpose(1, 2).contiguous()
