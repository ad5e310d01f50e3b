"""benchmark.metrics' block-wise BSS-eval SDR against fast_bss_eval on whole signals.

The chunked path sums the correlations block by block; fast_bss_eval FFTs the whole signal. The statistics
agree to float64 rounding (~1e-15) and the solve stage is fast_bss_eval's own, so the SDRs agree to ~1e-12 dB
wherever the 30-iteration conjugate-gradient solve is well conditioned (noise-like signals). On strongly tonal
signals that solve amplifies rounding: fast_bss_eval's own SDR then moves by up to tenths of a dB when nothing
but its FFT size changes (trailing zeros), and the chunked SDR is held to that spread instead.
"""
from __future__ import annotations

import tracemalloc
import warnings

import numpy as np
import pytest
from scipy.signal import lfilter

from benchmark import metrics as M

fast_bss_eval = pytest.importorskip("fast_bss_eval")
from fast_bss_eval.numpy.helpers import _normalize  # noqa: E402
from fast_bss_eval.numpy.metrics import compute_stats_2, square_cosine_metrics  # noqa: E402

TOL_DB = 1e-6


def _old(ref, est):
    """The previous sdr_per_track: fast_bss_eval on the whole track."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # SIR = inf for a single source (not used)
        return np.asarray(fast_bss_eval.bss_eval_sources(np.ascontiguousarray(ref, dtype=np.float64),
                                                         np.ascontiguousarray(est, dtype=np.float64),
                                                         filter_length=512, compute_permutation=False,
                                                         use_cg_iter=30)[0])


def _random(rng, n_src, n):
    ref = rng.standard_normal((n_src, n))
    est = ref + 0.3 * rng.standard_normal((n_src, n))
    return ref, est


def _realistic(rng, n_src, n, noise, sr=24000):
    """References: 5 sinusoids each plus white noise; estimate: the reference through a short FIR filter, plus
    the next source (interference) and noise."""
    t = np.arange(n) / sr
    ref = np.zeros((n_src, n))
    for c in range(n_src):
        for _ in range(5):
            ref[c] += rng.uniform(0.1, 1) * np.sin(2 * np.pi * rng.uniform(50, 5000) * t + rng.uniform(0, 6))
        ref[c] += noise * rng.standard_normal(n)
    h = rng.standard_normal(16) * np.exp(-np.arange(16) / 3)
    est = lfilter(h, [1.0], ref, axis=-1) + 0.5 * np.roll(ref, 1, axis=0) + 0.3 * rng.standard_normal((n_src, n))
    return ref, est


@pytest.mark.parametrize("n_src", [1, 2, 3, 4])
def test_statistics_equal_compute_stats_2(n_src):
    rng = np.random.default_rng(n_src)
    for ref, est in (_random(rng, n_src, 30001), _realistic(rng, n_src, 30001, noise=0.01)):
        acf0, xc0 = compute_stats_2(_normalize(ref, axis=-1), _normalize(est, axis=-1), length=512)
        for block in (4096, 30001, M.SDR_BLOCK, 1500):
            acf, xc = M._bss_correlations(ref, est, 512, block)
            assert acf.shape == acf0.shape == (1024, n_src, n_src) and xc.shape == xc0.shape == (512, n_src, n_src)
            np.testing.assert_allclose(acf, acf0, rtol=0, atol=1e-12)  # unit-norm signals: lag 0 == 1
            np.testing.assert_allclose(xc, xc0, rtol=0, atol=1e-12)


def test_solve_stage_is_fast_bss_eval():
    """Fed fast_bss_eval's own statistics, the solve stage gives square_cosine_metrics' coherences exactly."""
    rng = np.random.default_rng(0)
    ref, est = _realistic(rng, 3, 20000, noise=0.01)
    acf, xc = compute_stats_2(_normalize(ref, axis=-1), _normalize(est, axis=-1), length=512)
    got = M._square_cosines_from_stats(acf, xc, 512, 30)
    want = square_cosine_metrics(ref, est, filter_length=512, use_cg_iter=30, pairwise=False)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)


@pytest.mark.parametrize("n_src", [1, 2, 3, 4])
@pytest.mark.parametrize("n", [30000, 12345, 1024])
def test_sdr_equals_bss_eval_random(n_src, n):
    rng = np.random.default_rng(10 * n_src + n)
    ref, est = _random(rng, n_src, n)
    want = _old(ref, est)
    for block in (4096, 1000, M.SDR_BLOCK):  # many blocks, a last partial block, one block
        np.testing.assert_allclose(M._sdr_chunked(ref, est, block=block), want, rtol=0, atol=TOL_DB)
    np.testing.assert_allclose(M.sdr_per_track(ref, est), want, rtol=0, atol=TOL_DB)
    coh = M._square_cosines_chunked(ref, est, 512, 30, block=4096)
    coh0 = square_cosine_metrics(ref, est, filter_length=512, use_cg_iter=30, pairwise=False)
    for g, w in zip(coh, coh0):
        np.testing.assert_allclose(g, w, rtol=0, atol=1e-12)


@pytest.mark.parametrize("n_src", [1, 2, 3, 4])
def test_sdr_equals_bss_eval_realistic(n_src, monkeypatch):
    """Sinusoids in noise, filtered estimate + interference: through the public function with many blocks."""
    rng = np.random.default_rng(100 + n_src)
    ref, est = _realistic(rng, n_src, 30000, noise=3.0)
    want = _old(ref, est)
    monkeypatch.setattr(M, "SDR_BLOCK", 4096)
    np.testing.assert_allclose(M.sdr_per_track(ref, est), want, rtol=0, atol=TOL_DB)
    acc = M.SeparationScores([f"s{i}" for i in range(n_src)])
    acc.add(ref, est)
    np.testing.assert_allclose([acc.per[f"s{i}"][0] for i in range(n_src)], want, rtol=0, atol=TOL_DB)


def test_sdr_tonal_within_fast_bss_eval_rounding_spread():
    """Strongly tonal references (sinusoids 40 dB above the noise): 30 CG iterations amplify float64 rounding,
    so fast_bss_eval itself is only reproducible to its spread under trailing zeros (same SDR in exact
    arithmetic, another FFT size); the chunked SDR must lie within a few times that spread."""
    rng = np.random.default_rng(7)
    diffs, spread = [], [1e-6]
    for n_src in (2, 4):
        ref, est = _realistic(rng, n_src, 30000, noise=0.01)
        want = _old(ref, est)
        for pad in (3000, 40000):
            z = np.zeros((n_src, pad))
            spread.append(np.abs(_old(np.hstack([ref, z]), np.hstack([est, z])) - want).max())
        diffs.append(np.abs(M._sdr_chunked(ref, est, block=4096) - want).max())
    assert max(diffs) <= 4 * max(spread), (diffs, spread)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_memmap_same_numbers(tmp_path, dtype, monkeypatch):
    rng = np.random.default_rng(3)
    ref, est = _random(rng, 4, 30000)
    ref[2] = 0.0  # a silent stem: SeparationScores scores the other three, selected by index
    est[2] = 0.1 * rng.standard_normal(30000)
    mm = {}
    for name, x in (("ref", ref), ("est", est)):
        m = np.lib.format.open_memmap(tmp_path / f"{name}.npy", mode="w+", dtype=dtype, shape=x.shape)
        m[:] = x
        m.flush()
        mm[name] = np.load(tmp_path / f"{name}.npy", mmap_mode="r")
    r64, e64 = mm["ref"].astype(np.float64), mm["est"].astype(np.float64)  # the old path's whole-array copy
    active = [0, 1, 3]
    want = _old(r64[active], e64[active])
    monkeypatch.setattr(M, "SDR_BLOCK", 4096)
    np.testing.assert_allclose(M.sdr_per_track(mm["ref"][active], mm["est"][active]), want, rtol=0, atol=TOL_DB)
    acc = M.SeparationScores(["a", "b", "c", "d"])
    acc.add(mm["ref"], mm["est"])
    assert acc.per["c"] == []
    np.testing.assert_allclose([acc.per[s][0] for s in "abd"], want, rtol=0, atol=TOL_DB)
    res = acc.result()
    assert np.isnan(res["bss_sdr_c"]) and res["bss_sdr_a"] == pytest.approx(want[0])
    assert np.isnan(res["sdr_c"]) and res["sdr_a"] == pytest.approx(M.global_sdr(r64[:1], e64[:1])[0])


def test_memmap_read_block_by_block(tmp_path, monkeypatch):
    """A float32 memmap track is never converted whole: peak traced allocations stay far below its float64 size."""
    n_src, n = 4, 1_000_000
    rng = np.random.default_rng(0)
    mr = np.lib.format.open_memmap(tmp_path / "ref.npy", mode="w+", dtype=np.float32, shape=(n_src, n))
    me = np.lib.format.open_memmap(tmp_path / "est.npy", mode="w+", dtype=np.float32, shape=(n_src, n))
    for s in range(0, n, 250_000):  # written in pieces too
        x = rng.standard_normal((n_src, min(250_000, n - s)))
        mr[:, s:s + 250_000] = x
        me[:, s:s + 250_000] = x + 0.3 * rng.standard_normal(x.shape)
    mr.flush()
    me.flush()
    del mr, me
    ref = np.load(tmp_path / "ref.npy", mmap_mode="r")
    est = np.load(tmp_path / "est.npy", mmap_mode="r")
    monkeypatch.setattr(M, "SDR_BLOCK", 8192)
    tracemalloc.start()
    try:
        acc = M.SeparationScores(["a", "b", "c", "d"])
        acc.add(ref, est)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < n_src * n * 8 / 4, peak  # the float64 copy alone would be n_src * n * 8 bytes
    assert all(len(acc.per[s]) == 1 and 9 < acc.per[s][0] < 12 for s in "abcd")  # ~10 log10(1 / 0.09)


def test_validation():
    rng = np.random.default_rng(0)
    ref, est = _random(rng, 2, 1000)
    with pytest.raises(ValueError, match="too short"):
        M.sdr_per_track(ref, est)
    with pytest.raises(ValueError, match="too short"):
        M.SeparationScores(["a", "b"]).add(ref, est)
    ref, est = _random(rng, 2, 2000)
    with pytest.raises(ValueError, match="reference shape"):
        M.sdr_per_track(ref, est[:, :1999])
    with pytest.raises(ValueError, match="expected a 2-d array"):
        M.sdr_per_track(ref[0], est[0])
    with pytest.raises(ValueError, match="empty"):
        M.sdr_per_track(np.zeros((0, 2000)), np.zeros((0, 2000)))
    bad = est.copy()
    bad[1, 1500] = np.nan
    with pytest.raises(ValueError, match="estimate: contains NaN"):
        M.sdr_per_track(ref, bad)
    with pytest.raises(ValueError, match="reference: contains NaN"):
        M.sdr_per_track(bad, est)
    with pytest.raises(ValueError, match="reference has 2 stems, expected 3"):
        M.SeparationScores(["a", "b", "c"]).add(ref, est)
    # lists still work (converted once, as before)
    np.testing.assert_allclose(M.sdr_per_track(ref.tolist(), est.tolist()), _old(ref, est), rtol=0, atol=TOL_DB)
