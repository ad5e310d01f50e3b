"""Fixture trees with the real on-disk layouts and real file names of the 8 MARBLE datasets.

Each ``make_<dataset>(root)`` writes a small copy of a dataset as it unpacks (folders, file names, metadata
file formats, a handful of real item names taken from the real split lists and annotation files), with short
rendered audio (tones / clicks, low sample rate so the files stay small), and returns a dict describing what
it wrote (expected split counts, labels, names of deliberately broken files) for the tests to check.

Nothing here reads ../shared: the real names are embedded below.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import soundfile as sf

SR = 4000  # fixture audio rate (wav/flac); mp3 needs an MPEG rate, see MP3_SR
MP3_SR = 8000


def tone(seconds: float, sr: int = SR, freq: float = 220.0, seed: int = 0, channels: int = 1) -> np.ndarray:
    """A quiet tone plus a little noise (not silent: runners may skip silent files)."""
    n = int(round(seconds * sr))
    t = np.arange(n) / sr
    rng = np.random.default_rng(seed)
    x = 0.2 * np.sin(2 * np.pi * freq * t) + 0.01 * rng.standard_normal(n)
    x = x.astype(np.float32)
    return np.stack([x] * channels, axis=1) if channels > 1 else x


def clicks(seconds: float, beats: list[float], sr: int = SR, seed: int = 0) -> np.ndarray:
    x = tone(seconds, sr, freq=110.0, seed=seed) * 0.2
    for b in beats:
        i = int(b * sr)
        x[i:i + sr // 50] += 0.8 * np.hanning(len(x[i:i + sr // 50]))
    return np.clip(x, -1, 1)


def write(path: Path, x: np.ndarray, sr: int = SR, **kw) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), x, sr, **kw)
    return path


def corrupt(path: Path) -> Path:
    """Overwrite a file with bytes no decoder accepts (as jazz.00054.wav in the Kaggle copy)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk" + bytes(range(256)) * 4)
    return path


# ---------------------------------------------------------------------------------------------- GTZAN
# first track of each genre in each real fault-filtered list (coreyker/dnn-mgr), plus jazz.00054 (train)
GTZAN_SPLITS = {
    "train": "blues.00029 classical.00030 country.00019 disco.00005 hiphop.00002 jazz.00000 metal.00002 "
             "pop.00002 reggae.00000 rock.00000 jazz.00054".split(),
    "valid": "blues.00000 classical.00000 country.00000 disco.00000 hiphop.00081 jazz.00002 metal.00000 "
             "pop.00010 reggae.00061 rock.00038".split(),
    "test": "blues.00012 classical.00011 country.00030 disco.00001 hiphop.00000 jazz.00073 metal.00012 "
            "pop.00000 reggae.00034 rock.00010".split(),
}
# the real first beats of blues.00029 (GTZAN-Rhythm v2 / MARBLE v2 example)
BLUES_00029_FIRST_BEATS = [0.428173, 0.898377, 1.362776]


def _jams(stem: str, beats: list[float], downbeats: list[float]) -> str:
    """A GTZAN-Rhythm v2 JAMS document (jams 0.2.0 layout, bare NaN as the originals have)."""
    def layer(kind, times):
        return {"annotation_metadata": {"annotator": {}, "annotation_tools": "", "corpus": "GTZAN-Rhythm",
                                        "version": "2.0", "curator": {"name": "", "email": ""},
                                        "validation": "", "data_source": "", "annotation_rules": ""},
                "namespace": "beat", "sandbox": {"annotation_type": kind}, "time": 0, "duration": None,
                "data": [{"time": t, "duration": 0.0, "value": 1.0, "confidence": 1.0} for t in times]}
    doc = {"annotations": [layer("beat", beats), layer("downbeat", downbeats),
                           {"namespace": "tag_open", "sandbox": {"swing": "no"}, "time": 0, "duration": None,
                            "data": [{"time": 0.0, "duration": float("nan"), "value": "4/4", "confidence": 1.0}]}],
           "file_metadata": {"title": "", "artist": "", "release": "", "duration": 30.0,
                             "identifiers": {"filename": f"{stem}.wav"}, "jams_version": "0.2.0"},
           "sandbox": {}}
    return json.dumps(doc, indent=2)


