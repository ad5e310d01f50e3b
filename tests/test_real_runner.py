"""The runner on real data: files lost while preparing reach the result JSON, a changed data folder is
re-prepared (never silently reused), and real-data options (the MTT Won split) get their own folder, data
source and leaderboard table."""
import json
import shutil

import pytest

from fixtures_real import make_gtzan, make_mtt


def _opts(tmp_path, task, data_dir, **kw):
    from benchmark.runner import RunOptions

    return RunOptions(model="mfcc", tasks=[task], data="real", data_dir=str(data_dir), grid="fast", limit=3,
                      results_dir=str(tmp_path / "results"), progress=False, quiet=True, leaderboard=True,
                      overrides=["probe.max_epochs=1"], **kw)


def test_prepare_skips_reach_the_result_and_a_new_data_dir_is_prepared_again(tmp_path, monkeypatch):
    from benchmark.runner import run

    monkeypatch.setenv("MERT_BENCH_HOME", str(tmp_path / "home"))
    a = tmp_path / "a" / "GTZAN"
    make_gtzan(a)  # jazz.00054 is corrupt, as in the distribution
    (res,) = run(_opts(tmp_path, "genre", a))
    prep = [d for d in res["skipped"] if d["stage"] == "prepare"]
    assert [d["id"] for d in prep] == ["jazz.00054.wav"] and prep[0]["reason"]
    assert all(d["stage"] in ("prepare", "extract") for d in res["skipped"])
    folder = tmp_path / "home" / "prepared-real" / "genre-v1"
    assert json.loads((folder / "meta.json").read_text())["data_dir"] == str(a)
    # the same data under another folder: the prepared folder now points there (items are absolute paths)
    b = tmp_path / "b" / "GTZAN"
    shutil.copytree(a, b)
    shutil.rmtree(a)
    (res2,) = run(_opts(tmp_path, "genre", b, overwrite="always"))
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["data_dir"] == str(b)
    items = [json.loads(line) for line in (folder / "train.jsonl").read_text().splitlines()]
    assert items and all(str(b) in it["audio"] for it in items)
    assert res2["scores"]["test"] and res2["data"]["source"] == "real"


def test_won_split_runs_into_its_own_table(tmp_path, monkeypatch):
    from benchmark.runner import RunError, run

    monkeypatch.setenv("MERT_BENCH_HOME", str(tmp_path / "home"))
    root = tmp_path / "MTT"
    make_mtt(root)
    (res,) = run(_opts(tmp_path, "tagging", root, data_options={"split": "won"}))
    assert res["data"]["source"] == "real-split=won"
    assert res["data"]["folder"].endswith("tagging-v1-split=won")
    assert (tmp_path / "results" / "runs" / "real-split=won").is_dir()
    board = (tmp_path / "results" / "leaderboard.csv").read_text()
    assert "real-split=won,mfcc" in board
    # the default option spelled out is the default table
    from benchmark.data import real_options_suffix
    from tasks import get_task

    assert real_options_suffix(get_task("tagging"), _opts(tmp_path, "tagging", root,
                                                          data_options={"split": "folder"})) == ""
    with pytest.raises(RunError, match="unknown real-data option"):
        run(_opts(tmp_path, "tagging", root, data_options={"splitt": "won"}))
    with pytest.raises(RunError, match="split"):
        run(_opts(tmp_path, "tagging", root, data_options={"split": "lee"}))


def test_data_option_on_the_command_line(tmp_path):
    import argparse

    from benchmark.commands import data_options

    assert data_options(argparse.Namespace(data_option=["split=won"])) == {"split": "won"}
    with pytest.raises(SystemExit, match="KEY=VALUE"):
        data_options(argparse.Namespace(data_option=["won"]))
