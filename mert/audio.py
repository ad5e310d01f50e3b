"""Audio input: decoding with soundfile, mono mixdown, resampling with torchaudio, and input checks.

Shared by the encoder, the pretraining data pipeline, the benchmark and the task readers, so that every
path treats bad audio the same way: a ValueError naming the file and what is wrong (for a missing file also a
FileNotFoundError). Silent audio (peak below ``SILENCE_PEAK``) is usable but almost always a mistake (a
muted export, a wrong channel, an excerpt past the music): it gives a :class:`SilentAudioWarning` naming the
file, which callers with their own rule for silence turn off with ``warn_silent=False``.
"""
from __future__ import annotations

import logging
import os
import warnings
from functools import lru_cache

import numpy as np

log = logging.getLogger(__name__)

SILENCE_PEAK = 1e-4  # |sample| below this everywhere: -80 dBFS, silence or dither


class AudioError(ValueError):
    """Audio that cannot be used: unreadable, empty, silent where sound is required, or non-finite."""


class AudioFileNotFoundError(AudioError, FileNotFoundError):
    """The audio file does not exist: both an AudioError (a ValueError) and a FileNotFoundError, so callers
    that skip either keep skipping it."""


class SilentAudioWarning(UserWarning):
    """Audio whose peak is below ``SILENCE_PEAK``: the features of silence describe nothing."""


def _check_exists(path) -> None:
    if not os.path.exists(path):
        raise AudioFileNotFoundError(f"{path}: file does not exist")
    if os.path.isdir(path):
        raise AudioError(f"{path}: a folder, not an audio file")


def warn_if_silent(wav: np.ndarray, name: str, where: str = "", stacklevel: int = 2) -> bool:
    """Warn (:class:`SilentAudioWarning`, naming ``name`` and the excerpt ``where``) when the peak of ``wav`` is
    below SILENCE_PEAK; returns whether it was silent."""
    peak = float(np.abs(wav).max()) if np.size(wav) else 0.0
    if peak < SILENCE_PEAK:
        warnings.warn(SilentAudioWarning(f"{name}: silent audio{where} (peak {peak:.1e} < {SILENCE_PEAK:g}); "
                                         "its features describe silence"), stacklevel=stacklevel + 1)
        return True
    return False


def read_audio(
    path: str | os.PathLike,
    sample_rate: int | None = None,
    start: float | None = None,
    end: float | None = None,
    warn_silent: bool = True,
) -> np.ndarray:
    """Decode ``path`` (anything libsndfile reads: wav, flac, ogg, mp3) to float32 mono.

    ``start`` / ``end`` (seconds) select an excerpt without decoding the rest of the file. When
    ``sample_rate`` is given the audio is resampled to it. Raises :class:`AudioError` naming the file when it
    does not exist (:class:`AudioFileNotFoundError`, also a FileNotFoundError), cannot be decoded, is empty,
    or holds NaN/inf. Silent audio (the excerpt's peak below ``SILENCE_PEAK``) gives a
    :class:`SilentAudioWarning` naming the file unless ``warn_silent=False`` (for callers that skip or
    expect silence by their own rule).
    """
    import soundfile as sf

    _check_exists(path)
    try:
        with sf.SoundFile(str(path)) as f:
            sr = f.samplerate
            first = int(round((start or 0.0) * sr))
            last = f.frames if end is None else min(f.frames, int(round(end * sr)))
            if first > 0:
                f.seek(min(first, f.frames))
            wav = f.read(max(0, last - first), dtype="float32", always_2d=True)
    except (RuntimeError, sf.LibsndfileError, OSError) as e:  # soundfile raises these for bad files
        raise AudioError(f"{path}: cannot decode audio ({e})") from None
    wav = to_mono(wav.T)
    if wav.size == 0:
        raise AudioError(f"{path}: no audio samples" + (f" in [{start}, {end}] s" if start or end else ""))
    if not np.isfinite(wav).all():
        raise AudioError(f"{path}: audio contains NaN or inf samples")
    if warn_silent:
        warn_if_silent(wav, str(path), f" in [{start or 0.0}, {end}] s" if start or end else "")
    if sample_rate is not None and sr != sample_rate:
        wav = resample(wav, sr, sample_rate)
    return wav


