"""Span masking of encoder frames (HuBERT / wav2vec 2.0 style, as in fairseq's ``compute_mask_indices``).

For a clip of ``L`` valid frames, ``max(min_spans, int(prob * L / span + u))`` span starts (``u`` uniform in
[0, 1)) are drawn without replacement from ``[0, L - span]`` and ``span`` frames from each start are masked;
spans may overlap, so with prob 0.8 and span 5 about 1 - exp(-0.8) = 55 % of the frames end up masked.
Padding frames are never masked. Each clip has its own seeded generator, so a clip's mask does not depend
on which batch, rank or process it lands in (needed for DDP = single-process equality and exact resume).
"""
from __future__ import annotations

import torch


def clip_seed(*parts: int) -> int:
    """A 63-bit seed from integers (seed, step, clip id ...), stable across processes and runs."""
    h = 1469598103934665603
    for p in parts:
        h ^= int(p) & 0xFFFFFFFFFFFFFFFF
        h = (h * 1099511628211) & 0xFFFFFFFFFFFFFFFF
    return h & 0x7FFFFFFFFFFFFFFF


def span_mask(num_valid: int, prob: float, span: int, min_spans: int, generator: torch.Generator) -> torch.Tensor:
    """Bool [num_valid] mask of one clip."""
    mask = torch.zeros(num_valid, dtype=torch.bool)
    if num_valid <= 0 or prob <= 0:
        return mask
    span = min(span, num_valid)
    starts_available = num_valid - span + 1
    u = float(torch.rand((), generator=generator))
    n = max(min_spans, int(prob * num_valid / span + u))
    n = min(n, starts_available)
    starts = torch.randperm(starts_available, generator=generator)[:n]
    idx = (starts[:, None] + torch.arange(span)[None]).reshape(-1)
    mask[idx] = True
    return mask


def compute_mask(frame_lengths: torch.Tensor, num_frames: int, seeds: list[int], prob: float = 0.8,
                 span: int = 5, min_spans: int = 2) -> torch.Tensor:
    """Bool [B, num_frames]: True = masked (replaced by the learned mask embedding, scored by the loss)."""
    out = torch.zeros(len(seeds), num_frames, dtype=torch.bool)
    for i, (n, s) in enumerate(zip(frame_lengths.tolist(), seeds)):
        g = torch.Generator().manual_seed(int(s))
        n = min(int(n), num_frames)
        out[i, :n] = span_mask(n, prob, span, min_spans, g)
    return out
