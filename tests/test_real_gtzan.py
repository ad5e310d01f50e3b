"""GTZAN genre / GTZAN-Rhythm beat reader on a fixture tree with the real layout and names."""
import json
import shutil
from pathlib import Path

import pytest

import tasks.real as real
from tasks.format import read_meta, read_split
from tasks.real import gtzan

from fixtures_real import BLUES_00029_FIRST_BEATS, GTZAN_SPLITS, gtzan_beats, make_gtzan

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("gtzan") / "GTZAN"
    make_gtzan(root)
    return root


def test_genre_validate_counts_and_corrupt_jazz(data):
    rep = real.validate("genre", data)
    assert rep.listed == {"train": 11, "valid": 10, "test": 10}
    assert rep.expected == {"train": 443, "valid": 197, "test": 290}
    assert rep.usable == {"train": 10, "valid": 10, "test": 10}
    assert [p.name for p in rep.unreadable] == ["jazz.00054.wav"]
    assert "corrupt in common copies" in rep.unreadable[0].reason
    assert rep.ok  # the known-corrupt file does not count against the task
    s = rep.summary()
    assert s.startswith("GTZAN: 30 of 31 files, jazz.00054.wav") and s.endswith("skipped")


def test_genre_prepare_labels_splits(data, tmp_path):
    out = real.prepare("genre", data, tmp_path / "genre")
    meta = read_meta(out)
    assert meta["source"] == "real" and meta["labels"][0] == "blues" and len(meta["labels"]) == 10
    assert meta["sample_rate"] == 4000  # the files' own rate
    assert [s["name"] for s in meta["skipped"]] == ["jazz.00054.wav"]
    for split, stems in GTZAN_SPLITS.items():
        items = read_split(out, split)
        want = [s for s in stems if s != "jazz.00054"]
        assert [it.id for it in items] == want
        assert all(it.target == it.id.split(".")[0] for it in items)
        assert all(Path(it.audio).name == f"{it.id}.wav" and Path(it.audio).exists() for it in items)
    # a rerun with nothing changed reuses the folder
    mtime = (out / "meta.json").stat().st_mtime_ns
    assert real.prepare("genre", data, tmp_path / "genre") == out
    assert (out / "meta.json").stat().st_mtime_ns == mtime


def test_beat_targets_from_all_three_annotation_formats(data, tmp_path):
    out = real.prepare("beat", data, tmp_path / "beat")
    items = {it.id: it for s in ("train", "valid", "test") for it in read_split(out, s)}
    assert len(items) == 30
    assert items["blues.00029"].target[:3] == BLUES_00029_FIRST_BEATS
    def kind(name):
        return ".wav.jams" if name.endswith(".wav.jams") else Path(name).suffix
    assert {kind(it.extra["annotation"]) for it in items.values()} == {".wav.jams", ".jams", ".beats"}
    for stem, it in items.items():
        assert it.target == pytest.approx(gtzan_beats(stem), abs=1e-3)  # .beats files round to 1 ms
        assert it.extra["downbeats"] and set(it.extra["downbeats"]) <= set(it.target) | set(
            round(b, 3) for b in it.target)


def test_original_tarball_layout_au(tmp_path):
    root = tmp_path / "GTZAN"
    make_gtzan(root, layout="original", corrupt_jazz=False, beat_formats=False)
    rep = real.validate("genre", root)
    assert rep.usable == {"train": 11, "valid": 10, "test": 10} and rep.ok
    out = real.prepare("genre", root, tmp_path / "out")
    assert all(it.audio.endswith(".au") for it in read_split(out, "train"))


def test_missing_and_corrupt_files_reported_by_name(tmp_path):
    root = tmp_path / "GTZAN"
    make_gtzan(root)
    (root / "Data/genres_original/rock/rock.00038.wav").unlink()
    (root / "Data/genres_original/pop/pop.00000.wav").write_bytes(b"not audio at all")
    rep = real.validate("genre", root)
    assert [p.name for p in rep.missing] == ["rock.00038.wav"]
    assert sorted(p.name for p in rep.unreadable) == ["jazz.00054.wav", "pop.00000.wav"]
    assert rep.usable == {"train": 10, "valid": 9, "test": 9}
    assert not rep.ok  # 1 of 10 lost in valid and test is more than 5 %
    assert "rock.00038.wav" in rep.text() and "task can NOT run" in rep.text()
    with pytest.raises(real.DatasetMissing, match="rock.00038.wav"):
        real.prepare("genre", root, tmp_path / "out")


