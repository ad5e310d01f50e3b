"""Whole-track separation evaluation in chunks (benchmark.separation): the masks of a long track computed
EVAL_CHUNK_FRAMES frames at a time with the LSTM state carried over equal those of one call."""
from types import SimpleNamespace

import numpy as np
import torch

import benchmark.separation as sep_mod
from benchmark.separation import MaskEstimator, _SeparationInputs


def test_chunked_masks_equal_one_call(monkeypatch):
    torch.manual_seed(0)
    net = MaskEstimator(in_dim=8, n_freq=17, n_stems=2, hidden=16, layers=2, n_layers_mix=3).eval()
    T = 250
    feats = torch.randn(T, 3, 8)
    mag = torch.rand(17, T)
    fake = SimpleNamespace(
        sc=SimpleNamespace(hop=8),
        stft=lambda x: mag.to(torch.complex64),
        logmag=lambda m: torch.log1p(m).transpose(-1, -2),
        frame_features=lambda split, tr, samples: feats[np.asarray(samples) // 8],
    )
    with torch.no_grad():
        whole = net(feats[None], torch.log1p(mag).T[None])[0]
        monkeypatch.setattr(sep_mod, "EVAL_CHUNK_FRAMES", 64)  # 4 chunks, the last one short
        X, chunked = _SeparationInputs.track_masks(fake, net, "test", {"mix": np.zeros(T * 8)})
    assert chunked.shape == whole.shape == (2, 17, T)
    assert torch.allclose(chunked, whole, atol=1e-6)


def test_a_track_shorter_than_a_chunk_is_one_call():
    # every embedded separation track (20 s) is one chunk: its masks are computed exactly as before
    assert sep_mod.EVAL_CHUNK_FRAMES * 256 / 24000 >= 30.0
