import json
import sys
import textwrap
from pathlib import Path

import pytest

from tasks import all_tasks, get_task
from tasks.base import TaskSpec, task_modules, task_order
from tasks.format import Item, atomic_dir, is_complete, read_meta, read_split, write_meta, write_split

# The MARBLE v1 table order, which every leaderboard and results table follows.
MARBLE_ORDER = ["tagging", "key", "genre", "beat", "emotion", "instrument", "pitch", "singer", "technique",
                "mtg-instrument", "mtg-mood", "mtg-genre", "mtg-top50", "separation"]


def test_fourteen_tasks_complete_metadata():
    specs = all_tasks()
    assert [s.name for s in specs] == list(task_order())
    assert [s.name for s in specs if s.name in MARBLE_ORDER] == MARBLE_ORDER  # the MARBLE tasks in table order
    for s in specs:
        assert s.version >= 1 and s.dataset and s.description
        assert s.main_score_metrics and all(m in s.metrics for m in s.main_score_metrics)
    assert get_task("mtg-genre").window_s == 30.0
    assert get_task("key").labels[0] == "C major" and len(get_task("key").labels) == 24
    assert len(get_task("tagging").labels) == 50


def test_every_task_names_its_generator_and_reader():
    import importlib

    import tasks.real as real
    from tasks.embedded import build

    for s in all_tasks():
        assert s.generator and s.reader and s.order is not None, s.name
        assert s.key == f"{s.name}@{s.version}"  # the new fields are not part of the identity
        assert build.generator(s.name).name == s.name  # made for this task (its name: the seed family)
        assert real.reader(s.name).__name__ == f"tasks.real.{s.reader}"
    assert build.generator("mtg-genre").subset == "genre" and build.is_view(build.generator("mtg-top50"))
    # the compatibility names, derived from the specs
    import tasks.base
    import tasks.embedded

    assert tasks.embedded.TASK_NAMES == task_order()
    assert set(tasks.embedded.GENERATOR_VERSIONS) == set(task_order()) | {"pretraining"}
    assert list(build.GENERATORS) == [n for n in task_order() if not n.startswith("mtg-")]
    assert real.DATASET_DIRS["GTZAN"] == ("genre", "beat") and sum(map(len, real.DATASET_DIRS.values())) == len(all_tasks())
    assert importlib.import_module("tasks.real").reader_names()["pitch"] == "nsynth"


def test_task_modules_are_discovered():
    here = Path(__file__).resolve().parent.parent / "tasks"
    files = {p.stem for p in here.glob("*.py") if not p.stem.startswith("_")} - {"base", "format"}
    assert set(task_modules()) == files
    assert "mtg" in task_modules() and "embedded" not in task_modules() and "real" not in task_modules()


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
    with pytest.raises(ValueError, match="generator"):
        TaskSpec(name="x", version=1, dataset="d", type="multiclass", metrics=("a",), main_score="a",
                 generator="songs.KeyTask")
    with pytest.raises(ValueError, match="reader"):
        TaskSpec(name="x", version=1, dataset="d", type="multiclass", metrics=("a",), main_score="a",
                 reader="gtzan:listing")


def test_table_position_is_unique():
    from tasks.base import register

    with pytest.raises(ValueError, match="order=20 is taken by task 'key'"):
        register(TaskSpec(name="x-dup", version=1, dataset="d", type="multiclass", metrics=("a",),
                          main_score="a", order=20))
    assert "x-dup" not in task_order()


