"""Generators built on composed songs: tagging, key, genre, beat, emotion, MTG, separation, pretraining."""
from __future__ import annotations

import numpy as np

from tasks.embedded import compose as C
from tasks.embedded import tags as T
from tasks.embedded.common import SPLITS, SR, Job, Out, TaskGenerator, round_list
from tasks.embedded.compose import ALL_STYLES, GTZAN_STYLES, STYLES, Part, compose, render_song
from tasks.embedded.render import normalize, to_int16

# tiny builds cycle through a few contrasting styles so every tag of theirs reaches every split
TINY_STYLES = ("rock", "techno", "classical", "jazz")
KEY_NAMES = ("C", "Db", "D", "Eb", "E", "F", "Gb", "G", "Ab", "A", "Bb", "B")


def _level(rng, lo=-24.0, hi=-16.0) -> float:
    return float(rng.uniform(lo, hi))


def _mix(song, rng, level_db):
    y = render_song(song, rng)
    return normalize(y, level_db)


def _plan(family: str, counts: dict[str, int], params_fn=None) -> list[Job]:
    jobs = []
    for split in SPLITS:
        for i in range(counts[split]):
            jobs.append(Job(family, split, i, params_fn(split, i) if params_fn else ()))
    return jobs


# ---------------------------------------------------------------------------------------------- base
class SongTask(TaskGenerator):
    """A task whose items are single composed songs of ``duration`` seconds."""

    sizes: dict[str, dict] = {}

    def counts(self, size):
        return self.sizes[size]["counts"]

    def duration(self, size):
        return self.sizes[size]["duration"]

    def plan(self, size: str) -> list[Job]:
        d = self.duration(size)
        return _plan(self.name, self.counts(size), lambda s, i: (("duration", d),))

    def labels(self, items) -> list:
        raise NotImplementedError

    def _styled_plan(self, size: str) -> list[Job]:
        """Jobs cycling through the styles (all of them for standard, a few for tiny)."""
        d = self.duration(size)
        styles = ALL_STYLES if size == "standard" else TINY_STYLES
        return _plan(self.name, self.counts(size), lambda s, i: (("duration", d), ("style", styles[i % len(styles)])))

    @staticmethod
    def _song_at_random_level(rng, style: str, duration: float):
        """A rendered song of ``style`` at a random loudness (-30 .. -14 dB): (song, audio, level_db)."""
        level_db = float(rng.uniform(-30, -14))
        song = compose(rng, style, duration, dynamics=(level_db + 22) / 16 * 0.5)
        return song, normalize(render_song(song, rng), level_db), level_db

    @staticmethod
    def _out(job: Job, y: np.ndarray, target, extra, group=None) -> Out:
        rel = f"audio/{job.split}/{job.split}-{job.index:05d}.flac"
        iid = f"{job.split}-{job.index:05d}"
        return Out({rel: to_int16(y)}, [dict(id=iid, audio=rel, target=target, group=group or iid, extra=extra)])


# ---------------------------------------------------------------------------------------------- key
class KeyTask(SongTask):
    """24 keys, balanced: item i of a split gets key i mod 24; style, tempo, register drawn independently."""

    name = "key"
    version = 2  # 2: cadential progressions (tonic opening, dominant close) in most key items
    sizes = {"standard": {"counts": {"train": 240, "valid": 72, "test": 120}, "duration": 8.0},
             "tiny": {"counts": {"train": 24, "valid": 6, "test": 12}, "duration": 4.0}}
    styles = ("pop", "rock", "classical", "jazz", "folk", "country", "newage", "blues", "disco", "reggae",
              "orchestral", "lounge", "funk", "synthpop")

    def plan(self, size):
        d = self.duration(size)
        return _plan(self.name, self.counts(size),
                     lambda s, i: (("duration", d), ("key", i % 24)))

    def make(self, job: Job) -> list[Out]:
        rng = job.rng()
        k = job.p["key"]
        tonic, mode = k % 12, ("major" if k < 12 else "minor")
        style = str(rng.choice(self.styles))
        song = compose(rng, style, job.p["duration"], tonic=tonic, mode=mode, cadence=0.6)
        y = _mix(song, rng, _level(rng))
        target = f"{KEY_NAMES[tonic]} {mode}"
        return [self._out(job, y, target, dict(style=style, tempo=song.info["tempo"]))]

    def labels(self, items):
        from tasks.key import KEYS

        return list(KEYS)


# ---------------------------------------------------------------------------------------------- genre
class GenreTask(SongTask):
    name = "genre"
    version = 1
    sizes = {"standard": {"per_class": {"train": 30, "valid": 8, "test": 15}, "duration": 8.0},
             "tiny": {"per_class": {"train": 1, "valid": 1, "test": 1}, "duration": 3.0}}

    def plan(self, size):
        pc = self.sizes[size]["per_class"]
        d = self.duration(size)
        counts = {s: n * len(GTZAN_STYLES) for s, n in pc.items()}
        return _plan(self.name, counts, lambda s, i: (("duration", d), ("genre", GTZAN_STYLES[i % len(GTZAN_STYLES)])))

    def make(self, job):
        rng = job.rng()
        g = job.p["genre"]
        song = compose(rng, g, job.p["duration"])
        y = _mix(song, rng, _level(rng, -26, -14))
        return [self._out(job, y, g, dict(tempo=song.info["tempo"], key=f"{KEY_NAMES[song.tonic]} {song.mode}"))]

    def labels(self, items):
        return list(GTZAN_STYLES)


# ---------------------------------------------------------------------------------------------- beat
# Beat v2: material that defeats onset-only tracking the way real recordings do, with exact beat and
# downbeat truth (the composed grid). An item is drawn as a descriptor (:func:`beat_descriptor`: kind, style,
# tempo curve and grid, meter, swing, groove, fills, breaks, dynamics, timing, room) before anything is
# composed; :meth:`BeatTask.describe` gives it with the targets without composing or rendering.
BEAT_KINDS = ("groove", "halftime", "doubletime", "band", "sparse")
BEAT_KIND_P = (0.28, 0.15, 0.12, 0.20, 0.25)
BEAT_TEMPO_KINDS = ("constant", "drift", "step", "rubato")
BEAT_BPM = (60.0, 200.0)  # every local tempo of every item lies in this range
_BEAT_TEMPO_RANGE = {"groove": (60, 200), "halftime": (110, 200), "doubletime": (60, 105), "band": (60, 200),
                     "sparse": (60, 170)}
