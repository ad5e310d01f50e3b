"""The CQT teacher (MERT's musical target), computed on the training device from the clean audio.

nnAudio's ``CQT1992v2`` with MERT's settings: 336 bins, 48 bins per octave, fmin 32.7 Hz, hop 320 at
24 kHz, linear magnitude (librosa normalisation). Instead of nnAudio's own centre padding (reflection, which
fails on inputs shorter than half its kernel, about 1.4 s here), the input is zero-padded so that CQT frame
``i`` is centred on sample ``320 i + 200``, the centre of encoder frame ``i``; the output is then cut to the
encoder's ``num_frames(n)`` frames. Any input length works, and a crop starting at sample ``320 k`` gets the
same frames as the whole file from frame ``k`` on (up to the zero padding at the file edges).

Speed: nnAudio stores every bin's kernel at the full width of the lowest bin (65536 taps here) although a
bin an octave higher needs half as many. ``forward`` applies nnAudio's kernels octave by octave, each group
cut to the taps where its kernels are non-zero: the same numbers as nnAudio's convolution (tested) for about
a third of the multiply-adds.
"""
from __future__ import annotations

import torch
from torch import nn

from . import HOP, RECEPTIVE_FIELD, SAMPLE_RATE, num_frames


class CQTTeacher(nn.Module):
    """``cqt(wav [B, T]) -> [B, num_frames(T), n_bins]`` linear CQT magnitude (no gradient).

    ``log_gain`` > 0 returns ``log(1 + log_gain * magnitude)`` instead (0, the default, is MERT's linear
    magnitude). Linear magnitude puts most of the MSE in a few loud bass bins: on the embedded collection
    (84 bins, 12 per octave) predicting each bin's mean already reaches MSE 0.127, which is where a small
    model's CQT loss stops. With gain 10 the mean predictor's MSE is 0.42, of which a per-frame loudness
    predictor explains only 0.05: the rest is spectral shape (pitch, harmony)."""

    def __init__(self, n_bins: int = 336, bins_per_octave: int = 48, fmin: float = 32.7,
                 sample_rate: int = SAMPLE_RATE, hop: int = HOP, log_gain: float = 0.0):
        super().__init__()
        if log_gain < 0:
            raise ValueError(f"heads.cqt_log_gain must be >= 0 (0 = linear magnitude), got {log_gain}")
        self.log_gain = float(log_gain)
        from nnAudio.features.cqt import CQT1992v2

        self.n_bins = n_bins
        self.hop = hop
        self._reference_args = dict(sr=sample_rate, hop_length=hop, fmin=fmin, n_bins=n_bins,
                                    bins_per_octave=bins_per_octave)
        cqt = CQT1992v2(sr=sample_rate, hop_length=hop, fmin=fmin, n_bins=n_bins, bins_per_octave=bins_per_octave,
                        output_format="Magnitude", center=False, verbose=False)
        self.kernel_width = int(cqt.kernel_width)
        scale = torch.sqrt(cqt.lenghts.float()).view(-1, 1, 1)  # nnAudio's "librosa" normalisation
        real, imag = cqt.cqt_kernels_real * scale, -cqt.cqt_kernels_imag * scale  # [bins, 1, W]
        self.groups: list[tuple[int, int, int]] = []  # (first bin, last bin + 1, first tap)
        for g, lo in enumerate(range(0, n_bins, bins_per_octave)):
            hi = min(n_bins, lo + bins_per_octave)
            support = (real[lo:hi].abs() + imag[lo:hi].abs()).sum((0, 1)).nonzero().flatten()
            first, last = int(support.min()), int(support.max()) + 1
            self.groups.append((lo, hi, first))
            # real and imaginary parts as one convolution: rows [real bins, imaginary bins]
            self.register_buffer(f"kernel{g}", torch.cat([real[lo:hi, :, first:last], imag[lo:hi, :, first:last]]),
                                 persistent=False)

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
        x = torch.nn.functional.pad(wav.float(), (left, right))[:, None]  # [B, 1, T']
        out = []
        with torch.autocast(device_type=x.device.type, enabled=False):
            for g, (lo, hi, first) in enumerate(self.groups):
                k = getattr(self, f"kernel{g}").float()  # fp32 even inside a model cast to bf16
                y = torch.nn.functional.conv1d(x[:, :, first:], k, stride=self.hop)[:, :, :frames]
                re, im = y[:, : hi - lo], y[:, hi - lo:]
                out.append(torch.sqrt(re.pow(2) + im.pow(2)))
        mag = torch.cat(out, 1).transpose(1, 2).contiguous()
        return torch.log1p(self.log_gain * mag) if self.log_gain else mag

    @torch.no_grad()
    def reference(self, wav: torch.Tensor) -> torch.Tensor:
        """The same frames from nnAudio's own full-width convolution (slow; for tests)."""
        from nnAudio.features.cqt import CQT1992v2

        n = wav.shape[-1]
        frames = num_frames(n)
        left = self.kernel_width // 2 - RECEPTIVE_FIELD // 2
        right = max(0, self.hop * (frames - 1) + self.kernel_width - left - n)
        x = torch.nn.functional.pad(wav.float(), (left, right))
        c = CQT1992v2(**self._reference_args, output_format="Magnitude", center=False, verbose=False).to(wav.device)(x)
        return c[:, :, :frames].transpose(1, 2).contiguous()
