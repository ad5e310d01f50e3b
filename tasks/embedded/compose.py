"""Procedural composition: styles, tempo maps, progressions, melodies, bass lines, drum grooves, vocals.

A :class:`Song` is composed in beats and mapped to seconds through its beat grid (``Song.beats``), so tempo
changes, rubato and swing are exact and the beat annotations are the grid itself. Songs become MIDI
(:meth:`Song.midi`, optionally only some stems) and a vocal line rendered by :mod:`tasks.embedded.voice`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tasks.embedded import voice as V

MAJOR = (0, 2, 4, 5, 7, 9, 11)
MINOR = (0, 2, 3, 5, 7, 8, 10)

# GM drum notes
KICK, SNARE, SIDE, CLAP, HH, PEDAL, OPEN, CRASH, RIDE = 36, 38, 37, 39, 42, 44, 46, 49, 51
TOM_L, TOM_M, TOM_H, BONGO_H, BONGO_L, CONGA_M, CONGA_H, CONGA_L, TAMB, SHAKER, CLAVES, COWBELL = (
    45, 47, 50, 60, 61, 62, 63, 64, 54, 70, 75, 56)

# ---------------------------------------------------------------------------------------------- styles
# Each style is a family: tempo range, groove, harmony, instrument pools; items draw inside the family.
STYLES: dict[str, dict[str, Any]] = {
    "blues": dict(tempo=(66, 132), swing=(0.2, 0.34), major_p=0.7, harmony="blues", drums=["shuffle", "light"],
                  drum_p=0.9, chords=[27, 4, 0, 16, 26], chord_style=["comp", "strum", "block"], bass=[32, 33],
                  bass_style=["walking", "root5"], lead=[26, 29, 65, 22, 27], melody_p=0.8, vocal_p=0.45,
                  vel=(65, 105), density=(0.3, 0.6)),
    "classical": dict(tempo=(56, 150), swing=(0, 0), major_p=0.6, harmony="classical", drums=[], drum_p=0.0,
                      chords=[0, 48, 6, 46, 49, 0], chord_style=["arp", "alberti", "block", "pad"],
                      bass=[42, 43, 0, 70], bass_style=["root", "halves"], lead=[40, 73, 68, 71, 0, 41, 60],
                      melody_p=1.0, vocal_p=0.08, vel=(40, 95), density=(0.3, 0.8), meter3_p=0.25, rubato_p=0.5),
    "country": dict(tempo=(88, 150), swing=(0, 0.12), major_p=0.9, harmony="pop", drums=["train", "light", "rock"],
                    drum_p=0.85, chords=[25, 24, 0, 25], chord_style=["strum", "root5strum"], bass=[32, 33],
                    bass_style=["root5"], lead=[110, 105, 22, 25, 26], melody_p=0.9, vocal_p=0.6,
                    vel=(70, 105), density=(0.4, 0.7), meter3_p=0.1),
    "disco": dict(tempo=(108, 132), swing=(0, 0.05), major_p=0.45, harmony="loop", drums=["disco"], drum_p=1.0,
                  chords=[48, 4, 28, 61, 50], chord_style=["stab", "block"], bass=[33, 38, 34], bass_style=["octave"],
                  lead=[61, 48, 81, 56], melody_p=0.7, vocal_p=0.5, vel=(80, 115), density=(0.4, 0.7)),
    "hiphop": dict(tempo=(72, 100), swing=(0.08, 0.25), major_p=0.25, harmony="loop", drums=["boombap"],
                   drum_p=1.0, chords=[4, 0, 89, 48, 11], chord_style=["sparse", "pad"], bass=[38, 39, 33],
                   bass_style=["sparse"], lead=[0, 4, 73, 11], melody_p=0.35, vocal_p=0.85, rap=True,
                   vel=(70, 110), density=(0.2, 0.4)),
    "jazz": dict(tempo=(90, 210), swing=(0.25, 0.34), major_p=0.6, harmony="jazz", drums=["swing"], drum_p=0.9,
                 chords=[0, 4, 26], chord_style=["comp"], bass=[32], bass_style=["walking"],
                 lead=[65, 66, 56, 11, 0, 26], melody_p=0.9, vocal_p=0.2, vel=(55, 100), density=(0.4, 0.8),
                 meter3_p=0.1),
    "metal": dict(tempo=(120, 200), swing=(0, 0), major_p=0.1, harmony="power", drums=["metal"], drum_p=1.0,
                  chords=[30, 29, 30], chord_style=["power"], bass=[33, 34], bass_style=["root8"],
                  lead=[30, 29], melody_p=0.6, vocal_p=0.3, vel=(100, 127), density=(0.5, 0.9)),
    "pop": dict(tempo=(86, 132), swing=(0, 0.05), major_p=0.8, harmony="pop", drums=["pop", "light"], drum_p=0.95,
                chords=[0, 25, 89, 4, 24, 88], chord_style=["block", "arp", "strum"], bass=[33, 38, 34],
                bass_style=["root8", "root"], lead=[80, 0, 11, 73], melody_p=0.8, vocal_p=0.8,
                vel=(70, 110), density=(0.4, 0.7)),
    "reggae": dict(tempo=(66, 96), swing=(0.05, 0.18), major_p=0.6, harmony="loop", drums=["onedrop"], drum_p=1.0,
                   chords=[27, 16, 28], chord_style=["skank"], bass=[33, 32], bass_style=["reggae"],
                   lead=[16, 56, 17], melody_p=0.6, vocal_p=0.6, vel=(70, 105), density=(0.3, 0.5)),
    "rock": dict(tempo=(96, 165), swing=(0, 0.03), major_p=0.6, harmony="rock", drums=["rock"], drum_p=1.0,
                 chords=[29, 27, 30, 25], chord_style=["power", "strum"], bass=[33, 34], bass_style=["root8"],
                 lead=[29, 30, 27], melody_p=0.7, vocal_p=0.6, vel=(85, 120), density=(0.4, 0.8)),
    # further families for tagging, MTG and pretraining
    "ambient": dict(tempo=(56, 88), swing=(0, 0), major_p=0.5, harmony="modal", drums=["light"], drum_p=0.1,
                    chords=[88, 89, 91, 94, 48, 52, 95], chord_style=["pad"], bass=[89, 48], bass_style=["drone"],
                    lead=[10, 98, 11, 88, 14], melody_p=0.6, vocal_p=0.0, vel=(40, 80), density=(0.1, 0.3)),
    "techno": dict(tempo=(124, 142), swing=(0, 0), major_p=0.15, harmony="modal", drums=["techno"], drum_p=1.0,
                   chords=[81, 90, 87, 84], chord_style=["stab16"], bass=[38, 39], bass_style=["offbeat"],
                   lead=[81, 80], melody_p=0.4, vocal_p=0.0, vel=(90, 120), density=(0.4, 0.8)),
    "house": dict(tempo=(116, 128), swing=(0, 0.08), major_p=0.4, harmony="loop", drums=["house"], drum_p=1.0,
                  chords=[4, 0, 90, 16], chord_style=["stab"], bass=[38, 33], bass_style=["offbeat", "octave"],
                  lead=[81, 4], melody_p=0.4, vocal_p=0.35, vel=(85, 115), density=(0.3, 0.6)),
    "trance": dict(tempo=(130, 142), swing=(0, 0), major_p=0.2, harmony="pop", drums=["techno", "house"],
                   drum_p=1.0, chords=[81, 90, 91], chord_style=["arp16"], bass=[38, 39], bass_style=["offbeat"],
                   lead=[81, 80, 90], melody_p=0.8, vocal_p=0.15, vel=(85, 120), density=(0.5, 0.8)),
    "orchestral": dict(tempo=(60, 140), swing=(0, 0), major_p=0.5, harmony="classical", drums=["timpani"],
                       drum_p=0.4, chords=[48, 49, 61, 60], chord_style=["pad", "block"], bass=[43, 58, 42],
                       bass_style=["root", "halves"], lead=[40, 60, 56, 73, 71], melody_p=1.0, vocal_p=0.05,
                       vel=(55, 120), density=(0.3, 0.7), rubato_p=0.3),
    "folk": dict(tempo=(80, 140), swing=(0, 0.1), major_p=0.75, harmony="pop", drums=["light", "hand"],
                 drum_p=0.45, chords=[25, 24, 21, 46], chord_style=["strum", "arp"], bass=[32, 43],
                 bass_style=["root5", "root"], lead=[73, 110, 21, 22, 71], melody_p=0.9, vocal_p=0.55,
                 vel=(60, 100), density=(0.4, 0.7), meter3_p=0.2),
    "funk": dict(tempo=(92, 122), swing=(0.04, 0.15), major_p=0.4, harmony="loop", drums=["funk"], drum_p=1.0,
                 chords=[28, 7, 4, 27], chord_style=["funk16"], bass=[36, 37, 33], bass_style=["funk"],
                 lead=[61, 56, 65], melody_p=0.6, vocal_p=0.4, vel=(80, 115), density=(0.5, 0.8)),
    "newage": dict(tempo=(60, 92), swing=(0, 0), major_p=0.85, harmony="pop", drums=[], drum_p=0.0,
                   chords=[0, 88, 46, 89], chord_style=["arp", "pad"], bass=[0, 89, 48], bass_style=["root"],
                   lead=[73, 75, 0, 10, 79], melody_p=0.9, vocal_p=0.05, vel=(40, 85), density=(0.2, 0.5)),
    "lounge": dict(tempo=(80, 115), swing=(0, 0.15), major_p=0.6, harmony="jazz", drums=["bossa"], drum_p=0.9,
                   chords=[24, 4, 0, 11], chord_style=["comp", "strum"], bass=[32, 33], bass_style=["root5"],
                   lead=[73, 65, 11, 0, 66], melody_p=0.8, vocal_p=0.3, vel=(50, 90), density=(0.3, 0.6)),
    "indian": dict(tempo=(70, 130), swing=(0, 0.1), major_p=0.5, harmony="drone", drums=["hand"], drum_p=0.9,
                   chords=[104, 48, 15], chord_style=["drone"], bass=[104, 43], bass_style=["drone"],
                   lead=[104, 73, 111, 40], melody_p=1.0, vocal_p=0.3, vel=(60, 105), density=(0.5, 0.9)),
    "synthpop": dict(tempo=(100, 128), swing=(0, 0), major_p=0.5, harmony="pop", drums=["pop", "house"],
                     drum_p=1.0, chords=[81, 90, 88, 80], chord_style=["stab", "arp"], bass=[38, 39],
                     bass_style=["root8", "offbeat"], lead=[80, 81, 82], melody_p=0.8, vocal_p=0.6,
                     vel=(80, 115), density=(0.4, 0.7)),
    "choral": dict(tempo=(56, 100), swing=(0, 0), major_p=0.6, harmony="classical", drums=[], drum_p=0.0,
                   chords=[52, 53, 52], chord_style=["pad", "block"], bass=[52, 19, 43], bass_style=["root"],
                   lead=[52, 53], melody_p=0.6, vocal_p=0.3, vel=(50, 100), density=(0.2, 0.5), rubato_p=0.4),
    "experimental": dict(tempo=(50, 180), swing=(0, 0.3), major_p=0.5, harmony="atonal",
                         drums=["hand", "techno", "light"], drum_p=0.5,
                         chords=[96, 97, 99, 101, 102, 103, 112, 119, 120, 15, 113],
                         chord_style=["sparse", "pad", "arp16"], bass=[38, 100, 117, 118], bass_style=["sparse"],
                         lead=[98, 100, 103, 84, 124, 122, 105], melody_p=0.8, vocal_p=0.1,
                         vel=(40, 127), density=(0.1, 0.9)),
}
GTZAN_STYLES = ("blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop", "reggae", "rock")
ALL_STYLES = tuple(STYLES)


# ---------------------------------------------------------------------------------------------- records
@dataclass
class Part:
    role: str  # drums | bass | chords | lead | pad | perc
    program: int
    is_drum: bool
    stem: str  # vocals | drums | bass | other
    notes: list = field(default_factory=list)  # (pitch, velocity, start beat, end beat)
    volume: int = 100


@dataclass
class Vocal:
    singer: V.Singer
    technique: str
    notes: list  # (pitch, start beat, end beat, vowel)
    level: float = 1.0


@dataclass
class Song:
    style: str
    tonic: int
    mode: str
    beats: np.ndarray  # seconds of beat k, k = 0..len-1 (extends past the end)
    beats_per_bar: int
    duration: float
    swing: float
    parts: list[Part]
    vocal: Vocal | None
    info: dict[str, Any]

    def sec(self, b) -> np.ndarray:
        """Beat position(s) -> seconds, with swing applied to off-beat subdivisions."""
        b = np.asarray(b, dtype=np.float64)
        i = np.floor(b)
        f = b - i
        if self.swing:
            s = 0.5 + self.swing / 2
            f = np.where(f < 0.5, f / 0.5 * s, s + (f - 0.5) / 0.5 * (1 - s))
        k = np.clip(i.astype(np.int64), 0, len(self.beats) - 2)
        return self.beats[k] + f * (self.beats[k + 1] - self.beats[k]) + (i - k) * (self.beats[-1] - self.beats[-2])

    @property
    def beat_times(self) -> list[float]:
        """Annotated beats inside the rendered duration (seconds, rounded to 0.1 ms)."""
        return [round(float(t), 4) for t in self.beats if 0.0 <= t < self.duration - 0.05]

    def programs(self, min_notes: int = 1) -> list[int]:
        return [p.program for p in self.parts if not p.is_drum and self._sounding(p) >= min_notes]

    def _sounding(self, part: Part) -> int:
        return sum(1 for n in part.notes if self.sec(n[2]) < self.duration - 0.1)

    def has_drums(self) -> bool:
        return any(p.is_drum and self._sounding(p) > 0 for p in self.parts)

    def midi(self, stems: tuple[str, ...] | None = None, humanize_rng: np.random.Generator | None = None):
        """A PrettyMIDI of the parts (all, or those whose stem is in ``stems``)."""
        import pretty_midi

        pm = pretty_midi.PrettyMIDI(initial_tempo=120.0)
        for part in self.parts:
            if stems is not None and part.stem not in stems:
                continue
            inst = pretty_midi.Instrument(program=int(part.program), is_drum=part.is_drum, name=part.role)
            inst.control_changes.append(pretty_midi.ControlChange(7, int(part.volume), 0.0))
            for pitch, vel, s, e in part.notes:
                ts, te = float(self.sec(s)), float(self.sec(e))
                if ts >= self.duration:
                    continue
                te = max(te, ts + 0.03)
                inst.notes.append(pretty_midi.Note(velocity=int(np.clip(vel, 1, 127)), pitch=int(pitch),
                                                   start=ts, end=min(te, self.duration + 2.0)))
            if inst.notes:
                pm.instruments.append(inst)
        return pm

    def vocal_notes_sec(self) -> list[tuple[float, float, float, str]]:
        if self.vocal is None:
            return []
        return [(p, float(self.sec(s)), float(self.sec(e)), v) for p, s, e, v in self.vocal.notes
                if self.sec(s) < self.duration]


# ---------------------------------------------------------------------------------------------- harmony
PROGRESSIONS = {
    ("pop", "major"): [[0, 4, 5, 3], [0, 3, 4, 0], [0, 5, 3, 4], [0, 3, 0, 4], [5, 3, 0, 4], [0, 4, 3, 4]],
    ("pop", "minor"): [[0, 5, 2, 6], [0, 3, 4, 0], [0, 6, 5, 6], [0, 3, 6, 2], [0, 5, 3, 4]],
    ("rock", "major"): [[0, 6, 3, 0], [0, 3, 4, 3], [0, 4, 3, 0], [0, 3, 0, 4]],
    ("rock", "minor"): [[0, 6, 5, 6], [0, 3, 6, 0], [0, 2, 6, 3]],
    ("loop", "major"): [[0, 3], [0, 4], [0, 5], [0, 1]],
    ("loop", "minor"): [[0, 3], [0, 5], [0, 6], [0, 0, 3, 4], [0, 5, 6, 0]],
    ("power", "major"): [[0, 6, 5, 4], [0, 3, 6, 0]],
    ("power", "minor"): [[0, 5, 6, 0], [0, 2, 6, 5], [0, 0, 5, 6], [0, 3, 5, 4]],
    ("jazz", "major"): [[1, 4, 0, 0], [0, 5, 1, 4], [2, 5, 1, 4], [0, 3, 1, 4]],
    ("jazz", "minor"): [[1, 4, 0, 0], [0, 3, 1, 4], [0, 5, 1, 4]],
    ("classical", "major"): [[0, 3, 4, 0], [0, 1, 4, 0], [0, 5, 1, 4], [0, 4, 5, 3, 1, 4, 0, 0]],
    ("classical", "minor"): [[0, 3, 4, 0], [0, 5, 3, 4], [0, 6, 2, 5, 3, 4, 0, 0]],
    ("blues", "major"): [[0, 0, 0, 0, 3, 3, 0, 0, 4, 3, 0, 4]],
    ("blues", "minor"): [[0, 0, 0, 0, 3, 3, 0, 0, 5, 4, 0, 4]],
    ("modal", "major"): [[0, 0, 3, 3], [0, 4, 0, 3], [0, 0, 0, 4]],
    ("modal", "minor"): [[0, 0, 5, 5], [0, 6, 0, 6], [0, 0, 3, 3]],
    ("drone", "major"): [[0]],
    ("drone", "minor"): [[0]],
    ("atonal", "major"): [[0]],
    ("atonal", "minor"): [[0]],
}


def chord_pcs(degree: int, tonic: int, mode: str, seventh: bool, raised_v: bool, dominant: bool = False) -> list[int]:
    """Pitch classes (root first, as semitone offsets 0..23 from the tonic's pc) of a diatonic chord."""
    scale = MAJOR if mode == "major" else MINOR
    if dominant:
        r = scale[degree % 7]
        return [tonic + r + x for x in (0, 4, 7, 10)]
    idx = [degree, degree + 2, degree + 4] + ([degree + 6] if seventh else [])
    pcs = [scale[i % 7] + 12 * (i // 7) for i in idx]
    if mode == "minor" and raised_v and degree % 7 == 4:
        pcs[1] += 1  # major V in minor (leading tone)
    return [tonic + p for p in pcs]


def place(pc_offset: int, lo: int) -> int:
    """The pitch with class ``pc_offset % 12`` in [lo, lo + 12)."""
    return lo + ((pc_offset - lo) % 12)


# ---------------------------------------------------------------------------------------------- tempo
def tempo_grid(rng, tempo: float, n_beats: int, kind: str, t0: float) -> np.ndarray:
    """Beat times (seconds) for ``n_beats`` beats: constant, ramp (accel/rit), step change or rubato."""
    k = np.arange(n_beats)
    if kind == "ramp":
        target = tempo * rng.uniform(0.78, 1.28)
        tempi = np.linspace(tempo, target, n_beats)
    elif kind == "step":
        at = int(rng.integers(n_beats // 4, 3 * n_beats // 4)) // 4 * 4
        tempi = np.where(k < at, tempo, tempo * rng.choice([0.75, 0.85, 1.2, 1.33]))
    elif kind == "rubato":
        drift = np.cumsum(rng.normal(0, 0.02, n_beats))
        drift = drift - np.linspace(0, drift[-1], n_beats)
        tempi = tempo * np.exp(np.clip(drift, -0.15, 0.15))
    else:
        tempi = tempo * (1 + 0.004 * rng.standard_normal(n_beats)).clip(0.98, 1.02)
    ibi = 60.0 / tempi
    return t0 + np.concatenate([[0.0], np.cumsum(ibi)])


# ---------------------------------------------------------------------------------------------- drums
def _drum_pattern(name: str, rng, steps: int) -> list[tuple[int, int, int]]:
    """(drum note, 16th step, velocity) for one bar of ``steps`` 16ths."""
    ev: list[tuple[int, int, int]] = []
    beats = steps // 4
    eighths = range(0, steps, 2)
    if name in ("rock", "pop", "light"):
        ev += [(KICK, 0, 110), (KICK, 8 if beats == 4 else 0, 100)]
        if rng.random() < 0.5:
            ev.append((KICK, int(rng.choice([6, 10, 14])) % steps, 85))
        sn = SIDE if name == "light" else SNARE
        ev += [(sn, s, 105) for s in ((4, 12) if beats == 4 else (4, 8))]
        hat = SHAKER if name == "light" and rng.random() < 0.5 else (RIDE if rng.random() < 0.2 else HH)
        sub = range(0, steps, 1) if (name == "pop" and rng.random() < 0.4) else eighths
        ev += [(hat, s, 70 + (15 if s % 4 == 0 else 0)) for s in sub]
    elif name == "disco":
        ev += [(KICK, s, 110) for s in range(0, steps, 4)] + [(SNARE, s, 100) for s in (4, 12)]
        ev += [(OPEN, s, 85) for s in range(2, steps, 4)] + [(HH, s, 60) for s in range(0, steps, 4)]
    elif name in ("house", "techno"):
        ev += [(KICK, s, 115) for s in range(0, steps, 4)]
        ev += [(OPEN if name == "house" else HH, s, 85) for s in range(2, steps, 4)]
        if name == "house":
            ev += [(CLAP, s, 95) for s in (4, 12)]
        else:
            ev += [(HH, s, 55) for s in range(1, steps, 2)]
            if rng.random() < 0.5:
                ev += [(CLAP, 12, 80)]
    elif name == "boombap":
        ev += [(KICK, 0, 115), (KICK, 7, 90), (KICK, 10, 105), (SNARE, 4, 110), (SNARE, 12, 110)]
        ev += [(HH, s, 75) for s in eighths]
    elif name == "shuffle":
        ev += [(KICK, 0, 100), (KICK, 8, 95), (SNARE, 4, 100), (SNARE, 12, 100)]
        ev += [(RIDE if rng.random() < 0.5 else HH, s, 80) for s in eighths]
    elif name == "swing":
        ev += [(RIDE, s, 85) for s in (0, 4, 6, 8, 12, 14) if s < steps] + [(PEDAL, s, 60) for s in (4, 12) if s < steps]
        ev += [(SNARE, int(s), 45) for s in rng.choice(steps, size=2, replace=False)]
        ev += [(KICK, 0, 50)]
    elif name == "metal":
        ev += [(KICK, s, 115) for s in range(0, steps, 1 if rng.random() < 0.5 else 2)]
        ev += [(SNARE, s, 120) for s in (4, 12)] + [(CRASH if rng.random() < 0.3 else RIDE, s, 90) for s in range(0, steps, 4)]
    elif name == "onedrop":
        ev += [(KICK, 8, 110), (SIDE, 8, 100)] + [(HH, s, 70) for s in eighths]
    elif name == "train":
        ev += [(KICK, 0, 100), (KICK, 8, 95)] + [(SNARE, s, 110 if s in (4, 12) else 55) for s in range(steps)]
    elif name == "funk":
        ev += [(KICK, 0, 115), (KICK, 3, 90), (KICK, 10, 105), (SNARE, 4, 110), (SNARE, 12, 110)]
        ev += [(SNARE, int(s), 35) for s in rng.choice(steps, size=3, replace=False)]
        ev += [(HH, s, 65 + (20 if s % 4 == 2 else 0)) for s in range(steps)]
    elif name == "bossa":
        ev += [(KICK, s, 85) for s in (0, 3, 4, 7, 8, 11, 12, 15) if s < steps]
        ev += [(SIDE, s, 80) for s in (0, 3, 6, 10, 13) if s < steps] + [(HH, s, 55) for s in eighths]
    elif name == "hand":
        for s in range(steps):
            if s % 4 == 0 or rng.random() < 0.35:
                ev.append((int(rng.choice([BONGO_H, BONGO_L, CONGA_M, CONGA_H, CONGA_L])), s, int(rng.integers(60, 110))))
        if rng.random() < 0.5:
            ev += [(TAMB, s, 60) for s in eighths]
    return ev


def drum_part(rng, style_groove: str, n_bars: int, bpb: int, vel_scale: float, fills: bool) -> Part:
    steps = 4 * bpb
    bars = [_drum_pattern(style_groove, rng, steps) for _ in range(2)]  # two alternating variations
    notes = []
    for bar in range(n_bars):
        pat = bars[bar % 2]
        if fills and bar % 4 == 3 and rng.random() < 0.6:
            pat = [e for e in pat if e[1] < steps // 2] + [
                (int(rng.choice([TOM_H, TOM_M, TOM_L, SNARE])), s, 100) for s in range(steps // 2, steps, 2)]
        if bar % 8 == 0 and style_groove not in ("swing", "hand", "light"):
            pat = pat + [(CRASH, 0, 100)]
        for note, s, vel in pat:
            b = bar * bpb + s / 4
            notes.append((note, int(vel * vel_scale * rng.uniform(0.9, 1.05)), b, b + 0.25))
    return Part("drums", 0, True, "drums", notes)


# ---------------------------------------------------------------------------------------------- parts
def _chord_for_bar(prog: list[int], bar: int, per_bar: int, beat_in_bar: float, bpb: int) -> int:
    i = bar * per_bar + int(beat_in_bar // (bpb / per_bar))
    return prog[i % len(prog)]


@dataclass
class _Sketch:
    """What is fixed before the parts are written: key, meter, tempo grid, harmony and the song-wide draws,
    with the helpers every part uses. Its fields are drawn from ``rng`` in a fixed order; the parts then draw
    from the same ``rng`` (chords, bass, melody, vocals, drums: the order of :func:`compose`)."""

    rng: np.random.Generator
    style: str
    st: dict[str, Any]
    duration: float
    tonic: int
    mode: str
    tempo: float
    bpb: int
    tempo_kind: str
    beats: np.ndarray
    n_bars: int
    swing: float
    density: float
    vel_lo: float
    vel_hi: float
    vel_scale: float
    register: int
    articulation: float
    dissonance: float
    harmony: str = ""
    prog: list[int] = field(default_factory=list)
    per_bar: int = 1
    seventh: bool = False
    raised_v: bool = False
    dominant: bool = False

    @property
    def scale(self) -> tuple[int, ...]:
        return MAJOR if self.mode == "major" else MINOR

    def vel(self, base=None) -> int:
        """A note velocity: drawn in the style's range (or ``base``), scaled by the song's dynamics."""
        v = self.rng.uniform(self.vel_lo, self.vel_hi) if base is None else base
        return int(np.clip(v * self.vel_scale, 1, 127))

    def reg(self, lo: int) -> int:
        """A part's lowest pitch: ``lo`` moved by the song's register and a small draw (independent of key)."""
        return lo + self.register + int(self.rng.integers(-2, 3))

    def chord_at(self, b) -> tuple[int, list[int]]:
        """(scale degree, pitch classes) of the chord sounding at beat ``b``."""
        bar = int(b // self.bpb)
        deg = _chord_for_bar(self.prog, bar, self.per_bar, b - bar * self.bpb, self.bpb)
        return deg, chord_pcs(deg, self.tonic, self.mode, self.seventh, self.raised_v, self.dominant)

    def add_dissonance(self, pitches):
        if self.dissonance > 0 and self.rng.random() < self.dissonance:
            pitches = pitches + [pitches[0] + int(self.rng.choice([1, 6, 11, 13]))]
        return pitches


def _draw_key_tempo_and_grid(rng, style: str, duration: float, *, tonic, mode, tempo, tempo_kind, density,
                             dynamics, register, articulation, dissonance, meter=None, beats=None,
                             swing=None) -> _Sketch:
    """Key, mode, tempo, meter, tempo curve and beat grid, swing, density and dynamics (what the caller pins
    is kept, the rest drawn from the style's ranges). ``meter``, ``beats`` and ``swing`` pinned skip their
    draws; left ``None`` (every task but beat) they are drawn exactly as before."""
    st = STYLES[style]
    tonic = int(rng.integers(12)) if tonic is None else int(tonic)
    mode = mode or ("major" if rng.random() < st["major_p"] else "minor")
    tempo = float(tempo if tempo is not None else rng.uniform(*st["tempo"]))
    bpb = (3 if rng.random() < st.get("meter3_p", 0.0) else 4) if meter is None else int(meter)
    if tempo_kind is None:
        r = rng.random()
        tempo_kind = "rubato" if r < st.get("rubato_p", 0.0) else ("constant" if r < 0.85 else str(rng.choice(["ramp", "step"])))
    if beats is None:
        t0 = float(rng.uniform(0.0, 0.6))
        n_beats = int(duration / (60.0 / (tempo * 0.7))) + 4 * bpb + 8
        beats = tempo_grid(rng, tempo, n_beats, tempo_kind, t0)
    else:  # the caller's grid: beat k at beats[k] seconds, beat 0 a downbeat
        beats = np.asarray(beats, dtype=np.float64)
        n_beats = len(beats) - 1
    n_bars = n_beats // bpb
    swing = float(rng.uniform(*st["swing"])) if swing is None else float(swing)
    density = float(rng.uniform(*st["density"])) if density is None else density
    vel_lo, vel_hi = st["vel"]
    vel_scale = float(np.clip(1.0 + dynamics, 0.35, 1.3))
    return _Sketch(rng, style, st, duration, tonic, mode, tempo, bpb, tempo_kind, beats, n_bars, swing, density,
                   vel_lo, vel_hi, vel_scale, register, articulation, dissonance)


def _draw_harmony(sk: _Sketch, cadence: float) -> None:
    """The chord progression (a loop of scale degrees, sometimes two), chords per bar, sevenths, the raised
    leading tone in minor, and with ``cadence`` a tonic opening and dominant close that establish the key."""
    rng = sk.rng
    harmony = sk.harmony = sk.st["harmony"]
    progs = PROGRESSIONS[(harmony, sk.mode)]
    prog = list(progs[int(rng.integers(len(progs)))])
    if harmony not in ("blues", "drone", "atonal") and rng.random() < 0.3:
        prog = prog + list(progs[int(rng.integers(len(progs)))])
    sk.per_bar = 2 if (harmony == "jazz" and rng.random() < 0.5) or (len(prog) <= 2 and rng.random() < 0.3) else 1
    sk.seventh = harmony in ("jazz",) or (rng.random() < 0.2)
    sk.raised_v = sk.mode == "minor" and (harmony == "classical" or rng.random() < max(0.6, cadence))
    if cadence and harmony not in ("blues", "drone", "atonal") and rng.random() < cadence:
        # establish the key: open on the tonic, close each loop with a dominant that resolves to it
        prog = [0] + prog[1:-1] + [4] if len(prog) >= 3 else [0, 4]
    sk.prog = prog
    sk.dominant = harmony == "blues"


def _chord_part(sk: _Sketch) -> tuple[Part, str]:
    """The accompaniment in one of the style's chord styles (pad, block, arpeggio, strum, comp, ...):
    (part, chord style)."""
    rng, st, bpb, per_bar, tonic, vel = sk.rng, sk.st, sk.bpb, sk.per_bar, sk.tonic, sk.vel
    cstyle = str(rng.choice(st["chord_style"]))
    cprog = int(rng.choice(st["chords"]))
    clo = sk.reg(52 if cprog not in (104,) else 55)
    chords = Part("chords", cprog, False, "other", volume=int(rng.integers(80, 105)))
    for bar in range(sk.n_bars):
        for half in range(per_bar):
            b0 = bar * bpb + half * bpb / per_bar
            span = bpb / per_bar
            deg, pcs = sk.chord_at(b0)
            if sk.harmony == "atonal":
                pcs = [tonic + int(x) for x in rng.integers(0, 12, size=3)]
            voiced = sorted(place(p, clo) for p in pcs)
            voiced = sk.add_dissonance(voiced)
            art = sk.articulation
            if cstyle in ("pad", "drone"):
                if cstyle == "drone":
                    voiced = [place(tonic, clo), place(tonic + 7, clo)]
                for p in voiced:
                    chords.notes.append((p, vel(sk.vel_lo), b0, b0 + span))
            elif cstyle == "block":
                hits = [0.0] if rng.random() < 0.5 else [0.0, span / 2]
                for h in hits:
                    for p in voiced:
                        chords.notes.append((p, vel(), b0 + h, b0 + h + (span / len(hits)) * 0.95 * art))
            elif cstyle in ("arp", "alberti", "arp16"):
                step = 0.25 if cstyle == "arp16" else 0.5
                seq = voiced + [voiced[0] + 12] if cstyle != "alberti" else [voiced[0], voiced[-1], voiced[1], voiced[-1]]
                if cstyle == "arp" and rng.random() < 0.5:
                    seq = seq + seq[-2:0:-1]
                for j, s in enumerate(np.arange(0, span, step)):
                    p = seq[j % len(seq)]
                    chords.notes.append((p, vel(), b0 + s, b0 + s + step * 0.95 * art * (2 if cstyle == "arp" else 1)))
            elif cstyle in ("strum", "root5strum"):
                pattern = [0, 1, 1.5, 2, 3, 3.5] if bpb == 4 else [0, 1, 2]
                for h in pattern:
                    if h >= span:
                        continue
                    for k, p in enumerate(voiced):
                        chords.notes.append((p, vel() - 10 * (h % 1 > 0), b0 + h + 0.012 * k, b0 + h + 0.45 * art))
            elif cstyle == "comp":
                for h in sorted(rng.choice(np.arange(0, span, 0.5), size=max(1, int(span)), replace=False)):
                    for p in voiced:
                        chords.notes.append((p, vel(), b0 + h, b0 + h + 0.4 * art))
            elif cstyle == "power":
                root = place(pcs[0], clo - 12)
                for s in np.arange(0, span, 0.5):
                    for p in (root, root + 7, root + 12):
                        chords.notes.append((p, vel(), b0 + s, b0 + s + 0.45 * art))
            elif cstyle in ("skank", "stab"):
                offs = [1.0, 3.0] if cstyle == "skank" else list(np.arange(0.5, span, 1.0))
                for h in offs:
                    if h < span:
                        for p in voiced:
                            chords.notes.append((p, vel(), b0 + h, b0 + h + 0.25 * art))
            elif cstyle in ("stab16", "funk16", "sparse"):
                prob = {"stab16": 0.35, "funk16": 0.45, "sparse": 0.15}[cstyle]
                for s in np.arange(0, span, 0.25):
                    if rng.random() < prob or (s == 0 and cstyle != "sparse"):
                        for p in voiced:
                            chords.notes.append((p, vel(), b0 + s, b0 + s + (0.2 if cstyle != "sparse" else 1.5) * art))
    return chords, cstyle


def _bass_part(sk: _Sketch) -> tuple[Part, str]:
    """The bass line in one of the style's bass styles (root, walking, octave, reggae, funk, ...):
    (part, bass style)."""
    rng, st, bpb, tonic, vel, articulation = sk.rng, sk.st, sk.bpb, sk.tonic, sk.vel, sk.articulation
    chord_at = sk.chord_at
    bstyle = str(rng.choice(st["bass_style"]))
    bprog = int(rng.choice(st["bass"]))
    blo = sk.reg(33 if bprog < 40 or bprog in (43, 58) else 40)
    bass = Part("bass", bprog, False, "bass", volume=int(rng.integers(90, 115)))
    for bar in range(sk.n_bars):
        for beat in range(bpb):
            b = bar * bpb + beat
            deg, pcs = chord_at(b)
            root = place(pcs[0], blo)
            fifth = place(pcs[0] + 7, blo)
            nxt_root = place(chord_at(b + 1)[1][0], blo)
            if bstyle == "root" and beat == 0:
                bass.notes.append((root, vel(), b, b + bpb * 0.95 * art_c(articulation)))
            elif bstyle == "halves" and beat % 2 == 0:
                bass.notes.append((root if beat == 0 else fifth, vel(), b, b + 1.9 * art_c(articulation)))
            elif bstyle == "drone" and beat == 0 and bar % 2 == 0:
                bass.notes.append((place(tonic, blo), vel(sk.vel_lo), b, b + 2 * bpb))
            elif bstyle == "root5":
                if beat % 2 == 0:
                    bass.notes.append((root if beat == 0 else fifth, vel(), b, b + 0.9 * articulation))
            elif bstyle == "root8":
                for s in (0, 0.5):
                    bass.notes.append((root, vel(), b + s, b + s + 0.45 * articulation))
            elif bstyle == "octave":
                for s, p in ((0, root), (0.5, root + 12)):
                    bass.notes.append((p, vel(), b + s, b + s + 0.4 * articulation))
            elif bstyle == "walking":
                if beat == bpb - 1:
                    p = nxt_root + int(rng.choice([-1, 1, -2, 2]))
                elif beat == 0:
                    p = root
                else:
                    p = place(pcs[int(rng.integers(len(pcs)))], blo)
                bass.notes.append((p, vel(), b, b + 0.9 * articulation))
            elif bstyle == "sparse":
                if beat == 0:
                    bass.notes.append((root, vel(), b, b + 1.4))
                elif rng.random() < 0.3:
                    bass.notes.append((root, vel(), b + 0.75, b + 1.2))
            elif bstyle == "reggae":
                if beat == 0:
                    bass.notes.append((root, vel(), b + 0.5, b + 1.2))
                elif rng.random() < 0.6:
                    p = place(pcs[int(rng.integers(len(pcs)))], blo)
                    bass.notes.append((p, vel(), b + float(rng.choice([0, 0.5])), b + 0.9))
            elif bstyle == "offbeat":
                bass.notes.append((root, vel(), b + 0.5, b + 0.9))
            elif bstyle == "funk":
                for s in np.arange(0, 1, 0.25):
                    if (beat == 0 and s == 0) or rng.random() < 0.35:
                        p = root + (12 if rng.random() < 0.25 else 0)
                        bass.notes.append((p, vel(), b + s, b + s + 0.2))
    return bass, bstyle


def _melody_line(sk: _Sketch, lo: int, hi: int, dens: float, long_notes: bool = False) -> list[tuple[int, float, float]]:
    """Motif-based melody: a 2-bar motif repeated with variation; chord tones on strong beats."""
    rng, bpb, tonic, scale = sk.rng, sk.bpb, sk.tonic, sk.scale
    line = []
    motif_rhythm = []
    t = 0.0
    choices = [2.0, 1.0, 0.5] if long_notes else [1.0, 0.5, 0.5, 0.25]
    while t < 2 * bpb:
        d = float(rng.choice(choices)) if rng.random() < 0.6 + 0.3 * dens else 1.0
        d = min(d, 2 * bpb - t)
        rest = rng.random() < 0.25 * (1 - dens)
        motif_rhythm.append((t, d, rest))
        t += d
    deg_walk = int(rng.integers(0, 7))
    center = (lo + hi) // 2
    prev = place(tonic + scale[deg_walk], center - 6)
    for bar0 in range(0, sk.n_bars, 2):
        if rng.random() < 0.15:
            continue  # breathing space
        for (s, d, rest) in motif_rhythm:
            b = bar0 * bpb + s
            if rest:
                continue
            deg, pcs = sk.chord_at(b)
            if sk.harmony == "atonal":
                p = int(rng.integers(lo, hi))
            elif s % 1 == 0 and rng.random() < 0.7:
                cands = [place(pc, prev - 6) for pc in pcs]
                p = min(cands, key=lambda c: abs(c - prev) + rng.random())
            else:
                step = int(rng.choice([-2, -1, -1, 1, 1, 2]))
                i = min(range(7), key=lambda j: abs(((tonic + scale[j]) - prev) % 12))
                j = i + step
                p = prev + (scale[j % 7] + 12 * (j // 7) - scale[i])
            while p < lo:
                p += 12
            while p > hi:
                p -= 12
            if sk.dissonance > 0 and rng.random() < sk.dissonance * 0.3:
                p += int(rng.choice([-1, 1]))
            line.append((p, b, b + d * 0.95 * (sk.articulation if not long_notes else 1.0)))
            prev = p
    # end the piece's last phrase on the tonic
    return line


def _lead_part(sk: _Sketch, has_vocals: bool) -> Part:
    """A lead instrument playing a melody (softer when it answers a voice)."""
    rng = sk.rng
    lprog = int(rng.choice(sk.st["lead"]))
    llo = sk.reg(60 if lprog not in (32, 33, 58, 42, 70) else 48)
    lead = Part("lead", lprog, False, "other", volume=int(rng.integers(85, 110)))
    for p, s, e in _melody_line(sk, llo, llo + 19, sk.density):
        lead.notes.append((p, sk.vel(), s, e))
    if has_vocals:  # the lead answers the voice: keep it softer
        lead.volume = int(lead.volume * 0.7)
    return lead


def _vocal_line(sk: _Sketch, vocal_sex: str | None) -> Vocal:
    """A singer (of ``vocal_sex`` when given), a technique (spoken for rap) and a sung melody with vowels."""
    rng = sk.rng
    singer = V.random_singer(rng, vocal_sex)
    technique = "spoken" if sk.st.get("rap") else str(rng.choice(["vibrato", "straight", "belt", "breathy", "vibrato"]))
    vlo = singer.lo + 3
    line = _melody_line(sk, vlo, singer.hi - 3, min(1.0, sk.density * 0.8),
                        long_notes=sk.style in ("classical", "choral"))
    vnotes = [(p, s, e, str(rng.choice(V.VOWEL_NAMES))) for p, s, e in line]
    return Vocal(singer, technique, vnotes, level=float(rng.uniform(0.8, 1.1)))


def _drum_parts(sk: _Sketch, drums: bool | None) -> tuple[list[Part], str | None]:
    """The drum kit in one of the style's grooves, or timpani (orchestral), or nothing: (parts, groove)."""
    rng, st, bpb, tonic = sk.rng, sk.st, sk.bpb, sk.tonic
    use_drums = (rng.random() < st["drum_p"]) if drums is None else bool(drums)
    groove = None
    parts: list[Part] = []
    if use_drums and st["drums"]:
        groove = str(rng.choice(st["drums"]))
        if groove == "timpani":
            timp = Part("timpani", 47, False, "drums")
            for bar in range(sk.n_bars):
                if bar % 2 == 0:
                    timp.notes.append((place(tonic, 40), sk.vel(), bar * bpb, bar * bpb + 1))
                    timp.notes.append((place(tonic + 7, 40), sk.vel(), bar * bpb + bpb - 1, bar * bpb + bpb))
            parts.append(timp)
        else:
            parts.append(drum_part(rng, groove, sk.n_bars, bpb, sk.vel_scale, fills=rng.random() < 0.7))
    return parts, groove


def compose(
    rng: np.random.Generator,
    style: str,
    duration: float,
    *,
    tonic: int | None = None,
    mode: str | None = None,
    tempo: float | None = None,
    tempo_kind: str | None = None,
    drums: bool | None = None,
    vocals: bool | None = None,
    vocal_sex: str | None = None,
    register: int = 0,
    articulation: float = 1.0,
    dissonance: float = 0.0,
    dynamics: float = 0.0,
    density: float | None = None,
    cadence: float = 0.0,
    meter: int | None = None,
    beats: np.ndarray | None = None,
    swing: float | None = None,
) -> Song:
    """Compose a song of ``style``; keyword arguments pin what a task controls, the rest is drawn.

    The steps draw from ``rng`` in this order (a change of order changes every song): key, tempo and grid;
    harmony; chords; bass; whether there are vocals and a lead; the lead; the vocal line; drums.

    ``meter`` (beats per bar), ``beats`` (an explicit beat grid in seconds, beat 0 a downbeat; the song has
    ``(len(beats) - 1) // meter`` bars) and ``swing`` pin what is otherwise drawn; their draws are then
    skipped. Left ``None`` (the default) nothing changes: every other task's songs are drawn as before.
    """
    if style not in STYLES:
        raise KeyError(f"unknown style {style!r}; known: {', '.join(STYLES)}")
    sk = _draw_key_tempo_and_grid(rng, style, duration, tonic=tonic, mode=mode, tempo=tempo,
                                  tempo_kind=tempo_kind, density=density, dynamics=dynamics, register=register,
                                  articulation=articulation, dissonance=dissonance, meter=meter, beats=beats,
                                  swing=swing)
    _draw_harmony(sk, cadence)
    chords, cstyle = _chord_part(sk)
    bass, bstyle = _bass_part(sk)
    parts = [chords, bass]

    # melody: a lead instrument and / or vocals
    has_vocals = (rng.random() < sk.st["vocal_p"]) if vocals is None else bool(vocals)
    has_lead = rng.random() < sk.st["melody_p"] or not has_vocals and rng.random() < 0.5
    if has_lead:
        parts.append(_lead_part(sk, has_vocals))
    vocal = _vocal_line(sk, vocal_sex) if has_vocals else None

    drum_parts, groove = _drum_parts(sk, drums)
    parts += drum_parts

    info = dict(style=style, tonic=sk.tonic, mode=sk.mode, tempo=round(sk.tempo, 2), tempo_kind=sk.tempo_kind,
                meter=sk.bpb, swing=round(sk.swing, 3), groove=groove, chord_style=cstyle, bass_style=bstyle,
                harmony=sk.harmony, progression=sk.prog, density=round(sk.density, 3), vocals=has_vocals,
                register=register, lead=has_lead,
                vocal_sex=vocal.singer.sex if vocal else None, technique=vocal.technique if vocal else None)
    return Song(style, sk.tonic, sk.mode, sk.beats, sk.bpb, duration, sk.swing, parts, vocal, info)


def art_c(a: float) -> float:
    return float(np.clip(a, 0.2, 1.0))


# ---------------------------------------------------------------------------------------------- render
def render_song(song: Song, rng: np.random.Generator, stems: bool = False) -> dict[str, np.ndarray] | np.ndarray:
    """Audio of a song (24 kHz float32): the full mix, or a dict of the four stems when ``stems``."""
    from tasks.embedded.render import render_midi

    n = int(round(song.duration * V.SR))
    vox = np.zeros(n, dtype=np.float32)
    if song.vocal is not None:
        vn = song.vocal_notes_sec()
        vox = V.sing(vn, song.vocal.singer, song.vocal.technique, rng, song.duration) * (0.45 * song.vocal.level)
    if not stems:
        mix = render_midi(song.midi(), song.duration) + vox
        return _fade(mix)
    out = {"vocals": vox.astype(np.float32)}
    for stem in ("drums", "bass", "other"):
        out[stem] = render_midi(song.midi(stems=(stem,)), song.duration)
    return {k: _fade(v) for k, v in out.items()}


def _fade(x: np.ndarray, ms: float = 20.0) -> np.ndarray:
    k = int(ms / 1000 * V.SR)
    x = np.asarray(x, dtype=np.float32).copy()
    if k and len(x) > 2 * k:
        x[-k:] *= np.linspace(1, 0, k, dtype=np.float32)
    return x