_BEAT_STYLES = {
    "groove": ("rock", "pop", "disco", "funk", "hiphop", "reggae", "country", "blues", "jazz", "metal", "house",
               "techno", "synthpop", "folk", "lounge"),
    "halftime": ("rock", "metal", "hiphop", "pop", "synthpop", "trance", "funk"),
    "doubletime": ("rock", "pop", "funk", "country", "folk", "disco", "blues"),
    "band": ("folk", "country", "classical", "jazz", "blues", "lounge", "pop", "rock", "reggae", "newage",
             "orchestral"),
    "sparse": ("ambient", "newage", "classical", "choral", "orchestral", "jazz", "lounge", "pop", "folk"),
}
_TEMPO_KIND_P = {"groove": (0.5, 0.3, 0.2, 0.0), "halftime": (0.5, 0.3, 0.2, 0.0), "doubletime": (0.5, 0.3, 0.2, 0.0),
                 "band": (0.35, 0.25, 0.15, 0.25), "sparse": (0.3, 0.25, 0.1, 0.35)}
# a style's usual groove (drum kinds); another one is drawn in a quarter of the items
_STYLE_GROOVE = {"rock": "backbeat", "pop": "backbeat", "country": "train", "folk": "backbeat", "metal": "backbeat",
                 "synthpop": "four", "disco": "four", "house": "four", "techno": "four", "trance": "four",
                 "funk": "funk", "hiphop": "boombap", "reggae": "onedrop", "blues": "shuffle", "jazz": "swing",
                 "lounge": "bossa"}
_OTHER_GROOVES = ("backbeat", "funk", "hand", "shuffle", "four", "sparse")
_METER3_GROOVES = ("backbeat", "swing", "hand", "shuffle", "sparse")
_HATS = ("eighths", "sixteenths", "flat", "offbeat", "quarters", "none")
_SWING_STYLES = {"jazz": (0.9, 0.2, 0.34), "blues": (0.85, 0.2, 0.34), "hiphop": (0.5, 0.08, 0.25),
                 "reggae": (0.5, 0.08, 0.2), "funk": (0.4, 0.06, 0.18), "lounge": (0.4, 0.08, 0.2)}
_MACHINE_STYLES = ("house", "techno", "synthpop", "trance", "disco")  # no timing jitter: sequenced
_PAD_PROGRAMS = (88, 89, 90, 91, 94, 95, 48, 49, 52, 19, 16)
_PIANO_PROGRAMS = (0, 1, 2, 4, 5, 46, 24, 11)
_CHORD_PROGRAMS = (0, 4, 5, 16, 19, 24, 25, 26, 27, 29, 30, 46, 48, 50, 61, 62, 80, 81, 88, 89)


def _bpm_curve_grid(rng, d: dict) -> np.ndarray:
    """The item's beat grid (seconds in song time, beat 0 = a downbeat at ``t0``): constant (with a drawn
    beat-to-beat jitter), drift (ramp or slow wave), step (a tempo change at a bar line inside the item) or
    rubato (random walk with phrase-end ritardandi); every local tempo clipped to BEAT_BPM."""
    tempo, kind, bpb, t0 = d["tempo0"], d["tempo_kind"], d["meter"], d["t0"]
    span = d["lead_in"] + d["duration"]
    n = int(np.ceil((span + 2.0) * BEAT_BPM[1] / 60.0 / bpb)) * bpb + bpb
    k = np.arange(n)
    n_item = max(1.0, (span - t0) * tempo / 60.0)  # beats to the item's end at the start tempo
    if kind == "constant":
        sd = float(rng.choice([0.0, 0.004, 0.01]))
        tempi = tempo * (1 + sd * rng.standard_normal(n)).clip(0.97, 1.03)
        d["curve"] = f"jitter {sd:g}"
    elif kind == "drift":
        if rng.random() < 0.6:  # accelerando / ritardando across the item
            f = float(np.exp(rng.uniform(np.log(0.78), np.log(1.28))))
            tempi = tempo * f ** np.clip(k / n_item, 0, 1)
            d["curve"] = f"ramp x{f:.2f}"
        else:  # a band pushing and relaxing
            amp, period, ph = float(rng.uniform(0.04, 0.1)), float(rng.uniform(6, 16)), float(rng.uniform(0, 2 * np.pi))
            tempi = tempo * (1 + amp * np.sin(2 * np.pi * k / period + ph))
            d["curve"] = f"wave {amp:.2f}/{period:.0f} beats"
        tempi = tempi * (1 + 0.003 * rng.standard_normal(n))
    elif kind == "step":
        at_time = d["lead_in"] + float(rng.uniform(0.3, 0.7)) * d["duration"]
        at_bar = max(1, int(round((at_time - t0) * tempo / 60.0 / bpb)))
        f = float(rng.choice([0.67, 0.75, 0.8, 1.25, 1.33, 1.5]))
        if not BEAT_BPM[0] <= tempo * f <= BEAT_BPM[1]:
            f = 1.0 / f
        tempi = np.where(k < at_bar * bpb, tempo, tempo * f) * (1 + 0.003 * rng.standard_normal(n))
        d["curve"] = f"x{f:.2f} at bar {at_bar}"
    else:  # rubato
        walk = np.clip(np.cumsum(rng.normal(0, 0.03, n)), -0.25, 0.25)
        tempi = tempo * np.exp(walk)
        plen = bpb * int(rng.choice([2, 4]))
        ends = (k % plen) == plen - 1
        tempi[ends] *= rng.uniform(0.6, 0.88, int(ends.sum()))
        d["curve"] = f"rubato, phrases of {plen} beats"
    tempi = np.clip(tempi, *BEAT_BPM)
    beats = t0 + np.concatenate([[0.0], np.cumsum(60.0 / tempi)])
    need = int(np.searchsorted(beats, span + 1.5)) + 1  # whole bars reaching 1.5 s past the item
    nb = min(n, int(np.ceil(need / bpb)) * bpb + bpb)
    return beats[: nb + 1]


