"""In-batch noise mixture (MERT): segments of other clips of the batch added to a clip at gain 1.0.

With probability ``prob`` per clip, 1-3 segments (``min_segments``..``max_segments``) of a random length in
``seconds`` (0.5-1.0 s for 95M, 0.5-1.5 s for 330M) are cut from random other clips of the batch (within
their valid samples) and added at random positions of the clip. Targets (codes, CQT) are computed from the
clean clips, so callers keep the clean batch. A per-clip seeded generator makes the mixture of a clip
independent of the process it runs in.
"""
from __future__ import annotations

import torch


def mix_in_batch(wav: torch.Tensor, lengths: torch.Tensor, seeds: list[int], prob: float = 0.5,
                 min_segments: int = 1, max_segments: int = 3, seconds: tuple[float, float] = (0.5, 1.0),
                 gain: float = 1.0, sample_rate: int = 24000) -> tuple[torch.Tensor, list[int]]:
    """Return (mixed copy of ``wav`` [B, T], number of segments added per clip)."""
    b = wav.shape[0]
    out = wav.clone()
    added = [0] * b
    if prob <= 0 or b < 2:
        return out, added
    lens = lengths.tolist()
    for i in range(b):
        g = torch.Generator().manual_seed(int(seeds[i]))
        if float(torch.rand((), generator=g)) >= prob:
            continue
        k = int(torch.randint(min_segments, max_segments + 1, (), generator=g))
        for _ in range(k):
            j = int(torch.randint(0, b - 1, (), generator=g))
            j = j + 1 if j >= i else j  # another clip
            dur = seconds[0] + (seconds[1] - seconds[0]) * float(torch.rand((), generator=g))
            n = min(int(dur * sample_rate), lens[i], lens[j])
            if n <= 0:
                continue
            src = int(torch.randint(0, lens[j] - n + 1, (), generator=g))
            dst = int(torch.randint(0, lens[i] - n + 1, (), generator=g))
            out[i, dst:dst + n] += gain * wav[j, src:src + n]
            added[i] += 1
    return out, added
