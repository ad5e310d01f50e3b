"""NSynth reader: official splits from examples.json, family and pitch targets, 4 s notes."""
import json
from pathlib import Path

import pytest

import tasks.real as real
from tasks.format import read_split
from tasks.real import nsynth

from fixtures_real import NSYNTH_NOTES, make_nsynth

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("ns") / "NSynth"
    return root, make_nsynth(root)


@pytest.mark.parametrize("task", ["instrument", "pitch"])
def test_official_splits_and_labels(data, tmp_path, task):
    root, info = data
    rep = real.validate(task, root)
    assert rep.ok and rep.listed == info["counts"] and rep.expected == {"train": 289205, "valid": 12678, "test": 4096}
    out = real.prepare(task, root, tmp_path / task)
    test = read_split(out, "test")
    assert [it.id for it in test] == NSYNTH_NOTES  # examples.json order
    col = 0 if task == "instrument" else 1
    for s in ("train", "valid", "test"):
        for it in read_split(out, s):
            assert it.target == info["labels"][it.id][col]
            assert Path(it.audio) == root / f"nsynth-{s}" / "audio" / f"{it.id}.wav"
    if task == "pitch":
        assert {it.id: it.target for it in test}["bass_synthetic_068-049-025"] == "49"


def test_missing_and_corrupt_note_reported_by_name(tmp_path):
    root = tmp_path / "NSynth"
    make_nsynth(root, missing="guitar_acoustic_010-066-100")
    (root / "nsynth-test/audio/reed_acoustic_037-068-127.wav").write_bytes(b"RIFF....WAVE")
    rep = real.validate("instrument", root)
    assert [p.name for p in rep.missing] == ["nsynth-test/audio/guitar_acoustic_010-066-100.wav"]
    assert [p.name for p in rep.unreadable] == ["nsynth-test/audio/reed_acoustic_037-068-127.wav"]
    assert rep.usable["test"] == 8 and rep.usable["train"] == 10


def test_missing_split_folder_is_explained(tmp_path):
    root = tmp_path / "NSynth"
    root.mkdir()
    rep = real.validate("pitch", root)
    assert not rep.ok and "nsynth-" in rep.errors[0] and "examples.json" in rep.errors[0]


@pytest.mark.skipif(not (SHARED / "NSynth").is_dir(), reason="shared/ metadata not beside the repo")
def test_real_examples_json_parses():
    ex = nsynth.read_examples(SHARED / "NSynth/nsynth-test_examples.first47.json")
    assert len(ex) == 47 and ex[0]["note_str"] == "bass_synthetic_068-049-025" and ex[0]["pitch"] == 49
    from tasks.instrument import NSYNTH_FAMILIES

    assert {e["instrument_family_str"] for e in ex} <= set(NSYNTH_FAMILIES)
