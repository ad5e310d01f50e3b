"""Tag vocabularies realised by the renderer: what a song's content means in MTT and MTG-Jamendo words.

Tag names are the real ones (MTT top-50; MTG-Jamendo split-0 ``instrument---``, ``genre---``,
``mood/theme---`` vocabularies). Like human annotators, synonyms and secondary tags are applied with a
probability (``p``): the underlying attribute is certain, the word chosen for it is not.
"""
from __future__ import annotations

import numpy as np

# ---------------------------------------------------------------------------------------------- MTG
# GM program -> MTG instrument tags (certain, then optional with probability 0.5)
_PROGRAM_TAGS: list[tuple[range | tuple, tuple[str, ...], tuple[str, ...]]] = [
    (range(0, 4), ("piano",), ("keyboard",)),
    ((4,), ("electricpiano", "rhodes"), ("keyboard",)),
    ((5,), ("electricpiano",), ("keyboard",)),
    ((6, 7), ("keyboard",), ()),
    ((9, 14), ("bell",), ()),
    ((10, 11, 12, 13), ("bell",), ("percussion",)),
    ((16, 17, 18), ("organ",), ("keyboard",)),
    ((19,), ("pipeorgan",), ("organ",)),
    ((21,), ("accordion",), ()),
    ((22,), ("harmonica",), ()),
    ((24,), ("classicalguitar", "guitar"), ("acousticguitar",)),
    ((25,), ("acousticguitar", "guitar"), ()),
    ((26, 27, 28, 29, 30), ("electricguitar", "guitar"), ()),
    ((32,), ("doublebass", "bass"), ("acousticbassguitar",)),
    ((33, 34, 35, 36, 37), ("bass",), ()),
    ((38, 39), ("bass", "synthesizer"), ()),
    ((40, 110), ("violin",), ("strings",)),
    ((41,), ("viola",), ("strings",)),
    ((42,), ("cello",), ("strings",)),
    ((43,), ("doublebass",), ("strings",)),
    ((46,), ("harp",), ()),
    ((47,), ("percussion",), ()),
    ((48, 49, 50), ("strings",), ("orchestra",)),
    ((52, 53), ("voice",), ()),
    ((56, 59), ("trumpet",), ("brass",)),
    ((57,), ("trombone",), ("brass",)),
    ((58, 61, 62, 63), ("brass",), ()),
    ((60,), ("horn",), ("brass",)),
    ((64, 65, 66, 67), ("saxophone",), ()),
    ((68,), ("oboe",), ()),
    ((71,), ("clarinet",), ()),
    ((72, 73, 75, 79), ("flute",), ()),
    (range(80, 88), ("synthesizer",), ()),
    (range(88, 96), ("pad", "synthesizer"), ()),
    (range(96, 104), ("synthesizer",), ()),
]
ELECTRONIC_GROOVES = ("techno", "house")
ELECTRONIC_STYLES = ("techno", "house", "trance", "synthpop", "ambient", "experimental")

MTG_GENRE = {
    "blues": (("blues",), ("bluesrock",)),
    "classical": (("classical",), ("orchestral", "contemporary")),
    "country": (("country",), ("folk", "popfolk")),
    "disco": (("disco", "dance"), ("funk", "70s", "80s")),
    "hiphop": (("hiphop",), ("rap", "triphop")),
    "jazz": (("jazz",), ("swing", "fusion", "acidjazz")),
    "metal": (("metal",), ("hardrock", "rock")),
    "pop": (("pop",), ("poprock", "popfolk", "instrumentalpop")),
    "reggae": (("reggae",), ("dub",)),
    "rock": (("rock",), ("alternative", "indie", "poprock", "hardrock")),
    "ambient": (("ambient", "atmospheric"), ("chillout", "electronic", "darkambient")),
    "techno": (("techno", "electronic"), ("minimal", "club")),
    "house": (("house", "electronic", "dance"), ("deephouse", "club")),
    "trance": (("trance", "electronic"), ("dance", "edm")),
    "orchestral": (("orchestral", "soundtrack"), ("classical", "symphonic")),
    "folk": (("folk",), ("singersongwriter", "popfolk")),
    "funk": (("funk",), ("groove", "soul")),
    "newage": (("newage", "easylistening"), ("ambient", "chillout")),
    "lounge": (("lounge", "easylistening"), ("bossanova", "chillout", "latin", "jazz")),
    "indian": (("world", "ethno"), ("worldfusion",)),
    "synthpop": (("synthpop", "electropop"), ("pop", "electronic", "80s")),
    "choral": (("choir",), ("classical",)),
    "experimental": (("experimental",), ("electronic", "idm", "industrial")),
}


def _draw(rng, certain, optional, p: float = 0.5) -> set[str]:
    out = set(certain)
    out.update(t for t in optional if rng.random() < p)
    return out


def mtg_instrument_tags(song, rng) -> set[str]:
    tags: set[str] = set()
    for prog in song.programs(min_notes=2):
        for progs, certain, optional in _PROGRAM_TAGS:
            if prog in progs:
                tags |= _draw(rng, certain, optional)
    if song.has_drums():
        groove = song.info.get("groove")
        if groove in ELECTRONIC_GROOVES:
            tags |= _draw(rng, ("drummachine",), ("beat", "drums"))
        elif groove == "hand":
            tags |= _draw(rng, ("percussion",), ("bongo",))
        elif groove != "timpani":
            tags |= _draw(rng, ("drums",), ("beat",), 0.25)
    if song.vocal is not None:
        tags.add("voice")
    if song.style in ELECTRONIC_STYLES and rng.random() < 0.4:
        tags.add("computer")
    if song.style in ("orchestral",):
        tags.add("orchestra")
    return tags


