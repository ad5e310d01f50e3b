"""MTG-Jamendo reader: split-0 TSVs (CRLF, variable tag columns), audio-low or raw_30s naming."""
from pathlib import Path

import pytest

import tasks.real as real
from tasks.format import read_meta, read_split
from tasks.real import mtg_jamendo as mtg

from fixtures_real import make_mtg

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"


@pytest.mark.parametrize("audio", ["low", "raw"])
def test_split0_items_labels_and_both_audio_namings(tmp_path, audio):
    root = tmp_path / "MTG-Jamendo"
    info = make_mtg(root, audio=audio)
    rep = real.validate("mtg-genre", root)
    assert rep.ok and rep.listed == info["counts"]  # the empty split-1 decoy is ignored
    assert rep.expected == {"train": 32572, "valid": 11043, "test": 11479}
    out = real.prepare("mtg-genre", root, tmp_path / "g")
    labels = read_meta(out)["labels"]
    assert labels == ["genre---rock", "genre---electronic", "genre---easylistening", "genre---lounge",
                      "genre---metal", "genre---punkrock"]  # first appearance over train, valid, test
    items = {it.id: it for s in ("train", "valid", "test") for it in read_split(out, s)}
    assert items["track_0000775"].target == ["genre---easylistening", "genre---electronic", "genre---lounge"]
    assert items["track_0000217"].target == ["genre---punkrock", "genre---rock"]
    assert items["track_0000241"].group == "artist_000005"
    suffix = "41/241.low.mp3" if audio == "low" else "41/241.mp3"
    assert items["track_0000241"].audio.endswith(suffix)
    assert items["track_0000241"].start is None  # whole track; the runner windows it


def test_missing_track_and_wrong_duration_reported(tmp_path):
    root = tmp_path / "MTG-Jamendo"
    make_mtg(root, missing="track_0000216")
    from fixtures_real import MP3_SR, tone, write

    write(root / "audio-low/42/242.low.mp3", tone(10.0, MP3_SR), MP3_SR)
    rep = real.validate("mtg-genre", root)
    assert [p.name for p in rep.missing] == ["16/216.mp3"]
    assert [p.name for p in rep.wrong_length] == ["42/242.mp3"]
    assert rep.usable == {"train": 5, "valid": 3, "test": 2}


def test_other_tag_set_missing_is_explained(tmp_path):
    root = tmp_path / "MTG-Jamendo"
    make_mtg(root)
    rep = real.validate("mtg-mood", root)
    assert not rep.ok and "autotagging_moodtheme-train.tsv" in rep.errors[0]


def test_assets_list_tars_from_the_checksum_file(tmp_path):
    root = tmp_path / "MTG-Jamendo"
    (root / "data/download").mkdir(parents=True)
    (root / "data/download/raw_30s_audio-low_sha256_tars.txt").write_text(
        "c89826f7fa271a1c6c8f3b63786462cd72a97ec02531ca2f566310418dace88b raw_30s_audio-low-00.tar\n")
    a = mtg.assets("mtg-top50", root)
    names = [x.name for x in a]
    assert names[:3] == [f"autotagging_top50tags-{s}.tsv" for s in ("train", "validation", "test")]
    tar = a[-1]
    assert tar.name == "raw_30s_audio-low-00.tar" and tar.sha256.startswith("c89826f7") and tar.extract
    assert tar.url == "https://cdn.freesound.org/mtg-jamendo/raw_30s/audio-low/raw_30s_audio-low-00.tar"


@pytest.mark.skipif(not (SHARED / "MTG-Jamendo").is_dir(), reason="shared/ metadata not beside the repo")
def test_complete_real_moodtheme_test_file():
    rows = mtg.read_split_tsv(SHARED / "MTG-Jamendo/data/splits/split-0/autotagging_moodtheme-test.tsv")
    assert len(rows) == mtg.EXPECTED["moodtheme"]["test"] == 4231
    assert all(t.startswith("mood/theme---") for r in rows for t in r[3])
    assert min(r[2] for r in rows) >= 30.0
    tags = {t for r in rows for t in r[3]}
    assert len(tags) == 56


@pytest.mark.skipif(not (SHARED / "MTG-Jamendo").is_dir(), reason="shared/ metadata not beside the repo")
def test_first_appearance_tag_order_is_marble_v2_order():
    import json

    consts = json.loads((SHARED / "MTG-Jamendo/marble_v2_datamodule_constants.json").read_text())["tasks"]
    for name, subset in (("MTGGenre", "genre"), ("MTGInstrument", "instrument"), ("MTGMood", "moodtheme"),
                         ("MTGTop50", "top50tags")):
        order = []
        # the kept train files are the real header plus the first 300 rows: a prefix of the order
        for r in mtg.read_split_tsv(SHARED / f"MTG-Jamendo/data/splits/split-0/autotagging_{subset}-train.tsv"):
            order += [t for t in r[3] if t not in order]
        assert order == list(consts[name]["LABEL2IDX"])[:len(order)] and len(order) > 25
