"""Result records and leaderboards: generated rows, per-source tables, concurrent writers."""
from __future__ import annotations

import csv
import json
import multiprocessing as mp
from pathlib import Path

import pytest

from benchmark.results import write_leaderboards, write_result


def record(rep="mfcc", rev="abcd1234", task="key", ttype="key", source="embedded-standard", main=0.5):
    layers = [{"layer": "0", "lr": 1e-3, "valid_main": main, "test": {"main": main}, "test_std": {"main": 0.0}}]
    return {"schema": 1, "representation": {"name": rep, "revision": rev, "identity": rev * 2},
            "task": {"name": task, "version": 1, "type": ttype}, "data": {"source": source},
            "config": {}, "config_hash": "x", "environment": {}, "scores": {"main": main},
            "selection": {"layer": "0", "lr": 1e-3}, "layers": layers, "seeds": [0], "timings": {}, "skipped": []}


def _write(results, r):
    write_result(Path(results) / "runs" / r["data"]["source"] / f"{r['representation']['name']}@"
                 f"{r['representation']['revision']}" / f"{r['task']['name']}@v1.json", r)


def test_leaderboard_rows_columns_and_average(tmp_path):
    _write(tmp_path, record(task="key", main=0.5))
    _write(tmp_path, record(task="separation", ttype="separation", main=3.0))
    _write(tmp_path, record(task="key", source="real", main=0.7))
    write_leaderboards(tmp_path, plots=False)
    rows = list(csv.DictReader((tmp_path / "leaderboard.csv").open()))
    by = {r["data"]: r for r in rows}
    assert set(by) == {"embedded-standard", "real"}
    assert float(by["embedded-standard"]["key@v1"]) == pytest.approx(50.0)
    assert float(by["embedded-standard"]["separation@v1"]) == pytest.approx(3.0)  # dB, not percent
    assert float(by["embedded-standard"]["average"]) == pytest.approx(26.5)
    assert by["real"]["separation@v1"] == "" and float(by["real"]["average"]) == pytest.approx(70.0)
    md = (tmp_path / "leaderboard.md").read_text()
    assert md.index("## embedded-standard") < md.index("## real")
    layer_csv = (tmp_path / "layers" / "real" / "key@v1.csv").read_text()
    assert "mfcc" in layer_csv and "True" in layer_csv


def test_the_average_counts_each_task_at_its_newest_version(tmp_path):
    """A row still holding an older task version shows it, but averages over the tasks it has at the newest."""
    old = record(rep="old", task="beat", ttype="beat", main=0.9)
    new = record(rep="new", task="beat", ttype="beat", main=0.6)
    new["task"]["version"] = 2
    for r in (old, new, record(rep="old", main=0.5), record(rep="new", main=0.5)):
        write_result(Path(tmp_path) / "runs" / r["data"]["source"] / f"{r['representation']['name']}@abcd1234" /
                     f"{r['task']['name']}@v{r['task']['version']}.json", r)
    write_leaderboards(tmp_path, plots=False)
    by = {r["representation"]: r for r in csv.DictReader((tmp_path / "leaderboard.csv").open())}
    assert float(by["old"]["beat@v1"]) == pytest.approx(90.0) and by["old"]["beat@v2"] == ""
    assert float(by["old"]["average"]) == pytest.approx(50.0) and by["old"]["n_tasks"] == "1"
    assert float(by["new"]["average"]) == pytest.approx(55.0) and by["new"]["n_tasks"] == "2"


def test_reference_rows_come_after_the_probed_ones(tmp_path):
    ref = record(rep="reference:spectral-flux", task="beat", ttype="beat", main=0.99)
    for r in (ref, record(rep="mfcc", main=0.2)):
        _write(tmp_path, r)
    write_leaderboards(tmp_path, plots=False)
    reps = [r["representation"] for r in csv.DictReader((tmp_path / "leaderboard.csv").open())]
    assert reps == ["mfcc", "reference:spectral-flux"]


def test_leaderboard_markdown_shows_the_seed_spread(tmp_path):
    three = record(task="genre", ttype="multiclass", main=0.625)
    three["seeds"] = [0, 1, 2]
    three["scores"]["main_std"] = 0.0125
    _write(tmp_path, three)
    _write(tmp_path, record(task="key", main=0.5))  # one seed: no spread shown
    write_leaderboards(tmp_path, plots=False)
    md = (tmp_path / "leaderboard.md").read_text()
    assert "| 50.0 | 62.5 ± 1.2 (3) | 56.2 | 2 |" in md
    row = next(csv.DictReader((tmp_path / "leaderboard.csv").open()))
    assert float(row["genre@v1"]) == pytest.approx(62.5)  # the csv keeps plain numbers