def mtg_genre_tags(song, rng) -> set[str]:
    certain, optional = MTG_GENRE[song.style]
    return _draw(rng, certain, optional, 0.35)


def mtg_mood_tags(song, rng, level_db: float) -> set[str]:
    """Moods from tempo, mode, level, register and style (rules in docs/embedded.md)."""
    tempo = song.info["tempo"]
    major = song.mode == "major"
    loud = level_db > -19
    quiet = level_db < -25
    s = song.style
    tags: set[str] = set()

    def maybe(tag, cond, p=0.8):
        if cond and rng.random() < p:
            tags.add(tag)

    maybe("energetic", tempo > 125 and not quiet, 0.85)
    maybe("happy", major and tempo > 100, 0.8)
    maybe("upbeat", major and tempo > 115, 0.5)
    maybe("sad", not major and tempo < 95, 0.8)
    maybe("melancholic", not major and tempo < 85, 0.5)
    maybe("relaxing", tempo < 95 and not loud and s not in ("metal", "techno"), 0.75)
    maybe("calm", tempo < 85 and quiet, 0.7)
    maybe("soft", quiet, 0.6)
    maybe("dark", not major and (s in ("metal", "techno", "ambient") or song.info.get("register", 0) < 0), 0.75)
    maybe("epic", s == "orchestral" and not quiet, 0.8)
    maybe("dream", s in ("ambient", "newage"), 0.6)
    maybe("meditative", s in ("ambient", "indian", "newage") and tempo < 90, 0.6)
    maybe("powerful", loud and s in ("metal", "rock", "orchestral"), 0.7)
    maybe("heavy", s == "metal", 0.8)
    maybe("groovy", s in ("funk", "disco", "house"), 0.7)
    maybe("party", s in ("disco", "house", "trance"), 0.6)
    maybe("romantic", s in ("lounge", "jazz") and tempo < 110 and major, 0.6)
    maybe("fast", tempo > 150, 0.7)
    maybe("slow", tempo < 75, 0.7)
    maybe("uplifting", s == "trance" or (major and s in ("pop", "synthpop") and tempo > 110), 0.5)
    maybe("film", s in ("orchestral", "ambient"), 0.5)
    maybe("melodic", song.info.get("lead") or song.vocal is not None, 0.3)
    return tags


# ---------------------------------------------------------------------------------------------- MTT
MTT_STYLE = {
    "classical": ("classical", "classic"), "orchestral": ("classical", "classic"), "choral": ("classical", "choral"),
    "techno": ("techno", "electronic", "dance"), "house": ("electronic", "dance"), "trance": ("electronic", "dance"),
    "synthpop": ("electronic", "pop"), "ambient": ("ambient", "new age"), "newage": ("new age",),
    "rock": ("rock",), "metal": ("metal", "rock"), "pop": ("pop",), "country": ("country",), "disco": ("dance",),
    "indian": ("indian",), "experimental": ("weird",), "hiphop": ("beats",), "funk": (), "jazz": (), "blues": (),
    "reggae": (), "folk": (), "lounge": (),
}


def mtt_tags(song, rng, level_db: float) -> set[str]:
    tags: set[str] = set()
    progs = song.programs(min_notes=2)
    fam = {"guitar": range(24, 32), "piano": range(0, 4), "strings": range(48, 52), "violin": (40, 110),
           "synth": range(80, 104), "harpsichord": (6,), "flute": (72, 73, 75), "sitar": (104,), "harp": (46,),
           "cello": (42,), "choir": (52, 53)}
    for tag, r in fam.items():
        if any(p in r for p in progs):
            tags.add(tag)
    if "choir" in tags and rng.random() < 0.5:
        tags.add("choral")
    if any(p in (40, 41, 42, 43) for p in progs) and rng.random() < 0.4:
        tags.add("strings")
    certain = MTT_STYLE.get(song.style, ())
    for i, t in enumerate(certain):
        if i == 0 or rng.random() < 0.6:
            tags.add(t)
    if song.has_drums():
        tags.add("drums")
        if rng.random() < 0.5:
            tags.add("beat" if rng.random() < 0.5 else "beats")
    tempo = song.info["tempo"]
    if tempo > 135 and rng.random() < 0.8:
        tags.add("fast")
    if tempo < 80 and rng.random() < 0.8:
        tags.add("slow")
    if level_db > -18 and rng.random() < 0.8:
        tags.add("loud")
    if level_db < -26 and rng.random() < 0.8:
        tags.add("quiet" if rng.random() < 0.6 else "soft")
    if len([p for p in song.parts if p.notes]) == 1 and song.vocal is None:
        tags.add("solo")
    if song.vocal is not None:
        tags |= {t for t in ("vocal", "vocals", "singing", "voice") if rng.random() < 0.55} or {"vocals"}
        if song.vocal.singer.sex == "female":
            tags |= {t for t in ("female", "woman", "female vocal", "female voice") if rng.random() < 0.55} or {"female"}
        else:
            tags |= {t for t in ("male", "man", "male vocal", "male voice") if rng.random() < 0.55} or {"male"}
        if song.style in ("classical", "orchestral", "choral") and song.vocal.technique in ("vibrato", "belt"):
            tags.add("opera")
    else:
        tags |= {t for t in ("no vocals", "no vocal", "no voice") if rng.random() < 0.4}
    return tags
