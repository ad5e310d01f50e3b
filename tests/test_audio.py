import numpy as np
import pytest

from mert.audio import AudioError, check_waveform, read_audio, resample, write_audio


def test_read_stereo_resample_excerpt(tmp_path):
    import soundfile as sf

    sr = 48000
    t = np.arange(sr * 2) / sr
    left = 0.5 * np.sin(2 * np.pi * 440 * t)
    sf.write(tmp_path / "s.wav", np.stack([left, -left * 0 + left], 1).astype(np.float32), sr)
    wav = read_audio(tmp_path / "s.wav", sample_rate=24000, start=0.5, end=1.5)
    assert wav.dtype == np.float32 and wav.shape == (24000,)
    assert abs(np.abs(wav).max() - 0.5) < 0.02


def test_bad_files_named(tmp_path):
    (tmp_path / "bad.wav").write_bytes(b"not audio at all")
    with pytest.raises(AudioError, match="bad.wav"):
        read_audio(tmp_path / "bad.wav")
    write_audio(tmp_path / "empty.wav", np.zeros(0), 24000)
    with pytest.raises(AudioError, match="empty.wav.*no audio"):
        read_audio(tmp_path / "empty.wav")


def test_check_waveform():
    with pytest.raises(AudioError, match="NaN"):
        check_waveform(np.array([0.0, np.nan]))
    with pytest.raises(AudioError, match="shorter"):
        check_waveform(np.zeros(10), min_samples=400)
    assert resample(np.zeros(48000, np.float32), 48000, 24000).shape == (24000,)
