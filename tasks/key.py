"""Global key detection, GiantSteps (MARBLE ``GS``).

Key names: the task's 24 labels are mir_eval's spelling with flat tonics (:data:`KEYS`, "C major" .. "B minor",
as the GiantSteps annotations). Every source's key targets go through :func:`normalise_key` (the key head,
benchmark.heads.KeyHead, and the GiantSteps reader), so a prepared folder may spell a key with a sharp or a flat,
mir_eval's way ("F# minor", "f# minor"), JAMS' ("F#:minor"), Harte's ("F#:min") or the short one ("F#m", "Gbm").
"""
from __future__ import annotations

import re

from tasks.base import TaskSpec, register

PITCH_CLASSES = ("C", "Db", "D", "Eb", "E", "F", "Gb", "G", "Ab", "A", "Bb", "B")
# 24 keys in mir_eval spelling: "C major", ..., "B minor" (flat spelling, as the GiantSteps annotations).
KEYS = tuple(f"{pc} {mode}" for mode in ("major", "minor") for pc in PITCH_CLASSES)

#: the sharp tonics and the flat spelling the labels use (GiantSteps' MTG annotations write sharps)
ENHARMONIC = {"C#": "Db", "D#": "Eb", "F#": "Gb", "G#": "Ab", "A#": "Bb"}

_NATURAL = {"c": 0, "d": 2, "e": 4, "f": 5, "g": 7, "a": 9, "b": 11}
_MODES = {"major": "major", "maj": "major", "minor": "minor", "min": "minor", "m": "minor"}
_KEY_RE = re.compile(r"([A-Ga-g])([#b]*)\s*[:_\-\s]?\s*([A-Za-z]*)")
FORMS = "'F# minor', 'Gb minor', 'f# minor', 'F#:minor', 'F#:min', 'F#m' (a tonic A-G with # or b, then major or minor)"


def normalise_key(text) -> str:
    """A key name in any usual spelling -> its label in :data:`KEYS`, e.g. 'F# minor', 'f# min', 'F#:minor',
    'F#m', 'Gb minor' -> 'Gb minor'; 'C:maj', 'c major', 'CM', 'B# major' -> 'C major'. A tonic is a letter A-G
    with any number of sharps (``#``, ``♯``) or flats (``b``, ``♭``); the mode is major / maj / M or minor / min /
    m (any case, except that a lone ``M`` is major and a lone ``m`` minor). Raises ValueError naming the text and
    the accepted forms for anything else (no mode, another mode such as 'dorian', mir_eval's 'X')."""
    s = str(text).strip().replace("\u266f", "#").replace("\u266d", "b")
    m = _KEY_RE.fullmatch(s)
    mode_text = m.group(3) if m else ""
    mode = "major" if mode_text == "M" else _MODES.get(mode_text if mode_text == "m" else mode_text.lower())
    if m is None or mode is None:
        raise ValueError(f"key {text!r} is not one of the 24 keys: expected e.g. {FORMS}")
    pc = (_NATURAL[m.group(1).lower()] + m.group(2).count("#") - m.group(2).count("b")) % 12
    return f"{PITCH_CLASSES[pc]} {mode}"


SPEC = register(TaskSpec(
    name="key",
    version=1,
    dataset="GiantSteps",
    type="key",
    labels=KEYS,
    metrics=("weighted_key", "accuracy"),
    main_score="weighted_key",
    window="window",
    window_s=30.0,
    aggregation="mean_logits",
    description="24-way global key, mir_eval weighted score, 30 s clips combined per song",
    order=20,
    generator="songs:KeyTask",
    reader="giantsteps",
))
