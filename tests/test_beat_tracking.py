"""benchmark.beat_tracking: the numpy DBN decoder equals madmom's DBNBeatTrackingProcessor; the reference
trackers find the beats of a click track; the missing-madmom error message."""
from __future__ import annotations

import sys
import warnings

import numpy as np
import pytest

from benchmark import beat_tracking as bt

SR = 24000


@pytest.fixture(scope="module")
def madmom_dbn():
    """madmom's DBNBeatTrackingProcessor class, imported through the shim; skip if madmom is missing."""
    try:
        bt.import_madmom()
    except ImportError as e:
        pytest.skip(str(e))
    from madmom.features.beats import DBNBeatTrackingProcessor

    return DBNBeatTrackingProcessor


def periodic_activation(rng, n, fps, bpm, *, jitter=0.01, noise=0.05, start=0.3, dtype=np.float32):
    """Noise floor plus one peak per beat (beat times jittered), values in [0, 1]."""
    act = np.abs(rng.normal(0.0, noise, n))
    beat = start
    bpms = np.atleast_1d(bpm)
    while beat * fps < n:
        i = int(round((beat + rng.normal(0.0, jitter)) * fps))
        if 0 <= i < n:
            act[i] = rng.uniform(0.5, 1.0)
            if i + 1 < n:
                act[i + 1] = max(act[i + 1], act[i] * rng.uniform(0.2, 0.6))
        # a second tempo (if given) from the middle of the activation on
        beat += 60.0 / (bpms[0] if beat * fps < n / 2 or len(bpms) == 1 else bpms[1])
    return np.clip(act, 0.0, 1.0).astype(dtype)


def assert_same(ours, ref):
    assert ours.dtype == np.float64
    assert len(ours) == len(ref), (len(ours), len(ref))
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-9)


def decode_both(madmom_dbn, act, fps, **kw):
    ref = madmom_dbn(fps=fps, **kw)(act)
    ours = bt.dbn_beats(act, fps, **kw)
    assert_same(ours, ref)
    return ours


# ---------------------------------------------------------------------------------------------------------
# (a) identical to madmom
# ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("fps", [75, 100])
@pytest.mark.parametrize("bpm", [60, 100, 140, 200])
def test_dbn_equals_madmom_periodic(madmom_dbn, fps, bpm):
    rng = np.random.default_rng(1000 * fps + bpm)
    act = periodic_activation(rng, 15 * fps, fps, bpm)
    for threshold in (0.0, 0.3):
        for correct in (True, False):
            beats = decode_both(madmom_dbn, act, fps, threshold=threshold, correct=correct)
            assert len(beats) > 0.5 * 15 * bpm / 60


@pytest.mark.parametrize("fps,seconds", [(75, 15), (100, 8)])
def test_dbn_equals_madmom_downbeat_setting(madmom_dbn, fps, seconds):
    # (madmom is slow here: ~250 tempi with dense tempo transitions)
    rng = np.random.default_rng(fps)
    for bar_bpm, correct in ((30, True), (50, False)):
        act = periodic_activation(rng, seconds * fps, fps, bar_bpm, noise=0.03)
        decode_both(madmom_dbn, act, fps, min_bpm=18.0, max_bpm=72.0, correct=correct)