def gtzan_beats(stem: str) -> list[float]:
    if stem == "blues.00029":
        period = 0.47
        return [round(b, 6) for b in BLUES_00029_FIRST_BEATS + [1.362776 + period * k for k in range(1, 60)]
                if b < 29.5]
    period = 60.0 / (90 + 7 * (sum(map(ord, stem)) % 9))
    return [round(0.3 + period * k, 6) for k in range(int(29.0 / period))]


def make_gtzan(root: Path, layout: str = "kaggle", corrupt_jazz: bool = True, beat_formats: bool = True) -> dict:
    """Kaggle layout ``Data/genres_original/<genre>/<genre>.NNNNN.wav`` (or ``original``: ``genres/.../*.au``),
    the three ``*_filtered.txt`` lists in their real format, GTZAN-Rhythm JAMS under both real names and one
    gtzan_tempo_beat ``.beats`` file."""
    root = Path(root)
    for split, stems in GTZAN_SPLITS.items():
        (root / "splits").mkdir(parents=True, exist_ok=True)
        (root / "splits" / f"{split}_filtered.txt").write_text(
            "".join(f"{s.split('.')[0]}/{s}.wav\n" for s in stems))
    n = 0
    for split, stems in GTZAN_SPLITS.items():
        for stem in stems:
            genre = stem.split(".")[0]
            if layout == "kaggle":
                path = root / "Data" / "genres_original" / genre / f"{stem}.wav"
            else:
                path = root / "genres" / genre / f"{stem}.au"
            beats = gtzan_beats(stem)
            if stem == "jazz.00054" and corrupt_jazz:
                corrupt(path)
            else:
                write(path, clicks(30.0, beats, seed=n), SR)
            n += 1
            # annotations: tarball name, tempo_eval name, or gtzan_tempo_beat text, rotating
            if beat_formats:
                k = n % 3
                ann = root / "GTZAN-Rhythm_v2" / "jams"
                if k == 0:
                    (ann / f"{stem}.wav.jams").parent.mkdir(parents=True, exist_ok=True)
                    (ann / f"{stem}.wav.jams").write_text(_jams(stem, beats, beats[::4]))
                elif k == 1:
                    p = root / "tempo_eval" / f"{stem}.jams"
                    p.parent.mkdir(parents=True, exist_ok=True)
                    p.write_text(_jams(stem, beats, beats[::4]))
                else:
                    p = root / "gtzan_tempo_beat" / "beats" / f"gtzan_{genre}_{stem.split('.')[1]}.beats"
                    p.parent.mkdir(parents=True, exist_ok=True)
                    p.write_text("".join(f"{b:.3f}\t{1 + i % 4}\n" for i, b in enumerate(beats)))
    return {"counts": {s: len(v) for s, v in GTZAN_SPLITS.items()}, "corrupt": "jazz.00054"}


