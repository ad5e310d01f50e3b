"""VocalSet reader: labels from folders, irregular files, silence trimming, 3 s chunks, hash splits."""
from pathlib import Path

import pytest

import tasks.real as real
from tasks.format import read_meta, read_split
from tasks.real import vocalset

from fixtures_real import VOCALSET_FILES, make_vocalset

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("vs") / "VocalSet"
    return root, make_vocalset(root)


def test_technique_split_holds_out_the_five_singers(data, tmp_path):
    root, info = data
    rep = real.validate("technique", root)
    assert rep.ok
    out = real.prepare("technique", root, tmp_path / "t")
    items = {s: read_split(out, s) for s in ("train", "valid", "test")}
    singers = {s: {it.extra["singer"] for it in v} for s, v in items.items()}
    assert singers["test"] == {"f2", "f8", "m3", "m5", "m10"}
    assert not (singers["train"] | singers["valid"]) & singers["test"]
    every = [it for v in items.values() for it in v]
    assert {it.target for it in every} <= set(read_meta(out)["labels"])
    assert "fast_forte" not in {it.target for it in every}
    # the misspelled 'vibrado' folder counts as vibrato; the duplicate and slow_vibrato_arps are left out
    vib = [it for it in every if "vibrado" in it.audio]
    assert vib and all(it.target == "vibrato" for it in vib)
    assert not [it for it in every if "(1)" in it.audio or "slow_vibrato_arps" in it.audio]


def test_chunks_after_silence_trimming(data, tmp_path):
    root, info = data
    out = real.prepare("singer", root, tmp_path / "s")
    items = [it for s in ("train", "valid", "test") for it in read_split(out, s)]
    assert len(items) == info["recordings"] * info["chunks_per_recording"]
    for it in items:
        assert it.end - it.start == pytest.approx(3.0)
    firsts = [it for it in items if it.id.endswith("_00")]
    assert all(abs(it.start - 1.0) < 0.06 for it in firsts)  # 1 s of leading silence trimmed
    from mert.audio import read_audio

    wav = read_audio(firsts[0].audio, 16000, firsts[0].start, firsts[0].end)  # what the runner reads
    assert len(wav) == 48000 and abs(wav).max() > 0.1
    # labels from the folders: m9_caro_vibrato.wav sits in male8, scales_lip_trill.wav in male3
    by_file = {Path(it.audio).name: it.target for it in items}
    assert by_file["m9_caro_vibrato.wav"] == "m8" and by_file["scales_lip_trill.wav"] == "m3"
    # chunks of one recording share a split (recording-disjoint singer split)
    split_of = {}
    for s in ("train", "valid", "test"):
        for it in read_split(out, s):
            assert split_of.setdefault(it.group, s) == s


def test_split_rule_is_deterministic_and_near_12_8_5():
    keys = [f"female{i % 9 + 1}/scales/belt/f{i % 9 + 1}_scales_belt_{i}.wav" for i in range(5000)]
    splits = [vocalset.singer_split(k) for k in keys]
    assert splits == [vocalset.singer_split(k) for k in keys]
    frac = {s: splits.count(s) / len(splits) for s in ("train", "valid", "test")}
    assert frac["train"] == pytest.approx(12 / 25, abs=0.03) and frac["valid"] == pytest.approx(8 / 25, abs=0.03)
    assert vocalset.singer_split("female1/arpeggios/belt/f1_arpeggios_belt_c_a.wav") == "train"  # pinned


def test_corrupt_recording_reported_by_name(tmp_path):
    root = tmp_path / "VocalSet"
    make_vocalset(root, missing_corrupt=VOCALSET_FILES[0])
    rep = real.validate("singer", root)
    assert [p.name for p in rep.unreadable] == [VOCALSET_FILES[0]]
    assert sum(rep.usable.values()) == 13


def test_trim_bounds_on_known_signal():
    import numpy as np

    sr = 44100
    x = np.zeros(sr * 5, np.float32)
    x[sr: 3 * sr] = 0.5
    t0, t1 = vocalset.trim_bounds(x, sr)
    assert t0 == pytest.approx(1.0, abs=0.05) and t1 == pytest.approx(3.0, abs=0.05)


@pytest.mark.skipif(not (SHARED / "VocalSet").is_dir(), reason="shared/ metadata not beside the repo")
def test_test_singers_match_the_zip_file():
    from tasks.technique import TEST_SINGERS

    names = (SHARED / "VocalSet/test_singers_technique.reconstructed.txt").read_text().split()
    assert tuple(vocalset.singer_short(n) for n in names) == TEST_SINGERS
