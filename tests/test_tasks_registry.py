import json

import pytest

from tasks import all_tasks, get_task
from tasks.base import TASK_ORDER, TaskSpec
from tasks.format import Item, atomic_dir, is_complete, read_meta, read_split, write_meta, write_split


def test_fourteen_tasks_complete_metadata():
    specs = all_tasks()
    assert [s.name for s in specs] == list(TASK_ORDER)
    for s in specs:
        assert s.version >= 1 and s.dataset and s.description
        assert s.main_score_metrics and all(m in s.metrics for m in s.main_score_metrics)
    assert get_task("mtg-genre").window_s == 30.0
    assert get_task("key").labels[0] == "C major" and len(get_task("key").labels) == 24
    assert len(get_task("tagging").labels) == 50


def test_unknown_task_suggests():
    with pytest.raises(KeyError, match="did you mean 'key'"):
        get_task("kye")


def test_main_score_mean():
    s = get_task("tagging")
    assert s.main_score_of({"roc_auc": 0.9, "ap": 0.4}) == pytest.approx(0.65)
    with pytest.raises(KeyError, match="ap"):
        s.main_score_of({"roc_auc": 0.9})


def test_spec_validation():
    with pytest.raises(ValueError, match="type"):
        TaskSpec(name="x", version=1, dataset="d", type="nope", metrics=("a",), main_score="a")
    with pytest.raises(ValueError, match="main score"):
        TaskSpec(name="x", version=1, dataset="d", type="multiclass", metrics=("a",), main_score="b")


def test_prepared_format_roundtrip(tmp_path):
    items = [Item(id="a", audio="audio/a.flac", target="C major", group="s1"),
             Item(id="b", audio="/abs/b.wav", target=[0.1, 0.2], start=1.0, end=4.0, extra={"tempo": 120})]
    with atomic_dir(tmp_path / "key") as d:
        write_split(d, "train", items)
        write_meta(d, {"task": "key", "task_version": 1, "source": "embedded", "sample_rate": 24000,
                       "labels": ["C major"]})
        assert not is_complete(tmp_path / "key")
    assert is_complete(tmp_path / "key")
    assert read_split(tmp_path / "key", "train") == items
    assert read_meta(tmp_path / "key")["format_version"] == 1
    with pytest.raises(ValueError, match="duplicate"):
        write_split(tmp_path, "x", items + items)


def test_atomic_dir_failure_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError):
        with atomic_dir(tmp_path / "t") as d:
            (d / "f").write_text("x")
            raise RuntimeError("killed")
    assert not (tmp_path / "t").exists()
    assert not list(tmp_path.iterdir())


def test_bad_record_names_line(tmp_path):
    (tmp_path / "train.jsonl").write_text(json.dumps({"id": "a", "audio": "x", "target": 1, "bogus": 2}) + "\n")
    with pytest.raises(ValueError, match=r"train.jsonl:1.*bogus"):
        read_split(tmp_path, "train")
