"""Generators built on composed songs: tagging, key, genre, beat, emotion, MTG, separation, pretraining."""
from __future__ import annotations

import numpy as np

from tasks.embedded import tags as T
from tasks.embedded.common import SPLITS, Job, Out, TaskGenerator, round_list
from tasks.embedded.compose import ALL_STYLES, GTZAN_STYLES, compose, render_song
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
class BeatTask(SongTask):
    """Beat tracking: slow to fast tempi, tempo changes, swing/syncopation, about a quarter without drums."""

    name = "beat"
    version = 1
    sizes = {"standard": {"counts": {"train": 150, "valid": 40, "test": 80}, "duration": 10.0},
             "tiny": {"counts": {"train": 6, "valid": 3, "test": 3}, "duration": 5.0}}
    styles = ALL_STYLES

    def make(self, job):
        rng = job.rng()
        style = str(rng.choice([s for s in self.styles if s != "experimental"]))
        tempo = float(rng.uniform(55, 190))
        kind = str(rng.choice(["constant", "constant", "ramp", "step", "rubato"]))
        drums = None if rng.random() < 0.75 else False
        song = compose(rng, style, job.p["duration"], tempo=tempo, tempo_kind=kind, drums=drums)
        y = _mix(song, rng, _level(rng))
        extra = dict(style=style, tempo=round(tempo, 2), tempo_kind=kind, drums=song.has_drums(),
                     meter=song.beats_per_bar, swing=song.info["swing"])
        return [self._out(job, y, song.beat_times, extra)]

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
