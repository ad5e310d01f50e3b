"""Windowed extraction: exact tiling of the frame grid, per-window equality, overlap, memory-light modes."""
from __future__ import annotations

import pytest
import torch

from mert import build_model
from mert.extract import extract_windows, iter_windows, plan_windows


@pytest.fixture(scope="module")
def model():
    return build_model("debug", seed=0).eval()


def _track(n, seed=0):
    return torch.randn(n, generator=torch.Generator().manual_seed(seed)) * 0.3


@pytest.mark.parametrize("n", [400, 5000, 24000 + 80, 24000 + 81, 60000, 100001])
@pytest.mark.parametrize("hop_s", [None, 0.5, 0.3])
def test_plan_tiles_every_frame_once(model, n, hop_s):
    plan = plan_windows(n, model, window_s=1.0, hop_s=hop_s)
    assert plan.total_frames == model.num_frames(n)
    covered = torch.zeros(plan.total_frames, dtype=torch.int)
    for (a, b), s in zip(plan.owned, plan.starts):
        covered[a:b] += 1
        assert s % 320 == 0 and s + min(plan.num_samples, n) <= n
    assert torch.all(covered == 1)
    if n > plan.num_samples:
        assert plan.num_samples == 75 * 320 + 80 and plan.starts[-1] + plan.num_samples <= n


def test_frames_equal_the_owning_window_alone(model):
    n = 24000 * 3 + 1234
    wav = _track(n)
    res = extract_windows(model, wav, window_s=1.0, batch_size=2)
    assert res.frames.shape == (model.num_layers + 1, model.num_frames(n), model.dim)
    plan = plan_windows(n, model, 1.0)
    with torch.no_grad():
        for k, ((a, b), s) in enumerate(zip(plan.owned, plan.starts)):
            alone = model(wav[s: s + plan.num_samples].unsqueeze(0))
            f0 = s // 320
            for layer, h in enumerate(alone.hidden_states):
                assert (res.frames[layer, a:b] - h[0, a - f0: b - f0]).abs().max().item() < 1e-5
                assert (res.window_means[k, layer] - h[0].mean(0)).abs().max().item() < 1e-5


def test_overlapping_hop_and_layer_selection(model):
    n = 24000 * 2 + 777
    wav = _track(n, seed=1)
    full = extract_windows(model, wav, window_s=1.0)
    ov = extract_windows(model, wav, window_s=1.0, hop_s=0.5, layers=[0, -1], dtype=torch.float16)
    assert ov.layers == [0, model.num_layers] and ov.frames.dtype == torch.float16
    assert ov.frames.shape == (2, model.num_frames(n), model.dim)
    assert len(ov.window_starts) > len(full.window_starts)
    # first frames come from the first window in both plans
    assert torch.allclose(ov.frames[1, :10].float(), full.frames[-1, :10], atol=1e-2)


def test_short_track_is_one_full_context_window(model):
    wav = _track(20000, seed=2)
    res = extract_windows(model, wav, window_s=5.0)
    with torch.no_grad():
        ref = model(wav.unsqueeze(0))
    assert len(res.window_starts) == 1
    for layer, h in enumerate(ref.hidden_states):
        assert (res.frames[layer] - h[0]).abs().max().item() < 1e-5


def test_means_only_mode_and_errors(model):
    wav = _track(50000, seed=3)
    res = extract_windows(model, torch.stack([wav, wav]), window_s=1.0, frames=False)  # stereo [2, T]
    assert res.frames is None and res.window_means.shape == (len(res.window_starts), model.num_layers + 1, model.dim)
    windows = list(iter_windows(model, wav, window_s=1.0, batch_size=3))
    assert [k for k, _, _ in windows] == list(range(len(res.window_starts)))
    assert torch.allclose(windows[0][2].mean(1), res.window_means[0], atol=1e-5)
    with pytest.raises(ValueError, match="hop_s"):
        extract_windows(model, wav, window_s=1.0, hop_s=2.0)
    with pytest.raises(ValueError, match="400"):
        extract_windows(model, wav[:100])


def test_resampled_input(model):
    wav = _track(16000 * 2, seed=4)
    res = extract_windows(model, wav, window_s=1.0, sample_rate=16000)
    assert res.frames.shape[1] == model.num_frames(48000)
