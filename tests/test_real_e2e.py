"""`python -m benchmark run --data real` end to end on fixture trees with the real layouts: genre, key,
beat and an MTG task, data found through $MERT_BENCH_DATA/<dataset>."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fixtures_real import make_giantsteps, make_gtzan, make_mtg

REPO = Path(__file__).resolve().parents[1]


def test_run_real_genre_key_beat_mtg(tmp_path):
    pytest.importorskip("benchmark.runner", reason="the benchmark runner (issue 4) is not in this checkout")
    data = tmp_path / "data"
    make_gtzan(data / "GTZAN")
    make_giantsteps(data / "GiantSteps")
    make_mtg(data / "MTG-Jamendo")
    env = dict(os.environ, MERT_BENCH_DATA=str(data), MERT_BENCH_HOME=str(tmp_path / "home"),
               HF_HUB_OFFLINE="1", PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    cmd = [sys.executable, "-m", "benchmark", "run", "--task", "genre,key,beat,mtg-genre", "--data", "real",
           "--model", "mfcc", "--grid", "fast", "--limit", "4", "--results-dir", str(tmp_path / "results"),
           "--no-progress", "probe.max_epochs=2"]
    r = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=540)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    runs = {p.stem.split("@")[0]: json.loads(p.read_text()) for p in (tmp_path / "results" / "runs" / "real").rglob("*.json")}
    assert set(runs) == {"genre", "key", "beat", "mtg-genre"}
    versions = {"genre": "gtzan-real-v1:filtered", "beat": "gtzan-real-v1:filtered", "key": "giantsteps-real-v1",
                "mtg-genre": "mtg-real-v1:split-0:genre"}
    for task, res in runs.items():
        assert res["data"]["source"] == "real" and res["data"]["source_version"] == versions[task]
        assert res["data"]["folder"].startswith(str(tmp_path / "home" / "prepared-real"))
    assert runs["genre"]["data"]["counts"] == {"train": 4, "valid": 4, "test": 4}
    assert runs["mtg-genre"]["data"]["counts"] == {"train": 4, "valid": 3, "test": 3}
    # the fixture's audio has clicks exactly at the annotated beats (JAMS, .wav.jams and .beats files):
    # a beat F-measure far above chance shows targets and audio line up through the whole pipeline
    assert runs["beat"]["scores"]["test"]["beat_f"] > 0.8, runs["beat"]["scores"]
    meta = json.loads((tmp_path / "home" / "prepared-real" / "genre-v1" / "meta.json").read_text())
    assert [s["name"] for s in meta["skipped"]] == ["jazz.00054.wav"]
    board = (tmp_path / "results" / "leaderboard.csv").read_text()
    assert "real,mfcc" in board