# ---------------------------------------------------------------------------------------------- GiantSteps
# real rows of giantsteps-mtg-key annotations.txt + beatport_metadata.txt, with their MARBLE/jukemir split
GS_MTG = [  # (ID, MANUAL KEY, C, ARTIST, SONG TITLE, MIX, LABEL, BP GENRE, BP BPM, BP KEY), split
    (("5061", "D# minor", "2", "Philippe Van Mullem", "Canopy", "Progress Mix", "Bonzai Classics", "Trance", "132", "D# major"), "train"),
    (("11077", "G minor", "2", "Billy Paul Williams", "Winter Heat", "Original Mix", "Kriztal Entertainment", "Chill Out", "100", "C major"), "train"),
    (("11194", "D minor", "2", "Alek Biotic", "Funk Matter", "Original Mix", "Gotham Grooves", "Techno", "140", "F major"), "train"),
    (("14344", "D minor", "2", "Oliver Prime", "Velvet Sunshine", "Original Mix", "Synergetic Records", "Trance", "135", "D major"), "train"),
    (("17025", "D# minor", "2", "Foxy Push", "Feel Fine", "Original Mix", "Moonbootique Records", "Electronica", "130", "A# major"), "train"),
    (("19805", "A minor", "2", "Fred Baker", "My Revenge", "Original Mix", "Magik Muzik", "Trance", "136", "A major"), "train"),
    (("33846", "C minor", "2", "Pole Folder", "London", "Original Mix", "Bedrock Records", "Progressive House", "128", "C major"), "valid"),
    (("37779", "A# major", "2", "Solid Slide", "Epic Storm", "Original Mix", "Bonzai Back Catalog", "Trance", "138", "A# major"), "valid"),
    (("60661", "C# major", "2", "Jan Jelinek", "davos s (trio 'round midnight)", "Original Mix", "Scape", "Chill Out", "120", "C# major"), "valid"),
    # Miika Kuisma hashes to train; collaborating with a valid artist moves the track (and him) to valid
    (("58167", "D# minor", "2", "Miika Kuisma, Kenjido Okiru", "Basscore", "Original Mix", "Subtraxx Recordings", "Progressive House", "130", "D# major"), "valid"),
    (("10981", "-", "0", "Panic", "Tasty Treat Beat", "Original Mix", "Casa Del Soul", "Tech House", "125", "B major"), None),
    (("61578", "C minor / F# minor", "2", "Electric Rescue", "Rave On", "Original Mix", "Scandium Records", "Techno", "134", "C major"), None),
]
GS_TEST = [("10089", "D major"), ("61415", "F minor"), ("74982", "C minor"), ("101069", "E minor"), ("190477", "D minor")]
GS_EXPECTED_KEYS = {"5061": "Eb minor", "37779": "Bb major", "60661": "Db major", "10089": "D major"}


def make_giantsteps(root: Path, missing: str | None = None, corrupt_id: str | None = None) -> dict:
    """Both annotation repositories as GitHub's archives unpack (folder names with the commit), real IDs, keys
    and artists, and ``audio/<id>.LOFI.mp3`` previews (31-40 s here, mp3 at 8 kHz)."""
    root = Path(root)
    mtg = root / "giantsteps-mtg-key-dataset-fd7b8c584f7bd6d720d170c325a6d42c9bf75a6b"
    key = root / "giantsteps-key-dataset-c8cb8aad2cb53f165be51ea099d0dc75c64a844f"
    (mtg / "annotations" / "key").mkdir(parents=True, exist_ok=True)
    (mtg / "md5").mkdir(parents=True, exist_ok=True)
    (key / "annotations" / "key").mkdir(parents=True, exist_ok=True)
    (key / "md5").mkdir(parents=True, exist_ok=True)
    (mtg / "annotations" / "annotations.txt").write_text(
        "ID\tMANUAL KEY\tC\n" + "".join(f"{r[0]}\t{r[1]}\t{r[2]}\n" for r, _ in GS_MTG))
    (mtg / "annotations" / "beatport_metadata.txt").write_text(
        "ID\tARTIST\tSONG TITLE\tMIX\tLABEL\tBP GENRE\tBP BPM\tBP KEY\n"
        + "".join("\t".join((r[0],) + r[3:]) + "\n" for r, _ in GS_MTG))
    for r, _ in GS_MTG:
        (mtg / "annotations" / "key" / f"{r[0]}.LOFI.key").write_text(f"{r[1].lower()}\t{r[2]}\t\n")
    for did, k in GS_TEST:
        (key / "annotations" / "key" / f"{did}.LOFI.key").write_text(k)  # no trailing newline, as the real files
    ids = [r[0] for r, _ in GS_MTG] + [d for d, _ in GS_TEST]
    import hashlib

    for i, did in enumerate(ids):
        p = root / "audio" / f"{did}.LOFI.mp3"
        if did == missing:
            continue
        if did == corrupt_id:
            corrupt(p)
        else:
            write(p, tone(31.0 + i % 10, MP3_SR, freq=200 + 20 * i, seed=i), MP3_SR)
        repo = mtg if did in {r[0] for r, _ in GS_MTG} else key
        (repo / "md5" / f"{did}.LOFI.md5").write_text(hashlib.md5(p.read_bytes()).hexdigest() + "\n")
    splits = {r[0]: s for r, s in GS_MTG if s}
    splits.update({d: "test" for d, _ in GS_TEST})
    return {"splits": splits, "counts": {s: sum(v == s for v in splits.values()) for s in ("train", "valid", "test")}}