def test_dbn_equals_madmom_tempo_change_and_float64(madmom_dbn):
    rng = np.random.default_rng(7)
    act = periodic_activation(rng, 3000, 100, (90, 150), dtype=np.float64)
    beats = decode_both(madmom_dbn, act, 100)
    ibi = np.diff(beats)
    assert np.median(ibi[: len(ibi) // 3]) == pytest.approx(60 / 90, abs=0.02)
    assert np.median(ibi[-len(ibi) // 3:]) == pytest.approx(60 / 150, abs=0.02)
    decode_both(madmom_dbn, act.astype(np.float32), 100, threshold=0.3, correct=False)


@pytest.mark.filterwarnings("ignore:divide by zero:RuntimeWarning")
def test_dbn_equals_madmom_other_settings(madmom_dbn):
    rng = np.random.default_rng(3)
    act = periodic_activation(rng, 1500, 75, 120)
    decode_both(madmom_dbn, act, 75, num_tempi=40)
    decode_both(madmom_dbn, act, 75, transition_lambda=30.0, observation_lambda=8)
    # ties everywhere, exact 0 and 1 observations, a partly flat activation
    decode_both(madmom_dbn, np.full(800, 0.5, dtype=np.float32), 100)
    noisy = rng.uniform(0, 1, 1000).astype(np.float32)
    noisy[::7] = 0.0
    noisy[3::50] = 1.0
    decode_both(madmom_dbn, noisy, 100)
    decode_both(madmom_dbn, noisy, 100, correct=False)


@pytest.mark.parametrize("n", [1, 2, 5, 30])
def test_dbn_equals_madmom_short(madmom_dbn, n):
    act = np.random.default_rng(n).uniform(0, 1, n).astype(np.float32)
    decode_both(madmom_dbn, act, 100)
    decode_both(madmom_dbn, act, 100, correct=False)


def test_dbn_all_zero_and_empty(madmom_dbn):
    for act in (np.zeros(2000, dtype=np.float32), np.zeros(0, dtype=np.float32)):
        beats = decode_both(madmom_dbn, act, 100)
        assert beats.shape == (0,)
    # nothing reaches the threshold / only the first frame does (madmom: no beats either way)
    act = np.full(500, 0.1)
    act[0] = 0.9
    assert decode_both(madmom_dbn, act, 100, threshold=0.3).shape == (0,)
    # every path has probability 0 (alternating exact 0 / 1): madmom warns and returns no beats
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        assert decode_both(madmom_dbn, np.tile([0.0, 1.0], 300), 100).shape == (0,)


def test_dbn_without_madmom_basics():
    """Runs without madmom: an all-zero activation, float32 input, sorted float64 output, bad shapes."""
    assert bt.dbn_beats(np.zeros(1000, dtype=np.float32), 100).shape == (0,)
    assert bt.dbn_beats([], 100).shape == (0,)
    act = periodic_activation(np.random.default_rng(0), 1500, 75, 120)
    beats = bt.dbn_beats(act, 75)
    assert beats.dtype == np.float64 and np.all(np.diff(beats) > 0)
    assert np.median(np.diff(beats)) == pytest.approx(0.5, abs=0.02)
    with pytest.raises(ValueError):
        bt.dbn_beats(np.zeros((10, 2)), 100)


# ---------------------------------------------------------------------------------------------------------
# (b) / (c) click track through the reference trackers
# ---------------------------------------------------------------------------------------------------------
def click_track(seconds, bpm=120.0, start=0.513, seed=0):
    """Decaying 1.5 kHz clicks at ``bpm`` from ``start`` s on, plus white noise (-40 dB), mono 24 kHz."""
    rng = np.random.default_rng(seed)
    x = 0.01 * rng.standard_normal(int(seconds * SR))
    clicks = np.arange(start, seconds - 0.1, 60.0 / bpm)
    n = int(0.02 * SR)
    burst = np.exp(-np.arange(n) / (0.003 * SR)) * np.sin(2 * np.pi * 1500.0 * np.arange(n) / SR)
    for t in clicks:
        i = int(round(t * SR))
        x[i: i + n] += 0.5 * burst
    return x.astype(np.float32), clicks


@pytest.fixture(scope="module")
def clicks20():
    return click_track(20.0)


@pytest.mark.parametrize("fps", [100.0, 75.0])
def test_spectral_flux_beats_on_click_track(clicks20, fps):
    import mir_eval

    x, clicks = clicks20
    act = bt.spectral_flux_activation(x, SR, fps)
    assert act.dtype == np.float32 and act.shape == (int(np.ceil(len(x) * fps / SR)),)
    assert act.min() >= 0.0 and act.max() == pytest.approx(1.0)
    beats = bt.spectral_flux_beats(x, SR, fps=fps)
    assert mir_eval.beat.f_measure(clicks, beats) > 0.95
    matched = mir_eval.util.match_events(clicks, beats, 0.02)
    assert len(matched) == len(clicks)  # every click has a beat within 20 ms
    # the activation peaks sit on the clicks (frame n at n / fps s): within half a frame + 5 ms
    peaks = np.flatnonzero((act[1:-1] > act[:-2]) & (act[1:-1] >= act[2:]) & (act[1:-1] > 0.3)) + 1
    assert len(peaks) == len(clicks)
    assert np.max(np.abs(peaks / fps - clicks)) <= 0.5 / fps + 0.005


def test_spectral_flux_activation_edge_cases():
    assert bt.spectral_flux_activation(np.zeros(0, np.float32), SR, 100).shape == (0,)
    silent = bt.spectral_flux_activation(np.zeros(SR, np.float32), SR, 100)
    assert silent.shape == (100,) and not silent.any()
    assert bt.spectral_flux_beats(np.zeros(SR, np.float32), SR).shape == (0,)
    # a frame rate that does not divide the sample rate: frame count and centring still exact
    x, _ = click_track(3.0)
    assert bt.spectral_flux_activation(x, SR, 86.13).shape == (int(np.ceil(3.0 * 86.13)),)


@pytest.fixture(scope="module")
def clicks10():
    return click_track(10.0)


def test_dbn_on_madmom_activation_equals_madmom(madmom_dbn, clicks10):
    x, clicks = clicks10
    act = bt.madmom_rnn_activation(x, SR)
    assert act.shape == (1000,)  # 100 fps
    decode_both(madmom_dbn, act, 100)
    decode_both(madmom_dbn, act, 100, correct=False)


def test_madmom_rnn_beats_on_click_track(madmom_dbn, clicks10):
    import mir_eval

    x, clicks = clicks10
    beats = bt.madmom_rnn_beats(x, SR)
    assert mir_eval.beat.f_measure(clicks, beats) > 0.9


# ---------------------------------------------------------------------------------------------------------
# (d) madmom missing
# ---------------------------------------------------------------------------------------------------------
def test_missing_madmom_message(monkeypatch):
    bt._madmom_rnn_processors.cache_clear()
    for name in [m for m in sys.modules if m == "madmom" or m.startswith("madmom.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "madmom", None)  # makes `import madmom` raise ModuleNotFoundError
    assert bt.madmom_available() is False
    with pytest.raises(ImportError) as info:
        bt.madmom_rnn_beats(np.zeros(SR, np.float32), SR)
    msg = str(info.value)
    assert "pip install 'mert-bench[madmom]'" in msg
    assert "CC BY-NC-SA" in msg and "non-commercial" in msg
    # the shim restored importlib.metadata.distribution
    import importlib.metadata as md

    assert md.distribution.__module__ == "importlib.metadata"
    bt._madmom_rnn_processors.cache_clear()


def test_the_flux_reference_tracks_music_after_digital_silence():
    """4 s of exact zeros (longer than the slowest beat interval) leave the raw flux activation without a DBN
    path (no beats at all); the floored reference still finds the clicks that follow."""
    import mir_eval

    sr = 24000
    x = np.zeros(sr * 10, np.float32)
    clicks = np.arange(4.0, 10.0, 0.5)
    for t in clicks:
        i = int(t * sr)
        x[i:i + 240] = np.hanning(240)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert len(bt.dbn_beats(bt.spectral_flux_activation(x, sr, 100.0), 100.0)) == 0
    est = bt.spectral_flux_beats(x, sr)
    hits = mir_eval.util.match_events(clicks, est, 0.02)
    assert len(hits) >= 0.9 * len(clicks)
