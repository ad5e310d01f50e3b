"""Whole-track separation evaluation in chunks (benchmark.separation): the estimates of a long track computed
EVAL_CHUNK_FRAMES frames at a time with the LSTM state carried over equal those of one call."""
from types import SimpleNamespace

import numpy as np
import pytest
import torch

import benchmark.separation as sep_mod
from benchmark.separation import SeparationHead, _SeparationInputs


@pytest.mark.parametrize("spectral", [False, True])
def test_chunked_estimates_equal_one_call(monkeypatch, spectral):
    torch.manual_seed(0)
    net = SeparationHead(in_dim=8, n_freq=17, n_out=2, hidden=16, layers=2, n_layers_mix=3,
                         spectral_bins=17 if spectral else 0).eval()
    T = 250
    feats = torch.randn(T, 3, 8)
    mag = torch.rand(17, T)
    spec_of = (lambda m: torch.log1p(m).transpose(-1, -2)) if spectral else (lambda m: None)
    fake = SimpleNamespace(
        sc=SimpleNamespace(hop=8),
        stft=lambda x: mag.to(torch.complex64),
        spectral=spec_of,
        frame_features=lambda split, tr, samples: feats[np.asarray(samples) // 8],
    )
    with torch.no_grad():
        s = spec_of(mag)
        whole = net(feats[None], mag[None], None if s is None else s[None])[0]
        monkeypatch.setattr(sep_mod, "EVAL_CHUNK_FRAMES", 64)  # 4 chunks, the last one short
        chunked = _SeparationInputs.track_estimates(fake, net, "test", {"mix": np.zeros(T * 8)})
    assert chunked.shape == whole.shape == (2, 17, T)
    assert torch.allclose(chunked, whole, atol=1e-5)


def test_head_outputs_are_nonnegative_multiples_of_the_mixture_magnitude():
    torch.manual_seed(1)
    net = SeparationHead(in_dim=4, n_freq=9, n_out=3, hidden=8, layers=1, n_layers_mix=2).eval()
    mag = torch.rand(2, 9, 20)
    mag[:, 3] = 0.0  # a silent bin stays silent in every stem
    est = net(torch.randn(2, 20, 2, 4), mag)
    assert est.shape == (2, 3, 9, 20)
    assert (est >= 0).all() and (est[:, :, 3] == 0).all()


def test_a_track_shorter_than_a_chunk_is_one_call():
    # every embedded separation track (20 s) is one chunk
    assert sep_mod.EVAL_CHUNK_FRAMES * 320 / 24000 >= 30.0
