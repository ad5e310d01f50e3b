"""The separation probe's decoder (benchmark.separation.wiener_estimates): MARBLE's per-stem Wiener filter of
[stem, residual] through Open-Unmix's own ``filtering.wiener``."""
import numpy as np
import pytest
import torch

from benchmark.metrics import global_sdr
from benchmark.separation import wiener_estimates

SR, N_FFT, HOP = 24000, 2048, 320


def _stft(x):
    return torch.stft(torch.as_tensor(x, dtype=torch.float32), N_FFT, HOP, window=torch.hann_window(N_FFT),
                      return_complex=True)


def _istft(Y, n):
    return torch.istft(Y.to(torch.complex64), N_FFT, HOP, window=torch.hann_window(N_FFT), length=n).numpy()


def _two_stems(seconds=3.0, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(int(SR * seconds)) / SR
    low = 0.5 * np.sin(2 * np.pi * 220 * t) * (1 + 0.5 * np.sin(2 * np.pi * 0.7 * t))
    high = 0.05 * rng.standard_normal(len(t))
    high = np.convolve(high, np.ones(3) / 3, "same") * (t % 1.0 < 0.6)
    return np.stack([low, high]).astype(np.float32)


def test_no_iterations_is_the_magnitude_with_the_mixture_phase():
    stems = _two_stems()
    X = _stft(stems.sum(0))
    est = torch.rand((2,) + tuple(X.shape))
    Y = wiener_estimates(est, X, iterations=0).to(torch.complex128)
    want = est.double() * torch.exp(1j * torch.angle(X.to(torch.complex128)))
    assert torch.allclose(Y, want, atol=1e-6 * float(want.abs().max()))


@pytest.mark.parametrize("iterations,window", [(1, 10_000), (1, 7), (2, 40)])
def test_equals_open_unmix_called_directly(iterations, window):
    """The closed form for one channel against Open-Unmix's own ``wiener`` (MARBLE's decoder), called window by
    window as MARBLE's ``decoder`` does: equal to 1e-6 of the largest value (measured: 2e-7 with 2 iterations)."""
    from openunmix.filtering import wiener

    stems = _two_stems(seconds=1.0)
    X = _stft(stems.sum(0))
    est = torch.stack([_stft(s).abs() for s in stems]) * torch.tensor([1.3, 0.6])[:, None, None]  # imperfect
    est[1, :, 5] = 0.0  # a frame where a stem is silent
    ours = wiener_estimates(est, X, iterations=iterations, window_frames=window).to(torch.complex128)
    mix = torch.view_as_real(X.to(torch.complex128)).permute(1, 0, 2)[:, :, None]  # [T, F, 1, 2]
    T = X.shape[1]
    for k in range(2):
        ref = torch.zeros(X.shape, dtype=torch.complex128)
        for a in range(0, T, window):
            b = min(T, a + window)
            y = wiener(est[k].double().T[a:b, :, None, None], mix[a:b], iterations, softmask=False, residual=True)
            ref[:, a:b] = torch.view_as_complex(y[:, :, 0, :, 0].contiguous()).T
        # Open-Unmix's phase (its own atan2) adds a float32 pi (8.7e-8 rad off) where the real part is negative
        err = float((ours[k] - ref).abs().max() / ref.abs().max())
        assert err < 1e-6, err


@pytest.mark.parametrize("iterations", [0, 1])
def test_oracle_magnitudes_separate_well(iterations):
    stems = _two_stems()
    X = _stft(stems.sum(0))
    est = torch.stack([_stft(s).abs() for s in stems])
    out = np.stack([_istft(Y, stems.shape[1]) for Y in wiener_estimates(est, X, iterations)])
    sdr = global_sdr(stems, out)
    assert (sdr > 12).all(), sdr
    # one EM iteration refines the mixture-phase estimate of the quiet stem (measured: 15.5 -> 16.7 dB)
    if iterations:
        base = np.stack([_istft(Y, stems.shape[1]) for Y in wiener_estimates(est, X, 0)])
        assert global_sdr(stems, out)[1] > global_sdr(stems, base)[1] + 0.5
