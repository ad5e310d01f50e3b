"""Few-shot mode (benchmark.fewshot, ``run --mode fewshot``): the nearest-centroid rule on hand-computed vectors,
the support draws, and whole runs on small prepared folders with ``mfcc`` / ``chroma`` (seconds each): their own
data source and leaderboard table, the frozen-probe result beside them untouched, and the freeze config hash as
it was."""
from __future__ import annotations

import json

import numpy as np
import pytest

from benchmark.__main__ import main
from run_helpers import genre3_folder, prepared_args, result_records
from benchmark.fewshot import centroid_scores, draw_support, linear_scores
from tasks import get_task


def test_nearest_centroid_by_hand():
    # class 0: (1, 0), (3, 0) -> centroid (2, 0); class 1: (0, 2), (0, 4) -> (0, 3); class 2: no support
    support = np.array([[1.0, 0.0], [3.0, 0.0], [0.0, 2.0], [0.0, 4.0]])
    y = np.array([0, 0, 1, 1])
    query = np.array([[5.0, 1.0], [0.5, 2.0], [-1.0, 0.0], [1.0, 1.0]])
    sims = centroid_scores(support, y, query, 3)
    want = np.array([[5 / np.sqrt(26), 1 / np.sqrt(26)], [0.5 / np.sqrt(4.25), 2 / np.sqrt(4.25)],
                     [-1.0, 0.0], [1 / np.sqrt(2), 1 / np.sqrt(2)]])
    np.testing.assert_allclose(sims[:, :2], want)
    assert np.isneginf(sims[:, 2]).all()  # a class without support is never predicted
    assert sims.argmax(1).tolist() == [0, 1, 1, 0]  # the last one a tie: the lower class
    # cosine, not euclidean: a far query along a centroid's direction is that class
    assert centroid_scores(support, y, np.array([[100.0, 1.0]]), 2).argmax(1).tolist() == [0]
    lin = linear_scores(support, y, query[:2], 3)
    assert lin.argmax(1).tolist() == [0, 1] and np.isneginf(lin[:, 2]).all()
    assert linear_scores(support[:2], y[:2], query, 3).argmax(1).tolist() == [0] * 4  # one class: predicted


def test_support_draws_are_seeded_and_short_classes_use_what_they_have():
    y = np.array([0] * 10 + [1] * 10 + [2] * 2)
    a, b = draw_support(y, 3, 0), draw_support(y, 3, 0)
    assert a.tolist() == b.tolist()
    assert np.bincount(y[a]).tolist() == [3, 3, 2]  # class 2 has 2 items < K: both
    assert draw_support(y, 3, 1).tolist() != a.tolist()
    assert sorted(draw_support(y, 50, 4).tolist()) == list(range(len(y)))  # K above every count: all items


@pytest.fixture(scope="module")
def genre_dir(tmp_path_factory):
    """A 3-class genre folder with 8 train items per class (so K < count and draws differ)."""
    return genre3_folder(tmp_path_factory.mktemp("fewshot"), {"train": 24, "valid": 9, "test": 9})


_args, _runs = prepared_args, result_records


def test_fewshot_run_is_deterministic_in_its_own_table(genre_dir, tmp_path):
    fs = ["--task", "genre", "--model", "mfcc", "--mode", "fewshot", "--shots", "2", "fewshot.draws=4"]
    assert main(["run", *_args(tmp_path, genre_dir, *fs)]) == 0
    (path, rec), = _runs(tmp_path).items()
    assert path.split("/")[0].endswith("-fewshot2") and rec["data"]["source"].endswith("-fewshot2")
    assert rec["seeds"] == [0, 1, 2, 3] and rec["probe"]["mode"] == "fewshot" and rec["probe"]["shots"] == 2
    assert rec["probe"]["support_sizes"] == [6] * 4 and rec["config"]["fewshot"]["draws"] == 4
    assert rec["selection"]["lr"] is None and "validation" in rec["selection"]["by"]
    assert [r["layer"] for r in rec["layers"]] == ["0"] and len(rec["layers"][0]["test_main_per_draw"]) == 4
    per_draw = rec["layers"][0]["test_main_per_draw"]
    assert rec["scores"]["main"] == pytest.approx(np.mean(per_draw))
    assert rec["scores"]["main_std"] == pytest.approx(np.std(per_draw))
    # the same run again: the same scores (kept as it is under only-missing; recomputed under always)
    assert main(["run", *_args(tmp_path, genre_dir, *fs, "--overwrite", "always")]) == 0
    (again,) = _runs(tmp_path).values()
    assert again["layers"] == rec["layers"] and again["scores"] == rec["scores"]
    assert again["config_hash"] == rec["config_hash"]
    # other shots: another source (folder, table); other draws: another config hash
    assert main(["run", *_args(tmp_path, genre_dir, *fs[:-3], "--shots", "20")]) == 0
    big = next(r for p, r in _runs(tmp_path).items() if "-fewshot20/" in p)
    assert big["probe"]["support_sizes"] == [24] * 10 and big["scores"]["main_std"] == 0.0  # K > every count
    assert big["probe"]["short_classes"] == {"blues": 8, "jazz": 8, "rock": 8}
    md = (tmp_path / "results" / "leaderboard.md").read_text()
    assert md.count("-fewshot2\n") == 1 and md.count("-fewshot20\n") == 1


