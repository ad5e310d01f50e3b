"""End to end: every registered task through `python -m benchmark run` on the tiny embedded corpus, with a
handcrafted baseline and a tiny random MERT; result schema, leaderboard rows, and a rerun that is a no-op."""
from __future__ import annotations

import csv
import json

import pytest

from benchmark.__main__ import main
from tasks import all_tasks

FAST = """
probe:
  max_epochs: 3
  patience: 2
separation:
  max_epochs: 1
  steps_per_epoch: 2
  hidden: 16
  num_layers: 1
  n_fft: 256
  hop: 128
  segment_s: 2.0
"""


@pytest.fixture(scope="module")
def e2e(tiny_home, tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    (root / "fast.yaml").write_text(FAST)
    base = ["--task", "all", "--size", "tiny", "--data-dir", str(tiny_home), "--results-dir", str(root / "results"),
            "--cache-dir", str(root / "cache"), "--grid", "fast", "--config", str(root / "fast.yaml"),
            "--no-progress", "--quiet"]
    for model in ("mfcc", "random:debug"):
        assert main(["run", "--model", model, *base]) == 0
    return root, base


def _runs(root):
    return {p: json.loads(p.read_text()) for p in sorted((root / "results" / "runs").glob("**/*.json"))}


def test_every_task_has_a_complete_result(e2e):
    root, _ = e2e
    runs = _runs(root)
    names = {t.name for t in all_tasks()}
    assert len(runs) == 2 * len(names) == 28
    for path, r in runs.items():
        assert r["schema"] == 1 and r["data"]["source"] == "embedded-tiny"
        assert r["task"]["name"] in names and path.name == f"{r['task']['name']}@v{r['task']['version']}.json"
        for k in ("config", "config_hash", "environment", "scores", "selection", "layers", "seeds", "timings",
                  "skipped"):
            assert k in r, (path, k)
        assert r["environment"]["packages"]["torch"] and "git_commit" in r["environment"]
        assert r["config"]["probe"]["max_epochs"] == 3  # --config file applied over the fast grid
        spec_metrics = r["task"]["metrics"]
        assert all(m in r["scores"]["test"] for m in spec_metrics)
        main_score = r["scores"]["main"]
        assert main_score == main_score  # not NaN
        if r["task"]["type"] != "separation":
            assert r["selection"]["lr"] in (1e-3, 5e-3)
        if r["representation"]["name"] == "random:debug" and r["task"]["type"] != "separation":
            # 3 hidden states (projection + 2 layers) + the weighted sum, each at its best lr
            assert [row["layer"] for row in r["layers"]] == ["0", "1", "2", "weighted"]
        assert r["timings"]["model_calls"] > 0


def test_leaderboard_rows(e2e):
    root, _ = e2e
    rows = list(csv.DictReader((root / "results" / "leaderboard.csv").open()))
    assert {(r["data"], r["representation"]) for r in rows} == {("embedded-tiny", "mfcc"),
                                                                 ("embedded-tiny", "random:debug")}
    for r in rows:
        assert r["n_tasks"] == str(len(all_tasks()))
        assert all(r[f"{t.name}@v{t.version}"] != "" for t in all_tasks())
    md = (root / "results" / "leaderboard.md").read_text()
    assert "## embedded-tiny" in md and "| mfcc (" in md
    assert (root / "results" / "layers" / "embedded-tiny" / "key@v1.png").stat().st_size > 1000


def test_rerun_is_a_noop(e2e):
    root, base = e2e
    before = {p: p.stat().st_mtime_ns for p in _runs(root)}
    assert main(["run", "--model", "mfcc", *base]) == 0
    assert {p: p.stat().st_mtime_ns for p in _runs(root)} == before
    # probing again from the cache (forced) runs no model: `probe` refuses to extract and succeeds here
    assert main(["probe", "--model", "mfcc", *[a if a != "all" else "genre" for a in base], "--overwrite",
                 "always"]) == 0
    genre = json.loads(next((root / "results" / "runs").glob("embedded-tiny/mfcc@*/genre@v1.json")).read_text())
    assert genre["timings"]["model_calls"] == 0


def test_a_result_of_another_render_is_run_again(e2e, capsys):
    """A result names the embedded render it was computed on (the audio's sha256); one of another render (the
    folder was rendered anew since) is not kept by --overwrite only-missing."""
    from tasks import format as F
    from tasks.embedded import prepare

    root, base = e2e
    path = next((root / "results" / "runs").glob("embedded-tiny/mfcc@*/key@v1.json"))
    rec = json.loads(path.read_text())
    digest = F.read_meta(prepare("key", "tiny", home=base[base.index("--data-dir") + 1]))["content_digest"]
    assert rec["data"]["content_digest"] == digest
    rec["data"]["content_digest"] = "0" * 64
    path.write_text(json.dumps(rec))
    args = ["run", "--model", "mfcc", *base]
    args[args.index("all")] = "key"
    capsys.readouterr()
    assert main(args) == 0
    assert "computed on another render" in capsys.readouterr().err
    assert json.loads(path.read_text())["data"]["content_digest"] == digest
