"""NSynth-like single notes: 4 s (3 s held, 1 s release), 11 families from GM programs, real ranges."""
from __future__ import annotations

import numpy as np

from tasks.embedded import voice as V
from tasks.embedded.common import SPLITS, Job, Out, TaskGenerator
from tasks.embedded.render import SR, render_midi, to_int16

NOTE_S = 4.0
HOLD_S = 3.0
VELOCITIES = (25, 50, 75, 100, 127)  # NSynth's five velocities

# family -> [(GM program, lowest MIDI pitch, highest MIDI pitch)]; program -1 = the source-filter voice
FAMILIES: dict[str, list[tuple[int, int, int]]] = {
    "bass": [(32, 28, 60), (33, 28, 62), (34, 28, 62), (35, 28, 60), (36, 28, 62), (37, 28, 62), (38, 24, 60),
             (39, 24, 60)],
    "brass": [(56, 54, 82), (57, 40, 72), (58, 28, 58), (59, 54, 80), (60, 41, 77), (61, 40, 80), (62, 36, 84),
              (63, 36, 84)],
    "flute": [(72, 74, 102), (73, 60, 96), (74, 60, 88), (75, 60, 88), (77, 55, 84), (79, 60, 84)],
    "guitar": [(24, 40, 84), (25, 40, 84), (26, 40, 86), (27, 40, 86), (28, 40, 80), (29, 40, 86), (30, 40, 86)],
    "keyboard": [(0, 21, 108), (1, 24, 104), (2, 28, 100), (3, 28, 100), (4, 28, 100), (5, 28, 100),
                 (6, 29, 89), (7, 36, 96)],
    "mallet": [(8, 60, 108), (9, 79, 108), (10, 60, 96), (11, 53, 89), (12, 45, 96), (13, 65, 108), (14, 60, 77),
               (15, 48, 84)],
    "organ": [(16, 36, 96), (17, 36, 96), (18, 36, 96), (19, 24, 96), (20, 36, 89)],
    "reed": [(64, 56, 87), (65, 49, 81), (66, 44, 76), (67, 36, 69), (68, 58, 91), (69, 52, 81), (70, 34, 75),
             (71, 50, 91), (21, 53, 89), (22, 60, 84)],
    "string": [(40, 55, 100), (41, 48, 88), (42, 36, 76), (43, 28, 60), (44, 36, 96), (45, 36, 96), (46, 24, 103),
               (48, 36, 96), (49, 36, 96), (110, 55, 96)],
    "synth_lead": [(80, 36, 96), (81, 36, 96), (82, 48, 96), (83, 48, 96), (84, 36, 96), (85, 48, 96),
                   (86, 48, 96), (87, 28, 84)],
    "vocal": [(52, 40, 81), (53, 40, 81), (54, 40, 84), (-1, 40, 79), (-1, 40, 79)],
}
FAMILY_NAMES = tuple(FAMILIES)
# Patches whose perceived pitch is not the MIDI note (TimGM6mb's organs carry a strong 16' sub-octave, the
# fifths lead and glockenspiel / tubular bells are ambiguous): used for the instrument task, not for pitch.
PITCH_UNRELIABLE = (9, 14, 16, 17, 18, 86)


def render_note(program: int, pitch: int, velocity: int, rng: np.random.Generator) -> np.ndarray:
    if program == -1:
        sex = "female" if pitch >= 57 else ("male" if pitch < 52 else str(rng.choice(["female", "male"])))
        singer = V.random_singer(rng, sex)
        tech = str(rng.choice(["straight", "vibrato", "belt", "breathy"] if pitch <= 74 else ["straight", "vibrato"]))
        y = V.sing([(pitch, 0.0, HOLD_S, str(rng.choice(V.VOWEL_NAMES)))], singer, tech, rng, NOTE_S)
        return y * (velocity / 127.0) ** 0.5
    import pretty_midi

    pm = pretty_midi.PrettyMIDI(initial_tempo=120.0)
    inst = pretty_midi.Instrument(program=program)
    inst.notes.append(pretty_midi.Note(velocity=velocity, pitch=pitch, start=0.0, end=HOLD_S))
    pm.instruments.append(inst)
    return render_midi(pm, NOTE_S)


class NoteTask(TaskGenerator):
    """Instrument (target = family) or pitch (target = MIDI number as a string) from single notes."""

    version = 1
    item_duration_s = NOTE_S

    def __init__(self, name: str):
        if name not in ("instrument", "pitch"):
            raise ValueError(f"NoteTask makes the tasks 'instrument' and 'pitch', not {name!r}")
        self.name = name
        if name == "instrument":
            self.sizes = {"standard": {"train": 70, "valid": 15, "test": 30}, "tiny": {"train": 2, "valid": 1, "test": 1}}
        else:
            self.sizes = {"standard": {"train": 880, "valid": 220, "test": 330}, "tiny": {"train": 24, "valid": 12, "test": 12}}

    def plan(self, size):
        jobs = []
        for split in SPLITS:
            n = self.sizes[size][split]
            if self.name == "instrument":
                for i in range(n * len(FAMILY_NAMES)):
                    jobs.append(Job(self.name, split, i, (("family", FAMILY_NAMES[i % len(FAMILY_NAMES)]),)))
            else:
                for i in range(n):
                    jobs.append(Job(self.name, split, i))
        return jobs

    def make(self, job: Job) -> list[Out]:
        rng = job.rng()
        if self.name == "instrument":
            fam = job.p["family"]
            prog, lo, hi = FAMILIES[fam][int(rng.integers(len(FAMILIES[fam])))]
            pitch = int(rng.integers(lo, hi + 1))
        else:
            # pitch roughly uniform over 21..108, then an instrument whose range covers it
            pitch = int(rng.integers(21, 109))
            cands = [(f, p) for f, lst in FAMILIES.items() for (p, lo, hi) in lst
                     if lo <= pitch <= hi and p not in PITCH_UNRELIABLE]
            fam, prog = cands[int(rng.integers(len(cands)))]
        vel = int(rng.choice(VELOCITIES))
        y = render_note(prog, pitch, vel, rng)
        peak = float(np.abs(y).max())
        if peak > 0:
            y = y / peak * float(rng.uniform(0.3, 0.9)) * (0.5 + 0.5 * vel / 127)
        target = fam if self.name == "instrument" else str(pitch)
        iid = f"{job.split}-{job.index:05d}"
        rel = f"audio/{job.split}/{iid}.flac"
        extra = dict(family=fam, program=prog, pitch=pitch, velocity=vel)
        return [Out({rel: to_int16(y)}, [dict(id=iid, audio=rel, target=target, group=iid, extra=extra)])]

    def labels(self, items):
        return list(FAMILY_NAMES) if self.name == "instrument" else [str(i) for i in range(128)]
