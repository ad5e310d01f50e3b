"""MUSDB18 reader: musdbconvert WAV layout, official validation subset, stems as targets."""
from pathlib import Path

import pytest

import tasks.real as real
from tasks.format import read_split
from tasks.real import musdb

from fixtures_real import make_musdb

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"


def test_splits_with_validation_subset_and_stem_targets(tmp_path):
    root = tmp_path / "MUSDB18"
    info = make_musdb(root)
    rep = real.validate("separation", root)
    assert rep.ok and rep.listed == info["counts"] and rep.expected == {"train": 86, "valid": 14, "test": 50}
    out = real.prepare("separation", root, tmp_path / "sep")
    valid = read_split(out, "valid")
    assert sorted(it.id for it in valid) == ["Actions - One Minute Smile", "Leaf - Summerghost"]
    it = read_split(out, "test")[0]
    assert it.audio.endswith("/test/AM Contra - Heart Peripheral/mixture.wav")
    assert set(it.target) == {"vocals", "drums", "bass", "other"}
    assert all(Path(p).exists() and Path(p).parent == Path(it.audio).parent for p in it.target.values())


def test_mus_yaml_below_data_dir_wins(tmp_path):
    root = tmp_path / "MUSDB18"
    make_musdb(root)
    (root / "mus.yaml").write_text("validation_tracks:\n- 'ANiMAL - Clinic A'\n")
    names, src = musdb.validation_tracks(root)
    assert names == ["ANiMAL - Clinic A"] and src.endswith("mus.yaml")


def test_missing_stem_reported_by_name(tmp_path):
    root = tmp_path / "MUSDB18"
    make_musdb(root, missing_stem="Leaf - Summerghost/bass")
    rep = real.validate("separation", root)
    assert [p.name for p in rep.missing] == ["train/Leaf - Summerghost/bass.wav"]
    assert rep.usable == {"train": 3, "valid": 1, "test": 2}


def test_stem_mp4_layout_says_run_musdbconvert(tmp_path):
    root = tmp_path / "MUSDB18"
    make_musdb(root, stems_mp4=True)
    rep = real.validate("separation", root)
    assert not rep.ok and "musdbconvert" in rep.errors[0] and ".stem.mp4" in rep.errors[0]


@pytest.mark.skipif(not (SHARED / "MUSDB18").is_dir(), reason="shared/ metadata not beside the repo")
def test_published_validation_list_equals_mus_yaml(tmp_path):
    (tmp_path / "x").mkdir()
    import shutil

    shutil.copy(SHARED / "MUSDB18/sigsep-mus-db/mus.yaml", tmp_path / "x" / "mus.yaml")
    names, _ = musdb.validation_tracks(tmp_path)
    assert len(names) == 14
    assert musdb.SPLIT_FILE.read_text().splitlines() == names