# ---------------------------------------------------------------------------------------------- a new task
# A task of an existing type is three files: its spec, its embedded generator, its real-data reader. Here they
# live in a temporary package outside the repo; every derived list must pick the task up.
_EXTRA = {
    "task.py": """
        from tasks.base import TaskSpec, register

        SPEC = register(TaskSpec(
            name="x-extra", version=1, dataset="ExtraSet", type="multiclass", labels=("low", "high"),
            metrics=("accuracy",), main_score="accuracy", description="a temporary test task",
            order=10_000, generator="x_extra_pkg.gen:ToneTask", reader="x_extra_pkg.reader",
        ))
    """,
    "gen.py": """
        import numpy as np

        from tasks.embedded.common import SPLITS, Job, Out, TaskGenerator

        class ToneTask(TaskGenerator):
            name = "x-extra"
            version = 3
            item_duration_s = 0.5

            def plan(self, size):
                return [Job(self.name, s, i) for s in SPLITS for i in range(2)]

            def make(self, job):
                label = ("low", "high")[job.index % 2]
                f = 220.0 if label == "low" else 880.0
                y = 0.3 * np.sin(2 * np.pi * f * np.arange(12000) / 24000) + 0.01 * job.rng().standard_normal(12000)
                iid = f"{job.split}-{job.index}"
                rel = f"audio/{iid}.flac"
                return [Out({rel: (y * 32767).astype(np.int16)}, [dict(id=iid, audio=rel, target=label, group=iid)])]

            def labels(self, items):
                return ["low", "high"]
    """,
    "reader.py": """
        from tasks.format import Item
        from tasks.real.validation import Entry, Listing

        DATASET = "ExtraSet"
        OPTIONS = {"x-extra": {"variant": ("plain", "loud")}}

        def instructions(task):
            return "Expected below the ExtraSet data folder: <split>/<n>.wav"

        def assets(task, root):
            return []

        def listing(task, root, options):
            entries = [Entry(s, f"{s}/{i}.wav", Item(id=f"{s}-{i}", audio=str(root / s / f"{i}.wav"), target="low"))
                       for s in ("train", "valid", "test") for i in range(2)]
            return Listing(DATASET, task, root, "folders", entries, {"train": 2, "valid": 2, "test": 2}, ["low", "high"],
                           8000, f"extra-v1-{options['variant']}")
    """,
}


@pytest.fixture
def extra_task(tmp_path, monkeypatch):
    from tasks import base
    from tasks.embedded import build

    pkg = tmp_path / "pkgs" / "x_extra_pkg"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    for name, text in _EXTRA.items():
        (pkg / name).write_text(textwrap.dedent(text))
    monkeypatch.syspath_prepend(str(tmp_path / "pkgs"))
    import x_extra_pkg.task  # noqa: F401  (registers the spec)

    yield "x-extra"
    base.unregister("x-extra")
    for key in [k for k in build._MADE if k[0] == "x-extra"]:
        del build._MADE[key]
    for mod in [m for m in sys.modules if m == "x_extra_pkg" or m.startswith("x_extra_pkg.")]:
        del sys.modules[mod]


def test_a_new_task_appears_everywhere_derived(extra_task, tmp_path):
    import numpy as np
    import soundfile as sf

    import tasks.base
    import tasks.embedded as emb
    import tasks.real as real
    from tasks.embedded import build

    # the registry and the table order (order=10_000: after every task of the repo)
    assert get_task(extra_task).key == "x-extra@1"
    assert task_order()[-1] == extra_task
    assert [n for n in task_order() if n in MARBLE_ORDER] == MARBLE_ORDER
    # the embedded corpus
    assert emb.TASK_NAMES[-1] == extra_task and emb.task_names()[-1] == extra_task
    assert emb.GENERATOR_VERSIONS[extra_task] == 3 and extra_task in build.GENERATORS
    folder = emb.prepare(extra_task, "tiny", home=tmp_path / "home", progress=False)
    assert folder.name == "x-extra-v1-g3-tiny"
    meta = read_meta(folder)
    assert meta["labels"] == ["low", "high"] and meta["counts"] == {"train": 2, "valid": 2, "test": 2}
    assert meta["durations_s"] == 0.5
    # the real-data reader
    assert real.reader(extra_task).DATASET == "ExtraSet" and real.dataset_of(extra_task) == "ExtraSet"
    assert real.DATASET_DIRS["ExtraSet"] == (extra_task,)
    assert real.resolve_options(extra_task, None) == {"variant": "plain"}
    with pytest.raises(ValueError, match="variant"):
        real.resolve_options(extra_task, {"variant": "quiet"})
    assert "ExtraSet" in real.instructions(extra_task)
    data = tmp_path / "ExtraSet"
    for s in ("train", "valid", "test"):
        for i in range(2):
            (data / s).mkdir(parents=True, exist_ok=True)
            sf.write(str(data / s / f"{i}.wav"), 0.2 * np.sin(np.arange(8000) / 5.0), 8000)
    assert real.validate(extra_task, data).ok
    out = real.prepare(extra_task, data, tmp_path / "prepared", options={"variant": "loud"}, progress=False)
    assert read_meta(out)["source_version"] == "extra-v1-loud" and len(read_split(out, "test")) == 2


def test_a_removed_task_is_gone_everywhere(extra_task):
    import tasks.embedded as emb
    import tasks.real as real
    from tasks import base

    base.unregister(extra_task)
    assert extra_task not in task_order() and extra_task not in emb.TASK_NAMES
    with pytest.raises(KeyError, match="unknown task"):
        real.reader(extra_task)
    with pytest.raises(KeyError, match="unknown task"):
        emb.prepare(extra_task, "tiny")


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