# ---------------------------------------------------------------------------------------------- MTT
MTT_TAG_COLUMNS = ["no voice", "singer", "duet", "plucking", "hard rock", "world", "bongos", "harpsichord",
                   "female singing", "clasical", "acoustic", "country", "oriental", "jazz", "electric", "percussion",
                   "tribal", "violins", "heavy", "heavy metal", "spacey", "spanish", "opera", "sitar", "strings",
                   "indian", "techno", "drums", "slow", "fast", "classical", "guitar", "piano", "vocal", "singing",
                   "new age", "electronic", "loud", "rock", "metal", "violin", "classic", "rap", "hip hop", "quick",
                   "water", "baroque", "women", "fiddle", "english"]
# (clip_id, mp3_path, positive tags) of real annotated clips, folder split in the comment
MTT_CLIPS = [
    ("29", "0/american_bach_soloists-j_s__bach__cantatas_volume_v-01-gleichwie_der_regen_und_schnee_vom_himmel_fallt_bwv_18_i_sinfonia-117-146.mp3", "classical|violin"),  # train
    ("3617", "4/jay_kishor-amber-01-raga_malgunji__alap-30-59.mp3", "sitar|strings|indian|oriental"),  # train
    ("7671", "9/william_brooks-silent_wings-02-hideaway-0-29.mp3", "guitar|acoustic|country|slow"),  # train
    ("11065", "4/chris_juergensen-prospects-02-when_love_greets_you-233-262.mp3", "jazz|piano"),  # train
    ("14926", "4/jay_kishor-the_color_of_night-03-shivranjani-0-29.mp3", "sitar"),  # train
    ("18692", "2/jesse_manno-sea_spirits-04-neesa-59-88.mp3", "drums|tribal|vocal|singing"),  # train
    ("135", "0/williamson-a_few_things_to_hear_before_we_all_blow_up-01-2_percent_er-146-175.mp3", "electric"),  # train, no top-50 tag
    ("35644", "6/norine_braun-now_and_zen-08-gently-117-146.mp3", "guitar|fast|spanish"),  # train, broken in the distribution
    ("14", "c/lvx_nova-lvx_nova-01-contimune-30-59.mp3", "techno"),  # valid
    ("36476", "c/strojovna_07-number_1-08-na_bednicke_stal-175-204.mp3", "percussion|drums|fast|techno"),  # valid
    ("618", "c/jay_kishor-the_payans_concert-01-bhimpalasi-871-900.mp3", ""),  # valid, untagged
    ("2", "f/american_bach_soloists-j_s__bach_solo_cantatas-01-bwv54__i_aria-30-59.mp3", "classical|strings|opera|violin"),  # test
    ("13871", "e/skitzo-heavy_shit-03-metallic_tyrants-0-29.mp3", "hard rock|heavy|guitar|loud|drums|fast|heavy metal|rock|metal"),  # test
    ("27011", "d/beth_quist-shall_we_dance-06-evil_grid-320-349.mp3", "spacey|new age|electronic"),  # test
    ("205", "f/professor_armchair-too_much_mustard-01-a_signal_from_mars-30-59.mp3", ""),  # test, untagged
]


