"""The separation probe learns stem estimates that depend on its input, not only a mask per (stem, frequency).

Two stems share the same frequencies and take turns: a two-partial tone and white noise, in alternating
blocks with some overlap. A constant mask per (stem, frequency bin) cannot tell which one is playing; a probe
whose input says it can. MARBLE's probe reads the frame features only: with features that say which stem plays
it beats, by 3 dB or more, both a constant mask and the same probe on uninformative features (where all it can
learn is an output per frequency bin, times the mixture's magnitude); with ``separation.spectral_input`` the log
magnitude is an input too, and the probe beats both on uninformative features.
"""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from benchmark.config import resolve_config
from benchmark.features import SplitFeatures
from benchmark.metrics import separation_scores
from benchmark.separation import run_separation
from tasks import get_task
from tasks.format import Item

SR = 24000
SECONDS = 4.0
STEMS = ("tone", "noise")
EPOCHS = 8


def _track(rng):
    n = int(SR * SECONDS)
    t = np.arange(n) / SR
    block = int(0.25 * SR)
    on = np.repeat(rng.random(n // block + 1) < 0.5, block)[:n]
    env_tone = on.astype(np.float64)
    env_noise = (~on).astype(np.float64)
    k = np.hanning(int(0.05 * SR))
    env_tone = np.convolve(env_tone, k / k.sum(), "same")
    env_noise = np.convolve(env_noise, k / k.sum(), "same")
    f0 = rng.uniform(300, 600)
    tone = 0.6 * env_tone * (np.sin(2 * np.pi * f0 * t) + 0.5 * np.sin(2 * np.pi * 2 * f0 * t))
    noise = 0.4 * env_noise * rng.standard_normal(n)
    return tone.astype(np.float32), noise.astype(np.float32), env_tone


def _split(tmp_path, name, n_tracks, rng, informative: bool):
    items, xs, owners, times = [], [], [], []
    frames = int(SECONDS * 75)
    for i in range(n_tracks):
        tone, noise, env = _track(rng)
        d = tmp_path / name / f"{i:03d}"
        d.mkdir(parents=True)
        sf.write(d / "mix.wav", tone + noise, SR)
        sf.write(d / "tone.wav", tone, SR)
        sf.write(d / "noise.wav", noise, SR)
        items.append(Item(id=f"{name}-{i}", audio=f"{name}/{i:03d}/mix.wav",
                          target={s: f"{name}/{i:03d}/{s}.wav" for s in STEMS}))
        x = rng.standard_normal((frames, 1, 4))
        if informative:  # the first dimension says how much the tone plays
            x[:, 0, 0] = 4 * env[np.minimum((np.arange(frames) / 75 * SR).astype(int), len(env) - 1)]
        xs.append(x.astype(np.float16))
        owners.append(np.full(frames, i))
        times.append((np.arange(frames) / 75).astype(np.float32))
    return SplitFeatures(name, np.concatenate(xs), np.concatenate(owners), np.concatenate(times), items)


class _Rep:
    sample_rate = SR
    num_layers = 1


def _constant_mask_sdr(tmp_path, feats, n_fft=2048, hop=320):
    """The best a mask fixed per (stem, frequency) does: ratio of stem to mixture magnitude summed over train."""
    import torch

    win = torch.hann_window(n_fft)

    def stft(x):
        return torch.stft(torch.as_tensor(x), n_fft, hop, window=win, return_complex=True)

    def load(split, it):
        mix, _ = sf.read(tmp_path / it.audio, dtype="float32")
        return mix, np.stack([sf.read(tmp_path / it.target[s], dtype="float32")[0] for s in STEMS])

    num, den = 0, 0
    for it in feats["train"].items:
        mix, ref = load("train", it)
        num = num + torch.stack([stft(r).abs().sum(1) for r in ref])
        den = den + stft(mix).abs().sum(1)
    mask = (num / den).clamp(0, 1)
    refs, ests = [], []
    for it in feats["test"].items:
        mix, ref = load("test", it)
        X = stft(mix)
        est = torch.istft(mask[:, :, None] * X[None], n_fft, hop, window=win, length=len(mix))
        refs.append(ref)
        ests.append(est.numpy())
    s = separation_scores(refs, ests, list(STEMS), bss=False)
    return float(np.mean([s[f"sdr_{k}"] for k in STEMS]))


@pytest.fixture(scope="module")
def problem(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("sep")
    rng = np.random.default_rng(0)
    feats = {inf: {s: _split(tmp_path / str(inf), s, n, rng, inf) for s, n in (("train", 12), ("valid", 4),
                                                                                 ("test", 4))}
             for inf in (True, False)}
    return tmp_path, feats, _constant_mask_sdr(tmp_path / "True", feats[True])


def _probe(tmp_path, feats, *extra):
    import dataclasses

    spec = dataclasses.replace(get_task("separation"), labels=STEMS,
                               metrics=tuple(f"sdr_{s}" for s in STEMS) + tuple(f"bss_sdr_{s}" for s in STEMS),
                               main_score="mean(" + ",".join(f"sdr_{s}" for s in STEMS) + ")")
    cfg = resolve_config(spec, overrides=[
        "separation.hidden=32", "separation.num_layers=1", f"separation.max_epochs={EPOCHS}", f"separation.patience={EPOCHS}",
        "separation.steps_per_epoch=10", "separation.batch_size=4", "separation.segment_s=2.0",
        "separation.lr=0.005", *extra])
    lines = []
    out = run_separation(spec, list(STEMS), feats, tmp_path, cfg, _Rep(), lines.append)
    return out, lines


@pytest.fixture(scope="module")
def uninformative(problem):
    """The probe (one joint model) on features that say nothing: what a per-bin constant gets through the head."""
    tmp_path, feats, _ = problem
    out, lines = _probe(tmp_path / "False", feats[False], "separation.joint=true")
    assert len([l for l in lines if " epoch " in l]) == EPOCHS  # one joint model, one log line per epoch
    return out["scores"]["main"]


def test_marbles_probe_reads_the_features(problem, uninformative):
    tmp_path, feats, constant = problem
    out, lines = _probe(tmp_path / "True", feats[True])  # MARBLE's defaults: one model per stem, features only
    assert len([l for l in lines if " epoch " in l]) == 2 * EPOCHS  # one log line per epoch and stem model
    assert out["probe"]["models"] == "one per stem" and set(out["probe"]["epochs_run_per_model"][0]) == set(STEMS)
    test = out["scores"]["test"]
    assert set(test) == {"main"} | {f"sdr_{s}" for s in STEMS} | {f"bss_sdr_{s}" for s in STEMS}
    assert out["scores"]["main"] > max(constant, uninformative) + 3.0, (out["scores"], constant, uninformative)


def test_spectral_input_lets_the_probe_read_the_mixture(problem, uninformative):
    tmp_path, feats, constant = problem
    out, lines = _probe(tmp_path / "False", feats[False], "separation.joint=true", "separation.spectral_input=true")
    assert out["scores"]["main"] > max(constant, uninformative) + 3.0, (out["scores"], constant, uninformative)


def test_spectral_input_is_z_scored_per_frequency_bin_with_train_statistics():
    import torch

    from benchmark.separation import log_magnitude_input

    rng = np.random.default_rng(1)
    win = torch.hann_window(256)

    def stft(x):
        return torch.stft(torch.as_tensor(x, dtype=torch.float32), 256, 64, window=win, return_complex=True)

    # loud low partials and quiet noise: raw log1p magnitudes differ by orders of magnitude across bins
    t = np.arange(8000) / 8000
    mixes = [(5 * np.sin(2 * np.pi * rng.uniform(50, 200) * t) + 0.01 * rng.standard_normal(8000))
             for _ in range(5)]
    logmag = log_magnitude_input(mixes, stft, 129)
    mags = torch.cat([stft(m).abs() for m in mixes], 1)  # [F, T] over all train frames
    x = logmag(mags)  # [T, F]
    assert x.shape == (mags.shape[1], 129)
    assert torch.allclose(x.mean(0), torch.zeros(129), atol=1e-3)
    assert torch.allclose(x.std(0, unbiased=False), torch.ones(129), atol=1e-2)
    raw = torch.log1p(mags).T
    assert float(raw.mean(0).max() - raw.mean(0).min()) > 1.0  # what the LSTM got before
    # other splits use the train statistics, batched [B, F, T] -> [B, T, F]
    other = stft(mixes[0][:4000]).abs()
    assert torch.allclose(logmag(other[None])[0], logmag(other))
    with pytest.raises(ValueError, match="no train frames"):
        log_magnitude_input([], stft, 129)