def _bars_inside(d: dict, lo_s: float = 1.0, hi_s: float = 1.5) -> list[int]:
    """Song bars starting inside the item (more than ``lo_s`` after its start, ``hi_s`` before its end)."""
    g, bpb, a = d["grid"], d["meter"], d["lead_in"]
    return [b for b in range((len(g) - 1) // bpb) if a + lo_s < g[b * bpb] < a + d["duration"] - hi_s]


def beat_descriptor(rng: np.random.Generator, duration: float) -> dict:
    """Everything an item is made of except its notes, drawn from ``rng`` (the first draws of the item):
    kind, tempo and curve, style, meter, swing, lead-in (the item starts inside the piece), beat grid, groove,
    hats, fills, breaks, feel switch, half-time accompaniment, dynamics, anticipations, timing jitter,
    texture, mix, room and noise floor. ``grid`` is the beat grid in song time; :func:`beat_targets` turns
    it into the item's beats, downbeats and mean tempo."""
    kind = str(rng.choice(BEAT_KINDS, p=BEAT_KIND_P))
    lo, hi = _BEAT_TEMPO_RANGE[kind]
    tempo = float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
    pool = _BEAT_STYLES[kind]
    if kind in ("groove", "band"):  # styles whose usual tempo (widened) holds this one, when there are any
        fits = [s for s in pool if STYLES[s]["tempo"][0] * 0.8 <= tempo <= STYLES[s]["tempo"][1] * 1.25]
        pool = tuple(fits) or pool
    style = str(rng.choice(pool))
    p3 = {"groove": 0.1, "band": 0.18, "sparse": 0.18}.get(kind, 0.0)
    meter = 3 if rng.random() < p3 else 4
    tempo_kind = str(rng.choice(BEAT_TEMPO_KINDS, p=_TEMPO_KIND_P[kind]))
    sp, slo, shi = _SWING_STYLES.get(style, (0.12, 0.08, 0.3))
    swing = float(rng.uniform(slo, shi)) if rng.random() < sp else 0.0
    d = dict(kind=kind, style=style, tempo0=tempo, meter=meter, tempo_kind=tempo_kind, swing=swing,
             duration=float(duration), lead_in=float(rng.uniform(0.2, 2.5)), t0=float(rng.uniform(0.0, 0.3)))
    d["grid"] = _bpm_curve_grid(rng, d)
    drums = kind in ("groove", "halftime", "doubletime")
    groove = None
    if kind == "halftime":
        groove = "halftime"
    elif kind == "doubletime":
        groove = "double"
    elif drums:
        groove = _STYLE_GROOVE.get(style, "backbeat") if rng.random() < 0.75 else str(rng.choice(_OTHER_GROOVES))
        if meter == 3 and groove not in _METER3_GROOVES:
            groove = "backbeat"
    d["groove"] = groove
    hat_p = {"double": (0.0, 0.5, 0.5, 0.0, 0.0, 0.0), "halftime": (0.35, 0.1, 0.0, 0.0, 0.3, 0.25)}.get(
        groove, (0.35, 0.15, 0.2, 0.12, 0.1, 0.08))
    d["hats"] = str(rng.choice(_HATS, p=hat_p)) if drums else None
    d["fill_p"] = float(rng.uniform(0.2, 0.9)) if drums and rng.random() < 0.7 else 0.0
    inside = _bars_inside(d)
    d["drums_enter"] = int(rng.choice([0, 0, 0, 1, 2])) if drums else 0
    d["break"], d["break_bars"] = None, []
    if drums and inside and rng.random() < 0.35:
        d["break"] = str(rng.choice(["drop", "stop"]))
        b = int(rng.choice(inside))
        d["break_bars"] = [b, b + 1] if d["break"] == "drop" and rng.random() < 0.5 else [b]
    d["dynamics"] = str(rng.choice(["flat", "crescendo", "decrescendo", "soft"], p=[0.45, 0.2, 0.1, 0.25]))
    d["soft_bars"] = []
    if d["dynamics"] == "soft" and inside:
        b = int(rng.choice(inside))
        d["soft_bars"] = list(range(b, b + int(rng.integers(2, 5))))
        d["soft_gain"] = float(rng.uniform(0.35, 0.6))
    elif d["dynamics"] == "soft":
        d["dynamics"] = "flat"
    d["push_p"] = float(rng.uniform(0.3, 0.8)) if kind != "sparse" and rng.random() < 0.35 else 0.0
    d["timing_ms"] = 0.0 if style in _MACHINE_STYLES or rng.random() < 0.35 else float(rng.uniform(3, 12))
    d["texture"] = str(rng.choice(["pads", "piano"])) if kind == "sparse" else None
    d["vocals"] = (rng.random() < 0.2) if kind == "sparse" else None  # None: the style decides
    d["room"] = (float(rng.uniform(0.3, 1.6)), float(rng.uniform(0.1, 0.45))) if rng.random() < 0.5 else None
    d["mix"] = dict(program=int(rng.choice(_CHORD_PROGRAMS)) if rng.random() < 0.3 else None,
                    drop_lead=bool(rng.random() < 0.25), drop_bass=bool(rng.random() < 0.15),
                    pad_layer=bool(rng.random() < 0.2))
    # half-time items: bass and chords often move in half notes too, leaving the beat to the hats and melody
    d["halved"] = bool(kind == "halftime" and rng.random() < 0.6)
    # a feel switch: from a bar inside the item the drummer goes to half time (tempo >= 100) or double time
    # (tempo <= 120) for 2-4 bars or to the end, as choruses and bridges do
    d["switch"], d["switch_bars"] = None, []
    if kind == "groove" and meter == 4 and groove not in ("swing", "bossa", "hand", "sparse") and inside \
            and rng.random() < 0.3:
        feels = [f for f, ok in (("halftime", tempo >= 100), ("double", tempo <= 120)) if ok]
        d["switch"] = str(rng.choice(feels))
        b = int(rng.choice(inside))
        d["switch_bars"] = list(range(b, b + int(rng.choice([2, 3, 4, 99]))))
    d["noise_db"] = float(rng.uniform(-80, -55))  # the recording's noise floor (dBFS)
    return d


def beat_targets(d: dict) -> tuple[list[float], list[float], float]:
    """(beats, downbeats, mean tempo) of a descriptor's item: the grid's beats inside the item (seconds from
    its start, to 0.1 ms), the first beat of every bar among them, and 60 x (beats - 1) / (last - first)."""
    g = np.asarray(d["grid"]) - d["lead_in"]
    idx = np.flatnonzero((g >= 0.0) & (g < d["duration"] - 0.05))
    beats = [round(float(g[i]), 4) for i in idx]
    downs = [round(float(g[i]), 4) for i in idx if i % d["meter"] == 0]
    tempo = 60.0 * (len(beats) - 1) / (beats[-1] - beats[0]) if len(beats) > 1 else float(d["tempo0"])
    return beats, downs, float(tempo)


def _onset_key(s: float) -> float:
    return round(float(s) * 4) / 4  # strummed chord notes (12 ms apart) share their 16th


def _bar_chords(part: Part, bpb: int, n_bars: int) -> list[list[int]]:
    """Per bar: up to four distinct pitches the part plays in the first half of the bar (its harmony)."""
    out = [[] for _ in range(n_bars)]
    for p, _, s, _ in part.notes:
        bar = int(s // bpb)
        if 0 <= bar < n_bars and s - bar * bpb < bpb / 2 and p not in out[bar]:
            out[bar].append(int(p))
    return [sorted(ps)[:4] for ps in out]


def _sustained(chords: list[list[int]], rng, bpb: int, attack_p: float, vel: tuple[int, int]) -> list[tuple]:
    """A chord per bar struck on the bar line and, with ``attack_p``, again on other beats; each attack
    sustains to the next."""
    notes = []
    for bar, ps in enumerate(chords):
        if not ps:
            continue
        hits = [0] + [b for b in range(1, bpb) if rng.random() < attack_p]
        for j, h in enumerate(hits):
            end = hits[j + 1] if j + 1 < len(hits) else bpb
            v = int(rng.integers(*vel))
            notes += [(p, v, bar * bpb + h, bar * bpb + end) for p in ps]
    return notes


def _thin_line(part: Part, rng, keep_p: float, max_len: float) -> None:
    """Keep a line's notes that start on a beat (with ``keep_p``), each held to the next kept note."""
    kept = sorted((n for n in part.notes if _onset_key(n[2]) % 1 == 0 and rng.random() < keep_p), key=lambda n: n[2])
    part.notes = [(p, v, s, min(s + max_len, kept[i + 1][2] if i + 1 < len(kept) else s + max_len))
                  for i, (p, v, s, _) in enumerate(kept)]


def _groove_bar(rng, groove: str, bpb: int, hats: str | None) -> list[tuple[int, float, int]]:
    """(drum note, position in beats, velocity) for one bar of ``groove``."""
    steps = 4 * bpb
    back = (4, 12) if bpb == 4 else (4, 8)  # beats 2 and 4 (2 and 3 in 3/4)
    ev: list[tuple[int, int, int]] = []
    if groove == "backbeat":
        ev += [(C.KICK, 0, 110)] + ([(C.KICK, 8, 100)] if bpb == 4 else [])
        for s in rng.choice([3, 6, 7, 10, 11, 14], size=int(rng.integers(0, 3)), replace=False):
            if s < steps:
                ev.append((C.KICK, int(s), 85))
        ev += [(C.SNARE, s, 105) for s in back]
    elif groove == "halftime":  # the backbeat at half speed: kick on 1, snare on 3
        ev += [(C.KICK, 0, 112)] + [(C.KICK, int(s), 90) for s in
                                     rng.choice([6, 10, 11, 14], size=int(rng.integers(0, 2)), replace=False)]
        ev += [(C.SNARE, 8, 112)]
    elif groove == "double":  # the backbeat at double speed: kick on every beat, snare on every "and"
        ev += [(C.KICK, s, 105) for s in range(0, steps, 4)] + [(C.SNARE, s, 100) for s in range(2, steps, 4)]
    elif groove == "four":
        ev += [(C.KICK, s, 115) for s in range(0, steps, 4)]
        if rng.random() < 0.8:
            ev += [(C.CLAP, s, 95) for s in back]
    elif groove == "train":
        ev += [(C.KICK, 0, 100), (C.KICK, 8, 95)] + [(C.SNARE, s, 110 if s in back else 55) for s in range(steps)]
    elif groove == "funk":
        ev += [(C.KICK, 0, 115), (C.KICK, int(rng.choice([3, 6, 7])), 90), (C.KICK, 10, 105)]
        ev += [(C.SNARE, s, 110) for s in back] + [(C.SNARE, int(s), 35) for s in rng.choice(steps, 3, replace=False)]
    elif groove == "boombap":
        ev += [(C.KICK, 0, 115), (C.KICK, 7, 90), (C.KICK, 10, 105)] + [(C.SNARE, s, 110) for s in back]
    elif groove == "onedrop":  # kick and rim together on beat 3 only
        ev += [(C.KICK, 8, 110), (C.SIDE, 8, 100)]
    elif groove == "shuffle":
        ev += [(C.KICK, 0, 100), (C.KICK, 8 % steps, 95)] + [(C.SNARE, s, 100) for s in back]
    elif groove == "swing":
        ev += [(C.RIDE, s, 85) for s in (0, 4, 6, 8, 12, 14) if s < steps] + [(C.PEDAL, s, 60) for s in back]
        ev += [(C.SNARE, int(s), 45) for s in rng.choice(steps, 2, replace=False)]
        ev += [(C.KICK, s, 40) for s in range(0, steps, 4) if rng.random() < 0.5]
    elif groove == "bossa":
        ev += [(C.KICK, s, 85) for s in (0, 3, 4, 7, 8, 11, 12, 15) if s < steps]
        ev += [(C.SIDE, s, 80) for s in (0, 3, 6, 10, 13) if s < steps]
    elif groove == "hand":
        for s in range(steps):
            if s % 4 == 0 or rng.random() < 0.35:
                ev.append((int(rng.choice([C.BONGO_H, C.BONGO_L, C.CONGA_M, C.CONGA_H, C.CONGA_L])), s,
                           int(rng.integers(60, 110))))
    elif groove == "sparse":  # kick on the one, a shaker or ride on top
        ev += [(C.KICK, 0, 100)] + ([(C.SIDE, back[-1], 80)] if rng.random() < 0.5 else [])
    if hats and groove != "swing":
        hat = C.HH if rng.random() < 0.7 else (C.RIDE if rng.random() < 0.6 else C.SHAKER)
        n0 = len(ev)
        if hats == "eighths":
            ev += [(hat, s, 82 if s % 4 == 0 else 60) for s in range(0, steps, 2)]
        elif hats == "sixteenths":
            ev += [(hat, s, 80 if s % 4 == 0 else (66 if s % 2 == 0 else 52)) for s in range(steps)]
        elif hats == "flat":  # every subdivision as loud as the beat
            ev += [(hat, s, 84) for s in range(0, steps, int(rng.choice([1, 2])))]
        elif hats == "offbeat":
            ev += [(C.OPEN, s, 92) for s in range(2, steps, 4)] + [(C.HH, s, 55) for s in range(0, steps, 4)]
        elif hats == "quarters":
            ev += [(hat, s, 80) for s in range(0, steps, 4)]
        if groove == "halftime":  # the feel is in kick and snare: the hats stay in the background
            ev[n0:] = [(n, s, int(v * 0.6)) for n, s, v in ev[n0:]]
    return [(n, s / 4.0, v) for n, s, v in ev]


def _fill(rng, bpb: int) -> list[tuple[int, float, int]]:
    """The last one or two beats of a bar as a fill: tom 16ths, triplets or a snare roll, growing louder."""
    n_beats = int(rng.choice([1, 2])) if bpb == 4 else 1
    kind = str(rng.choice(["toms", "triplets", "roll"]))
    step = 1.0 / 3 if kind == "triplets" else 0.25
    pos = np.arange(bpb - n_beats, bpb - 1e-9, step)
    toms = [C.TOM_H, C.TOM_M, C.TOM_L]
    ev = []
    for j, p in enumerate(pos):
        note = C.SNARE if kind == "roll" else (toms[min(2, j * 3 // len(pos))] if rng.random() < 0.8 else C.SNARE)
        ev.append((note, float(p), int(75 + 40 * j / max(1, len(pos) - 1))))
    return ev + [(C.KICK, float(bpb - n_beats), 100)]


def _beat_drums(rng, d: dict, n_bars: int) -> Part:
    """The drum part of a drum kind: two alternating bar variations of the groove (the switched feel in the
    switch bars), fills at phrase ends, a crash after each fill and at entries, the break bars (drop: silent;
    stop: one hit on the one), hats only in soft bars (a breakdown), entering at bar ``drums_enter``."""
    bpb = d["meter"]
    bars = [_groove_bar(rng, d["groove"], bpb, d["hats"]) for _ in range(2)]
    switched = _groove_bar(rng, d["switch"], bpb, d["hats"]) if d["switch"] else None
    notes, crash_next = [], True
    for bar in range(n_bars):
        if bar < d["drums_enter"] or (d["break"] == "drop" and bar in d["break_bars"]):
            crash_next = True
            continue
        if d["break"] == "stop" and bar in d["break_bars"]:
            pat = [(C.KICK, 0.0, 112), (C.CRASH, 0.0, 105)]
            crash_next = True
        else:
            pat = list(switched if bar in d["switch_bars"] else bars[bar % 2])
            if bar in d["soft_bars"]:
                pat = [e for e in pat if e[0] in (C.HH, C.RIDE, C.SHAKER, C.OPEN, C.PEDAL)]
            fill = d["fill_p"] and ((bar % 4 == 3 and rng.random() < d["fill_p"]) or
                                    (bar % 4 == 1 and rng.random() < 0.3 * d["fill_p"]))
            if fill:
                f = _fill(rng, bpb)
                pat = [e for e in pat if e[1] < f[-1][1]] + f
            if crash_next or bar % 8 == 0:
                pat.append((C.CRASH, 0.0, 100))
            crash_next = bool(fill)
        for note, pos, vel in pat:
            b = bar * bpb + pos
            notes.append((note, int(np.clip(vel * rng.uniform(0.88, 1.05), 1, 127)), b, b + 0.25))
    return Part("drums", 0, True, "drums", notes)


def _push(part: Part, rng, bpb: int, n_bars: int, p: float) -> None:
    """Anticipations: with probability ``p`` per bar line, what the part plays on the one moves an eighth
    early (onto the "and" of the last beat), and what it played there is dropped."""
    pushed = {bar * bpb for bar in range(1, n_bars) if rng.random() < p}
    notes = []
    for n in part.notes:
        k = _onset_key(n[2])
        if any(b - 0.5 <= k < b for b in pushed):
            continue
        if k in pushed:
            n = (n[0], n[1], n[2] - 0.5, n[3])
        notes.append(n)
    part.notes = notes


def _halve(part: Part) -> None:
    """Half-time accompaniment: only what the part plays on beats 1 and 3, each held for two beats."""
    part.notes = [(p, v, s, s + 1.9) for p, v, s, e in part.notes if _onset_key(s) % 2 == 0]


def _stop_time(part: Part, bars: list[int], bpb: int) -> None:
    """Stop-time bars: the part strikes the one and holds it, nothing else."""
    notes = []
    for p, v, s, e in part.notes:
        bar = int(_onset_key(s) // bpb)
        if bar in bars:
            if _onset_key(s) != bar * bpb:
                continue
            e = bar * bpb + bpb * 0.9
        notes.append((p, v, s, e))
    part.notes = notes


def _gain(d: dict, beat: float) -> float:
    """The dynamics' velocity factor at a song beat: crescendo / decrescendo across the item, soft bars."""
    bpb, g = d["meter"], d["grid"]
    if d["dynamics"] in ("crescendo", "decrescendo"):
        k0 = int(np.searchsorted(g, d["lead_in"]))
        k1 = max(k0 + 1, int(np.searchsorted(g, d["lead_in"] + d["duration"])))
        u = float(np.clip((beat - k0) / (k1 - k0), 0, 1))
        return 0.45 + 0.65 * (u if d["dynamics"] == "crescendo" else 1 - u)
    if int(beat // bpb) in d["soft_bars"]:
        return d["soft_gain"]
    return 1.0


def _arrange(rng, d: dict, song) -> None:
    """Turn a composed song (no drums) into the item's arrangement, in place (draws from ``rng``)."""
    bpb, n_bars = d["meter"], (len(d["grid"]) - 1) // d["meter"]
    by_role = {p.role: p for p in song.parts}
    chords, bass, lead = by_role.get("chords"), by_role.get("bass"), by_role.get("lead")
    mix = d["mix"]
    harmony = _bar_chords(chords, bpb, n_bars) if chords is not None else []
    if d["kind"] == "sparse":
        if d["texture"] == "pads":
            chords.program = int(rng.choice(_PAD_PROGRAMS))
            chords.notes = _sustained(harmony, rng, bpb, 0.0, (45, 80))
        else:
            chords.program = int(rng.choice(_PIANO_PROGRAMS))
            chords.notes = _sustained(harmony, rng, bpb, float(rng.uniform(0.1, 0.45)), (40, 90))
        if lead is not None:
            _thin_line(lead, rng, float(rng.uniform(0.3, 0.8)), 2.0)
        if bass is not None:
            if rng.random() < 0.5:
                song.parts.remove(bass)
            else:
                bass.notes = [(min(ps), int(rng.integers(45, 80)), bar * bpb, (bar + 1) * bpb)
                              for bar, ps in enumerate(harmony) if ps]
                bass.notes = [(p - 12 if p >= 48 else p, v, s, e) for p, v, s, e in bass.notes]
    else:
        if mix["program"] is not None and chords is not None:
            chords.program = mix["program"]
        if mix["drop_lead"] and lead is not None and (chords is not None or song.vocal is not None):
            song.parts.remove(lead)
        if mix["drop_bass"] and bass is not None:
            song.parts.remove(bass)
        if mix["pad_layer"] and harmony:
            song.parts.append(Part("pad", int(rng.choice(_PAD_PROGRAMS)), False, "other",
                                   _sustained(harmony, rng, bpb, 0.0, (35, 60)), volume=80))
        if d["halved"]:
            for part in (chords, bass):
                if part is not None and part in song.parts:
                    _halve(part)
        if d["push_p"]:
            for part in (chords, bass):
                if part is not None and part in song.parts:
                    _push(part, rng, bpb, n_bars, d["push_p"])
    if d["groove"]:
        song.parts.append(_beat_drums(rng, d, n_bars))
    if d["break"] == "stop":
        for part in song.parts:
            if not part.is_drum:
                _stop_time(part, d["break_bars"], bpb)
    jit = d["timing_ms"] / 1000.0 * d["tempo0"] / 60.0  # seconds -> beats (at the start tempo)
    for part in song.parts:
        notes = []
        for p, v, s, e in part.notes:
            dt = float(rng.normal(0, jit)) if jit else 0.0
            notes.append((p, int(np.clip(round(v * _gain(d, s)), 1, 127)), max(0.0, s + dt), max(0.0, e + dt)))
        part.notes = notes


def _onset_share(song, beats: list[float], lead_in: float, tol: float = 0.03) -> float:
    """The fraction of the item's ``beats`` on which some note (or sung note) starts within ``tol`` s."""
    starts = [n[2] for part in song.parts for n in part.notes]
    starts += [n[1] for n in (song.vocal.notes if song.vocal else [])]
    if not starts or not beats:
        return 0.0
    on = np.sort(song.sec(np.asarray(starts, dtype=np.float64))) - lead_in
    b = np.asarray(beats)
    i = np.searchsorted(on, b)
    near = np.minimum(np.abs(b - on[np.clip(i - 1, 0, len(on) - 1)]), np.abs(on[np.clip(i, 0, len(on) - 1)] - b))
    return float(np.mean(near < tol))


def _room(y: np.ndarray, rng, rt: float, wet: float) -> np.ndarray:
    """A room or hall: an exponentially decaying noise impulse response (``rt`` s to -60 dB) mixed in at
    ``wet``, which smears the onsets as a recording's reverberation does."""
    from scipy.signal import fftconvolve

    n = int(rt * SR)
    ir = rng.standard_normal(n) * np.exp(-6.9 * np.arange(n) / n)
    ir[0] = 0.0
    ir /= np.sqrt(np.sum(ir ** 2)) + 1e-9
    return (y + wet * fftconvolve(y, ir)[: len(y)]).astype(np.float32)


class BeatTask(SongTask):
    """Beat tracking with exact beats and downbeats: grooves (some in half- or double-time feel), bands
    without drums and sparse pieces; 60-200 BPM with drift, steps and rubato; swing, anticipations, fills,
    breaks, dynamics; the item starts inside the piece. See docs/embedded.md (beat)."""

    name = "beat"
    version = 2  # 2: harder, closer to recordings (v1: onset trackers nearly as good as anything)
    sizes = {"standard": {"counts": {"train": 150, "valid": 40, "test": 80}, "duration": 12.0},
             "tiny": {"counts": {"train": 6, "valid": 3, "test": 3}, "duration": 6.0}}
    styles = ALL_STYLES

    @staticmethod
    def describe(job: Job) -> dict:
        """The item's descriptor (:func:`beat_descriptor`) and targets, without composing or rendering."""
        d = beat_descriptor(job.rng(), job.p["duration"])
        d["beats"], d["downbeats"], d["tempo"] = beat_targets(d)
        return d

    def make(self, job):
        rng = job.rng()
        d = beat_descriptor(rng, job.p["duration"])
        beats, downs, tempo = beat_targets(d)
        lead_in = d["lead_in"]
        song = compose(rng, d["style"], lead_in + d["duration"], tempo=d["tempo0"], tempo_kind=d["tempo_kind"],
                       drums=False, vocals=d["vocals"], meter=d["meter"], beats=d["grid"], swing=d["swing"])
        _arrange(rng, d, song)
        y = render_song(song, rng)
        if d["room"]:
            y = _room(y, rng, *d["room"])
        y = np.array(y[int(round(lead_in * SR)):][: int(round(d["duration"] * SR))], dtype=np.float32)
        k = int(0.01 * SR)
        y[:k] *= np.linspace(0, 1, k, dtype=np.float32)  # the excerpt's cut
        y = normalize(y, _level(rng))
        y = y + (10 ** (d["noise_db"] / 20) * rng.standard_normal(len(y))).astype(np.float32)
        local = 60.0 / np.diff(beats)
        in_item = [n for p in song.parts if p.is_drum for n in p.notes
                   if lead_in <= float(song.sec(n[2])) < lead_in + d["duration"]]
        extra = dict(downbeats=downs, tempo=round(tempo, 2), tempo_min=round(float(local.min()), 2),
                     tempo_max=round(float(local.max()), 2), kind=d["kind"], style=d["style"],
                     tempo_kind=d["tempo_kind"], tempo_curve=d["curve"], meter=d["meter"],
                     swing=round(d["swing"], 3), drums=bool(in_item), groove=d["groove"], hats=d["hats"],
                     halved=d["halved"], feel_switch=d["switch"], fills=bool(d["fill_p"]), breaks=d["break"],
                     dynamics=d["dynamics"], anticipations=bool(d["push_p"]), timing_ms=round(d["timing_ms"], 1),
                     texture=d["texture"],
                     vocals=song.vocal is not None, start_in_piece=round(lead_in, 3),
                     room=[round(v, 3) for v in d["room"]] if d["room"] else None,
                     noise_db=round(d["noise_db"], 1), onset_beats=round(_onset_share(song, beats, lead_in), 3))
        return [self._out(job, y, beats, extra)]

    def labels(self, items):
        return ["beat"]


# ---------------------------------------------------------------------------------------------- emotion
# ordered from calm to energetic: the style is drawn near the item's energy (tempo and level), as real
# listeners' arousal follows instrumentation as well as tempo and loudness
EMOTION_STYLES = ("ambient", "newage", "classical", "lounge", "folk", "jazz", "country", "orchestral", "pop",
                  "synthpop", "rock")


def emotion_targets(tempo, major, level_db, register, articulation, dissonance, rng=None) -> tuple[float, float]:
    """Arousal and valence (about [-1, 1]) as documented in docs/embedded.md, plus N(0, 0.1) noise."""
    tn = (tempo - 55.0) / 125.0
    ln = (level_db + 30.0) / 16.0
    rn = (register + 12.0) / 24.0
    sn = 1.0 - (articulation - 0.25) / 0.75
    dn = dissonance / 0.8
    m = 1.0 if major else 0.0
    na, nv = rng.normal(0, 0.1, 2) if rng is not None else (0.0, 0.0)
    arousal = 2 * (0.40 * tn + 0.30 * ln + 0.15 * sn + 0.10 * rn + 0.05 * dn) - 1 + na
    valence = 2 * (0.40 * m + 0.15 * tn + 0.15 * rn + 0.30 * (1 - dn)) - 1 + nv
    return float(arousal), float(valence)


class EmotionTask(SongTask):
    name = "emotion"
    version = 2  # 2: style drawn near the item's energy (calm styles for slow/quiet items)
    sizes = {"standard": {"counts": {"train": 200, "valid": 50, "test": 100}, "duration": 10.0},
             "tiny": {"counts": {"train": 10, "valid": 4, "test": 4}, "duration": 5.0}}

    def make(self, job):
        rng = job.rng()
        tempo = float(rng.uniform(55, 180))
        major = bool(rng.random() < 0.5)
        level_db = float(rng.uniform(-30, -14))
        energy = 0.5 * (tempo - 55) / 125 + 0.5 * (level_db + 30) / 16
        k = int(np.clip(round(energy * (len(EMOTION_STYLES) - 1) + rng.normal(0, 1.5)), 0, len(EMOTION_STYLES) - 1))
        style = EMOTION_STYLES[k]
        register = int(rng.integers(-12, 13))
        articulation = float(rng.uniform(0.25, 1.0))
        dissonance = float(rng.uniform(0, 0.8))
        dynamics = (level_db + 22) / 16 * 0.6  # velocities follow the level: -0.3 .. 0.3
        song = compose(rng, style, job.p["duration"], mode="major" if major else "minor", tempo=tempo,
                       tempo_kind="constant", register=register, articulation=articulation,
                       dissonance=dissonance, dynamics=dynamics, vocals=False,
                       drums=None if energy > 0.35 else False, density=float(np.clip(0.15 + 0.7 * energy, 0.1, 0.9)))
        y = normalize(render_song(song, rng), level_db)
        a, v = emotion_targets(tempo, major, level_db, register, articulation, dissonance, rng)
        extra = dict(style=style, tempo=round(tempo, 2), mode="major" if major else "minor",
                     level_db=round(level_db, 2), register=register, articulation=round(articulation, 3),
                     dissonance=round(dissonance, 3))
        return [self._out(job, y, [round(a, 4), round(v, 4)], extra)]

    def labels(self, items):
        return ["arousal", "valence"]


# ---------------------------------------------------------------------------------------------- tagging
def _filter_tags(items, vocab_order) -> list[str]:
    """Tags with at least one positive in every split and at least one negative in train, in vocab order."""
    by_split = {s: [set(it["target"]) for it in items if it["_split"] == s] for s in SPLITS}
    keep = []
    for t in vocab_order:
        if all(any(t in tg for tg in by_split[s]) for s in SPLITS if by_split[s]) and \
                not all(t in tg for tg in by_split["train"]):
            keep.append(t)
    return keep


class TaggingTask(SongTask):
    name = "tagging"
    version = 1
    prune_targets = True  # labels: the MTT tags seen in every split (see _filter_tags)
    sizes = {"standard": {"counts": {"train": 280, "valid": 70, "test": 140}, "duration": 8.0},
             "tiny": {"counts": {"train": 12, "valid": 8, "test": 8}, "duration": 3.0}}

    def plan(self, size):
        return self._styled_plan(size)

    def make(self, job):
        rng = job.rng()
        style = job.p["style"]
        song, y, level_db = self._song_at_random_level(rng, style, job.p["duration"])
        tags = sorted(T.mtt_tags(song, rng, level_db))
        return [self._out(job, y, tags, dict(style=style, tempo=song.info["tempo"], level_db=round(level_db, 2)))]

    def labels(self, items):
        from tasks.tagging import MTT_TOP50

        return _filter_tags(items, MTT_TOP50)


# ---------------------------------------------------------------------------------------------- MTG
class MTGCorpus(SongTask):
    """One corpus of long tracks tagged in all four MTG vocabularies; the four tasks share its audio."""

    name = "mtg"
    version = 1
    sizes = {"standard": {"counts": {"train": 46, "valid": 23, "test": 23}, "duration": 60.0},
             "tiny": {"counts": {"train": 8, "valid": 4, "test": 4}, "duration": 6.0}}

    def plan(self, size):
        return self._styled_plan(size)

    def make(self, job):
        rng = job.rng()
        style = job.p["style"]
        song, y, level_db = self._song_at_random_level(rng, style, job.p["duration"])
        inst = {f"instrument---{t}" for t in T.mtg_instrument_tags(song, rng)}
        genre = {f"genre---{t}" for t in T.mtg_genre_tags(song, rng)}
        mood = {f"mood/theme---{t}" for t in T.mtg_mood_tags(song, rng, level_db)}
        tags = dict(instrument=sorted(inst), genre=sorted(genre), moodtheme=sorted(mood))
        return [self._out(job, y, tags, dict(style=style, tempo=song.info["tempo"], level_db=round(level_db, 2)))]


# Realised vocabularies in the order of the real split-0 tag frequency (most frequent first).
MTG_INSTRUMENT_ORDER = tuple("instrument---" + t for t in (
    "piano synthesizer drums bass guitar electricguitar computer keyboard acousticguitar violin drummachine voice "
    "electricpiano strings cello percussion saxophone trumpet flute classicalguitar orchestra beat harp rhodes "
    "brass trombone bell horn doublebass accordion viola clarinet bongo acousticbassguitar pipeorgan oboe "
    "harmonica pad organ").split())
MTG_GENRE_ORDER = tuple("genre---" + t for t in (
    "electronic soundtrack pop ambient rock classical easylistening experimental alternative chillout dance "
    "hiphop indie folk orchestral jazz lounge newage techno poprock house world popfolk trance instrumentalpop "
    "metal downtempo atmospheric triphop funk reggae blues electropop rap singersongwriter symphonic latin "
    "industrial synthpop minimal psychedelic country club soul darkambient hardrock disco dub ethno deephouse "
    "contemporary 80s acidjazz idm edm groove worldfusion 70s swing choir bossanova bluesrock fusion").split())
MTG_MOOD_ORDER = tuple("mood/theme---" + t for t in (
    "happy film energetic relaxing emotional melodic dark epic dream love inspiring sad meditative uplifting "
    "deep romantic calm soft upbeat melancholic slow fast powerful heavy groovy party").split())
# The MTG top-50 list (split-0) restricted to tags the renderer realises, in its real order.
MTG_TOP50 = tuple(
    "genre---electronic genre---soundtrack genre---pop instrument---piano genre---ambient instrument---synthesizer "
    "genre---rock instrument---drums instrument---bass genre---classical genre---easylistening instrument---guitar "
    "instrument---electricguitar genre---experimental genre---alternative genre---chillout genre---dance "
    "genre---hiphop genre---indie genre---folk genre---orchestral genre---jazz genre---lounge genre---newage "
    "genre---techno genre---poprock genre---house instrument---computer instrument---keyboard "
    "instrument---acousticguitar genre---world instrument---violin genre---popfolk instrument---drummachine "
    "mood/theme---happy instrument---voice genre---trance mood/theme---film genre---instrumentalpop genre---metal "
    "genre---downtempo genre---atmospheric mood/theme---energetic mood/theme---relaxing genre---triphop "
    "genre---funk instrument---electricpiano instrument---strings mood/theme---emotional genre---reggae".split())

MTG_TASKS = {
    "mtg-instrument": ("instrument", MTG_INSTRUMENT_ORDER),
    "mtg-mood": ("moodtheme", MTG_MOOD_ORDER),
    "mtg-genre": ("genre", MTG_GENRE_ORDER),
    "mtg-top50": ("top50tags", MTG_TOP50),
}


class MTGView:
    """The generator of an MTG task: a tag-set view of the shared :class:`MTGCorpus` (the four MTG tasks share
    its audio; ``tasks.embedded.build`` links it into each task's folder)."""

    def __init__(self, task: str) -> None:
        if task not in MTG_TASKS:
            raise KeyError(f"no MTG tag set for task {task!r}; known: {', '.join(MTG_TASKS)}")
        self.name = task
        self.subset, self.order = MTG_TASKS[task]
        self.version = MTGCorpus.version


def mtg_subset_target(all_tags: dict[str, list[str]], subset: str) -> list[str]:
    if subset == "top50tags":
        allt = set(all_tags["instrument"]) | set(all_tags["genre"]) | set(all_tags["moodtheme"])
        return sorted(t for t in allt if t in MTG_TOP50)
    return list(all_tags[subset])


# ---------------------------------------------------------------------------------------------- separation
class SeparationTask(SongTask):
    """Four stems rendered separately (int16), the mixture is their exact sum."""

    name = "separation"
    version = 1
    sizes = {"standard": {"counts": {"train": 30, "valid": 8, "test": 16}, "duration": 20.0},
             "tiny": {"counts": {"train": 3, "valid": 2, "test": 2}, "duration": 5.0}}
    styles = ("pop", "rock", "hiphop", "disco", "funk", "country", "reggae", "blues", "synthpop", "metal", "jazz",
              "folk", "house")

    def make(self, job):
        rng = job.rng()
        style = str(rng.choice(self.styles))
        song = compose(rng, style, job.p["duration"], vocals=True, drums=True)
        stems = render_song(song, rng, stems=True)
        # per-stem gains as a mixing engineer would set, then one common scale so the sum never clips
        gains = {"vocals": 1.0, "drums": rng.uniform(0.7, 1.2), "bass": rng.uniform(0.8, 1.3), "other": rng.uniform(0.7, 1.2)}
        scaled = {k: v * gains[k] for k, v in stems.items()}
        mix = sum(scaled.values())
        rms = float(np.sqrt(np.mean(mix.astype(np.float64) ** 2))) + 1e-9
        g = 10 ** (_level(rng, -22, -16) / 20) / rms
        peak_stem = max(float(np.abs(v).max()) for v in scaled.values())
        g = min(g, 0.9 / max(float(np.abs(mix).max()), 1e-9), 0.9 / max(peak_stem, 1e-9))
        pcm = {k: to_int16(v * g) for k, v in scaled.items()}
        mix_pcm = np.sum([pcm[k].astype(np.int32) for k in ("vocals", "drums", "bass", "other")], axis=0)
        if np.abs(mix_pcm).max() > 32767:  # cannot happen with the 0.9 limits above, but never wrap around
            raise RuntimeError(f"separation item {job.split}-{job.index}: mixture overflows int16")
        mix_pcm = mix_pcm.astype(np.int16)
        base = f"audio/{job.split}/{job.split}-{job.index:05d}"
        audio = {f"{base}/mixture.flac": mix_pcm}
        target = {}
        for k in ("vocals", "drums", "bass", "other"):
            audio[f"{base}/{k}.flac"] = pcm[k]
            target[k] = f"{base}/{k}.flac"
        iid = f"{job.split}-{job.index:05d}"
        return [Out(audio, [dict(id=iid, audio=f"{base}/mixture.flac", target=target, group=iid,
                                 extra=dict(style=style, tempo=song.info["tempo"]))])]

    def labels(self, items):
        return ["vocals", "drums", "bass", "other"]


# ---------------------------------------------------------------------------------------------- pretraining
class PretrainingCorpus(SongTask):
    """Unlabelled, varied music from every style; its own seed family, disjoint from all task material."""

    name = "pretraining"
    version = 1
    sizes = {"standard": {"counts": {"train": 240, "valid": 0, "test": 0}, "duration": 30.0},
             "tiny": {"counts": {"train": 12, "valid": 0, "test": 0}, "duration": 15.0}}

    def make(self, job):
        rng = job.rng()
        style = ALL_STYLES[int(rng.integers(len(ALL_STYLES)))]
        song, y, _ = self._song_at_random_level(rng, style, job.p["duration"])
        rel = f"{job.index:05d}.flac"
        return [Out({rel: to_int16(y)}, [dict(id=f"{job.index:05d}", audio=rel, target=None,
                                               extra=dict(style=style, tempo=song.info["tempo"]))])]
