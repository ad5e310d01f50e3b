"""MIDI -> 24 kHz mono audio with midirenderer and the General MIDI SoundFont shipped with pretty_midi."""
from __future__ import annotations

import io
import os
from functools import lru_cache

import numpy as np

SR = 24000
RENDER_SR = 48000
# An undefined controller (110) written at the wanted end so the synth renders the full length.
_END_CC = 110


def soundfont_path() -> str:
    import pretty_midi

    path = os.path.join(os.path.dirname(pretty_midi.__file__), "TimGM6mb.sf2")
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"{path}: the General MIDI SoundFont shipped with pretty_midi is missing; reinstall pretty_midi "
            "(pip install --force-reinstall pretty_midi)"
        )
    return path


@lru_cache(maxsize=1)
def _soundfont_bytes() -> bytes:
    with open(soundfont_path(), "rb") as f:
        return f.read()


def soundfont_id() -> str:
    """Short content hash of the SoundFont (recorded in meta.json: audio depends on it)."""
    import hashlib

    return hashlib.sha1(_soundfont_bytes()).hexdigest()[:12]


def render_midi(pm, duration: float) -> np.ndarray:
    """Render a ``pretty_midi.PrettyMIDI`` to float32 mono at 24 kHz, exactly ``duration`` seconds long."""
    import midirenderer
    import pretty_midi
    import soundfile as sf

    from mert.audio import resample

    n_out = int(round(duration * SR))
    if not any(inst.notes for inst in pm.instruments):
        return np.zeros(n_out, dtype=np.float32)
    # make the file last until `duration` (the synth stops at the last event)
    marker = pretty_midi.Instrument(program=0, name="end-marker")
    marker.control_changes.append(pretty_midi.ControlChange(_END_CC, 0, float(duration)))
    pm.instruments.append(marker)
    try:
        buf = io.BytesIO()
        pm.write(buf)
    finally:
        pm.instruments.pop()
    wav_bytes = midirenderer.render_wave_from(_soundfont_bytes(), buf.getvalue())
    x, sr = sf.read(io.BytesIO(wav_bytes), dtype="float32", always_2d=True)
    x = x.mean(axis=1)
    if sr != SR:
        x = resample(x, sr, SR)
    if len(x) < n_out:
        x = np.pad(x, (0, n_out - len(x)))
    return np.ascontiguousarray(x[:n_out], dtype=np.float32)


def to_int16(x: np.ndarray) -> np.ndarray:
    """Float in [-1, 1] -> int16 PCM (what the FLAC files hold), clipping."""
    return np.clip(np.round(np.asarray(x, dtype=np.float64) * 32767.0), -32767, 32767).astype(np.int16)


def write_flac(path, pcm: np.ndarray) -> None:
    """Write int16 PCM (or float, converted) as 24 kHz mono 16-bit FLAC, deterministically."""
    import soundfile as sf

    if pcm.dtype != np.int16:
        pcm = to_int16(pcm)
    os.makedirs(os.path.dirname(str(path)) or ".", exist_ok=True)
    sf.write(str(path), pcm, SR, format="FLAC", subtype="PCM_16")


def normalize(x: np.ndarray, rms_db: float, peak: float = 0.95) -> np.ndarray:
    """Scale to an RMS level in dBFS, then limit the peak (no clipping)."""
    rms = float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))
    if rms <= 1e-9:
        return x.astype(np.float32)
    y = x * (10 ** (rms_db / 20) / rms)
    p = float(np.abs(y).max())
    if p > peak:
        y = y * (peak / p)
    return y.astype(np.float32)
