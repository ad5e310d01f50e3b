"""``python -m benchmark evaluate``: a stored probe scored on another source's test split without any training, as a
result of its own (both sources in its identity, folder and leaderboard table), the training run's result untouched."""
from __future__ import annotations

import json

import pytest

from benchmark.__main__ import main
from fixtures_probes import KEYS6, make_key_folder

SHARP_AND_MIR_EVAL = {"F# minor": "f#:min", "G major": "G:major", "A minor": "Am"}  # other spellings of the keys


def _files(folder):
    return {p: p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def no_training(monkeypatch):
    """Any probe training fails the test."""
    import benchmark.pipeline as pipeline
    import benchmark.probes as probes

    def trained(*a, **k):
        raise AssertionError("evaluate must not train a probe")

    monkeypatch.setattr(probes, "train_sweep", trained)
    monkeypatch.setattr(pipeline, "run_probes", trained)
    monkeypatch.setattr(probes.BatchedAdam, "step", trained)


def _evaluate(stored_probes, data, *extra) -> int:
    return main(["evaluate", "--task", "key", "--model", "chroma", "--train-source", stored_probes["key_source"],
                 "--data", "prepared", "--data-dir", str(data), "--results-dir", str(stored_probes["results"]),
                 "--cache-dir", str(stored_probes["cache"]), "--no-progress", "--quiet", *extra])


def test_evaluate_scores_another_folder_without_training_and_keeps_the_training_result(stored_probes, tmp_path,
                                                                                      no_training, capsys):
    # a second folder, rendered with another seed, spelling some keys with sharps and in mir_eval / JAMS forms,
    # holding only a test split
    other = make_key_folder(tmp_path / "my-keys", KEYS6, {"test": 2}, seed=11, seconds=2.0,
                            spell=lambda k: SHARP_AND_MIR_EVAL.get(k, k))
    train_dir = stored_probes["results"] / "runs" / stored_probes["key_source"]
    before = _files(train_dir)
    assert _evaluate(stored_probes, other) == 0
    table = capsys.readouterr().out
    assert _files(train_dir) == before  # the training run's result, probe and predictions: byte-identical

    (path,) = (stored_probes["results"] / "runs").glob(f"train={stored_probes['key_source']}+test=*/*/key@v1.json")
    assert path.parent.parent.name in table
    r = json.loads(path.read_text())
    assert r["data"]["train_source"] == stored_probes["key_source"]
    assert r["data"]["test_source"].startswith("prepared-my-keys-") and r["data"]["counts"] == {"test": 12}
    assert r["data"]["source"] == f"train={r['data']['train_source']}+test={r['data']['test_source']}"
    assert r["evaluation"]["trained"] is False and r["probe"]["members"] == 0
    probe_file = next(train_dir.glob("*/key@v1.probe.pt"))
    from benchmark.artefacts import sha256

    assert r["evaluation"]["probe_sha256"] == sha256(probe_file.read_bytes())
    assert r["scores"]["main"] >= 0.9 and r["seeds"] == [0]
    lines = [json.loads(l) for l in path.with_name("key@v1.predictions.jsonl").read_text().splitlines()]
    assert len(lines) == 12 and {l["target"] for l in lines} == set(KEYS6) - {"F# minor"} | {"Gb minor"}
    assert sum(l["score"] for l in lines) / 12 == pytest.approx(r["scores"]["main"])

    # its identity recomputes to its hash, and a rerun is a no-op
    from benchmark.config import config_hash
    from benchmark.results import identity_of

    assert config_hash({"config": r["config"], **identity_of(r)}) == r["config_hash"]
    mtime = path.stat().st_mtime_ns
    assert _evaluate(stored_probes, other) == 0
    assert path.stat().st_mtime_ns == mtime

    # its own leaderboard table
    assert main(["leaderboard", "--results-dir", str(stored_probes["results"]), "--no-plots"]) == 0
    md = (stored_probes["results"] / "leaderboard.md").read_text()
    assert f"## {r['data']['source']}" in md and f"## {stored_probes['key_source']}" in md


def test_evaluate_on_the_probes_own_source_or_without_a_test_split_is_refused(stored_probes, tmp_path, capsys,
                                                                            no_training):
    assert _evaluate(stored_probes, stored_probes["key_data"]) == 2
    assert "already scores" in capsys.readouterr().err
    no_test = make_key_folder(tmp_path / "train-only", KEYS6[:2], {"train": 1}, seed=2, seconds=1.0)
    assert _evaluate(stored_probes, no_test) == 2
    assert "no test split" in capsys.readouterr().err


def test_evaluate_separation_without_a_stored_probe_names_the_run_that_makes_one(stored_probes, capsys):
    # separation's evaluate itself: tests/test_separation_artefacts.py
    assert main(["evaluate", "--task", "separation", "--model", "chroma", "--results-dir",
                 str(stored_probes["results"])]) == 2
    err = capsys.readouterr().err
    assert "no trained probe for chroma on task separation@2" in err
    assert "python -m benchmark run --task separation" in err


def test_an_unknown_key_name_names_the_item(stored_probes, tmp_path, capsys, no_training):
    bad = make_key_folder(tmp_path / "bad-keys", KEYS6[:1], {"test": 1}, seed=3, seconds=1.0,
                          spell=lambda k: "C dorian")
    assert _evaluate(stored_probes, bad) == 2
    err = capsys.readouterr().err
    assert "test-C_major-0" in err and "'C dorian' is not one of the 24 keys" in err