def test_write_result_rejects_incomplete_record(tmp_path):
    r = record()
    del r["scores"]
    with pytest.raises(ValueError, match="scores"):
        write_result(tmp_path / "x.json", r)


def _writer(results, rep, n):
    for i in range(n):
        _write(results, record(rep=rep, task=["key", "genre", "tagging"][i % 3], ttype="key", main=0.1 * (i + 1)))
        write_leaderboards(results, plots=False)


def test_two_concurrent_writers_leave_both_rows(tmp_path):
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(str(tmp_path), rep, 3)) for rep in ("mfcc", "chroma")]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    rows = list(csv.DictReader((tmp_path / "leaderboard.csv").open()))
    assert sorted(r["representation"] for r in rows) == ["chroma", "mfcc"]
    assert all(r["n_tasks"] == "3" for r in rows)
    assert not list(tmp_path.glob(".*.tmp"))
    json.loads(next(tmp_path.glob("runs/**/*.json")).read_text())


def test_every_committed_result_fits_the_record_type_and_recomputes_to_its_hash():
    """The record type's schema holds for every committed result, and each result's config_hash is what
    benchmark.config computes from its config and identity today (and from the config a run resolves today,
    which no longer has the retired probe.eval_batch_rows): no migration has moved a committed result."""
    import copy

    from benchmark.config import RETIRED, config_hash
    from benchmark.results import ResultRecord, identity_of, json_schema, load_results

    repo_results = Path(__file__).resolve().parent.parent / "results"
    results = load_results(repo_results)
    assert len(results) >= 70
    schema = json_schema()
    py = {"object": dict, "array": list, "string": str, "integer": int, "number": (int, float)}
    for r in results:
        r = {k: v for k, v in r.items() if k != "_path"}
        assert all(k in r for k in schema["required"])
        for k, prop in schema["properties"].items():
            if k in r:
                assert isinstance(r[k], py[prop["type"]]), (k, r[k])
        assert ResultRecord.from_dict(r).to_dict() == r
        assert config_hash({"config": r["config"], **identity_of(r)}) == r["config_hash"]
        today = copy.deepcopy(r["config"])
        for section, keys in RETIRED.items():
            for k in keys:
                today[section].pop(k, None)  # results written since the retirement do not hold it
        assert config_hash({"config": today, **identity_of(r)}) == r["config_hash"]


def test_random_draws_row_pools_the_draws_and_their_probe_seeds(tmp_path):
    """random:P, random:P:1 and random:P:2 give a row random:P:0-2: per task the mean of the draws' means, the
    spread over every (draw, seed) score; a task one draw lacks has no cell; the draws keep their rows."""
    draws = {"random:mini": (0.50, 0.01), "random:mini:1": (0.60, 0.02), "random:mini:2": (0.70, 0.0)}
    for name, (main, std) in draws.items():
        r = record(rep=name, task="genre", ttype="multiclass", main=main)
        r["seeds"], r["scores"]["main_std"] = [0, 1, 2], std
        _write(tmp_path, r)
    _write(tmp_path, record(rep="random:mini:1", task="key", main=0.3))  # one draw only: no pooled cell
    _write(tmp_path, record(rep="random:other", task="genre", ttype="multiclass", main=0.1))  # one draw: no row
    write_leaderboards(tmp_path, plots=False)
    by = {r["representation"]: r for r in csv.DictReader((tmp_path / "leaderboard.csv").open())}
    assert set(by) == {*draws, "random:other", "random:mini:0-2"}
    pooled = by["random:mini:0-2"]
    assert float(pooled["genre@v1"]) == pytest.approx(60.0) and pooled["key@v1"] == ""
    assert pooled["revision"] == "3 draws" and pooled["n_tasks"] == "1"
    # the 9 scores' population std: within-draw variances and the draws' spread about 60
    import math
    want = math.sqrt((1.0 ** 2 + 2.0 ** 2 + 0.0 + 10.0 ** 2 + 0.0 + 10.0 ** 2) / 3)
    md = (tmp_path / "leaderboard.md").read_text()
    assert f"| random:mini:0-2 (3 draws) |" in md and f"60.0 ± {want:.1f} (3x3)" in md


def test_random_draw_names():
    from benchmark.results import random_draw

    assert random_draw("random:mert-mini") == ("random:mert-mini", 0)
    assert random_draw("random:mert-mini:2") == ("random:mert-mini", 2)
    assert random_draw("random:mert-mini:1+mean_std") == ("random:mert-mini+mean_std", 1)
    assert random_draw("mert-mini") is None and random_draw("random:x:y") is None