def test_beat_track_without_annotation_is_reported(tmp_path):
    root = tmp_path / "GTZAN"
    make_gtzan(root)
    for p in list(root.rglob("*00029*")):
        if p.suffix in (".jams", ".beats"):
            p.unlink()
    rep = real.validate("beat", root)
    assert [p.name for p in rep.unlabelled] == ["blues.00029.wav"]
    assert rep.listed["train"] == 11 and rep.usable["train"] == 9


def test_missing_split_list_says_how_to_get_it(tmp_path):
    root = tmp_path / "GTZAN"
    make_gtzan(root)
    shutil.rmtree(root / "splits")
    rep = real.validate("genre", root)
    assert not rep.ok and "train_filtered.txt" in rep.errors[0] and "prepare" in rep.errors[0]


@pytest.mark.skipif(not (SHARED / "GTZAN").is_dir(), reason="shared/ metadata not beside the repo")
def test_real_split_lists_and_jams_parse_to_protocol_counts():
    counts = {s: len(gtzan.read_split_list(SHARED / "GTZAN" / f"{s}_filtered.txt")) for s in ("train", "valid", "test")}
    assert counts == gtzan.EXPECTED == {"train": 443, "valid": 197, "test": 290}
    beats, downs = gtzan.beats_from_jams(SHARED / "GTZAN/gtzan_rhythm_jams/blues.00029.jams")
    assert (len(beats), len(downs)) == (62, 16) and beats[:3] == BLUES_00029_FIRST_BEATS
    b2, d2 = gtzan.beats_from_text(SHARED / "GTZAN/gtzan_tempo_beat/beats/gtzan_blues_00029.beats")
    assert b2 == pytest.approx(beats, abs=6e-4) and d2 == pytest.approx(downs, abs=6e-4)
    assert len(gtzan.beats_from_jams(SHARED / "GTZAN/gtzan_rhythm_jams/reggae.00086.jams")[0]) == 15


def test_beat_download_falls_back_to_gtzan_tempo_beat(tmp_path, monkeypatch):
    """The GTZAN-Rhythm server fails (unreachable here); the gtzan_tempo_beat archive is used instead."""
    import zipfile

    from tasks.real.download import Asset

    root = tmp_path / "GTZAN"
    make_gtzan(root, beat_formats=False)
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    with zipfile.ZipFile(mirror / "gtb.zip", "w") as z:
        for stems in GTZAN_SPLITS.values():
            for stem in stems:
                g, n = stem.split(".")
                z.writestr(f"gtzan_tempo_beat-fd9cafd/beats/gtzan_{g}_{n}.beats",
                           "".join(f"{b:.3f}\t{1 + i % 4}\n" for i, b in enumerate(gtzan_beats(stem))))
    monkeypatch.setattr(gtzan, "RHYTHM_ASSET", Asset("GTZAN-Rhythm_v2.tar_.gz", "http://127.0.0.1:9/x.tar_.gz",
                                                     dest="GTZAN-Rhythm", extract=True))
    monkeypatch.setattr(gtzan, "BEATS_ASSET", Asset("gtb.zip", (mirror / "gtb.zip").as_uri(),
                                                    dest="gtzan_tempo_beat", extract=True))
    # the fixture's split lists are subsets of the real ones (other checksums): accept them as present
    monkeypatch.setattr(gtzan, "SPLIT_ASSETS", {k: Asset(a.name, f"http://127.0.0.1:9/{a.name}", dest="splits")
                                                for k, a in gtzan.SPLIT_ASSETS.items()})
    assert real.validate("beat", root).unlabelled  # nothing yet
    logs = []
    real.download("beat", root, log=logs.append)
    assert any("GTZAN-Rhythm_v2.tar_.gz" in m and "failed" in m for m in logs)
    rep = real.validate("beat", root)
    assert not rep.unlabelled and rep.usable == {"train": 10, "valid": 10, "test": 10}