def audio_info(path: str | os.PathLike) -> tuple[int, int, int]:
    """(sample rate, frames, channels) from the header, without decoding."""
    import soundfile as sf

    _check_exists(path)
    try:
        i = sf.info(str(path))
    except (RuntimeError, sf.LibsndfileError, OSError) as e:
        raise AudioError(f"{path}: cannot read audio header ({e})") from None
    return i.samplerate, i.frames, i.channels


def write_audio(path: str | os.PathLike, wav: np.ndarray, sample_rate: int, subtype: str | None = None) -> None:
    """Write mono float audio (clipped to [-1, 1]); the format follows the extension (.flac, .wav)."""
    import soundfile as sf

    wav = np.clip(np.asarray(wav, dtype=np.float32), -1.0, 1.0)
    sf.write(str(path), wav, sample_rate, subtype=subtype)


def to_mono(wav: np.ndarray) -> np.ndarray:
    """[C, T] or [T] -> [T] by averaging channels."""
    wav = np.asarray(wav, dtype=np.float32)
    if wav.ndim == 1:
        return wav
    if wav.ndim != 2:
        raise AudioError(f"expected audio of shape [T] or [C, T], got {wav.shape}")
    return wav.mean(axis=0) if wav.shape[0] > 1 else wav[0]


@lru_cache(maxsize=32)
def _resampler(orig: int, new: int):
    import torchaudio

    return torchaudio.transforms.Resample(orig, new, dtype=__import__("torch").float32)


def resample(wav, orig_sr: int, new_sr: int):
    """Band-limited resampling with torchaudio; numpy in -> numpy out, tensor in -> tensor out."""
    import torch

    if orig_sr == new_sr:
        return wav
    is_np = not isinstance(wav, torch.Tensor)
    x = torch.from_numpy(np.ascontiguousarray(wav, dtype=np.float32)) if is_np else wav
    y = _resampler(int(orig_sr), int(new_sr)).to(x.device)(x.float())
    return y.numpy() if is_np else y


def check_waveform(wav, min_samples: int = 1, name: str = "input") -> None:
    """Raise AudioError for empty, too short, or non-finite waveforms (tensor or array, any shape)."""
    import torch

    n = wav.shape[-1] if wav.ndim else 0
    if wav.numel() == 0 if isinstance(wav, torch.Tensor) else wav.size == 0:
        raise AudioError(f"{name}: empty audio")
    if n < min_samples:
        raise AudioError(f"{name}: {n} samples is shorter than the minimum of {min_samples}")
    finite = torch.isfinite(wav).all() if isinstance(wav, torch.Tensor) else np.isfinite(wav).all()
    if not bool(finite):
        raise AudioError(f"{name}: audio contains NaN or inf samples")


def standardise(wav, lengths=None):
    """Zero mean, unit variance per item over its valid samples (``wav`` [B, T] float tensor, ``lengths`` [B]
    valid samples or None for all), zero past each item's end: Wav2Vec2FeatureExtractor's
    zero_mean_unit_var_norm (variance + 1e-7) with padding that never leaks into the statistics."""
    import torch

    if lengths is None:
        mean = wav.mean(1, keepdim=True)
        return (wav - mean) / torch.sqrt(wav.var(1, unbiased=False, keepdim=True) + 1e-7)
    mask = (torch.arange(wav.shape[-1], device=wav.device)[None] < lengths[:, None]).to(wav.dtype)
    n = lengths.clamp_min(1)[:, None].to(wav.dtype)
    mean = (wav * mask).sum(1, keepdim=True) / n
    var = (((wav - mean) * mask) ** 2).sum(1, keepdim=True) / n
    return (wav - mean) / torch.sqrt(var + 1e-7) * mask
