"""Emomusic reader: MediaEval 2013 test set, artist-hash train/valid, one item per 45 s clip."""
import csv
import shutil
from pathlib import Path

import pytest

import tasks.real as real
from tasks.format import read_split
from tasks.real import emomusic

from fixtures_real import make_emomusic

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"
SPLIT_FILE = Path(emomusic.__file__).resolve().parents[1] / "splits" / "emomusic_v1.tsv"


def test_splits_and_targets_match_real_metadata(tmp_path):
    root = tmp_path / "Emomusic"
    info = make_emomusic(root)
    rep = real.validate("emotion", root)
    assert rep.ok and rep.listed == info["counts"] and rep.expected == {"train": 504, "valid": 115, "test": 125}
    out = real.prepare("emotion", root, tmp_path / "emo")
    got = {it.id: (s, it) for s in ("train", "valid", "test") for it in read_split(out, s)}
    assert {k: s for k, (s, _) in got.items()} == info["splits"]
    assert got["5"][1].target == [4.4, 5.3] and got["2"][1].target == [3.1, 3.0]
    assert got["3"][1].start is None and got["3"][1].audio.endswith("clips_45seconds/3.mp3")
    assert got["4"][1].group == got["7"][1].group == "kevin macleod"
    with open(SPLIT_FILE) as f:
        published = {r["song_id"]: r["split"] for r in csv.DictReader(f, delimiter="\t")}
    assert len(published) == 744 and all(published[k] == s for k, s in info["splits"].items())


def test_missing_and_corrupt_clip_reported_by_name(tmp_path):
    root = tmp_path / "Emomusic"
    make_emomusic(root, missing="10", corrupt_id="12")
    rep = real.validate("emotion", root)
    assert [p.name for p in rep.missing] == ["10.mp3"] and [p.name for p in rep.unreadable] == ["12.mp3"]
    assert rep.usable == {"train": 4, "valid": 3, "test": 2}


def test_wrong_length_clip_reported(tmp_path):
    from fixtures_real import MP3_SR, tone, write

    root = tmp_path / "Emomusic"
    make_emomusic(root)
    write(root / "clips_45seconds" / "13.mp3", tone(20.0, MP3_SR), MP3_SR)
    rep = real.validate("emotion", root)
    assert [p.name for p in rep.wrong_length] == ["13.mp3"] and "expected 45.00 s" in rep.wrong_length[0].reason


@pytest.mark.skipif(not (SHARED / "Emomusic").is_dir(), reason="shared/ metadata not beside the repo")
def test_procedure_on_all_744_songs_matches_marble(tmp_path):
    d = SHARED / "Emomusic/derived"
    shutil.copy(d / "songs_info.reconstructed_from_jukemir.csv", tmp_path / "songs_info.csv")
    shutil.copy(d / "static_annotations.reconstructed_from_jukemir.csv", tmp_path / "static_annotations.csv")
    table = emomusic.songs(tmp_path)
    with open(d / "marble_v1_jukemir_splits.tsv") as f:
        marble = {str(int(r["song_id"])): r["split"] for r in csv.DictReader(f, delimiter="\t")}
    assert {k: v["split"] for k, v in table.items()} == marble
    counts = {s: sum(v["split"] == s for v in table.values()) for s in ("train", "valid", "test")}
    assert counts == emomusic.EXPECTED
