"""MagnaTagATune reader: folder split (default) and Won et al. split option, top-50 targets."""
import csv
from pathlib import Path

import pytest

import tasks.real as real
from tasks.format import read_split
from tasks.real import mtt

from fixtures_real import MTT_CLIPS, make_mtt

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("mtt") / "MagnaTagATune"
    return root, make_mtt(root)


def test_folder_split_counts_labels_and_broken_clip(data, tmp_path):
    root, info = data
    rep = real.validate("tagging", root)
    assert rep.listed == info["folder"] and rep.expected == {"train": 18709, "valid": 1825, "test": 5329}
    assert [p.name for p in rep.unreadable] == ["6/norine_braun-now_and_zen-08-gently-117-146.mp3"]
    assert "known-broken" in rep.unreadable[0].reason and rep.ok
    out = real.prepare("tagging", root, tmp_path / "t")
    items = {it.id: (s, it) for s in ("train", "valid", "test") for it in read_split(out, s)}
    assert items["2"][0] == "test" and items["2"][1].target == ["classical", "strings", "violin", "opera"]
    assert items["13871"][1].target == ["guitar", "drums", "rock", "fast", "loud", "metal"]  # MTT_TOP50 order
    assert items["618"][0] == "valid" and items["618"][1].target == []  # untagged clips stay (MARBLE)
    assert items["135"][1].target == []  # 'electric' is not a top-50 tag
    assert "35644" not in items
    assert items["14"][1].group == "lvx_nova-lvx_nova-01-contimune"


def test_won_split_option_drops_clips_without_top50_tag(data, tmp_path):
    root, info = data
    rep = real.validate("tagging", root, options={"split": "won"})
    assert rep.listed == info["won"] and rep.expected == {"train": 15250, "valid": 1529, "test": 4332}
    out = real.prepare("tagging", root, tmp_path / "won", options={"split": "won"})
    ids = {it.id for s in ("train", "valid", "test") for it in read_split(out, s)}
    assert not ids & {"135", "618", "205"}
    with pytest.raises(ValueError, match="split"):
        real.validate("tagging", root, options={"split": "lee"})
    with pytest.raises(KeyError, match="unknown real-data option"):
        real.validate("tagging", root, options={"splitt": "won"})


def test_missing_clip_reported_by_name(tmp_path):
    root = tmp_path / "MagnaTagATune"
    make_mtt(root, missing=MTT_CLIPS[12][1])
    (root / "mp3" / MTT_CLIPS[0][1]).write_bytes(b"ID3 garbage")
    rep = real.validate("tagging", root)
    assert [p.name for p in rep.missing] == [MTT_CLIPS[12][1]]
    assert MTT_CLIPS[0][1] in [p.name for p in rep.unreadable]
    assert rep.usable == {"train": 6, "valid": 3, "test": 3}


@pytest.mark.skipif(not (SHARED / "MagnaTagATune").is_dir(), reason="shared/ metadata not beside the repo")
def test_folder_rule_and_won_filter_give_protocol_counts_on_all_clips():
    from tasks.tagging import MTT_TOP50

    top = set(MTT_TOP50)
    with open(SHARED / "MagnaTagATune/derived/mtt_annotated_clips_from_jukemir.tsv") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    folder = {"train": 0, "valid": 0, "test": 0}
    won = {"train": 0, "valid": 0, "test": 0}
    won_lists = {"valid": set(), "test": set()}
    for r in rows:
        s = mtt.folder_split(r["mp3_path"])
        folder[s] += 1
        if top & set(r["positive_tags"].split("|")):
            won[s] += 1
            if s != "train":
                won_lists[s].add((r["row_index"], r["mp3_path"]))
    assert folder == mtt.EXPECTED["folder"] and won == mtt.EXPECTED["won"]
    for s in ("valid", "test"):
        with open(SHARED / f"MagnaTagATune/won2020_split/{s}.tsv") as f:
            assert won_lists[s] == {tuple(l.rstrip("\n").split("\t")) for l in f if l.strip()}