def make_mtt(root: Path, missing: str | None = None) -> dict:
    """``annotations_final.csv`` (tab-separated, every field quoted, clip_id / tags / mp3_path) and
    ``mp3/<hex>/<name>.mp3`` clips of ~29.1 s; clip 35644 is an empty file as in the distribution."""
    import csv
    from tasks.tagging import MTT_TOP50

    root = Path(root)
    tags = MTT_TAG_COLUMNS + [t for t in MTT_TOP50 if t not in MTT_TAG_COLUMNS]
    root.mkdir(parents=True, exist_ok=True)
    with open(root / "annotations_final.csv", "w", newline="") as f:
        w = csv.writer(f, delimiter="\t", quoting=csv.QUOTE_ALL, lineterminator="\n")
        w.writerow(["clip_id"] + tags + ["mp3_path"])
        for cid, mp3, pos in MTT_CLIPS:
            p = set(pos.split("|")) - {""}
            w.writerow([cid] + ["1" if t in p else "0" for t in tags] + [mp3])
    for i, (cid, mp3, _) in enumerate(MTT_CLIPS):
        p = root / "mp3" / mp3
        if mp3 == missing:
            continue
        if cid == "35644":
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(b"")
        else:
            write(p, tone(29.1, MP3_SR, freq=150 + 30 * i, seed=i), MP3_SR)
    return {"folder": {"train": 8, "valid": 3, "test": 4}, "won": {"train": 7, "valid": 2, "test": 3}}


# ---------------------------------------------------------------------------------------------- Emomusic
EMO_HEADER = ["song_id", "file_name", "Artist", "Song title", "start of the segment (min.sec)",
              "end of the segment (min.sec)", "Genre", "Mediaeval 2013 set"]
EMO_SONGS = [  # songs_info row + (mean_arousal, std_arousal, mean_valence, std_valence); MARBLE split
    (("5", "5.mp3", "My Bubba & Mi", "Nothing Much", "0.36", "1.21", "Blues", "development", "4.4", "2.1187", "5.3", "1.9465"), "train"),
    (("10", "10.mp3", "Arne Bang Huseby", "Stormy Blues", "1.06", "1.51", "Blues", "development", "4", "1.7638", "4.7", "1.9465"), "train"),
    (("13", "13.mp3", "My Bubba & Mi", "Oh Kiss No", "0.09", "0.54", "Blues", "development", "3.2", "1.4757", "4", "1.7638"), "train"),
    (("17", "17.mp3", "Phoephus", "Fjcb Reddit Gtr Fills Mix", "2.1", "2.55", "Blues", "development", "4.4", "1.8974", "6", "2.1602"), "train"),
    (("19", "19.mp3", "WHO'S PANDA", "Vultures", "0.58", "1.43", "Blues", "development", "5.9", "1.7288", "4.3", "2.0028"), "train"),
    (("2", "2.mp3", "The New Mystikal Troubadours", "Tonight  A Lonely Century", "0.48", "1.33", "Blues", "development", "3.1", "0.99443", "3", "0.66667"), "valid"),
    (("4", "4.mp3", "Kevin MacLeod", "Slow Burn", "1.29", "2.14", "Blues", "development", "5.7", "1.4944", "5.5", "1.7159"), "valid"),
    (("7", "7.mp3", "Kevin MacLeod", "Hustle", "0.2", "1.05", "Blues", "development", "5.8", "1.5492", "6.4", "1.7764"), "valid"),
    (("3", "3.mp3", "Kevin MacLeod", "DD Groove", "0.36", "1.21", "Blues", "evaluation", "3.5", "1.8409", "3.3", "1.7029"), "test"),
    (("12", "12.mp3", "Sul Rebel", "Rebel Blues", "0.03", "0.48", "Blues", "evaluation", "5.5", "2.0138", "5.8", "1.9889"), "test"),
    (("22", "22.mp3", "The New Mystikal Troubadours", "The Holy Feele", "0.11", "0.56", "Blues", "evaluation", "4", "1.4142", "4.8", "1.5492"), "test"),
]


