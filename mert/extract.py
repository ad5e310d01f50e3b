"""Windowed feature extraction for long audio, with memory that does not grow with the track's model cost.

MERT attends over the whole input, so one forward over a 10-minute track needs memory quadratic in its length
(tens of GB). :func:`extract_windows` cuts the track into windows (5 s by default, the pretraining crop length),
runs them in small batches and stitches every layer's frames back onto the track's 75 Hz frame grid.

Windows and the frame grid
    A window of ``window_s`` seconds holds ``w = round(window_s * frame_rate)`` frames; the model is given
    ``w * 320 + 80`` samples (the receptive field of the last frame reaches 80 samples past the window), so
    consecutive windows at hop ``w`` frames tile the grid exactly: every frame of the track is computed by
    exactly one window and the stitched output has ``model.num_frames(len(track))`` frames. With a smaller hop
    the windows overlap and each frame is taken from the window whose centre is nearest (the frame with the most
    context on both sides). The last window is shifted back to end at the track's end, so it has full length.

Windowed and full-context features differ
    A frame computed inside a 5 s window only attends to that window, whereas a full-track forward attends to
    the whole track (and the conv front end's GroupNorm statistics are the window's, not the track's). The
    results are therefore *not* equal to ``model(track)``; they equal, frame for frame, ``model(window)`` of the
    window that owns the frame. Use the same window settings for every item you compare (the benchmark does).

Memory
    Peak memory is the model plus one batch of windows plus the output. With ``frames=False`` only per-window
    means are kept (constant in the track length); stitched frames cost ``layers x frames x dim`` values
    (``dtype=torch.float16`` halves that). See scripts/bench_forward.py --long-audio for measured numbers.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Sequence

import torch


@dataclass
class WindowPlan:
    starts: list[int]  # first sample of each window
    num_samples: int  # samples given to the model per window (all windows, unless the track is shorter)
    frames_per_window: int
    owned: list[tuple[int, int]]  # track frames [f0, f1) each window writes into the stitched output
    total_frames: int


@dataclass
class WindowedFeatures:
    frames: torch.Tensor | None  # [num_layers_kept, total_frames, D] stitched frames (None if frames=False)
    window_means: torch.Tensor  # [num_windows, num_layers_kept, D] mean over each window's frames (float32)
    window_starts: torch.Tensor  # [num_windows] first sample of each window
    layers: list[int]  # which hidden-state indices were kept (0 = input to the first layer)
    sample_rate: int
    frame_rate: float

    @property
    def num_frames(self) -> int:
        return 0 if self.frames is None else self.frames.shape[1]


def plan_windows(num_samples: int, model, window_s: float = 5.0, hop_s: float | None = None) -> WindowPlan:
    """Where the windows of a ``num_samples`` track go (see the module docstring)."""
    cfg = model.config
    stride, rf = cfg.total_stride, cfg.receptive_field
    w = max(1, round(window_s * cfg.frame_rate))
    h = w if hop_s is None else round(hop_s * cfg.frame_rate)
    if not 1 <= h <= w:
        raise ValueError(f"hop_s={hop_s} must be positive and at most window_s={window_s} (in frames: hop {h}, "
                         f"window {w}); a larger hop leaves frames uncomputed")
    win = w * stride + rf - stride
    total = cfg.num_frames(num_samples)
    if total < 1:
        raise ValueError(f"track of {num_samples} samples is shorter than the receptive field ({rf} samples)")
    if num_samples <= win:
        return WindowPlan([0], num_samples, total, [(0, total)], total)
    starts = []
    s = 0
    while s + win < num_samples:
        starts.append(s)
        s += h * stride
    last = (num_samples - win) // stride * stride
    if not starts or last > starts[-1]:
        starts.append(last)
    f0 = [st // stride for st in starts]
    bounds = [0] + [(f0[k] + f0[k + 1] + w) // 2 for k in range(len(starts) - 1)] + [total]
    owned = [(bounds[k], bounds[k + 1]) for k in range(len(starts))]
    for k, (a, b) in enumerate(owned):  # invariant: a window only writes frames it computed
        assert f0[k] <= a <= b <= f0[k] + w, (k, a, b, f0[k], w)
    return WindowPlan(starts, win, w, owned, total)


def _window_batches(model, x: torch.Tensor, plan: WindowPlan, batch_size: int):
    """Yield (window indices, MertOutput) per batch of windows; one batch alive at a time."""
    device = next(model.parameters()).device
    with torch.inference_mode():
        for b0 in range(0, len(plan.starts), batch_size):
            idx = list(range(b0, min(b0 + batch_size, len(plan.starts))))
            batch = torch.stack([x[plan.starts[k]: plan.starts[k] + plan.num_samples] for k in idx]).to(device)
            yield idx, model(batch)


def _layers(model, layers) -> list[int]:
    n = model.num_layers + 1
    return list(range(n)) if layers is None else [int(i) % n for i in layers]


def iter_windows(model, wav, window_s: float = 5.0, hop_s: float | None = None, batch_size: int = 1,
                 layers: Sequence[int] | None = None, sample_rate: int | None = None
                 ) -> Iterator[tuple[int, int, torch.Tensor]]:
    """Yield ``(window index, start sample, hidden [num_layers_kept, frames, D])`` per window, on the CPU.

    Only one batch of windows is alive at a time. ``wav``: one clip ([T], or [C, T] averaged to mono), at
    ``sample_rate`` (default: the model's; other rates are resampled)."""
    x, _ = model.prepare_input(wav, sample_rate)
    plan = plan_windows(x.shape[-1], model, window_s, hop_s)
    keep = _layers(model, layers)
    for idx, out in _window_batches(model, x[0], plan, batch_size):
        stacked = torch.stack([out.hidden_states[i] for i in keep], 1).float().cpu()  # [b, L', n, D]
        del out
        for j, k in enumerate(idx):
            yield k, plan.starts[k], stacked[j]


def extract_windows(model, wav, window_s: float = 5.0, hop_s: float | None = None, batch_size: int = 1,
                    layers: Sequence[int] | None = None, frames: bool = True, dtype: torch.dtype = torch.float32,
                    sample_rate: int | None = None) -> WindowedFeatures:
    """Every layer's features for a whole track, computed window by window (see the module docstring).

    Returns :class:`WindowedFeatures`: ``frames`` [layers, model.num_frames(T), D] stitched on the track's frame
    grid (in ``dtype``; skipped with ``frames=False``) and ``window_means`` [windows, layers, D]. ``layers``
    selects hidden-state indices (default all ``num_layers + 1``). Windowed and full-context outputs differ."""
    x, _ = model.prepare_input(wav, sample_rate)
    plan = plan_windows(x.shape[-1], model, window_s, hop_s)
    keep = _layers(model, layers)
    out_frames = torch.empty(len(keep), plan.total_frames, model.dim, dtype=dtype) if frames else None
    means = torch.empty(len(plan.starts), len(keep), model.dim, dtype=torch.float32)
    stride = model.config.total_stride
    for idx, out in _window_batches(model, x[0], plan, batch_size):
        for li, layer in enumerate(keep):  # copied layer by layer straight into the result: no extra buffers
            h = out.hidden_states[layer]
            means[idx, li] = h.float().mean(1).cpu()
            if out_frames is not None:
                for j, k in enumerate(idx):
                    a, b = plan.owned[k]
                    f0 = plan.starts[k] // stride
                    out_frames[li, a:b] = h[j, a - f0: b - f0].to(device="cpu", dtype=dtype)
        del out
    return WindowedFeatures(out_frames, means, torch.tensor(plan.starts), keep, model.sample_rate, model.frame_rate)
