"""A source-filter singing voice in numpy / scipy.

The voice is what the singer and technique labels are about, so it is modelled explicitly:

* glottal source: Rosenberg pulses drawn from the instantaneous phase of an f0 contour (so f0 can glide,
  trill and wobble sample by sample), with a per-singer open quotient, per-period shimmer (amplitude) and
  jitter (low-passed f0 noise), differentiated for lip radiation;
* aspiration: pulse-synchronous band-limited noise (breathiness);
* vocal tract: a cascade of five formant resonators per vowel, scaled by the singer's vocal-tract length
  (formant scale), with a per-singer "singer's formant" boost around 2.8-3.2 kHz; vowel changes crossfade;
* vibrato: sinusoidal f0 modulation with the singer's own rate and depth;
* the 10 VocalSet techniques (belt, breathy, inhaled, lip_trill, spoken, straight, trill, trillo, vibrato,
  vocal_fry) as documented changes of these parameters (see :data:`TECHNIQUE_NOTES`).

Everything is driven by a ``numpy.random.Generator`` so a seed fixes the sound exactly.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def lfilter(b, a, x):
    """scipy.signal.lfilter, imported on first use (keeps ``import tasks.embedded`` light)."""
    from scipy.signal import lfilter as _lfilter

    return _lfilter(b, a, x)

SR = 24000

# Formant frequencies (Hz) and bandwidths for an adult male vocal tract (Peterson & Barney style values).
VOWELS: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "a": ((730, 1090, 2440, 3300, 4100), (90, 110, 140, 200, 250)),
    "e": ((530, 1840, 2480, 3400, 4200), (70, 100, 140, 200, 250)),
    "i": ((280, 2250, 2900, 3500, 4200), (60, 100, 150, 200, 250)),
    "o": ((570, 840, 2410, 3300, 4100), (80, 90, 140, 200, 250)),
    "u": ((310, 870, 2240, 3300, 4100), (60, 90, 140, 200, 250)),
}
VOWEL_NAMES = tuple(VOWELS)

TECHNIQUE_NOTES = {
    "belt": "pressed phonation: open quotient 0.35, flatter spectral tilt, raised F1, loud, late small vibrato",
    "breathy": "open quotient 0.8, strong aspiration noise, weak upper harmonics, soft",
    "inhaled": "ingressive: noisy, unstable f0 (large jitter), wide formant bandwidths, tremulous amplitude",
    "lip_trill": "lip buzz: 18-30 Hz deep amplitude modulation through a closed /u/-like tract, low-passed",
    "spoken": "speech: declining f0 contour in the low range, 4-6 syllables/s, vowel changes, consonant noise",
    "straight": "steady tone, no vibrato, only slow drift",
    "trill": "f0 alternating with the note 1-2 semitones above at 5-8 Hz",
    "trillo": "rapid glottal re-articulation of one pitch: 6-9 Hz amplitude interruptions with small f0 dips",
    "vibrato": "sinusoidal f0 modulation at the singer's rate (4.5-6.5 Hz), 50-110 cents deep",
    "vocal_fry": "creak: f0 35-75 Hz, large jitter, alternating (double) pulses, low open quotient",
}
TECHNIQUES = tuple(TECHNIQUE_NOTES)


@dataclass(frozen=True)
class Singer:
    """A synthetic singer: everything about the voice that stays fixed across recordings."""

    name: str
    sex: str  # "female" | "male"
    lo: int  # lowest comfortable MIDI pitch
    hi: int  # highest comfortable MIDI pitch
    formant_scale: float  # vocal-tract length factor (>1 = shorter tract, higher formants)
    open_quotient: float
    tilt: float  # one-pole low-pass coefficient on the source (0 = flat)
    breath: float  # aspiration noise level relative to the pulses
    jitter: float  # relative f0 noise
    shimmer: float  # relative per-period amplitude noise
    vib_rate: float  # Hz
    vib_depth: float  # cents
    ring: float  # singer's-formant boost (linear gain of an extra resonance)
    ring_freq: float
    nasal: float  # depth of a nasal anti-resonance-ish dip around 1 kHz

    @property
    def center(self) -> int:
        return (self.lo + self.hi) // 2


def _make_singers() -> dict[str, Singer]:
    rng = np.random.default_rng(31337)
    out = {}
    names = [f"f{i}" for i in range(1, 10)] + [f"m{i}" for i in range(1, 12)]
    for k, name in enumerate(names):
        female = name.startswith("f")
        # spread the singers over a grid of (range, tract) so they are distinct, plus random detail
        j = k if female else k - 9
        n = 9 if female else 11
        lo = (53 if female else 40) + int(round(8 * j / (n - 1) + rng.uniform(-1, 1)))
        hi = lo + int(rng.integers(18, 25))
        fs = (1.12 if female else 0.9) + 0.14 * ((j * 5) % n) / (n - 1) + rng.uniform(-0.02, 0.02)
        out[name] = Singer(
            name=name, sex="female" if female else "male", lo=lo, hi=hi, formant_scale=float(fs),
            open_quotient=float(rng.uniform(0.45, 0.7)), tilt=float(rng.uniform(0.3, 0.85)),
            breath=float(rng.uniform(0.02, 0.15)), jitter=float(rng.uniform(0.002, 0.012)),
            shimmer=float(rng.uniform(0.02, 0.12)), vib_rate=float(rng.uniform(4.6, 6.6)),
            vib_depth=float(rng.uniform(45, 110)), ring=float(rng.uniform(0.0, 2.5)),
            ring_freq=float(rng.uniform(2700, 3300)), nasal=float(rng.uniform(0.0, 0.6)),
        )
    return out


SINGERS: dict[str, Singer] = _make_singers()


def random_singer(rng: np.random.Generator, sex: str | None = None, name_prefix: str = "s") -> Singer:
    """A fresh voice not among the 20 named singers (for vocals in songs)."""
    female = (rng.random() < 0.5) if sex is None else sex == "female"
    lo = int(rng.integers(52, 60)) if female else int(rng.integers(40, 48))
    return Singer(
        name=f"{name_prefix}{int(rng.integers(1e9))}", sex="female" if female else "male", lo=lo,
        hi=lo + int(rng.integers(17, 24)), formant_scale=float(rng.uniform(1.1, 1.27) if female else rng.uniform(0.88, 1.05)),
        open_quotient=float(rng.uniform(0.45, 0.7)), tilt=float(rng.uniform(0.3, 0.85)),
        breath=float(rng.uniform(0.02, 0.15)), jitter=float(rng.uniform(0.002, 0.012)),
        shimmer=float(rng.uniform(0.02, 0.12)), vib_rate=float(rng.uniform(4.6, 6.6)),
        vib_depth=float(rng.uniform(40, 100)), ring=float(rng.uniform(0.0, 2.5)),
        ring_freq=float(rng.uniform(2700, 3300)), nasal=float(rng.uniform(0.0, 0.6)),
    )


def _smooth_noise(rng: np.random.Generator, n: int, cutoff_hz: float, sr: int = SR) -> np.ndarray:
    """Unit-variance low-passed Gaussian noise (one-pole, forward-backward)."""
    a = np.exp(-2 * np.pi * cutoff_hz / sr)
    x = rng.standard_normal(n)
    y = lfilter([1 - a], [1, -a], x)
    y = lfilter([1 - a], [1, -a], y[::-1])[::-1]
    s = y.std()
    return y / s if s > 0 else y


def _resonator(x: np.ndarray, f: float, bw: float, sr: int = SR) -> np.ndarray:
    f = min(f, 0.45 * sr)
    r = np.exp(-np.pi * bw / sr)
    c = 2 * r * np.cos(2 * np.pi * f / sr)
    g = (1 - r) * np.sqrt(1 - 2 * r * np.cos(4 * np.pi * f / sr) + r * r)  # unit gain at f (approx.)
    return lfilter([g], [1, -c, r * r], x)


def _tract(src: np.ndarray, vowel: str, singer: Singer, f1_shift: float, bw_scale: float,
           lowpass: float) -> np.ndarray:
    freqs, bws = VOWELS[vowel]
    y = src
    for i, (f, b) in enumerate(zip(freqs, bws)):
        f = f * singer.formant_scale * (f1_shift if i == 0 else 1.0)
        y = _resonator(y, f, b * bw_scale) * (3.0 if i == 0 else 2.0)
    if singer.ring > 0:
        y = y + singer.ring * 0.3 * _resonator(src, singer.ring_freq * singer.formant_scale ** 0.5, 300)
    if singer.nasal > 0:
        # a broad dip near 1 kHz: subtract part of a resonance there
        y = y - singer.nasal * 0.5 * _resonator(y, 1000 * singer.formant_scale, 250)
    if lowpass < 1.0:
        a = lowpass
        y = lfilter([1 - a], [1, -a], y)
    return y


def _rosenberg(frac: np.ndarray, oq: np.ndarray) -> np.ndarray:
    """Rosenberg glottal flow for phase fraction in [0, 1) and open quotient (per sample)."""
    tp = 0.6 * oq
    tn = 0.4 * oq
    g = np.zeros_like(frac)
    rise = frac < tp
    g[rise] = 0.5 * (1 - np.cos(np.pi * frac[rise] / tp[rise]))
    fall = (~rise) & (frac < tp + tn)
    g[fall] = np.cos(0.5 * np.pi * (frac[fall] - tp[fall]) / tn[fall])
    return g


def sing(
    notes: list[tuple[float, float, float, str]],
    singer: Singer,
    technique: str,
    rng: np.random.Generator,
    duration: float,
    sr: int = SR,
    level: float = 1.0,
) -> np.ndarray:
    """Render ``notes`` (midi pitch, start s, end s, vowel) sung by ``singer`` with ``technique``.

    Returns float32 mono audio of ``duration`` seconds (peak-normalised to 0.5 * level when not silent).
    """
    if technique not in TECHNIQUE_NOTES:
        raise KeyError(f"unknown technique {technique!r}; known: {', '.join(TECHNIQUES)}")
    n = int(round(duration * sr))
    t = np.arange(n) / sr
    midi = np.full(n, np.nan)
    env = np.zeros(n)
    vowel_idx = np.zeros(n, dtype=np.int64)
    vowels_used = []
    onsets = []
    for pitch, s, e, vowel in notes:
        a, b = int(round(s * sr)), min(n, int(round(e * sr)))
        if b <= a:
            continue
        midi[a:b] = pitch
        if vowel not in vowels_used:
            vowels_used.append(vowel)
        vowel_idx[a:b] = vowels_used.index(vowel)
        att = int(rng.uniform(0.02, 0.06) * sr)
        rel = int(rng.uniform(0.03, 0.08) * sr)
        seg = np.ones(b - a)
        k = min(att, len(seg))
        seg[:k] = np.linspace(0, 1, k, endpoint=False) ** 1.5
        k = min(rel, len(seg))
        seg[len(seg) - k:] *= np.linspace(1, 0, k) ** 1.5
        env[a:b] = np.maximum(env[a:b], seg)
        onsets.append((a, b))
    if not vowels_used:
        return np.zeros(n, dtype=np.float32)
    # fill gaps with the neighbouring pitch (for a continuous phase), glide between notes (portamento)
    idx = np.where(~np.isnan(midi))[0]
    midi = np.interp(np.arange(n), idx, midi[idx])
    glide = np.exp(-1.0 / (rng.uniform(0.015, 0.04) * sr))
    midi = lfilter([1 - glide], [1, -glide], midi - midi[0]) + midi[0]

    oq = np.full(n, singer.open_quotient)
    breath = singer.breath
    jitter = singer.jitter
    shimmer = singer.shimmer
    f1_shift, bw_scale, lowpass, tilt = 1.0, 1.0, 1.0, singer.tilt
    vib_depth = singer.vib_depth * rng.uniform(0.1, 0.25)  # untrained singers' natural wobble
    vib_rate = singer.vib_rate * rng.uniform(0.95, 1.05)
    amp_mod = np.ones(n)
    double_pulse = 0.0

    if technique == "vibrato":
        vib_depth = singer.vib_depth * rng.uniform(0.9, 1.3)
    elif technique == "straight":
        vib_depth = rng.uniform(0, 8)
    elif technique == "belt":
        oq[:] = rng.uniform(0.3, 0.4)
        tilt = tilt * 0.4
        f1_shift = rng.uniform(1.1, 1.25)
        breath *= 0.3
        vib_depth = singer.vib_depth * rng.uniform(0.2, 0.5)
        level *= 1.0
    elif technique == "breathy":
        oq[:] = rng.uniform(0.75, 0.9)
        breath = rng.uniform(0.5, 0.9)
        tilt = min(0.95, tilt + 0.15)
        level *= 0.6
    elif technique == "inhaled":
        oq[:] = rng.uniform(0.6, 0.8)
        breath = rng.uniform(0.6, 1.0)
        jitter = rng.uniform(0.02, 0.05)
        shimmer = rng.uniform(0.2, 0.35)
        bw_scale = rng.uniform(1.6, 2.4)
        amp_mod = 1 + 0.3 * _smooth_noise(rng, n, 8.0)
        midi = midi + rng.uniform(1, 4)  # inhaled tones tend to come out sharp and thin
        level *= 0.5
    elif technique == "lip_trill":
        rate = rng.uniform(18, 30) * (1 + 0.05 * _smooth_noise(rng, n, 2.0))
        ph = np.cumsum(rate / sr)
        amp_mod = 0.15 + 0.85 * (0.5 + 0.5 * np.sin(2 * np.pi * ph)) ** 2
        vowels_used = ["u"]
        vowel_idx[:] = 0
        lowpass = rng.uniform(0.6, 0.8)
        breath = max(breath, 0.15)
    elif technique == "trill":
        rate = rng.uniform(5.0, 8.0)
        step = float(rng.choice([1.0, 2.0]))
        sq = np.tanh(4 * np.sin(2 * np.pi * rate * t)) * 0.5 + 0.5
        midi = midi + step * sq
        vib_depth = 0.0
    elif technique == "trillo":
        rate = rng.uniform(6.0, 9.0)
        ph = (rate * t) % 1.0
        gate = np.clip(np.minimum(ph, 1 - ph) * 10, 0, 1)  # short silences between re-articulations
        amp_mod = 0.05 + 0.95 * gate
        midi = midi - 0.4 * (1 - gate)
        vib_depth = 0.0
    elif technique == "vocal_fry":
        base = rng.uniform(35, 75)
        midi = 12 * np.log2(base / 440.0) + 69 + 0.5 * _smooth_noise(rng, n, 3.0)
        jitter = rng.uniform(0.06, 0.12)
        shimmer = rng.uniform(0.2, 0.4)
        oq[:] = rng.uniform(0.2, 0.3)
        double_pulse = rng.uniform(0.4, 0.8)
        vib_depth = 0.0
        level *= 0.7
    elif technique == "spoken":
        # syllables: pitch follows a declining intonation contour, amplitude pulses per syllable
        rate = rng.uniform(4.0, 6.0)
        start_pitch = singer.lo + rng.uniform(2, 7)
        decl = rng.uniform(2, 5)
        contour = start_pitch - decl * t / max(duration, 1e-3) + 1.5 * _smooth_noise(rng, n, 2.0)
        midi = contour
        syl_ph = np.cumsum(rate * (1 + 0.25 * _smooth_noise(rng, n, 1.0)) / sr)
        amp_mod = np.clip(np.sin(np.pi * (syl_ph % 1.0)) * 1.4, 0, 1) ** 1.5
        # vowels change per syllable
        syl = np.floor(syl_ph).astype(np.int64)
        choice = rng.integers(0, len(VOWEL_NAMES), size=int(syl.max()) + 1)
        vowels_used = list(VOWEL_NAMES)
        vowel_idx = choice[syl]
        vib_depth = 0.0
        breath = max(breath, 0.12)
        env = (env > 0).astype(float)
        env = lfilter([0.002], [1, -0.998], env) / 1.0
        env = np.clip(env / max(env.max(), 1e-9), 0, 1)

    # f0 contour with vibrato and jitter
    vib = vib_depth / 100.0 * np.sin(2 * np.pi * vib_rate * t + rng.uniform(0, 2 * np.pi))
    onset_ramp = np.clip(t / 0.4, 0, 1)  # vibrato grows in after the onset
    midi = midi + vib * onset_ramp
    f0 = 440.0 * 2 ** ((midi - 69) / 12)
    f0 = f0 * (1 + jitter * _smooth_noise(rng, n, 80.0))
    f0 = np.clip(f0, 25, 2000)
    phase = np.cumsum(f0 / sr) + rng.uniform(0, 1)
    period = np.floor(phase).astype(np.int64)
    frac = phase - period
    period -= period.min()
    per_amp = 1 + shimmer * rng.standard_normal(int(period.max()) + 1)
    if double_pulse:
        per_amp[1::2] *= 1 - double_pulse
    g = _rosenberg(frac, oq) * per_amp[period]
    src = np.diff(g, prepend=g[0])  # lip radiation
    if tilt > 0:
        src = lfilter([1 - tilt], [1, -tilt], src) * (1 + 2 * tilt)
    src = src / (np.abs(src).max() + 1e-9)
    noise = rng.standard_normal(n)
    noise = lfilter([1, -0.7], [1], noise)  # tilt up a little
    aspir = noise * (0.35 + g / (g.max() + 1e-9)) * 0.25
    src = src + breath * aspir
    if technique == "spoken":
        # consonant bursts at syllable boundaries
        burst = np.exp(-((syl_ph % 1.0) / 0.06)) * (rng.random(int(syl.max()) + 1)[syl] < 0.7)
        src = src + 0.4 * burst * lfilter([1, -0.95], [1], rng.standard_normal(n))

    # vocal tract per vowel, crossfaded
    if len(vowels_used) == 1:
        y = _tract(src, vowels_used[0], singer, f1_shift, bw_scale, lowpass)
    else:
        y = np.zeros(n)
        for vi, v in enumerate(vowels_used):
            w = (vowel_idx == vi).astype(float)
            a = np.exp(-1.0 / (0.02 * sr))
            w = lfilter([1 - a], [1, -a], w)
            y += w * _tract(src, v, singer, f1_shift, bw_scale, lowpass)
    y = y * env * amp_mod
    peak = np.abs(y).max()
    if peak > 0:
        y = y / peak * 0.5 * level
    return y.astype(np.float32)


def phrase(rng: np.random.Generator, singer: Singer, duration: float, kind: str | None = None,
           vowel: str | None = None) -> tuple[list[tuple[float, float, float, str]], str]:
    """A VocalSet-like exercise in the singer's range: arpeggio, scale, long tone or a short song line."""
    kind = kind or str(rng.choice(["arpeggio", "scale", "long_tone", "song"]))
    vowel = vowel or str(rng.choice(VOWEL_NAMES))
    lo, hi = singer.lo, singer.hi
    notes = []
    t = rng.uniform(0.05, 0.3)
    if kind == "long_tone":
        p = int(rng.integers(lo + 2, hi - 3))
        notes.append((p, t, duration - rng.uniform(0.05, 0.3), vowel))
    else:
        root = int(rng.integers(lo, max(lo + 1, hi - 12)))
        if kind == "arpeggio":
            steps = [0, 4, 7, 12, 7, 4, 0] if rng.random() < 0.5 else [0, 3, 7, 12, 7, 3, 0]
        elif kind == "scale":
            steps = [0, 2, 4, 5, 7, 9, 11, 12, 11, 9, 7, 5, 4, 2, 0]
        else:
            steps = list(np.cumsum(rng.choice([-2, -1, 0, 1, 2, 3, -3], size=8)).clip(-3, 12))
        dur = (duration - t - 0.1) / len(steps)
        for s in steps:
            notes.append((root + int(s), t, t + dur * rng.uniform(0.85, 1.0), vowel))
            t += dur
    return notes, kind