def test_freeze_result_untouched_and_its_hash_unchanged(genre_dir, tmp_path):
    from benchmark.config import config_hash, resolve_config, to_dict
    from benchmark.pipeline import RunOptions, plan_task
    from benchmark.registry import load_representation

    freeze = ["--task", "genre", "--model", "chroma", "--grid", "fast", "--seeds", "1", "probe.max_epochs=2"]
    assert main(["run", *_args(tmp_path, genre_dir, *freeze)]) == 0
    (fpath,) = (tmp_path / "results" / "runs").glob("**/*.json")
    before = (fpath.read_bytes(), fpath.stat().st_mtime_ns)
    assert "fewshot" not in json.loads(before[0])["config"]
    assert main(["run", *_args(tmp_path, genre_dir, "--task", "genre", "--model", "chroma", "--mode", "fewshot",
                               "--shots", "3")]) == 0
    assert (fpath.read_bytes(), fpath.stat().st_mtime_ns) == before
    runs = _runs(tmp_path)
    sources = sorted(r["data"]["source"] for r in runs.values())
    assert len(runs) == 2 and sources[1] == sources[0] + "-fewshot3"
    md = (tmp_path / "results" / "leaderboard.md").read_text()
    assert f"## {sources[0]}\n" in md and f"## {sources[1]}\n" in md
    # the default freeze config: no fewshot section, the hash pinned in tests/test_gpu_path.py
    ident = {"representation": "mert-mini", "identity": "0123456789abcdef", "task": "genre@1",
             "source": "embedded-standard", "source_version": "v1", "limit": None}
    cfg = resolve_config(get_task("genre"))
    cfg.features.precision = "fp32"
    assert "fewshot" not in to_dict(cfg)
    assert config_hash({"config": to_dict(cfg), **ident}) == "aa1eb68e5fbb865a"
    # kept at its defaults (a fewshot record) it hashes the same; a changed key does not
    assert config_hash({"config": to_dict(cfg, keep=("fewshot",)), **ident}) == "aa1eb68e5fbb865a"
    cfg.fewshot.draws = 3
    assert config_hash({"config": to_dict(cfg), **ident}) != "aa1eb68e5fbb865a"
    # the planned freeze run of the same task hashes as it did: its source has no suffix
    rep = load_representation("chroma")
    opts = RunOptions(model="chroma", tasks=["genre"], data="prepared", data_dir=str(genre_dir),
                      results_dir=str(tmp_path / "results"), grid="fast", seeds=1,
                      overrides=["probe.max_epochs=2"])
    assert plan_task(get_task("genre"), rep, opts).chash == json.loads(before[0])["config_hash"]


def test_key_fewshot_pools_songs(tiny_home, tmp_path):
    """Key on the tiny corpus: a song's clips are one unit; K above every class's count works."""
    args = ["--task", "key", "--model", "chroma", "--size", "tiny", "--data-dir", str(tiny_home), "--results-dir",
            str(tmp_path / "results"), "--cache-dir", str(tmp_path / "cache"), "--no-progress", "--quiet",
            "--mode", "fewshot", "--shots", "50", "--no-leaderboard"]
    assert main(["run", *args]) == 0
    (rec,) = _runs(tmp_path).values()
    assert rec["data"]["source"] == "embedded-tiny-fewshot50"
    assert set(rec["scores"]["test"]) == {"weighted_key", "accuracy", "main"}
    assert rec["scores"]["main"] == rec["scores"]["test"]["weighted_key"]
    assert 0.0 <= rec["scores"]["main"] <= 1.0


def test_unsupported_tasks_and_options_are_refused(genre_dir, tmp_path, capsys):
    for task in ("tagging", "emotion", "beat"):
        assert main(["run", *_args(tmp_path, genre_dir, "--task", task, "--model", "mfcc", "--mode", "fewshot")]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and f"task {task!r}" in err and "genre" in err and "key" in err
    assert main(["run", *_args(tmp_path, genre_dir, "--task", "genre", "--model", "mfcc", "--shots", "3")]) == 2
    assert "only with --mode fewshot" in capsys.readouterr().err
    assert main(["run", *_args(tmp_path, genre_dir, "--task", "genre", "--model", "mfcc", "--mode", "fewshot",
                               "fewshot.classifier=knn")]) == 2
    assert "fewshot.classifier" in capsys.readouterr().err
    assert not (tmp_path / "results" / "runs").exists()


def test_layer_chosen_on_validation(genre_dir, tmp_path):
    """Every layer of a 3-layer model scored with the same draws; the chosen one is the best on validation."""
    fs = ["--task", "genre", "--model", "random:debug", "--mode", "fewshot", "fewshot.draws=3", "--no-leaderboard"]
    assert main(["run", *_args(tmp_path, genre_dir, *fs)]) == 0
    (rec,) = _runs(tmp_path).values()
    assert [r["layer"] for r in rec["layers"]] == ["0", "1", "2"]
    best = max(rec["layers"], key=lambda r: r["valid_main"])
    assert rec["selection"]["layer"] == best["layer"] and rec["scores"]["valid_main"] == best["valid_main"]
    assert rec["scores"]["test"] == best["test"] and rec["scores"]["main"] == best["test"]["main"]
    # freeze mode ignores fewshot.*: its config (and hash) holds no fewshot section even when it is set
    freeze = ["--task", "genre", "--model", "mfcc", "--grid", "fast", "--seeds", "1", "probe.max_epochs=1",
              "probe.lrs=[1e-3]", "fewshot.draws=3", "--no-leaderboard"]
    assert main(["run", *_args(tmp_path, genre_dir, *freeze)]) == 0
    frozen = next(r for r in _runs(tmp_path).values() if r["representation"]["name"] == "mfcc")
    assert "fewshot" not in frozen["config"] and not frozen["data"]["source"].endswith("-fewshot5")