def make_emomusic(root: Path, missing: str | None = None, corrupt_id: str | None = None) -> dict:
    """``annotations/songs_info.csv`` + ``static_annotations.csv`` (real rows, a stray tab inside a value as
    in the original) and ``clips_45seconds/<song_id>.mp3`` (45 s)."""
    import csv

    root = Path(root)
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    with open(root / "annotations" / "songs_info.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(EMO_HEADER)
        for r, _ in EMO_SONGS:
            row = list(r[:8])
            row[3] = row[3] + "\t"  # the original has stray tabs inside titles
            w.writerow(row)
    with open(root / "annotations" / "static_annotations.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["song_id", "mean_arousal", "std_arousal", "mean_valence", "std_valence"])
        for r, _ in EMO_SONGS:
            w.writerow([r[0]] + list(r[8:]))
    for i, (r, _) in enumerate(EMO_SONGS):
        p = root / "clips_45seconds" / r[1]
        if r[0] == missing:
            continue
        if r[0] == corrupt_id:
            corrupt(p)
        else:
            write(p, tone(45.0, MP3_SR, freq=180 + 25 * i, seed=i), MP3_SR)
    return {"splits": {r[0]: s for r, s in EMO_SONGS}, "counts": {"train": 5, "valid": 3, "test": 3}}


# ---------------------------------------------------------------------------------------------- NSynth
# real note names of nsynth-test (first entries of examples.json), reused with other pitches for train/valid
NSYNTH_NOTES = ["bass_synthetic_068-049-025", "keyboard_electronic_001-021-127", "guitar_acoustic_010-066-100",
                "reed_acoustic_037-068-127", "flute_acoustic_002-077-100", "string_acoustic_056-047-075",
                "vocal_synthetic_003-088-025", "brass_acoustic_046-101-050", "mallet_acoustic_062-066-050",
                "organ_electronic_057-056-127"]


def _nsynth_entry(note: str, uid: int) -> dict:
    inst, pitch, vel = note.rsplit("-", 2)
    family, source, _ = inst.rsplit("_", 2)
    fam_ids = ["bass", "brass", "flute", "guitar", "keyboard", "mallet", "organ", "reed", "string", "synth_lead", "vocal"]
    return {"qualities": [0] * 10, "pitch": int(pitch), "note": uid, "instrument_source_str": source,
            "velocity": int(vel), "instrument_str": inst, "instrument": 100 + uid % 50, "sample_rate": 16000,
            "qualities_str": [], "instrument_source": ["acoustic", "electronic", "synthetic"].index(source),
            "note_str": note, "instrument_family": fam_ids.index(family), "instrument_family_str": family}


def make_nsynth(root: Path, missing: str | None = None) -> dict:
    """``nsynth-{train,valid,test}/examples.json`` (Python 2 json.dump(indent=4) layout, trailing spaces) and
    ``audio/<note_str>.wav`` notes of 4 s."""
    root = Path(root)
    plan = {"test": NSYNTH_NOTES,
            "train": [n.rsplit("-", 2)[0] + f"-{int(n.rsplit('-', 2)[1]) + 1:03d}-{n.rsplit('-', 2)[2]}" for n in NSYNTH_NOTES],
            "valid": [n.rsplit("-", 2)[0] + f"-{int(n.rsplit('-', 2)[1]) + 2:03d}-{n.rsplit('-', 2)[2]}" for n in NSYNTH_NOTES[:6]]}
    uid = 0
    labels = {}
    for split, notes in plan.items():
        d = root / f"nsynth-{split}"
        doc = {}
        for n in notes:
            doc[n] = _nsynth_entry(n, uid)
            labels[n] = (doc[n]["instrument_family_str"], str(doc[n]["pitch"]))
            p = d / "audio" / f"{n}.wav"
            if n != missing:
                write(p, tone(4.0, SR, freq=110 + uid * 10, seed=uid), SR, subtype="PCM_16")
            uid += 1
        text = json.dumps(doc, indent=4, separators=(", ", ": "))
        (d / "examples.json").write_text(text)
    return {"counts": {s: len(v) for s, v in plan.items()}, "labels": labels}


# ---------------------------------------------------------------------------------------------- VocalSet
VOCALSET_FILES = [  # FULL/<singer>/<context>/<technique>/<name> as in VocalSet 1.1, including irregular names
    "female1/arpeggios/belt/f1_arpeggios_belt_c_a.wav",
    "female1/scales/breathy/f1_scales_breathy_a.wav",
    "female1/long_tones/vibrato/f1_long_vibrato_a.wav",
    "female1/arpeggios/fast_forte/f1_arpeggios_fast_forte_a.wav",   # not a technique-task class
    "female2/arpeggios/vibrado/f2_arpeggios_vibrato_a.wav",          # misspelled folder -> vibrato
    "female2/arpeggios/vibrado/slow_vibrato_arps.wav",               # left out (as MARBLE)
    "female2/scales/straight/f2_scales_straight_u.wav",
    "female2/scales/straight/f2_scales_straight_u(1).wav",           # duplicate, left out
    "female3/scales/lip_trill/f3_scales_lip_trill_a.wav",
    "female8/excerpts/spoken/f8_caro_spoken.wav",
    "male3/scales/lip_trill/scales_lip_trill.wav",                   # no singer prefix: label from folder
    "male5/arpeggios/inhaled/m5_arpeggios_inhaled_a.wav",
    "male8/excerpts/vibrato/m9_caro_vibrato.wav",                    # wrong prefix: the folder says m8
    "male10/long_tones/trill/m10_long_trill_o.wav",
    "male11/arpeggios/vocal_fry/m11_arpeggios_vocal_fry_e.wav",
    "male2/scales/trillo/m2_scales_trillo_i.wav",
]


def make_vocalset(root: Path, missing_corrupt: str | None = None) -> dict:
    """``FULL/<singer>/<context>/<technique>/<name>.wav`` with 1 s of silence, 7.6 s of tone, 1.4 s of silence
    (-> two 3 s chunks starting near 1.0 s after trimming)."""
    root = Path(root)
    for i, rel in enumerate(VOCALSET_FILES):
        p = root / "FULL" / rel
        if rel == missing_corrupt:
            corrupt(p)
            continue
        x = np.concatenate([np.zeros(SR, np.float32), tone(7.6, SR, freq=300 + 15 * i, seed=i),
                            np.zeros(int(1.4 * SR), np.float32)])
        write(p, x, SR)
    (root / "__MACOSX").mkdir(exist_ok=True)
    (root / "test_singers_technique.txt").write_text("female2\nfemale8\nmale3\nmale5\nmale10\n")
    return {"recordings": len(VOCALSET_FILES) - 2, "chunks_per_recording": 2}


# ---------------------------------------------------------------------------------------------- MTG-Jamendo
MTG_GENRE_ROWS = {  # real split-0 rows of autotagging_genre-*.tsv (DURATION shortened to fit the fixture audio)
    "train": ["track_0000241\tartist_000005\talbum_000033\t41/241.mp3\t{d}\tgenre---rock",
              "track_0000242\tartist_000005\talbum_000033\t42/242.mp3\t{d}\tgenre---rock",
              "track_0000243\tartist_000005\talbum_000033\t43/243.mp3\t{d}\tgenre---rock",
              "track_0000773\tartist_000104\talbum_000126\t73/773.mp3\t{d}\tgenre---electronic",
              "track_0000775\tartist_000104\talbum_000126\t75/775.mp3\t{d}\tgenre---easylistening\tgenre---electronic\tgenre---lounge",
              "track_0000215\tartist_000014\talbum_000031\t15/215.mp3\t{d}\tgenre---metal"],
    "validation": ["track_0000774\tartist_000104\talbum_000126\t74/774.mp3\t{d}\tgenre---electronic",
                   "track_0000776\tartist_000104\talbum_000126\t76/776.mp3\t{d}\tgenre---electronic",
                   "track_0000244\tartist_000005\talbum_000033\t44/244.mp3\t{d}\tgenre---rock"],
    "test": ["track_0000214\tartist_000014\talbum_000031\t14/214.mp3\t{d}\tgenre---punkrock",
             "track_0000216\tartist_000014\talbum_000031\t16/216.mp3\t{d}\tgenre---metal",
             "track_0000217\tartist_000014\talbum_000031\t17/217.mp3\t{d}\tgenre---punkrock\tgenre---rock"],
}


def make_mtg(root: Path, audio: str = "low", missing: str | None = None, seconds: float = 35.0) -> dict:
    """``data/splits/split-0/autotagging_genre-*.tsv`` (CRLF, variable tag columns) plus a decoy under split-1,
    and full-track audio as ``audio-low/<NN>/<id>.low.mp3`` (``audio='low'``) or ``raw_30s/audio/<NN>/<id>.mp3``."""
    root = Path(root)
    sp = root / "data" / "splits" / "split-0"
    sp.mkdir(parents=True, exist_ok=True)
    header = "TRACK_ID\tARTIST_ID\tALBUM_ID\tPATH\tDURATION\tTAGS"
    for split, rows in MTG_GENRE_ROWS.items():
        lines = [header] + [r.format(d=f"{seconds:.1f}") for r in rows]
        (sp / f"autotagging_genre-{split}.tsv").write_bytes(("\r\n".join(lines) + "\r\n").encode())
    decoy = root / "data" / "splits" / "split-1"
    decoy.mkdir(parents=True, exist_ok=True)
    for split in MTG_GENRE_ROWS:
        (decoy / f"autotagging_genre-{split}.tsv").write_bytes((header + "\r\n").encode())
    i = 0
    for split, rows in MTG_GENRE_ROWS.items():
        for r in rows:
            rel = r.split("\t")[3]
            tid = r.split("\t")[0]
            p = (root / "audio-low" / rel.replace(".mp3", ".low.mp3")) if audio == "low" else (root / "raw_30s" / "audio" / rel)
            if tid != missing:
                write(p, tone(seconds, MP3_SR, freq=170 + 13 * i, seed=i), MP3_SR)
            i += 1
    return {"counts": {"train": 6, "valid": 3, "test": 3}}


# ---------------------------------------------------------------------------------------------- MUSDB18
MUSDB_TRACKS = {  # real MUSDB18 names; the first two train tracks are among mus.yaml's validation_tracks
    "train": ["Actions - One Minute Smile", "Leaf - Summerghost", "A Classic Education - NightOwl",
              "ANiMAL - Clinic A", "Actions - Devil's Words"],
    "test": ["AM Contra - Heart Peripheral", "Al James - Schoolboy Facination"],
}


def make_musdb(root: Path, stems_mp4: bool = False, missing_stem: str | None = None) -> dict:
    """musdbconvert's WAV layout ``{train,test}/<track>/{mixture,vocals,drums,bass,other}.wav`` (stereo), or
    with ``stems_mp4`` the undecodable ``.stem.mp4`` distribution layout."""
    root = Path(root)
    for subset, names in MUSDB_TRACKS.items():
        for i, name in enumerate(names):
            if stems_mp4:
                p = root / subset / f"{name}.stem.mp4"
                p.parent.mkdir(parents=True, exist_ok=True)
                p.write_bytes(b"\x00\x00\x00\x20ftypisom" + bytes(64))
                continue
            stems = {s: tone(3.0, SR, freq=100 * (k + 1) + i, seed=k, channels=2) * 0.25
                     for k, s in enumerate(("vocals", "drums", "bass", "other"))}
            for s, x in stems.items():
                if f"{name}/{s}" != missing_stem:
                    write(root / subset / name / f"{s}.wav", x, SR)
            write(root / subset / name / "mixture.wav", sum(stems.values()), SR)
    return {"counts": {"train": 3, "valid": 2, "test": 2}}
